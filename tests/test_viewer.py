"""``qnetstack view``: the self-contained trace viewer page, checked without a browser
(tests/test_viewer_browser.py drives it in Chromium)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from qnetstack.entity.conformance import read_spec
from qnetstack.stack.cli import main
from qnetstack.stack.trace import TraceWriter
from qnetstack.stack.viewer import CLAUSES, SPECS, pair_lights, render_viewer, topology

DATA_BLOCK = re.compile(r'<script type="application/json" id="trace-data">(.*?)</script>', re.S)

HOSTILE = "</script><script>window.pwned = 1</script><!-- <b>bold</b>"


def write_trace(path: Path, *, links: list[dict] | None = None) -> list[dict]:
    """A small trace by hand: a create going down, a peer message with a hostile field, an OK at both ends."""
    records = [
        {"type": "service", "t_ns": 0, "node": "a", "layer": "network", "direction": "down", "from_layer": "network", "to_layer": "link"}
        | {"kind": "LinkCreate", "fields": {"remote_node": "b", "number": 1}},
        {"type": "peer", "t_ns": 10, "node": "a", "layer": "link", "to_node": "b", "delivery_ns": 60, "kind": "Hello"}
        | {"fields": {"note": HOSTILE}},
        {"type": "transition", "t_ns": 60, "node": "b", "layer": "link", "machine": "m", "session": 0, "trigger": "go"}
        | {"from_state": "x", "to_state": "y"},
        {"type": "service", "t_ns": 90, "node": "a", "layer": "link", "direction": "up", "from_layer": "link", "to_layer": "network"}
        | {"kind": "LinkOkKeep", "fields": {"remote_node": "b", "request_id": 3}},
        {"type": "service", "t_ns": 90, "node": "b", "layer": "link", "direction": "up", "from_layer": "link", "to_layer": "network"}
        | {"kind": "LinkOkKeep", "fields": {"remote_node": "a", "request_id": 3}},
    ]
    writer = TraceWriter(path, "hand-made", 5, nodes=["a", "a~b", "b"], links=links)
    for record in records:
        writer(record)
    writer.finish(90, "done", "finished", "every request closed")
    return records


def embedded(page: str) -> dict:
    blocks = DATA_BLOCK.findall(page)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def test_the_page_embeds_the_whole_trace_as_data_that_cannot_close_its_script_block(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    records = write_trace(trace)
    out = tmp_path / "viewer.html"
    assert main(["view", str(trace), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    block = DATA_BLOCK.findall(page)[0]
    assert "<" not in block  # so no "</script>" or "<!--" inside it
    data = embedded(page)
    assert data["records"] == records  # every record, every field, unchanged
    assert data["records"][1]["fields"]["note"] == HOSTILE
    assert data["header"]["scenario"] == "hand-made" and data["end"]["status"] == "done"
    # only the two scripts of the page: the data and the viewer's own code
    assert len(re.findall(r"<script\b", page)) == 2


def test_the_page_works_offline_it_names_no_other_resource(tmp_path):
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    page = render_viewer(*_read(trace))
    code = DATA_BLOCK.sub("", page)
    # the one URL is the SVG namespace, an identifier that is never fetched
    assert set(re.findall(r"https?://[^\s\"')]+", code)) == {"http://www.w3.org/2000/svg"}
    for fetching in ("src=", "href=", "fetch(", "XMLHttpRequest", "import(", "@import", "url("):
        assert fetching not in code, fetching
    assert "default-src 'none'" in page  # and the page's policy forbids loading anything


def _read(trace: Path):
    from qnetstack.stack.trace import read_trace

    return read_trace(trace)


def test_every_clause_the_table_names_is_defined_by_a_spec_and_every_kind_is_a_service_message():
    defined = {clause for spec in SPECS for clause in read_spec(spec)}
    named = {clause for clauses in CLAUSES.values() for clause in clauses}
    assert named - defined == set()
    messages = set()
    for layer in ("physical", "link", "network", "application"):
        module = importlib.import_module(f"qnetstack.{layer}.service")
        messages |= {name for name in dir(module) if isinstance(getattr(module, name), type)}
    assert set(CLAUSES) - messages == set()


def test_the_page_carries_the_clause_texts_of_the_kinds_in_the_trace(tmp_path):
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    data = embedded(render_viewer(*_read(trace)))
    assert set(data["clauses"]) == {"LinkCreate", "LinkOkKeep"}  # Hello relates to no clause
    link = read_spec("specs/link.md")
    for clause in CLAUSES["LinkCreate"]:
        assert data["clause_text"][clause].endswith(link[clause].text)


def test_the_topology_comes_from_the_header_links_else_from_the_stations(tmp_path):
    with_links = tmp_path / "links.jsonl"
    write_trace(with_links, links=[{"a": "a", "b": "b", "length_km": 3.0, "station": "a~b"}])
    header, records, _ = _read(with_links)
    topo = topology(header, records)
    assert topo["nodes"] == ["a", "b"] and topo["links"] == [{"a": "a", "b": "b", "length_km": 3.0, "station": "a~b"}]
    older = tmp_path / "older.jsonl"
    write_trace(older)  # a header without links, as traces had before
    header, records, _ = _read(older)
    assert "links" not in header
    assert topology(header, records)["links"] == [{"a": "a", "b": "b", "station": "a~b"}]
    # no station either: the link is found from the OKs
    header["nodes"] = ["a", "b"]
    assert topology(header, records)["links"] == [{"a": "a", "b": "b", "station": None}]
    assert topology(header, records)["positions"] == {"a": (0.0, 0.5), "b": (1.0, 0.5)}


@pytest.mark.parametrize(
    ("label", "cut", "where", "expect"),
    [
        ("truncated", lambda lines: lines[:-1], -1, "truncated"),
        ("another version", lambda lines: [lines[0].replace('"version":1', '"version":2'), *lines[1:]], 1, "version 2"),
        ("not JSON", lambda lines: [lines[0], "{oops", *lines[1:]], 2, "not JSON"),
    ],
)
def test_a_bad_trace_is_one_line_naming_the_line_exit_2_and_nothing_written(tmp_path, capsys, label, cut, where, expect):
    good = tmp_path / "good.jsonl"
    write_trace(good)
    lines = good.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(cut(lines)) + "\n")
    line = len(lines) - 1 if where == -1 else where
    out = tmp_path / "viewer.html"
    assert main(["view", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"line {line}:" in err[0] and expect in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "good.jsonl"]


def test_the_viewer_is_written_as_html_only(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    assert main(["view", str(trace), "-o", str(tmp_path / "viewer.svg")]) == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def _up(t: int, node: str, kind: str, fields: dict) -> dict:
    return {"type": "service", "t_ns": t, "node": node, "layer": "network", "direction": "up"} | {
        "from_layer": "network",
        "to_layer": "application",
        "kind": kind,
        "fields": fields,
    }


def test_pairs_light_their_link_and_delivered_pairs_their_whole_path():
    links = [{"a": "a", "b": "r"}, {"a": "r", "b": "z"}, {"a": "a", "b": "z"}]
    pair = {"head": "a", "tail": "z", "request_id": 4, "index": 0}
    records = [
        _up(0, "a", "NetAccepted", {"request_id": 4, "path": ["a", "r", "z"]}),
        _up(1, "r", "LinkOkKeep", {"remote_node": "a"}) | {"layer": "link", "from_layer": "link", "to_layer": "network"},
        _up(1, "a", "LinkOkKeep", {"remote_node": "r"}) | {"layer": "link", "from_layer": "link", "to_layer": "network"},
        _up(2, "z", "LinkOkMeasure", {"remote_node": "nowhere"}) | {"layer": "link", "from_layer": "link", "to_layer": "network"},
        _up(3, "z", "PairDelivered", {"pair_id": pair}),
        _up(3, "a", "PairDelivered", {"pair_id": pair}),
        _up(4, "z", "PairDelivered", {"pair_id": pair | {"request_id": 5}}),  # no NetAccepted for 5: head to tail
    ]
    assert pair_lights(records, links) == [
        [1, [0], "link", False],  # the OK at r: the link's a end is a
        [2, [0], "link", True],
        [4, [0, 1], "e2e", False],  # along the path a - r - z, not the direct link a - z
        [5, [0, 1], "e2e", True],
        [6, [2], "e2e", False],
    ]
