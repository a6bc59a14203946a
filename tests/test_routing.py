"""Routing metrics and k shortest routes (qnetstack.network.routing) against brute force,
the Werner composition against the network layer's goodness fold, and a scenario that
routes by fidelity."""

from __future__ import annotations

import itertools
import math
from typing import Any

import networkx as nx
import numpy as np
import pytest

from qnetstack.network.frames import chain_goodness
from qnetstack.network.routing import (
    EDGE_FIGURES,
    METRICS,
    NoRoute,
    expected_route_fidelity,
    k_shortest_routes,
    link_latency_ns,
    route_fidelity,
    route_latency_ns,
    route_length_km,
    route_rate_hz,
    shortest_route,
)
from qnetstack.stack.assembler import AssemblyError, assemble
from qnetstack.stack.scenario import ScenarioError, parse_scenario

SEEDS = range(40)  # 40 random graphs per check; numpy's seeded generator makes them the same every run


def random_topology(seed: int) -> nx.Graph:
    """8-10 nodes, each pair linked with chance 0.35. Figures come from small sets so that
    ties (same rate, same length) happen and the tie-breaks are exercised; fidelities are
    uniform in [0.2, 1] except one link in five at exactly 1/4 (unusable under the fidelity metric)
    or 1, and one link in ten never heralds."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 11))
    graph = nx.Graph()
    graph.add_nodes_from(f"n{i}" for i in range(n))
    for i, j in itertools.combinations(range(n), 2):
        if rng.random() < 0.35:
            graph.add_edge(
                f"n{i}",
                f"n{j}",
                length_km=float(rng.choice([1.0, 2.0, 3.0, 5.0])),
                fidelity=float(rng.choice([0.25, 1.0]) if rng.random() < 0.2 else rng.uniform(0.2, 1.0)),
                success_probability=float(rng.choice([0.0, 0.01, 0.02, 0.05, 0.05, 0.1, 0.1, 0.2, 0.2, 0.5])),
                attempt_period_ns=int(rng.choice([1000, 2000, 4000])),
                classical_delay_ns=int(rng.choice([500, 1000, 2000])),
            )
    return nx.freeze(graph)


def usable(graph: nx.Graph, path: list[str], metric: str) -> bool:
    edges = [graph.edges[u, v] for u, v in itertools.pairwise(path)]
    if metric == "fidelity":
        return all(d["fidelity"] > 0.25 for d in edges)
    if metric in ("latency", "rate"):
        return all(d["success_probability"] > 0 for d in edges)
    return True


def cost(graph: nx.Graph, path: list[str], metric: str) -> Any:
    """What the metric minimises, computed from the route's figures (not from the weights)."""
    if metric == "length_km":
        return route_length_km(graph, path)
    if metric == "hops":
        return len(path) - 1
    if metric == "latency":
        return route_latency_ns(graph, path)
    if metric == "fidelity":
        return -route_fidelity(graph, path)
    return (-route_rate_hz(graph, path), len(path) - 1, route_length_km(graph, path))


def all_routes(graph: nx.Graph, source: str, target: str, metric: str) -> list[list[str]]:
    return [p for p in nx.all_simple_paths(graph, source, target) if usable(graph, p, metric)]


