"""The trace viewer: one self-contained HTML page that plays a trace back in a browser.

``qnetstack view TRACE.jsonl -o viewer.html`` writes a page holding the whole
trace (a ``<script type="application/json">`` block, every ``<`` escaped as
``\\u003c`` so that no field of a message can close the block and run as
code), its own JavaScript and CSS inline, and nothing fetched from anywhere:
it works offline. The page shows

* a sequence chart drawn on a canvas: one lane per node and layer, one row
  per record in the order the run made them, arrows for service and peer
  messages (a peer arrow ends at the row of the first record at or after its
  delivery time). Only the rows in view are drawn, so a trace of 100 000
  records scrolls and plays smoothly;
* a clock (the simulated time of the current record), step back and forward,
  play and pause with a speed in records per second;
* filters by node, by layer, by request (the records whose fields name that
  ``request_id``, :func:`qnetstack.stack.chart.request_ids`) and by time;
* the fields of the message clicked, with the spec clauses it relates to
  (:data:`CLAUSES`, the clause texts read from the installed specs);
* the network's topology, whose links light up when a pair is made on them
  (a link-layer OK at either end; green) and along the path of an end-to-end
  pair when it is delivered (``PairDelivered``; purple), with the count of
  pairs made on each link and of end-to-end pairs delivered so far.

The chart's lane order and colours follow :mod:`qnetstack.stack.chart`; the
trace is read and checked by :func:`qnetstack.stack.trace.read_trace`.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from qnetstack.entity.conformance import SpecError, read_spec
from qnetstack.stack.chart import LANE_LAYERS

__all__ = ["CLAUSES", "PAIR_DELIVERED_KIND", "PAIR_MADE_KINDS", "clause_texts", "pair_lights", "render_viewer", "topology"]

# Message kind -> the spec clauses (specs/*.md) that say most about it: where the
# message is defined to be sent, answered or checked. Kinds not listed (peer
# messages whose format is the implementation's own, such as the link layer's
# PeerCreate) relate to no clause and show none.
CLAUSES: dict[str, tuple[str, ...]] = {
    # physical layer (specs/physical.md)
    "HeraldAttempt": ("PHY-HERALD-1", "PHY-HERALD-9", "PHY-MSG-2"),
    "HeraldResult": ("PHY-HERALD-1", "PHY-MSG-1", "LINK-SESS-1"),
    "DeviceRequest": ("PHY-DEV-13", "PHY-MSG-2"),
    "DeviceResponse": ("PHY-DEV-13", "PHY-MSG-1"),
    "SendPulses": ("PHY-PULSE-4",),
    "PulseRecords": ("PHY-PULSE-3",),
    "PulseError": ("PHY-PULSE-4",),
    # link layer (specs/link.md)
    "LinkCreate": ("LINK-CREATE-1", "LINK-CREATE-2", "LINK-MSG-2"),
    "LinkAck": ("LINK-CREATE-1", "LINK-OK-1", "LINK-MSG-1"),
    "LinkOkKeep": ("LINK-OK-1", "LINK-OK-8", "LINK-R-1", "LINK-MSG-1"),
    "LinkOkMeasure": ("LINK-OK-1", "LINK-OK-8", "LINK-BASIS-1", "LINK-MSG-1"),
    "LinkError": ("LINK-CREATE-1", "LINK-ERR-1", "LINK-MSG-1"),
    "LinkRecv": ("LINK-RECV-1", "LINK-RECV-2"),
    "LinkCancel": ("LINK-CANCEL-1", "LINK-CANCEL-2"),
    # network layer (specs/network.md)
    "NetRequest": ("NET-REQ-1", "NET-MSG-2"),
    "NetAccepted": ("NET-REQ-1", "NET-ACCEPT-1", "NET-MSG-1"),
    "NetRejected": ("NET-REQ-1", "NET-REQ-2", "NET-ADMIT-1", "NET-MSG-1"),
    "PairDelivered": ("NET-PAIR-1", "NET-PAIR-2", "NET-PAIR-3", "NET-PAIR-4"),
    "PairLost": ("NET-PAIR-2", "NET-PAIR-7", "APP-LOST-1"),
    "NetError": ("NET-ERR-1", "NET-ERR-2", "NET-END-1"),
    # application layer (specs/application.md)
    "TeleportRequest": ("APP-MSG-2", "APP-TELEPORT-4"),
    "TeleportResult": ("APP-TELEPORT-1", "APP-TELEPORT-2", "APP-TELEPORT-3", "APP-MSG-1"),
    "PairsRequest": ("APP-MSG-2", "APP-PAIR-3"),
    "PairResult": ("APP-PAIR-1", "APP-PAIR-2", "APP-MSG-1"),
    "QkdRequest": ("APP-MSG-2",),
    "KeyDelivered": ("APP-QKD-1", "APP-QKD-2", "APP-MSG-1"),
    "KeyAborted": ("APP-QKD-5", "APP-QKD-6", "APP-MSG-1"),
    "AppDone": ("APP-END-1", "APP-END-2", "APP-MSG-1"),
    "AppError": ("APP-ERR-1", "APP-ERR-2", "APP-MSG-1"),
    "RelayKeyInfo": ("APP-RELAY-1", "APP-RELAY-2", "APP-RELAY-3"),
    "RelayAborted": ("APP-RELAY-4",),
}

# A pair is made on a link when the link layer tells the layer above of it, at either end.
PAIR_MADE_KINDS = ("LinkOkKeep", "LinkOkMeasure")
# An end-to-end pair is delivered when the network layer tells the application of it, at either end.
PAIR_DELIVERED_KIND = "PairDelivered"

SPECS = ("specs/physical.md", "specs/link.md", "specs/network.md", "specs/application.md")


def clause_texts(ids: Iterable[str]) -> dict[str, str]:
    """The text of each clause in ``ids`` as its spec defines it (an id no spec defines is left out)."""
    wanted = set(ids)
    texts: dict[str, str] = {}
    for spec in SPECS:
        try:
            clauses = read_spec(spec)
        except SpecError:
            continue  # an install without the specs: the page shows the ids alone
        for clause_id, clause in clauses.items():
            if clause_id in wanted:
                level = "MUST" if clause.mandatory else "SHOULD"
                texts[clause_id] = f"({level}) {clause.text}"
    return texts


def _links_from_stations(nodes: Sequence[str]) -> list[dict[str, Any]]:
    links = []
    for name in nodes:
        a, sep, b = name.partition("~")
        if sep and a and b:
            links.append({"a": a, "b": b, "station": name})
    return links


def topology(header: dict[str, Any], records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The network the trace ran on: end nodes with positions in [0, 1]², and links.

    The links are the header's ``links`` when it has them; an older trace's
    links are found from its heralding stations (``a~b``) and, failing those,
    from the pairs made (a link-layer OK names the node at the other end)."""
    nodes = [n for n in header.get("nodes") or () if "~" not in n]
    links = [dict(link) for link in header.get("links") or ()] or _links_from_stations(header.get("nodes") or ())
    known = {frozenset((link["a"], link["b"])) for link in links}
    for record in records:
        if record.get("type") == "service" and record.get("kind") in PAIR_MADE_KINDS:
            remote = (record.get("fields") or {}).get("remote_node")
            pair = frozenset((record["node"], remote))
            if isinstance(remote, str) and len(pair) == 2 and pair not in known:
                known.add(pair)
                links.append({"a": record["node"], "b": remote, "station": None})
        for end in (record.get("node"), record.get("to_node")):
            if isinstance(end, str) and "~" not in end and end not in nodes:
                nodes.append(end)
    for link in links:
        for end in (link["a"], link["b"]):
            if end not in nodes:
                nodes.append(end)
    return {"nodes": nodes, "links": links, "positions": _layout(nodes, links)}


