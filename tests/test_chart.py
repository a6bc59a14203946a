"""``qnetstack chart``: a sequence chart of a trace file, counted in the SVG it writes."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from qnetstack.stack.chart import LANE_LAYERS
from qnetstack.stack.cli import main
from qnetstack.stack.trace import TraceWriter

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def teleport_trace(tmp_path_factory) -> Path:
    """The teleport example's trace, teleporting two qubits (to keep the run short)."""
    folder = tmp_path_factory.mktemp("chart")
    data = yaml.safe_load((EXAMPLES / "teleport-chain.yaml").read_text())
    data["applications"][0]["request"]["number"] = 2
    scenario = folder / "teleport.yaml"
    scenario.write_text(yaml.safe_dump(data))
    trace = folder / "teleport.jsonl"
    assert main(["run", str(scenario), "--trace", str(trace)]) == 0
    return trace


def body(trace: Path) -> list[dict]:
    return [json.loads(line) for line in trace.read_text().splitlines()][1:-1]


def lanes_of(records: list[dict]) -> set[tuple[str, str]]:
    lanes = set()
    for r in records:
        if r["type"] == "service":
            lanes |= {(r["node"], r["from_layer"]), (r["node"], r["to_layer"])}
        elif r["type"] == "peer":
            lanes |= {(r["node"], r["layer"]), (r["to_node"], r["layer"])}
        else:
            lanes.add((r["node"], r["layer"]))
    return lanes


def groups(svg: Path, cls: str) -> list[ET.Element]:
    root = ET.parse(svg).getroot()  # also checks that the SVG is well-formed XML
    return [g for g in root.iter(f"{SVG}g") if cls in g.get("class", "").split()]


def test_the_teleport_chart_has_a_lane_per_node_and_layer_and_an_arrow_per_message(teleport_trace, tmp_path, capsys):
    out = tmp_path / "run.svg"
    assert main(["chart", str(teleport_trace), "-o", str(out)]) == 0
    records = body(teleport_trace)
    lanes = [(g.get("data-node"), g.get("data-layer")) for g in groups(out, "lane")]
    assert set(lanes) == lanes_of(records) and len(lanes) == len(set(lanes))
    # ordered by node as the header lists them, then down the stack
    nodes = ["alice", "alice~r", "r", "r~bob", "bob"]
    assert lanes == sorted(lanes, key=lambda lane: (nodes.index(lane[0]), LANE_LAYERS.index(lane[1])))
    assert ("alice", "application") in lanes and ("alice~r", "physical") in lanes and ("r", "application") not in lanes
    messages = [r for r in records if r["type"] in ("service", "peer")]
    arrows = groups(out, "msg")
    assert len(arrows) == len(messages)
    assert [g.find(f"{SVG}text").text for g in arrows] == [r["kind"] for r in messages]
    assert len(groups(out, "service")) == sum(r["type"] == "service" for r in records)
    assert len(groups(out, "transition")) == sum(r["type"] == "transition" for r in records)
    assert f"{len(lanes)} lanes, {len(messages)} messages" in capsys.readouterr().out


def test_the_html_chart_wraps_the_svg_with_the_fields_on_hover(teleport_trace, tmp_path):
    out = tmp_path / "run.html"
    assert main(["chart", str(teleport_trace), "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and ".msg:hover" in page
    create = next(r for r in body(teleport_trace) if r.get("kind") == "LinkCreate")
    titles = re.findall(r"<title>(LinkCreate[^<]*)</title>", page)
    assert titles
    for name, value in create["fields"].items():  # every field of the message, with its value
        assert html.escape(f"{json.dumps(name)}: {json.dumps(value)}") in titles[0]


def test_the_window_and_layer_filters(teleport_trace, tmp_path):
    records = body(teleport_trace)
    late = records[len(records) // 2]["t_ns"]
    out = tmp_path / "part.svg"
    assert main(["chart", str(teleport_trace), "-o", str(out), "--from-ns", "0", "--to-ns", str(late), "--layers", "network,link"]) == 0
    kept = {"network", "link"}
    chosen = [
        r
        for r in records
        if r["t_ns"] <= late and (({r["from_layer"], r["to_layer"]} <= kept) if r["type"] == "service" else r["layer"] in kept)
    ]
    assert {g.get("data-layer") for g in groups(out, "lane")} == kept
    assert len(groups(out, "msg")) == sum(r["type"] in ("service", "peer") for r in chosen)
    assert 0 < len(groups(out, "msg")) < sum(r["type"] in ("service", "peer") for r in records)


def write_trace(path: Path, times: list[int]) -> None:
    writer = TraceWriter(path, "synthetic", 7, nodes=["a", "b"])
    for t in times:
        writer(
            {
                "type": "peer",
                "t_ns": t,
                "node": "a",
                "layer": "link",
                "to_node": "b",
                "delivery_ns": t + 5,
                "kind": "Ping",
                "fields": {"n": t},
            }
        )
    writer.finish(times[-1] + 5, "done", "finished", "synthetic")


def test_a_long_idle_span_is_drawn_as_a_break_with_its_length(tmp_path):
    """Gaps of 10 ns between messages, then 3 ms of nothing: one break, saying 3 ms."""
    trace = tmp_path / "idle.jsonl"
    write_trace(trace, [0, 10, 20, 30, 3_000_030, 3_000_040])
    out = tmp_path / "idle.svg"
    assert main(["chart", str(trace), "-o", str(out)]) == 0
    breaks = groups(out, "break")
    assert len(breaks) == 1 and "3 ms idle" in breaks[0].find(f"{SVG}text").text
    steady = tmp_path / "steady.jsonl"
    write_trace(steady, [0, 10, 20, 30, 40, 50])
    assert main(["chart", str(steady), "-o", str(out)]) == 0
    assert groups(out, "break") == []


@pytest.mark.parametrize(
    ("label", "cut", "expect"),
    [
        ("truncated", lambda lines: lines[:-1], "truncated"),
        ("cut mid-line", lambda lines: [*lines[:-1], lines[-1][:10]], "not JSON"),
        ("another version", lambda lines: [lines[0].replace('"version":1', '"version":2'), *lines[1:]], "version 2"),
        ("not JSON", lambda lines: [lines[0], "<html>", *lines[1:]], "not JSON"),
    ],
)
def test_a_bad_trace_is_one_line_naming_the_line_exit_2_and_nothing_written(tmp_path, capsys, label, cut, expect):
    good = tmp_path / "good.jsonl"
    write_trace(good, [0, 10, 20])
    lines = good.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(cut(lines)) + "\n")
    where = {"truncated": len(lines) - 1, "cut mid-line": len(lines), "another version": 1, "not JSON": 2}[label]
    out = tmp_path / "run.svg"
    assert main(["chart", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"line {where}:" in err[0] and expect in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["-o", "run.pdf"], "--out"),
        (["-o", "run.svg", "--from-ns", "9", "--to-ns", "3"], "--from-ns"),
        (["-o", "run.svg", "--layers", "transport"], "--layers"),
        (["-o", "run.svg", "--from-ns", "100000000"], "no record"),
    ],
)
def test_bad_chart_options_are_refused(tmp_path, capsys, monkeypatch, args, flag):
    trace = tmp_path / "t.jsonl"
    write_trace(trace, [0, 10])
    monkeypatch.chdir(tmp_path)
    assert main(["chart", str(trace), *args]) == 2
    assert flag in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]
