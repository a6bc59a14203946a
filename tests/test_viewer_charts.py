"""Sequence charts: PNG (``qnetstack chart -o run.png``), ``qnetstack run --chart``, and
the node and request filters of ``qnetstack chart``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from qnetstack.stack.chart import MAX_PNG_PX, build_chart, request_ids
from qnetstack.stack.cli import main
from qnetstack.stack.trace import TraceWriter, read_trace

pytest.importorskip("matplotlib")  # in the test extra; the chart itself says how to install it (tested below)
from PIL import Image  # noqa: E402  (pillow comes with matplotlib)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BLUE, ORANGE = (0x1F, 0x5F, 0xA8), (0xB5, 0x50, 0x1B)  # service and peer arrows, as in the SVG


def write_trace(path: Path, messages: int = 6, gap_ns: int = 10) -> None:
    """Service messages down a's stack and peer messages from a to b, alternating."""
    writer = TraceWriter(path, "png", 3, nodes=["a", "b"])
    for i in range(messages):
        t = i * gap_ns
        if i % 2 == 0:
            writer(
                {"type": "service", "t_ns": t, "node": "a", "layer": "network", "direction": "down"}
                | {"from_layer": "network", "to_layer": "link", "kind": "LinkCreate", "fields": {"i": i}}
            )
        else:
            writer(
                {"type": "peer", "t_ns": t, "node": "a", "layer": "link", "to_node": "b", "delivery_ns": t + 5}
                | {"kind": "Ping", "fields": {"i": i}}
            )
    writer.finish(messages * gap_ns, "done", "finished", "synthetic")


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 60) -> bool:
    return all(abs(p - c) <= tolerance for p, c in zip(pixel[:3], colour))


