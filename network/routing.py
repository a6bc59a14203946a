"""Routing: which path a circuit takes, as plain functions over a networkx graph.

Theory of operation
-------------------
A route is a simple path of the topology from the head to the tail. The
reference picks the best path under a *metric* with networkx's Dijkstra (ties
broken as networkx breaks them, so a route is reproducible). ``METRICS`` names
the metrics an entity can be configured with; a new routing rule is a function
with the signature of :func:`shortest_route`.

The metrics read these edge attributes (the assembler sets them from what the
physical layer announces for each link, ``HeraldingLink``; specs/network.md §1):

``length_km``
    fibre length of the link.
``fidelity``
    expected fidelity of a heralded pair at the link's configured operating point.
``success_probability``
    chance that one heralding attempt succeeds.
``attempt_period_ns``
    time of one attempt (emission to herald).
``classical_delay_ns``
    one-way delay of a classical message between the link's two nodes.

The metrics:

``length_km`` (the default)
    least total fibre. The classical and heralding delays of a link grow with
    its length, so for equal links the shortest fibre path is the fastest to
    set up and the one with the least memory waiting (RFC 9340 §6.2 leaves the
    metric to the network).
``hops``
    fewest links, so fewest swaps.
``latency``
    least sum over the links of ``classical_delay_ns + attempt_period_ns /
    success_probability``: each link's classical delay plus its expected time
    to a first pair (the number of attempts to a first success is geometric
    with mean ``1 / p``). It is the expected time to one end-to-end pair if the
    links made their pairs one after the other and the swap outcomes then
    crossed the path; links working at once finish no later on average (the
    mean of a maximum is at most the sum of the means), so it is an upper bound
    that weighs a slow link by how slow it is. Memory decay and the durations
    of swaps are not in it.
``fidelity``
    highest expected end-to-end fidelity. Treating every link pair as a Werner
    state, swapping multiplies ``(4F − 1)/3`` (Dür, Briegel, Cirac & Zoller,
    PRA 59, 169, 1999), so a chain of fidelities F_i ends at
    ``1/4 + 3/4 · Π (4F_i − 1)/3`` (:func:`route_fidelity`). Maximising the
    product is a shortest path on ``−log((4F_i − 1)/3)``, exact for Werner
    links; a link with F ≤ 1/4 would make the product zero or negative and is
    never used.
``rate``
    the widest path: the route whose slowest link makes pairs fastest, by
    ``success_probability / attempt_period_ns`` (:func:`link_rate_hz`), the
    bottleneck of the links' announced operating points. Among routes with the
    same bottleneck the one with the fewest hops, then the shortest fibre.
    Dijkstra cannot rank by a bottleneck plus a tie-break at once, so this is
    done in three exact steps: the largest bottleneck that still joins the two
    nodes (a max-min Dijkstra), then among the links at least that fast the
    fewest hops, then among those hop-shortest paths the least fibre.

:func:`k_shortest_routes` lists the ``k`` best routes in order (networkx's
``shortest_simple_paths``, the algorithm of Yen, Management Science 17, 712,
1971) for every metric that adds up along a path; ``rate`` does not add up and
is refused there.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Collection
from typing import Any, Literal

import networkx as nx

__all__ = [
    "DEFAULT_METRIC",
    "EDGE_FIGURES",
    "METRICS",
    "Metric",
    "NoRoute",
    "k_shortest_routes",
    "link_latency_ns",
    "link_rate_hz",
    "route_fidelity",
    "route_latency_ns",
    "route_length_km",
    "route_rate_hz",
    "shortest_route",
    "werner_factor",
]

Metric = Literal["length_km", "hops", "latency", "fidelity", "rate"]
METRICS: tuple[Metric, ...] = ("length_km", "hops", "latency", "fidelity", "rate")
DEFAULT_METRIC: Metric = "length_km"

# the edge attributes besides length_km that the latency, fidelity and rate metrics read
EDGE_FIGURES = ("fidelity", "success_probability", "attempt_period_ns", "classical_delay_ns")

_Weight = Callable[[Any, Any, dict[str, Any]], float | None]


class NoRoute(Exception):
    """No path joins the two nodes (or one of them is not in the topology)."""


def _figure(u: Any, v: Any, data: dict[str, Any], name: str) -> float:
    try:
        return float(data[name])
    except KeyError:
        raise ValueError(
            f"link {u}-{v} carries no {name!r}; the latency, fidelity and rate metrics need {', '.join(EDGE_FIGURES)}"
        ) from None


def werner_factor(fidelity: float) -> float:
    """``(4F − 1)/3``: what swapping multiplies for a Werner pair of fidelity F (Dür et al. 1999)."""
    return (4.0 * fidelity - 1.0) / 3.0


def link_rate_hz(u: Any, v: Any, data: dict[str, Any]) -> float:
    """Pairs per second of one link at its operating point: success probability per attempt period."""
    return _figure(u, v, data, "success_probability") / _figure(u, v, data, "attempt_period_ns") * 1e9


def link_latency_ns(u: Any, v: Any, data: dict[str, Any]) -> float | None:
    """Classical delay plus expected time to a first pair; None (unusable) for a link that never heralds."""
    p = _figure(u, v, data, "success_probability")
    if not p > 0.0:
        return None
    return _figure(u, v, data, "classical_delay_ns") + _figure(u, v, data, "attempt_period_ns") / p


def _fidelity_weight(u: Any, v: Any, data: dict[str, Any]) -> float | None:
    factor = werner_factor(_figure(u, v, data, "fidelity"))
    if not factor > 0.0:  # F <= 1/4: the product would be 0 or negative
        return None
    return -math.log(factor)


def _edges(topology: nx.Graph, path: list[Any]) -> list[tuple[Any, Any, dict[str, Any]]]:
    return [(u, v, topology.edges[u, v]) for u, v in itertools.pairwise(path)]


def route_length_km(topology: nx.Graph, path: list[Any]) -> float:
    """Total fibre length of a route."""
    return sum(float(data["length_km"]) for _, _, data in _edges(topology, path))


def route_latency_ns(topology: nx.Graph, path: list[Any]) -> float:
    """The ``latency`` figure of a route (module docstring); infinite if a link never heralds."""
    total = 0.0
    for u, v, data in _edges(topology, path):
        latency = link_latency_ns(u, v, data)
        if latency is None:
            return math.inf
        total += latency
    return total


def route_fidelity(topology: nx.Graph, path: list[Any]) -> float:
    """Expected end-to-end fidelity of a route of Werner links: ``1/4 + 3/4 · Π (4F_i − 1)/3``."""
    product = 1.0
    for u, v, data in _edges(topology, path):
        product *= werner_factor(_figure(u, v, data, "fidelity"))
    return 0.25 + 0.75 * product


def route_rate_hz(topology: nx.Graph, path: list[Any]) -> float:
    """Bottleneck rate of a route: the smallest :func:`link_rate_hz` of its links."""
    return min(link_rate_hz(u, v, data) for u, v, data in _edges(topology, path))


def _check(topology: nx.Graph, source: Any, target: Any, metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown routing metric {metric!r}; known: {', '.join(METRICS)}")
    if source not in topology or target not in topology:
        raise NoRoute(f"{source!r} or {target!r} is not in the topology")


def _additive_weight(metric: str) -> str | _Weight | None:
    """What networkx weighs edges by for an additive metric (None: one per hop)."""
    if metric == "hops":
        return None
    if metric == "latency":
        return link_latency_ns
    if metric == "fidelity":
        return _fidelity_weight
    return "length_km"


def without_links(topology: nx.Graph, excluded: Collection[frozenset[Any]]) -> nx.Graph:
    """A read-only view of ``topology`` without the links in ``excluded`` (each the pair of
    its two nodes), e.g. the links a node knows to be down. Neighbour order is kept, so
    ties between equal routes break as on the whole topology."""
    if not excluded:
        return topology
    return nx.subgraph_view(topology, filter_edge=lambda u, v: frozenset((u, v)) not in excluded)


def shortest_route(
    topology: nx.Graph, source: Any, target: Any, metric: Metric = DEFAULT_METRIC, excluded: Collection[frozenset[Any]] = ()
) -> list[Any]:
    """The best path from ``source`` to ``target`` under ``metric`` that uses no link in
    ``excluded`` (:func:`without_links`); :class:`NoRoute` if none."""
    _check(topology, source, target, metric)
    topology = without_links(topology, excluded)
    try:
        if metric == "rate":
            return _widest_route(topology, source, target)
        return list(nx.shortest_path(topology, source, target, weight=_additive_weight(metric)))
    except nx.NetworkXNoPath:
        raise NoRoute(f"no usable path from {source!r} to {target!r} under {metric}") from None


def k_shortest_routes(
    topology: nx.Graph, source: Any, target: Any, k: int, metric: Metric = DEFAULT_METRIC, excluded: Collection[frozenset[Any]] = ()
) -> list[list[Any]]:
    """The ``k`` best simple paths under ``metric``, best first (fewer if fewer exist),
    using no link in ``excluded``.

    ``rate`` is refused with ``ValueError``: a bottleneck does not add up along
    a path, so the k-best algorithm for sums does not apply, and many routes
    share one bottleneck link, so "the k widest" would mostly be ties.
    :class:`NoRoute` if there is no route at all."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    _check(topology, source, target, metric)
    if metric == "rate":
        raise ValueError("k_shortest_routes does not rank by rate (a bottleneck is not a sum along the path); use shortest_route")
    if source == target:
        return [[source]]
    topology = without_links(topology, excluded)
    try:
        paths = nx.shortest_simple_paths(topology, source, target, weight=_additive_weight(metric))
        routes = [list(path) for path in itertools.islice(paths, k)]
    except nx.NetworkXNoPath:
        routes = []
    if not routes:
        raise NoRoute(f"no usable path from {source!r} to {target!r} under {metric}")
    return routes


