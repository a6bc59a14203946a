"""The trace file (format version 1): what a run writes, in what order, streamed as it goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from qnetstack.link.service import LinkCreate
from qnetstack.stack import assemble
from qnetstack.stack.cli import main
from qnetstack.stack.runner import run_traced
from qnetstack.stack.scenario import parse_scenario
from qnetstack.stack.trace import TraceError, TraceWriter, read_trace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def teleport_data(number: int = 2) -> dict:
    """The teleport example, teleporting ``number`` qubits (two keep the run short)."""
    data = yaml.safe_load((EXAMPLES / "teleport-chain.yaml").read_text())
    data["applications"][0]["request"]["number"] = number
    return data


@pytest.fixture(scope="module")
def teleport_trace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trace")
    scenario = folder / "teleport.yaml"
    scenario.write_text(yaml.safe_dump(teleport_data()))
    trace = folder / "teleport.jsonl"
    assert main(["run", str(scenario), "--trace", str(trace)]) == 0
    return trace


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def first(records: list[dict], **match) -> int:
    """The index of the first record whose fields equal ``match``."""
    for i, record in enumerate(records):
        if all(record.get(k) == v for k, v in match.items()):
            return i
    raise AssertionError(f"no record with {match}")


def test_the_trace_starts_with_its_header_and_ends_with_how_the_run_ended(teleport_trace):
    records = lines(teleport_trace)
    header, end = records[0], records[-1]
    assert header == {
        "type": "header",
        "format": "qnetstack-trace",
        "version": 1,
        "scenario": "teleport-chain",
        "seed": 1,
        "nodes": ["alice", "alice~r", "r", "r~bob", "bob"],
        "links": [
            {"a": "alice", "b": "r", "length_km": 10.0, "station": "alice~r"},
            {"a": "r", "b": "bob", "length_km": 10.0, "station": "r~bob"},
        ],
    }
    assert end["type"] == "end" and end["status"] == "done" and end["reason"] == "finished"
    assert end["records"] == len(records) - 2
    body = records[1:-1]
    assert {r["type"] for r in body} == {"service", "peer", "transition", "event"}
    times = [r["t_ns"] for r in body]
    assert times == sorted(times)  # written as the run goes: in simulated-time order
    assert end["t_ns"] >= times[-1]


def test_the_teleport_trace_holds_the_service_messages_in_order(teleport_trace):
    records = lines(teleport_trace)[1:-1]
    submitted = first(records, type="service", node="alice", kind="TeleportRequest", from_layer="user", to_layer="application")
    net_request = first(records, type="service", node="alice", kind="NetRequest", direction="down", to_layer="network")
    accepted = first(records, type="service", node="alice", kind="NetAccepted", direction="up")
    assert submitted < net_request < accepted
    # each link's CREATE goes down at the end that asks, before an OK comes up at either end
    for asker, other in (("alice", "r"), ("r", "bob")):
        create = first(records, type="service", node=asker, kind="LinkCreate", direction="down", from_layer="network", to_layer="link")
        assert create > net_request
        for node in (asker, other):
            ok = first(records, type="service", node=node, kind="LinkOkKeep", direction="up", from_layer="link")
            assert ok > create, (asker, node)
    # the physical attempts: an attempt down before any result up, heralded by a station
    attempt = first(records, type="service", node="alice", kind="HeraldAttempt", direction="down", to_layer="physical")
    herald = first(records, type="peer", node="alice~r", kind="StationHerald", to_node="alice")
    result = first(records, type="service", node="alice", kind="HeraldResult", direction="up", to_layer="link")
    assert attempt < herald < result
    # the swap at r, its records to both ends, then the pair handed up and the qubit teleported
    swap = first(records, type="peer", node="r", kind="SwapRecord", to_node="bob")
    delivered = first(records, type="service", node="alice", kind="PairDelivered", to_layer="application")
    told = first(records, type="service", node="bob", kind="TeleportResult", from_layer="application", to_layer="user")
    assert net_request < swap < delivered < told
    assert records[swap]["delivery_ns"] > records[swap]["t_ns"]  # a classical delay over the 10 km to bob
    # two teleports asked for: two results at bob and one AppDone at alice
    assert sum(r["type"] == "service" and r["kind"] == "TeleportResult" for r in records) == 2
    assert sum(r["type"] == "service" and r["kind"] == "AppDone" for r in records) == 1


def test_message_fields_are_the_messages_json_dump(teleport_trace):
    records = lines(teleport_trace)
    create = records[first(records, kind="LinkCreate")]
    assert set(create["fields"]) == set(LinkCreate.model_fields)
    assert LinkCreate.model_validate(create["fields"]).model_dump(mode="json") == create["fields"]
    transition = records[first(records, type="transition")]
    assert {"machine", "session", "trigger", "from_state", "to_state"} <= set(transition)
    event = records[first(records, type="event", event="station.attempt")]
    assert isinstance(event["fields"], dict)


def test_the_trace_is_streamed_and_an_interrupted_run_leaves_whole_lines(tmp_path, monkeypatch):
    """The sink is stopped by a Ctrl-C at its 200th record: by then the file on disk
    already holds every record so far (streamed), each line whole, and no end record."""
    path = tmp_path / "cut.jsonl"
    on_disk: list[int] = []
    plain_call = TraceWriter.__call__

    def interrupted(self, record):
        plain_call(self, record)
        if self.records == 200:
            on_disk.append(len(path.read_text().splitlines()))
            raise KeyboardInterrupt

    monkeypatch.setattr(TraceWriter, "__call__", interrupted)
    simulation = assemble(parse_scenario({**teleport_data(), "keep_trace": True}))
    with pytest.raises(KeyboardInterrupt):
        run_traced(simulation, path)
    assert on_disk == [201]  # the header and 200 records, before the run ended
    text = path.read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == 201 and all(r["type"] != "end" for r in records)
    with pytest.raises(TraceError, match="line 201: truncated"):
        read_trace(path)


def test_a_run_without_a_trace_has_untraced_contexts_and_keeps_the_old_in_memory_records():
    quiet = assemble(parse_scenario(teleport_data(1)))
    assert not any(type(ctx).__name__.startswith("Traced") for ctx in quiet.network.contexts)
    kept = assemble(parse_scenario({**teleport_data(1), "keep_trace": True}))
    assert all(type(ctx).__name__.startswith("Traced") for ctx in kept.network.contexts)
    kept.run()
    records = kept.network.trace.records
    assert records and all("event" in r and "time_ns" in r for r in records)
    assert any(r["event"] == "transition" for r in records)


@pytest.mark.parametrize(
    ("label", "text", "line"),
    [
        ("not JSON", '{"type":"header","format":"qnetstack-trace","version":1}\n{"t_ns": 1,\n', 2),
        ("another version", '{"type":"header","format":"qnetstack-trace","version":2}\n', 1),
        ("another format", '{"type":"header","format":"otf2","version":1}\n', 1),
        (
            "no end record",
            '{"type":"header","format":"qnetstack-trace","version":1}\n'
            '{"type":"event","t_ns":0,"node":"a","layer":"link","event":"x","fields":{}}\n',
            2,
        ),
        ("unknown type", '{"type":"header","format":"qnetstack-trace","version":1}\n{"type":"blob","t_ns":0}\n', 2),
        ("empty", "", 1),
        ("not text", '{"type":"header","format":"qnetstack-trace","version":1}\n\udcff\n', 2),
    ],
)
def test_a_bad_trace_names_the_line(tmp_path, label, text, line):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    assert caught.value.line == line, (label, str(caught.value))