def pair_lights(records: Sequence[dict[str, Any]], links: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """The records that light links up: ``[record index, link indices, "link" or "e2e", counts]``.

    ``counts`` is true for one of the two records of each pair (each end is told):
    the one at the link's first end ``a``, or at the end-to-end pair's head.

    A link-layer OK (:data:`PAIR_MADE_KINDS`) lights the link between its node and
    the node at the other end; a ``PairDelivered`` lights every link of its
    request's path (from the ``NetAccepted`` the head got for it; when the trace
    has none, the link between head and tail if there is one)."""
    index = {frozenset((link["a"], link["b"])): i for i, link in enumerate(links)}
    paths: dict[tuple[str, Any], list[str]] = {}
    lights: list[list[Any]] = []
    for number, record in enumerate(records):
        if record.get("type") != "service" or record.get("direction") != "up":
            continue
        kind, fields = record.get("kind"), record.get("fields") or {}
        if not isinstance(fields, dict):
            continue
        if kind == "NetAccepted" and isinstance(fields.get("path"), list):
            paths[(record["node"], fields.get("request_id"))] = [str(n) for n in fields["path"]]
        elif kind in PAIR_MADE_KINDS:
            link = index.get(frozenset((record["node"], fields.get("remote_node"))))
            if link is not None:
                lights.append([number, [link], "link", record["node"] == links[link]["a"]])
        elif kind == PAIR_DELIVERED_KIND and isinstance(fields.get("pair_id"), dict):
            pair = fields["pair_id"]
            path = paths.get((pair.get("head"), pair.get("request_id"))) or [pair.get("head"), pair.get("tail")]
            hops = [index.get(frozenset(hop)) for hop in zip(path, path[1:])]
            lit = [hop for hop in hops if hop is not None]
            if lit:
                lights.append([number, lit, "e2e", record["node"] == pair.get("head")])
    return lights


def _layout(nodes: list[str], links: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Positions in [0, 1]²: a chain on a line, any other graph by Kamada and Kawai's
    spring layout (Kamada and Kawai, Inf. Process. Lett. 31, 7 (1989)), via networkx."""
    if not nodes:
        return {}
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((link["a"], link["b"]) for link in links)
    degrees = [d for _, d in graph.degree()]
    is_chain = nx.is_connected(graph) and max(degrees, default=0) <= 2 and graph.number_of_edges() == len(nodes) - 1
    if len(nodes) == 1:
        return {nodes[0]: (0.5, 0.5)}
    if is_chain:
        ends = [n for n in nodes if graph.degree(n) == 1]
        order = list(nx.dfs_preorder_nodes(graph, ends[0]))
        return {n: (i / (len(order) - 1), 0.5) for i, n in enumerate(order)}
    try:
        raw = nx.kamada_kawai_layout(graph)
    except Exception:  # a disconnected graph or one scipy cannot lay out: a circle
        raw = {n: (math.cos(2 * math.pi * i / len(nodes)), math.sin(2 * math.pi * i / len(nodes))) for i, n in enumerate(nodes)}
    xs = [float(p[0]) for p in raw.values()]
    ys = [float(p[1]) for p in raw.values()]
    span = max(max(xs) - min(xs), max(ys) - min(ys)) or 1.0
    return {n: ((float(p[0]) - min(xs)) / span, (float(p[1]) - min(ys)) / span) for n, p in raw.items()}


def _asset(name: str) -> str:
    return importlib.resources.files("qnetstack.stack").joinpath("viewer_assets", name).read_text(encoding="utf-8")


def embedded_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` block: every ``<`` is written
    ``\\u003c`` (the same string to a JSON parser), so no ``</script>`` or ``<!--`` occurs."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")


def render_viewer(header: dict[str, Any], records: list[dict[str, Any]], end: dict[str, Any]) -> str:
    """The viewer page of a trace read by :func:`qnetstack.stack.trace.read_trace`."""
    kinds = {r["kind"] for r in records if r.get("type") in ("service", "peer") and isinstance(r.get("kind"), str)}
    clauses = {kind: list(CLAUSES[kind]) for kind in sorted(kinds) if kind in CLAUSES}
    network = topology(header, records)
    data = {
        "header": header,
        "end": end,
        "records": records,
        "layers": list(LANE_LAYERS),
        "clauses": clauses,
        "clause_text": clause_texts(c for ids in clauses.values() for c in ids),
        "topology": network,
        "lights": pair_lights(records, network["links"]),
    }
    title = f"{header.get('scenario', '?')} (seed {header.get('seed', '?')}): trace viewer"
    return (
        _asset("viewer.html")
        .replace("/*STYLE*/", _asset("viewer.css"))
        .replace("__TITLE__", escape(title))
        .replace("/*SCRIPT*/", _asset("viewer.js"))
        .replace("@@TRACE_DATA@@", embedded_json(data))
    )
