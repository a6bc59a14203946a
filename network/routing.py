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
    highest expected end-to-end fidelity (:func:`expected_route_fidelity`,
    below), memory decoherence during the expected wait included. Treating
    every link pair as a Werner state, swapping multiplies ``(4F − 1)/3``
    (Dür, Briegel, Cirac & Zoller, PRA 59, 169, 1999), so with ideal memories
    a chain of fidelities F_i ends at ``1/4 + 3/4 · Π (4F_i − 1)/3``
    (:func:`route_fidelity`). Maximising that product is a shortest path on
    ``−log((4F_i − 1)/3)``; the decoherence term is not a sum over links (it
    depends on the slowest link of the whole path), so the metric takes the
    ``FIDELITY_CANDIDATES`` best routes of that additive surrogate (Yen's
    k shortest paths) and re-ranks them by the exact figure (ties: the
    surrogate's order). Exact with ideal memories; with decohering memories
    a route outside the surrogate's first candidates is not considered. A link
    with F ≤ 1/4 would make the product zero or negative and is never used.
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
is refused there. For ``fidelity`` it lists them by the additive surrogate.

Expected end-to-end fidelity
----------------------------
:func:`expected_route_fidelity` estimates the fidelity of a route's first
end-to-end pair under swap-as-soon-as-possible, from what the topology
announces:

* **Link states.** A link announces a fidelity, not its Bell diagonal, so its
  pairs are taken as Werner states of that fidelity. For the single-click
  states the physical layer makes (errors mostly of one kind) the Werner
  composition is pessimistic: with the same fidelity, a pair whose errors
  are all of one Pauli kind keeps two of its three correlations at full
  strength after a swap.
* **Swaps** multiply the links' correlations, and memory decoherence
  multiplies them by ``exp(−E)`` with ``E`` the summed exponents of every
  half over the time it is held (:mod:`~qnetstack.network.bell_diagonal`,
  Nielsen & Chuang 2000 §8.3.5–8.3.6 for the T1/T2 channel). A node's
  memory is read from the node attributes ``t1_ns`` and ``t2_ns`` (absent:
  no decay of that kind).
* **Waits.** All links start at once. Link ``i``'s first pair arrives after
  a time ``T_i`` taken as exponential with rate
  ``λ_i = −ln(1 − p_i)/τ_i`` (the geometric number of attempts of period
  ``τ_i`` with the same survival at every attempt boundary). A repeater
  between links ``i`` and ``i+1`` swaps once both are there, at
  ``E[max(T_i, T_{i+1})] = 1/λ_i + 1/λ_{i+1} − 1/(λ_i + λ_{i+1})``; each of
  its halves is held from its own link's ``1/λ`` until then. The ends hold
  their halves from their link's ``1/λ`` until every link is there,
  ``E[max_i T_i] = ∫ (1 − Π_i (1 − e^{−λ_i t})) dt`` (for equal links
  ``H_n/λ``, the harmonic-number approximation of the waiting time of a
  repeater chain; Shchukin, Schmidt & van Loock, PRA 100, 032322, 2019), and
  then for the swap records to come back: an upper bound, the classical delay
  along the path to the farthest repeater. The expected hold times go into
  the exponents; by Jensen's inequality (``e^{−x}`` is convex) the mean
  fidelity over pairs is at least the figure so found when the links'
  correlations are positive, so the estimate errs low. Not in it: swap and
  readout durations, cutoffs, distillation, and the later pairs of a
  pipelined request.
* A link that announces no ``success_probability`` or ``attempt_period_ns``
  adds no wait (nothing is known about it); one with ``p = 0`` makes the
  wait infinite and the estimate that of fully decohered halves.

:func:`uniform_link_target` inverts the estimate for admission
(:mod:`~qnetstack.network.admission`): the one per-link fidelity that, given
to every link of the route, composes with the expected decoherence to an
end-to-end target. With equal Werner parameters ``x`` on ``n`` links the end
fidelity is ``(1 + x^n (e^{−E_X} + e^{−E_Y} + e^{−E_Z}))/4``, so
``x = ((4F − 1)/(e^{−E_X} + e^{−E_Y} + e^{−E_Z}))^{1/n}`` and the per-link
fidelity is ``(1 + 3x)/4``; above 1 no link could be good enough.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal

import networkx as nx
import numpy as np

from qnetstack.network.bell_diagonal import NO_DECAY, Exponents, add, chain_fidelity, exponents
from qnetstack.physical.service import MemoryDecoherence

__all__ = [
    "DEFAULT_METRIC",
    "EDGE_FIGURES",
    "FIDELITY_CANDIDATES",
    "METRICS",
    "Metric",
    "NoRoute",
    "chain_decay",
    "expected_all_links_ns",
    "expected_route_fidelity",
    "k_shortest_routes",
    "link_arrival_rate_per_ns",
    "link_operating_points",
    "link_latency_ns",
    "link_rate_hz",
    "route_fidelity",
    "route_latency_ns",
    "route_length_km",
    "route_decay",
    "route_rate_hz",
    "shortest_route",
    "uniform_link_target",
    "werner_factor",
    "werner_fidelity",
]

Metric = Literal["length_km", "hops", "latency", "fidelity", "rate"]
METRICS: tuple[Metric, ...] = ("length_km", "hops", "latency", "fidelity", "rate")
DEFAULT_METRIC: Metric = "length_km"

# the edge attributes besides length_km that the latency, fidelity and rate metrics read
EDGE_FIGURES = ("fidelity", "success_probability", "attempt_period_ns", "classical_delay_ns")

# how many routes of the fidelity metric's additive surrogate are re-ranked by the exact figure
FIDELITY_CANDIDATES = 4

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


def werner_fidelity(factor: float) -> float:
    """``(1 + 3x)/4``: the fidelity of a Werner pair of parameter ``x``, the inverse of :func:`werner_factor`."""
    return (1.0 + 3.0 * factor) / 4.0


def link_arrival_rate_per_ns(u: Any, v: Any, data: dict[str, Any]) -> float | None:
    """Rate ``λ = −ln(1 − p)/τ`` of the exponential time to a link's first pair (module docstring):
    ``inf`` if every attempt succeeds, 0 if none does, None if the link announces no figures."""
    if "success_probability" not in data or "attempt_period_ns" not in data:
        return None
    p = _figure(u, v, data, "success_probability")
    if p >= 1.0:
        return math.inf
    return -math.log1p(-p) / _figure(u, v, data, "attempt_period_ns")


def expected_all_links_ns(rates_per_ns: Sequence[float]) -> float:
    """``E[max_i T_i]`` for independent exponential times of rates ``rates_per_ns``: the expected
    time until every link holds a pair, ``∫ (1 − Π (1 − e^{−λ_i t})) dt``. An infinite rate is a
    link ready at once; a zero rate one never ready (``inf``).

    The integral is taken on a logarithmic grid of time (the integrand is 1 until the slowest
    links are likely done and then falls off exponentially, on scales between ``1/max λ`` and
    ``1/min λ``): trapezoids in ``u = ln t`` from ``10⁻⁶/max λ`` to ``60/min λ``, plus the
    piece before, where the integrand is within 10⁻⁶ of 1."""
    rates = np.array([rate for rate in rates_per_ns if rate != math.inf], dtype=float)
    if rates.size == 0:
        return 0.0
    if (rates <= 0.0).any():
        return math.inf
    start, stop = 1e-6 / rates.max(), (60.0 + math.log(rates.size)) / rates.min()
    t = np.exp(np.linspace(math.log(start), math.log(stop), 4001))
    # 1 − Π(1 − e^{−λt}), with −expm1 for 1 − e^{−λt} so that small λt keep their digits
    all_there = np.prod(-np.expm1(-np.outer(t, rates)), axis=1)
    integrand = (1.0 - all_there) * t  # dt = t du
    du = (math.log(stop) - math.log(start)) / 4000
    return float(start + du * (integrand.sum() - 0.5 * (integrand[0] + integrand[-1])))


def _memory(topology: nx.Graph, node: Any) -> MemoryDecoherence | None:
    data = topology.nodes[node]
    t1, t2 = data.get("t1_ns"), data.get("t2_ns")
    if t1 is None and t2 is None:
        return None
    return MemoryDecoherence(t1_ns=t1, t2_ns=t2)


def _merged(memories: Sequence[MemoryDecoherence | None]) -> MemoryDecoherence | None:
    """A memory that decays in every way any of ``memories`` does (for "lost" only, not for rates)."""
    known = [m for m in memories if m is not None]
    if not known:
        return None
    t1 = next((m.t1_ns for m in known if m.t1_ns is not None), None)
    t2 = next((m.t2_ns for m in known if m.t2_ns is not None), None)
    return MemoryDecoherence(t1_ns=t1, t2_ns=t2)


def _held(memory: MemoryDecoherence | None, held_ns: float) -> Exponents:
    """Exponents of a half held ``held_ns`` (may be infinite: the correlations it carries are lost)."""
    if memory is None or held_ns <= 0.0:
        return NO_DECAY
    if held_ns == math.inf:
        return (math.inf if memory.t2_ns is not None else 0.0,) * 2 + (math.inf if memory.t1_ns is not None else 0.0,)
    return exponents(memory, held_ns)


def route_decay(topology: nx.Graph, path: list[Any], rates_per_ns: Sequence[float] | None = None) -> Exponents:
    """Summed decay exponents ``(E_X, E_Y, E_Z)`` of a route's halves over their expected hold
    times (module docstring, "Waits"); no decay for a single link or where nothing is known.
    ``rates_per_ns``, if given, replaces the links' :func:`link_arrival_rate_per_ns` (a link
    run at another operating point than the one it announces)."""
    edges = _edges(topology, path)
    if rates_per_ns is None:
        known = [link_arrival_rate_per_ns(u, v, data) for u, v, data in edges]
        rates_per_ns = [math.inf if rate is None else rate for rate in known]  # no figures: no wait known
    delays = [float(data.get("classical_delay_ns", 0.0)) for _, _, data in edges]
    return chain_decay(rates_per_ns, delays, [_memory(topology, node) for node in path])


def chain_decay(rates_per_ns: Sequence[float], delays_ns: Sequence[float], memories: Sequence[MemoryDecoherence | None]) -> Exponents:
    """:func:`route_decay` from the figures: link ``i`` (between nodes ``i`` and ``i + 1``) has
    arrival rate ``rates_per_ns[i]`` and one-way classical delay ``delays_ns[i]``; node ``k``'s
    memory is ``memories[k]`` (None: ideal)."""
    rates = list(rates_per_ns)
    n = len(rates)
    if n < 2:
        return NO_DECAY
    if 0.0 in rates:  # a link that never heralds: every half that decays at all is lost
        return _held(_merged(memories), math.inf)
    mean = [0.0 if rate == math.inf else 1.0 / rate for rate in rates]
    all_there = expected_all_links_ns(rates)
    delays = list(delays_ns)
    # the ends: from their own link's pair until every link has one, then the records' way back
    decay = _held(memories[0], all_there - mean[0] + sum(delays[:-1]))
    decay = add(decay, _held(memories[n], all_there - mean[n - 1] + sum(delays[1:])))
    for k in range(1, n):  # repeater k joins link k - 1 (upstream) and link k (downstream)
        up, down = rates[k - 1], rates[k]
        if math.inf in (up, down):
            swap = max(mean[k - 1], mean[k])
        else:
            swap = 1.0 / up + 1.0 / down - 1.0 / (up + down)
        decay = add(decay, _held(memories[k], swap - mean[k - 1]))
        decay = add(decay, _held(memories[k], swap - mean[k]))
    return decay


def link_operating_points(u: Any, v: Any, data: dict[str, Any]) -> list[tuple[float, float]]:
    """The ``(fidelity, success_probability)`` points a link can be run at: the edge's
    ``operating_points`` where the link announces several (a single-click link's settings of
    α), else its one announced point."""
    points = data.get("operating_points")
    if points:
        return [(float(f), float(p)) for f, p in points]
    return [(_figure(u, v, data, "fidelity"), _figure(u, v, data, "success_probability"))]


def _werner_weights(fidelity: float) -> tuple[float, float, float, float]:
    rest = (1.0 - fidelity) / 3.0
    return (fidelity, rest, rest, rest)


def expected_route_fidelity(topology: nx.Graph, path: list[Any]) -> float:
    """Expected fidelity of a route's end-to-end pair: its Werner links swapped together, their
    halves decohered over the expected waits (module docstring). With ideal memories (no
    ``t1_ns``/``t2_ns`` on the nodes) it is :func:`route_fidelity`."""
    links = [_werner_weights(_figure(u, v, data, "fidelity")) for u, v, data in _edges(topology, path)]
    return chain_fidelity(links, route_decay(topology, path))


def uniform_link_target(topology: nx.Graph, path: list[Any], min_fidelity: float, rates_per_ns: Sequence[float] | None = None) -> float:
    """The fidelity every link of ``path`` must give for the expected end-to-end fidelity to be
    ``min_fidelity`` (module docstring): ``(1 + 3x)/4`` with
    ``x = ((4F − 1)/(e^{−E_X} + e^{−E_Y} + e^{−E_Z}))^{1/n}``. Above 1 when no link could be
    good enough; 1/4 (anything) for a target of 1/4 or less. ``rates_per_ns`` as for
    :func:`route_decay`."""
    hops = len(path) - 1
    if hops < 1:
        raise ValueError(f"a route has at least two nodes, got {path!r}")
    wanted = 4.0 * min_fidelity - 1.0
    if wanted <= 0.0:
        return 0.25
    kept = sum(math.exp(-e) for e in route_decay(topology, path, rates_per_ns))
    if kept == 0.0:
        return math.inf
    return werner_fidelity((wanted / kept) ** (1.0 / hops))


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
        if metric == "fidelity" and source != target:
            candidates = itertools.islice(nx.shortest_simple_paths(topology, source, target, weight=_fidelity_weight), FIDELITY_CANDIDATES)
            routes = [list(path) for path in candidates]
            return max(routes, key=lambda route: expected_route_fidelity(topology, route))  # max keeps the first of ties
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
