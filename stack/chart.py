"""Sequence charts of a trace file: who sent what to whom, when, in simulated time.

One lane (a vertical line) per node and layer that the selected records touch,
grouped by node (in the order of the trace header's ``nodes``, else of first
appearance) and, within a node, from the top of the stack down: ``user``,
``application``, ``network``, ``link``, ``physical``. Simulated time runs
down the page. Each service message is an arrow between two neighbouring lanes
of one node at the instant it was sent; each peer message an arrow from the
sender's lane at its send time to the receiver's lane at its delivery time;
both labelled with the message's kind. A transition is a small square on its
lane labelled with the new state; another traced event a small dot.

Time is drawn to a scale fitted to the trace (the median gap between
distinct instants is a fixed number of pixels), except that records at one
instant each get a row of their own, and a gap far longer than the median
(an idle span) is drawn as a short break marked with its length rather than
as blank space. The scale is therefore piecewise, and the time labels on the
left are the true times.

The SVG is written as plain text, with no dependency. Every arrow carries a
``<title>`` with its kind, nodes, times and fields, which browsers show on
hover; the HTML output wraps the SVG with a little CSS that highlights the
arrow under the pointer. :func:`render_png` draws the same layout (lanes, arrows,
marks, breaks, time labels) with matplotlib, which is imported only then.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

__all__ = ["LANE_LAYERS", "MAX_PNG_PX", "Chart", "build_chart", "render_html", "render_png", "render_svg", "request_ids"]

LANE_LAYERS = ("user", "application", "network", "link", "physical")

ROW = 16  # px per record at one instant
LANE_GAP = 96  # px between neighbouring lanes
NODE_GAP = 40  # extra px between the lane groups of two nodes
MEDIAN_GAP_PX = 14  # the median gap between distinct instants, drawn at this height
BREAK_PX = 140  # a gap that would be drawn taller than this is an idle span: drawn as a break
BREAK_HEIGHT = 28
MARGIN_LEFT = 110  # the time labels
MARGIN_TOP = 56  # the lane headers
LABEL_EVERY_PX = 48  # at most one time label per this many px
MAX_PNG_PX = 65_000  # matplotlib's Agg renderer draws images under 2**16 px a side


@dataclass
class Chart:
    """The laid-out chart: lanes with their x, records with their y, the breaks."""

    title: str
    lanes: list[tuple[str, str]]
    lane_x: dict[tuple[str, str], float]
    height: float
    width: float
    arrows: list[dict[str, Any]] = field(default_factory=list)  # x1, y1, x2, y2, kind, title, cls
    marks: list[dict[str, Any]] = field(default_factory=list)  # x, y, label, title, cls
    breaks: list[tuple[float, int]] = field(default_factory=list)  # y, idle ns
    time_labels: list[tuple[float, int]] = field(default_factory=list)  # y, t_ns


def request_ids(record: dict[str, Any]) -> set[int | str]:
    """The ``request_id`` values a record's fields (or its session key) name, looking
    at most three levels deep (a pair id inside a message's fields is two)."""
    found: set[int | str] = set()

    def visit(value: Any, depth: int) -> None:
        if depth > 3:
            return
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if key == "request_id" and isinstance(item, (int, str)) and not isinstance(item, bool):
                found.add(item)
            elif isinstance(item, (dict, list)):
                visit(item, depth + 1)

    visit({"fields": record.get("fields"), "session": record.get("session")}, 0)
    return found


def _selected(
    records: Iterable[dict[str, Any]],
    from_ns: int | None,
    to_ns: int | None,
    layers: Sequence[str] | None,
    nodes: Sequence[str] | None = None,
    request: int | None = None,
) -> list[dict[str, Any]]:
    keep = None if layers is None else set(layers)
    keep_nodes = None if nodes is None else set(nodes)
    chosen = []
    for record in records:
        t = record["t_ns"]
        if (from_ns is not None and t < from_ns) or (to_ns is not None and t > to_ns):
            continue
        if keep is not None:
            if record["type"] == "service":
                if record.get("from_layer") not in keep or record.get("to_layer") not in keep:
                    continue
            elif record.get("layer") not in keep:
                continue
        if keep_nodes is not None and any(node not in keep_nodes for node, _ in _ends(record)):
            continue
        if request is not None and request not in request_ids(record):
            continue
        chosen.append(record)
    return chosen


def _ends(record: dict[str, Any]) -> list[tuple[str, str]]:
    node = record["node"]
    if record["type"] == "service":
        return [(node, record["from_layer"]), (node, record["to_layer"])]
    if record["type"] == "peer":
        return [(node, record["layer"]), (record["to_node"], record["layer"])]
    return [(node, record["layer"])]


def _order_lanes(records: list[dict[str, Any]], nodes_hint: Sequence[str]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    node_order: dict[str, int] = {name: i for i, name in enumerate(nodes_hint)}
    for record in records:
        for lane in _ends(record):
            seen.setdefault(lane, None)
            node_order.setdefault(lane[0], len(node_order))

    def rank(lane: tuple[str, str]) -> tuple[int, int, str]:
        layer = lane[1]
        return (node_order[lane[0]], LANE_LAYERS.index(layer) if layer in LANE_LAYERS else len(LANE_LAYERS), layer)

    return sorted(seen, key=rank)


def format_ns(t_ns: float) -> str:
    """A time in the unit that suits it (ns, µs, ms or s)."""
    magnitude = abs(t_ns)
    if magnitude < 1_000:
        return f"{t_ns:g} ns"
    if magnitude < 1_000_000:
        return f"{t_ns / 1e3:.4g} µs"
    if magnitude < 1_000_000_000:
        return f"{t_ns / 1e6:.4g} ms"
    return f"{t_ns / 1e9:.4g} s"


def _hover(record: dict[str, Any]) -> str:
    where = f"{record['node']} → {record['to_node']}" if record["type"] == "peer" else record["node"]
    when = f"sent {format_ns(record['t_ns'])}"
    if record["type"] == "peer":
        when += f", delivered {format_ns(record['delivery_ns'])}"
    else:
        when += f", {record['from_layer']} → {record['to_layer']}"
    fields = json.dumps(record.get("fields"))  # the default encoder: its separators are ", " and ": "
    return f"{record['kind']} ({where}; {when})\n{fields}"


def build_chart(
    header: dict[str, Any],
    records: Iterable[dict[str, Any]],
    *,
    from_ns: int | None = None,
    to_ns: int | None = None,
    layers: Sequence[str] | None = None,
    nodes: Sequence[str] | None = None,
    request: int | None = None,
) -> Chart:
    """Lay out the chart of ``records`` (those of a trace file, :func:`qnetstack.stack.trace.read_trace`)
    in the time window, of the layers and nodes given (all when ``None``; a message is
    kept when both its ends are), and naming the ``request_id`` given (:func:`request_ids`)."""
    chosen = _selected(records, from_ns, to_ns, layers, nodes, request)
    lanes = _order_lanes(chosen, header.get("nodes") or ())
    lane_x: dict[tuple[str, str], float] = {}
    x = float(MARGIN_LEFT)
    previous_node = None
    for lane in lanes:
        if previous_node is not None:
            x += LANE_GAP + (NODE_GAP if lane[0] != previous_node else 0)
        lane_x[lane] = x
        previous_node = lane[0]
    width = x + LANE_GAP

    # the rows: every record one row at its instant; each peer delivery instant is an instant too
    rows_at: dict[int, int] = {}
    for record in chosen:
        rows_at[record["t_ns"]] = rows_at.get(record["t_ns"], 0) + 1
        if record["type"] == "peer":
            rows_at.setdefault(record["delivery_ns"], 0)
    instants = sorted(rows_at)
    gaps = [b - a for a, b in zip(instants, instants[1:], strict=False)]
    px_per_ns = MEDIAN_GAP_PX / statistics.median(gaps) if gaps else 0.0

    title = f"{header.get('scenario', '?')} (seed {header.get('seed', '?')})"
    chart = Chart(title=title, lanes=lanes, lane_x=lane_x, height=0.0, width=width)
    top: dict[int, float] = {}
    y = float(MARGIN_TOP)
    last_label_y = -float("inf")
    for i, t in enumerate(instants):
        if i:
            gap_px = gaps[i - 1] * px_per_ns
            if gap_px > BREAK_PX:
                chart.breaks.append((y + BREAK_HEIGHT / 2, gaps[i - 1]))
                y += BREAK_HEIGHT
                last_label_y = -float("inf")  # label the first instant after a break
            else:
                y += gap_px
        top[t] = y
        if y - last_label_y >= LABEL_EVERY_PX:
            chart.time_labels.append((y + ROW / 2, t))
            last_label_y = y
        y += max(rows_at[t], 1) * ROW
    chart.height = y + ROW

    used: dict[int, int] = {}
    for record in chosen:
        t = record["t_ns"]
        row = used.get(t, 0)
        used[t] = row + 1
        row_y = top[t] + (row + 0.5) * ROW
        kind = record["type"]
        if kind == "service" or kind == "peer":
            start = lane_x[_ends(record)[0]]
            end = lane_x[_ends(record)[1]]
            end_y = row_y if kind == "service" else top[record["delivery_ns"]] + ROW * 0.3
            chart.arrows.append(
                {"x1": start, "y1": row_y, "x2": end, "y2": end_y, "kind": record["kind"], "title": _hover(record), "cls": kind}
            )
        elif kind == "transition":
            state = str(record.get("to_state", "?"))
            hover = f"{record.get('machine', '?')} {record.get('session')}: {record.get('from_state')} → {state} ({record.get('trigger')})"
            chart.marks.append(
                {"x": lane_x[(record["node"], record["layer"])], "y": row_y, "label": state, "title": hover, "cls": "transition"}
            )
        else:
            hover = f"{record.get('event')}: {json.dumps(record.get('fields'))}"
            chart.marks.append({"x": lane_x[(record["node"], record["layer"])], "y": row_y, "label": "", "title": hover, "cls": "event"})
    return chart


_STYLE = (
    "text{font-family:sans-serif;font-size:10px;fill:#222}"
    ".lane line{stroke:#bbb;stroke-width:1}"
    ".node{font-weight:bold;font-size:12px}"
    ".msg line{stroke-width:1.2}"
    ".service line{stroke:#1f5fa8}.peer line{stroke:#b5501b}"
    ".transition rect{fill:#3a7d2c}.transition text{fill:#3a7d2c;font-size:8px}"
    ".event circle{fill:#999}"
    ".break rect{fill:#f3f3f3}.break text{fill:#777;font-style:italic}"
    ".time{fill:#555}"
)


def render_svg(chart: Chart) -> str:
    """The chart as a standalone SVG document."""
    width, height = round(chart.width), round(chart.height)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(chart.title)}</title>",
        f"<style>{_STYLE}</style>",
        '<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0L10,5L0,10z" fill="context-stroke"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="8" y="16" class="node">{escape(chart.title)}</text>',
    ]
    for y, idle in chart.breaks:
        out.append(
            f'<g class="break"><rect x="0" y="{y - BREAK_HEIGHT / 2 + 3:.1f}" width="{width}" height="{BREAK_HEIGHT - 6}"/>'
            f'<text x="8" y="{y + 3:.1f}">≈ {escape(format_ns(idle))} idle</text></g>'
        )
    previous_node = None
    for node, layer in chart.lanes:
        x = chart.lane_x[(node, layer)]
        header = ""
        if node != previous_node:
            header = f'<text x="{x:.1f}" y="{MARGIN_TOP - 28}" class="node" text-anchor="middle">{escape(node)}</text>'
            previous_node = node
        out.append(
            f'<g class="lane" data-node="{escape(node)}" data-layer="{escape(layer)}">{header}'
            f'<text x="{x:.1f}" y="{MARGIN_TOP - 12}" text-anchor="middle">{escape(layer)}</text>'
            f'<line x1="{x:.1f}" y1="{MARGIN_TOP - 6}" x2="{x:.1f}" y2="{chart.height:.1f}"/></g>'
        )
    for y, t in chart.time_labels:
        out.append(f'<text x="{MARGIN_LEFT - 16}" y="{y + 3:.1f}" class="time" text-anchor="end">{escape(format_ns(t))}</text>')
    for a in chart.arrows:
        mid_x, mid_y = (a["x1"] + a["x2"]) / 2, (a["y1"] + a["y2"]) / 2
        out.append(
            f'<g class="msg {a["cls"]}"><title>{escape(a["title"])}</title>'
            f'<line x1="{a["x1"]:.1f}" y1="{a["y1"]:.1f}" x2="{a["x2"]:.1f}" y2="{a["y2"]:.1f}" marker-end="url(#head)"/>'
            f'<text x="{mid_x:.1f}" y="{mid_y - 3:.1f}" text-anchor="middle">{escape(a["kind"])}</text></g>'
        )
    for m in chart.marks:
        if m["cls"] == "transition":
            out.append(
                f'<g class="transition"><title>{escape(m["title"])}</title>'
                f'<rect x="{m["x"] - 3:.1f}" y="{m["y"] - 3:.1f}" width="6" height="6"/>'
                f'<text x="{m["x"] + 5:.1f}" y="{m["y"] + 3:.1f}">{escape(m["label"])}</text></g>'
            )
        else:
            out.append(f'<g class="event"><title>{escape(m["title"])}</title><circle cx="{m["x"]:.1f}" cy="{m["y"]:.1f}" r="2.5"/></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_html(chart: Chart) -> str:
    """The chart as an HTML page: the SVG, a little CSS, a hover highlight per arrow."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(chart.title)}</title>"
        "<style>body{margin:0;font-family:sans-serif}header{padding:8px 12px;background:#f5f5f5;border-bottom:1px solid #ddd}"
        ".msg:hover line{stroke-width:3}.msg:hover text{font-weight:bold}.msg{cursor:help}</style></head><body>"
        f"<header>{escape(chart.title)}: hover over an arrow to see the message's fields</header>\n"
        + render_svg(chart)
        + "</body></html>\n"
    )


_COLOURS = {"service": "#1f5fa8", "peer": "#b5501b", "transition": "#3a7d2c", "event": "#999999"}


def render_png(chart: Chart) -> bytes:
    """The chart as a PNG image (one pixel per SVG unit), drawn with matplotlib's Agg renderer.

    Raises ``ImportError`` when matplotlib is not installed and ``ValueError`` when the
    chart is taller or wider than :data:`MAX_PNG_PX` (choose a time window)."""
    if max(chart.width, chart.height) > MAX_PNG_PX:
        raise ValueError(f"the chart is {round(chart.width)} x {round(chart.height)} px, over the {MAX_PNG_PX} px a PNG side can have")
    import io

    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, Rectangle

    dpi = 100
    pt = 72 / dpi  # points per pixel: the SVG's font sizes are in px
    width, height = round(chart.width), round(chart.height)
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # y grows down the page, as in the SVG
    ax.set_axis_off()
    ax.text(8, 16, chart.title, fontsize=12 * pt, fontweight="bold", va="baseline")
    for y, idle in chart.breaks:
        ax.add_patch(Rectangle((0, y - BREAK_HEIGHT / 2 + 3), width, BREAK_HEIGHT - 6, facecolor="#f3f3f3", edgecolor="none"))
        ax.text(8, y + 3, f"≈ {format_ns(idle)} idle", fontsize=10 * pt, color="#777777", style="italic", va="baseline")
    previous_node = None
    for node, layer in chart.lanes:
        x = chart.lane_x[(node, layer)]
        if node != previous_node:
            ax.text(x, MARGIN_TOP - 28, node, fontsize=12 * pt, fontweight="bold", ha="center", va="baseline")
            previous_node = node
        ax.text(x, MARGIN_TOP - 12, layer, fontsize=10 * pt, ha="center", va="baseline")
    ax.add_collection(
        LineCollection([[(x, MARGIN_TOP - 6), (x, chart.height)] for x in chart.lane_x.values()], colors="#bbbbbb", linewidths=1 * pt)
    )
    for y, t in chart.time_labels:
        ax.text(MARGIN_LEFT - 16, y + 3, format_ns(t), fontsize=10 * pt, color="#555555", ha="right", va="baseline")
    segments, heads, colours = [], [], []
    for a in chart.arrows:
        x1, y1, x2, y2 = a["x1"], a["y1"], a["x2"], a["y2"]
        segments.append([(x1, y1), (x2, y2)])
        colours.append(_COLOURS[a["cls"]])
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        heads.append([(x2, y2), (x2 - 7 * ux - 3 * uy, y2 - 7 * uy + 3 * ux), (x2 - 7 * ux + 3 * uy, y2 - 7 * uy - 3 * ux)])
        ax.text((x1 + x2) / 2, (y1 + y2) / 2 - 3, a["kind"], fontsize=10 * pt, ha="center", va="baseline", color="#222222")
    ax.add_collection(LineCollection(segments, colors=colours, linewidths=1.2 * pt))
    ax.add_collection(PolyCollection(heads, facecolors=colours, edgecolors="none"))
    for m in chart.marks:
        colour = _COLOURS[m["cls"]]
        if m["cls"] == "transition":
            ax.add_patch(Rectangle((m["x"] - 3, m["y"] - 3), 6, 6, facecolor=colour, edgecolor="none"))
            ax.text(m["x"] + 5, m["y"] + 3, m["label"], fontsize=8 * pt, color=colour, va="baseline")
        else:
            ax.add_patch(Circle((m["x"], m["y"]), 2.5, facecolor=colour, edgecolor="none"))
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=dpi, facecolor="white")
    return out.getvalue()