def _widest_route(topology: nx.Graph, source: Any, target: Any) -> list[Any]:
    """The route of the ``rate`` metric (module docstring); ``NetworkXNoPath`` if none."""
    if source == target:
        return [source]
    # 1. the largest bottleneck from source to target: Dijkstra with min() for + and max first
    best = {source: math.inf}
    heap: list[tuple[float, int, Any]] = [(-math.inf, 0, source)]
    order = itertools.count(1)  # keeps the heap from comparing node names
    done: set[Any] = set()
    while heap:
        negative, _, node = heapq.heappop(heap)
        if node in done:
            continue
        done.add(node)
        if node == target:
            break
        for neighbour, data in topology.adj[node].items():
            width = min(-negative, link_rate_hz(node, neighbour, data))
            if width > 0.0 and width > best.get(neighbour, 0.0):
                best[neighbour] = width
                heapq.heappush(heap, (-width, next(order), neighbour))
    if target not in done:
        raise nx.NetworkXNoPath(f"no path from {source!r} to {target!r}")
    bottleneck = best[target]
    # 2. only links at least that fast, and of those only the ones that step from k to k + 1 hops
    # away from the source on some path of fewest hops (directed: an undirected view would let a
    # path step back a layer and come out longer in hops but shorter in fibre)
    wide = nx.subgraph_view(topology, filter_edge=lambda u, v: link_rate_hz(u, v, topology.edges[u, v]) >= bottleneck)
    from_source = nx.single_source_shortest_path_length(wide, source)
    to_target = nx.single_source_shortest_path_length(wide, target)
    hops = from_source[target]
    layered = nx.DiGraph()
    for u, v, data in wide.edges(data=True):
        for a, b in ((u, v), (v, u)):
            if a in from_source and b in to_target and from_source[a] + 1 + to_target[b] == hops:
                layered.add_edge(a, b, length_km=data["length_km"])
    # 3. every source-target path left has the fewest hops; take the least fibre
    return list(nx.shortest_path(layered, source, target, weight="length_km"))