def close(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return a[0] == b[0] and a[1] == b[1] and math.isclose(a[2], b[2], rel_tol=1e-12)
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def pairs_of(graph: nx.Graph) -> list[tuple[str, str]]:
    nodes = sorted(graph)
    return [(nodes[0], nodes[-1]), (nodes[1], nodes[-2]), (nodes[2], nodes[3])]


@pytest.mark.parametrize("metric", METRICS)
def test_each_metric_finds_the_best_simple_path(metric):
    """On 40 random graphs of 8-10 nodes, three node pairs each: the route is a simple path of
    usable links whose figure equals the best over every simple path (brute force); for rate the
    best is the largest bottleneck, then fewest hops, then least fibre. Float sums may differ in
    the last bits with the order of addition, hence the relative 1e-12."""
    checked = unreachable = 0
    for seed in SEEDS:
        graph = random_topology(seed)
        for source, target in pairs_of(graph):
            candidates = all_routes(graph, source, target, metric)
            if not candidates:
                with pytest.raises(NoRoute):
                    shortest_route(graph, source, target, metric)
                unreachable += 1
                continue
            route = shortest_route(graph, source, target, metric)
            assert route[0] == source and route[-1] == target and len(set(route)) == len(route)
            assert usable(graph, route, metric) and nx.is_path(graph, route)
            best = min(cost(graph, p, metric) for p in candidates)
            assert close(cost(graph, route, metric), best), (seed, source, target)
            checked += 1
    assert checked >= 60 and unreachable >= 1  # both outcomes were exercised


def test_rate_tie_breaks_by_hops_then_length():
    """Three routes a->z: two with the bottleneck 10 kHz (p 0.01 per 1 µs attempt),
    two hops over 2 + 2 km, two hops over 1 + 1 km and one hop over 9 km through a slower link
    (p 0.005). The widest is the 2-hop pair of routes; of those, the 2 km one."""
    graph = nx.Graph()
    fast = {"fidelity": 0.9, "success_probability": 0.01, "attempt_period_ns": 1000, "classical_delay_ns": 10}
    graph.add_edge("a", "b", length_km=2.0, **fast)
    graph.add_edge("b", "z", length_km=2.0, **fast)
    graph.add_edge("a", "c", length_km=1.0, **fast)
    graph.add_edge("c", "z", length_km=1.0, **fast)
    graph.add_edge("a", "z", length_km=9.0, **{**fast, "success_probability": 0.005})
    assert shortest_route(graph, "a", "z", "rate") == ["a", "c", "z"]
    assert route_rate_hz(graph, ["a", "c", "z"]) == pytest.approx(1e4)
    # make the direct link as fast: one hop now wins over two
    graph.edges["a", "z"]["success_probability"] = 0.01
    assert shortest_route(graph, "a", "z", "rate") == ["a", "z"]


def test_rate_does_not_step_back_a_layer_to_save_fibre():
    """Fewest hops first. Layers from s: a, c (1 hop), b, d (2 hops), t. The 3-hop routes are
    s-a-b-t (1 + 11 + 1 km), s-a-d-t (1 + 1 + 11), s-c-b-t (10 + 1 + 1 = 12) and s-c-d-t; the least
    fibre among them is s-c-b-t, not the 5-hop s-a-d-c-b-t of 5 km, which steps back from d to c."""
    graph = nx.Graph()
    link = {"fidelity": 0.9, "success_probability": 0.1, "attempt_period_ns": 1000, "classical_delay_ns": 10}
    lengths = {("s", "a"): 1, ("a", "d"): 1, ("d", "c"): 1, ("c", "b"): 1, ("b", "t"): 1, ("s", "c"): 10, ("a", "b"): 11, ("d", "t"): 11}
    for (u, v), length in lengths.items():
        graph.add_edge(u, v, length_km=float(length), **link)
    assert shortest_route(graph, "s", "t", "rate") == ["s", "c", "b", "t"]


def test_fidelity_weighs_the_werner_factor_not_the_fidelity():
    """Direct link of F = 0.5 against two links of 0.69: the product of fidelities prefers the
    direct link (0.69^2 = 0.476 < 0.5), but the Werner chain ends at 1/4 + 3/4 (1.76/3)^2 = 0.508,
    above 0.5, so the fidelity route has two hops."""
    graph = nx.Graph()
    graph.add_edge("a", "z", fidelity=0.5)
    graph.add_edge("a", "m", fidelity=0.69)
    graph.add_edge("m", "z", fidelity=0.69)
    assert shortest_route(graph, "a", "z", "fidelity") == ["a", "m", "z"]
    assert route_fidelity(graph, ["a", "m", "z"]) == pytest.approx(0.25 + 0.75 * (1.76 / 3) ** 2)
    assert route_fidelity(graph, ["a", "m", "z"]) > route_fidelity(graph, ["a", "z"])


def test_werner_composition_is_the_goodness_fold_of_the_network_layer():
    """The fidelity metric's end-to-end figure, 1/4 + 3/4 Π (4F_i - 1)/3 (Dür et al. 1999), equals
    the pairwise Werner swap fold that goodness uses (frames.chain_goodness), on the chosen route
    of every random graph, to 1e-12."""
    compared = 0
    for seed in SEEDS:
        graph = random_topology(seed)
        for source, target in pairs_of(graph):
            try:
                route = shortest_route(graph, source, target, "fidelity")
            except NoRoute:
                continue
            fidelities = [graph.edges[u, v]["fidelity"] for u, v in itertools.pairwise(route)]
            assert route_fidelity(graph, route) == pytest.approx(chain_goodness(fidelities), abs=1e-12)
            compared += 1
    assert compared >= 60


def test_one_link_composes_to_its_own_fidelity_and_two_by_hand():
    graph = nx.Graph()
    graph.add_edge("a", "b", fidelity=0.9)
    graph.add_edge("b", "c", fidelity=0.8)
    assert route_fidelity(graph, ["a", "b"]) == pytest.approx(0.9)
    # 0.9 * 0.8 + 0.1 * 0.2 / 3 = 0.72 + 0.006667
    assert route_fidelity(graph, ["a", "b", "c"]) == pytest.approx(0.72 + 0.02 / 3)


@pytest.mark.parametrize("metric", [m for m in METRICS if m != "rate"])
def test_k_shortest_routes_are_the_k_best_in_order(metric):
    """k = 5: distinct simple paths, figures in non-decreasing order, and their figures are the 5
    smallest of brute force (any of equal figures may be listed at the boundary); all of them
    when fewer than 5 exist. The first has the figure of shortest_route."""
    for seed in range(20):
        graph = random_topology(seed)
        source, target = pairs_of(graph)[0]
        candidates = all_routes(graph, source, target, metric)
        if not candidates:
            with pytest.raises(NoRoute):
                k_shortest_routes(graph, source, target, 5, metric)
            continue
        routes = k_shortest_routes(graph, source, target, 5, metric)
        assert len(routes) == min(5, len(candidates))
        assert len({tuple(r) for r in routes}) == len(routes)
        assert all(usable(graph, r, metric) and nx.is_simple_path(graph, r) for r in routes)
        got = [cost(graph, r, metric) for r in routes]
        assert all(a <= b or close(a, b) for a, b in itertools.pairwise(got))
        expected = sorted(cost(graph, p, metric) for p in candidates)[: len(routes)]
        assert all(close(a, b) for a, b in zip(got, expected))
        assert close(got[0], cost(graph, shortest_route(graph, source, target, metric), metric))


def small() -> nx.Graph:
    graph = nx.Graph()
    figures = {"fidelity": 0.9, "success_probability": 0.1, "attempt_period_ns": 1000, "classical_delay_ns": 500}
    graph.add_edge("a", "b", length_km=1.0, **figures)
    graph.add_node("lonely")
    return graph


def test_bad_input_is_refused_by_name():
    graph = small()
    with pytest.raises(ValueError, match=r"unknown routing metric 'speed'; known: length_km, hops, latency, fidelity, rate"):
        shortest_route(graph, "a", "b", "speed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="known: length_km"):
        k_shortest_routes(graph, "a", "b", 2, "speed")  # type: ignore[arg-type]
    for k in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            k_shortest_routes(graph, "a", "b", k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not rank by rate"):
        k_shortest_routes(graph, "a", "b", 2, "rate")
    for metric in METRICS:
        with pytest.raises(NoRoute):
            shortest_route(graph, "a", "lonely", metric)
        with pytest.raises(NoRoute):
            shortest_route(graph, "a", "nowhere", metric)
    with pytest.raises(NoRoute):
        k_shortest_routes(graph, "a", "lonely", 3)
    assert k_shortest_routes(graph, "a", "b", 3) == [["a", "b"]]


def test_a_link_without_figures_is_named():
    graph = nx.Graph()
    graph.add_edge("a", "b", length_km=1.0)
    for metric in ("latency", "fidelity", "rate"):
        with pytest.raises(ValueError, match=r"link a-b carries no '\w+'"):
            shortest_route(graph, "a", "b", metric)
    assert shortest_route(graph, "a", "b", "hops") == ["a", "b"]


def test_unusable_links_are_never_taken():
    """F = 1/4 gives a Werner factor of 0 (the pair is the maximally mixed state after any swap);
    p = 0 never heralds: fidelity and latency routes avoid them, and refuse when nothing else is left."""
    graph = small()
    graph.edges["a", "b"]["fidelity"] = 0.25
    with pytest.raises(NoRoute):
        shortest_route(graph, "a", "b", "fidelity")
    graph.edges["a", "b"]["success_probability"] = 0.0
    assert link_latency_ns("a", "b", graph.edges["a", "b"]) is None
    for metric in ("latency", "rate"):
        with pytest.raises(NoRoute):
            shortest_route(graph, "a", "b", metric)


# ------------------------------------------------------------------ the scenario


def detour_scenario(metric: str | None) -> dict[str, Any]:
    """alice-fast-bob: two 5 km single-click links at α = 0.3 (fidelity 0.761, p 0.295 per attempt);
    alice-good1-good2-bob: three 5 km links at α = 0.05 (fidelity 0.963, p 0.053)."""
    hardware = {"memory": {"num_qubits": 4, "t2_ns": 1_000_000_000}, "emission_efficiency": 0.75}

    def link(a: str, b: str, alpha: float) -> dict[str, Any]:
        detector = {"efficiency": 0.8, "dark_count_probability": 0.0}
        return {"a": a, "b": b, "length_km": 5.0, "detector": detector, "bright_state_population": alpha}

    data: dict[str, Any] = {
        "name": "detour",
        "seed": 3,
        "nodes": [{"name": n, "hardware": hardware} for n in ("alice", "bob", "fast", "good1", "good2")],
        "links": [
            link("alice", "fast", 0.3),
            link("fast", "bob", 0.3),
            link("alice", "good1", 0.05),
            link("good1", "good2", 0.05),
            link("good2", "bob", 0.05),
        ],
        "applications": [{"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": 20}}],
    }
    if metric is not None:
        data["routing"] = {"metric": metric}
    return data


def test_the_topology_carries_what_the_devices_announce():
    sim = assemble(parse_scenario(detour_scenario(None)))
    topology = sim.network.entities["alice"]["network"].topology
    announced = sim.network.entities["alice"]["physical"].capabilities().links
    for neighbour in ("fast", "good1"):
        edge = topology.edges["alice", neighbour]
        assert edge["length_km"] == 5.0
        assert {name: edge[name] for name in EDGE_FIGURES} == {name: getattr(announced[neighbour], name) for name in EDGE_FIGURES}
    assert topology.edges["alice", "fast"]["fidelity"] == pytest.approx(0.761, abs=5e-4)
    assert topology.edges["alice", "good1"]["fidelity"] == pytest.approx(0.963, abs=5e-4)
    assert nx.is_frozen(topology)


def test_a_scenario_routing_by_fidelity_takes_the_longer_path_of_better_links():
    """By fibre (the default) alice reaches bob over fast: 10 km, end-to-end Werner fidelity
    1/4 + 3/4 ((4 * 0.761 - 1)/3)^2 = 0.598. By fidelity over good1 and good2: 15 km, three links
    of 0.963, 0.894. The run's reported goodness of the 20 pairs composes the links' Bell diagonals
    (specs/network.md, goodness through swaps): within 5 standard errors of the mean oracle
    fidelity (20 pairs), and above the Werner figure where it differs, since the Werner
    composition is pessimistic for single-click states."""
    by_length = assemble(parse_scenario(detour_scenario(None))).run()
    by_fidelity = assemble(parse_scenario(detour_scenario("fidelity"))).run()
    assert by_length.status == by_fidelity.status == "done"
    shorter, better = by_length.applications[0], by_fidelity.applications[0]
    assert shorter.path == ["alice", "fast", "bob"]
    assert better.path == ["alice", "good1", "good2", "bob"]
    for app, werner in ((shorter, 0.598), (better, 0.894)):
        assert abs(app.mean_goodness - app.mean_oracle_fidelity) < 5 * app.stderr_oracle_fidelity
        assert app.mean_goodness > werner - 5e-4
    assert shorter.mean_goodness > 0.598 + 5e-3  # the Bell-diagonal estimate, not the Werner one


def test_the_default_metric_is_passed_to_no_one():
    """Left at length_km, the network layer is built as Impl(ctx, topology); another metric needs
    a layer that takes it, else assembly refuses naming routing.metric."""
    from qnetstack.network.swap_asap import SwapAsap

    class NoMetric(SwapAsap):
        def __init__(self, ctx: Any, topology: Any) -> None:
            super().__init__(ctx, topology)

    assert assemble(parse_scenario(detour_scenario(None)), {"network": NoMetric}).run().status == "done"
    with pytest.raises(AssemblyError, match=r"routing\.metric: network .* takes no metric argument"):
        assemble(parse_scenario(detour_scenario("hops")), {"network": NoMetric})


def test_an_unknown_metric_in_a_scenario_is_one_line_naming_the_field():
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(detour_scenario("speed"))
    message = str(caught.value)
    assert message.startswith("routing.metric: ") and "'fidelity'" in message and "\n" not in message


def test_the_fidelity_metric_counts_the_decoherence_of_the_longer_wait():
    """a-z: one link of 0.85. a-m1-m2-z: three links of 0.97 (Werner fold 0.914, so the additive
    surrogate prefers them) at p = 0.001 per µs attempt, on memories with T2 = 1 ms: waiting
    about 1.8 ms for all three links costs more than the better links give. With ideal
    memories the three-link route wins, with decohering ones the direct link."""
    figures = {"success_probability": 0.001, "attempt_period_ns": 1000, "classical_delay_ns": 500}

    def graph(t2: float | None) -> nx.Graph:
        g = nx.Graph()
        g.add_nodes_from(["a", "m1", "m2", "z"], **({} if t2 is None else {"t2_ns": t2}))
        g.add_edge("a", "z", length_km=1, fidelity=0.85, **figures)
        for u, v in (("a", "m1"), ("m1", "m2"), ("m2", "z")):
            g.add_edge(u, v, length_km=1, fidelity=0.97, **figures)
        return g

    assert shortest_route(graph(None), "a", "z", "fidelity") == ["a", "m1", "m2", "z"]
    decohering = graph(1e6)
    assert expected_route_fidelity(decohering, ["a", "z"]) == pytest.approx(0.85)
    assert expected_route_fidelity(decohering, ["a", "m1", "m2", "z"]) < 0.85 - 0.05
    assert shortest_route(decohering, "a", "z", "fidelity") == ["a", "z"]
    assert k_shortest_routes(decohering, "a", "z", 2, "fidelity")[0] == ["a", "m1", "m2", "z"]  # k-best lists by the surrogate


def test_the_topology_carries_memories_and_operating_points():
    """Nodes carry their memory's T2 (T1 unset: not on the node); single-click links their
    settings of α as (fidelity, success probability), the configured one first."""
    sim = assemble(parse_scenario(detour_scenario(None)))
    topology = sim.network.entities["alice"]["network"].topology
    assert topology.nodes["alice"] == {"t2_ns": 1_000_000_000}
    announced = sim.network.entities["alice"]["physical"].capabilities().links["fast"]
    points = topology.edges["alice", "fast"]["operating_points"]
    assert points == tuple((s.fidelity, s.success_probability) for s in announced.alpha_settings)
    assert points[0] == pytest.approx((topology.edges["alice", "fast"]["fidelity"], topology.edges["alice", "fast"]["success_probability"]))