def test_the_png_draws_the_svg_layout_an_arrow_where_each_message_is(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    out = tmp_path / "run.png"
    assert main(["chart", str(trace), "-o", str(out)]) == 0
    assert "3 lanes, 6 messages" in capsys.readouterr().out
    header, records, _ = read_trace(trace)
    chart = build_chart(header, records)  # the layout the SVG is drawn from
    image = Image.open(out).convert("RGB")
    assert image.size == (round(chart.width), round(chart.height))
    assert len(chart.arrows) == 6
    for arrow in chart.arrows:
        # a quarter of the way along each arrow (clear of its label and head), the arrow's colour
        x = arrow["x1"] + (arrow["x2"] - arrow["x1"]) / 4
        y = arrow["y1"] + (arrow["y2"] - arrow["y1"]) / 4
        window = [image.getpixel((round(x) + dx, round(y) + dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
        expected = BLUE if arrow["cls"] == "service" else ORANGE
        assert any(near(p, expected) for p in window), (arrow["kind"], window)
    # between two lanes, away from every arrow's row, the page is white
    lane_xs = sorted(chart.lane_x.values())
    blank_y = round(chart.height) - 3
    assert all(near(image.getpixel((round(x + 40), blank_y)), (255, 255, 255), 5) for x in lane_xs[:-1])


def test_without_matplotlib_a_png_is_one_line_saying_how_to_install_it(tmp_path, capsys, monkeypatch):
    trace = tmp_path / "t.jsonl"
    write_trace(trace)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert main(["chart", str(trace), "-o", str(tmp_path / "run.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "pip install matplotlib" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_a_png_too_tall_to_draw_is_refused_naming_the_flag_and_nothing_is_written(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    messages = 2_500  # a row of 16 px and a gap of 14 px each: about 75,000 px, over the limit
    write_trace(trace, messages=messages)
    header, records, _ = read_trace(trace)
    assert build_chart(header, records).height > MAX_PNG_PX
    assert main(["chart", str(trace), "-o", str(tmp_path / "run.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "--to-ns" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


def test_run_refuses_a_chart_format_it_cannot_draw_before_running(tmp_path, capsys):
    out = tmp_path / "run.pdf"
    assert main(["run", str(EXAMPLES / "teleport-chain.yaml"), "--chart", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--chart" in err[0] and ".pdf" in err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # two short runs of the teleport example: about 10 s here
def test_run_chart_draws_the_same_chart_as_chart_on_the_runs_trace(tmp_path, capsys):
    data = yaml.safe_load((EXAMPLES / "teleport-chain.yaml").read_text())
    data["applications"][0]["request"]["number"] = 2
    scenario = tmp_path / "teleport.yaml"
    scenario.write_text(yaml.safe_dump(data))
    trace, with_trace, alone, from_trace = (tmp_path / name for name in ("t.jsonl", "a.svg", "b.svg", "c.svg"))
    assert main(["run", str(scenario), "--trace", str(trace), "--chart", str(with_trace), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "done"  # stdout stays one JSON object; the chart's line is on stderr
    assert f"wrote {with_trace}" in captured.err
    assert main(["run", str(scenario), "--chart", str(alone)]) == 0  # its trace kept in a temporary folder
    assert main(["chart", str(trace), "-o", str(from_trace)]) == 0
    assert with_trace.read_bytes() == alone.read_bytes() == from_trace.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.svg", "b.svg", "c.svg", "t.jsonl", "teleport.yaml"]


def write_requests_trace(path: Path) -> None:
    """Three nodes; messages of requests 1 and 2 (one in a pair id, one in a session key) and one of none."""
    writer = TraceWriter(path, "filters", 3, nodes=["a", "b", "c"])
    writer(
        {"type": "peer", "t_ns": 0, "node": "a", "layer": "network", "to_node": "b", "delivery_ns": 4, "kind": "Forward"}
        | {"fields": {"request_id": 1}}
    )
    writer(
        {"type": "peer", "t_ns": 1, "node": "b", "layer": "network", "to_node": "c", "delivery_ns": 5, "kind": "Forward"}
        | {"fields": {"request_id": 2}}
    )
    writer(
        {
            "type": "service",
            "t_ns": 2,
            "node": "c",
            "layer": "network",
            "direction": "up",
            "from_layer": "network",
            "to_layer": "application",
        }
        | {"kind": "PairDelivered", "fields": {"pair_id": {"head": "a", "tail": "c", "request_id": 2, "index": 0}}}
    )
    writer(
        {"type": "transition", "t_ns": 3, "node": "a", "layer": "network", "machine": "m", "session": {"request_id": 1}, "trigger": "t"}
        | {"from_state": "x", "to_state": "y"}
    )
    writer({"type": "event", "t_ns": 3, "node": "b", "layer": "link", "event": "link.ok", "fields": {"remote": "c"}})
    writer.finish(5, "done", "finished", "synthetic")


def test_request_ids_are_found_in_fields_pair_ids_and_session_keys(tmp_path):
    trace = tmp_path / "t.jsonl"
    write_requests_trace(trace)
    _, records, _ = read_trace(trace)
    assert [request_ids(r) for r in records] == [{1}, {2}, {2}, {1}, set()]


@pytest.mark.parametrize(
    ("options", "kinds"),
    [
        (["--request", "2"], ["Forward", "PairDelivered"]),
        (["--request", "1"], ["Forward"]),  # and request 1's transition (a mark, not a message)
        (["--nodes", "a,b"], ["Forward"]),  # only the message between a and b: b -> c needs c
        (["--nodes", "b,c", "--request", "2"], ["Forward", "PairDelivered"]),
    ],
)
def test_the_node_and_request_filters_of_chart(tmp_path, options, kinds):
    trace = tmp_path / "t.jsonl"
    write_requests_trace(trace)
    out = tmp_path / "run.svg"
    assert main(["chart", str(trace), "-o", str(out), *options]) == 0
    svg = out.read_text()
    drawn = [m.split(">")[-1] for m in re.findall(r'<text x="[^"]*" y="[^"]*" text-anchor="middle">[A-Za-z]+(?=</text></g>)', svg)]
    assert drawn == kinds


def test_a_node_the_trace_does_not_have_is_refused_naming_the_flag(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    write_requests_trace(trace)
    assert main(["chart", str(trace), "-o", str(tmp_path / "run.svg"), "--nodes", "a,zed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--nodes" in err[0] and "zed" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]
