"""Admission on fidelity (qnetstack.network.admission) and the expected end-to-end fidelity it
rests on (qnetstack.network.routing): closed forms, Monte Carlo of the waiting model, hand
computations, and the head's answers in a running stack."""

from __future__ import annotations

import itertools
import math
from typing import Any

import networkx as nx
import numpy as np
import pytest

from qnetstack.network.admission import Admitted, Refused, admit, reachable_fidelity
from qnetstack.network.frames import chain_goodness
from qnetstack.network.routing import (
    expected_all_links_ns,
    expected_route_fidelity,
    link_arrival_rate_per_ns,
    route_decay,
    route_fidelity,
    uniform_link_target,
    werner_factor,
)
from qnetstack.network.service import NetRejected, NetRequest
from qnetstack.stack import assemble
from qnetstack.stack.conform import run_conformance
from qnetstack.stack.scenario import parse_scenario
from tests import broken_networks


def chain(
    fidelities: list[float], p: float = 0.01, period: int = 1000, delay: int = 500, t1: float | None = None, t2: float | None = None
) -> nx.Graph:
    graph = nx.Graph()
    names = [f"n{i}" for i in range(len(fidelities) + 1)]
    memory = {name: value for name, value in (("t1_ns", t1), ("t2_ns", t2)) if value is not None}
    graph.add_nodes_from(names, **memory)
    for (a, b), f in zip(itertools.pairwise(names), fidelities, strict=True):
        graph.add_edge(a, b, length_km=1.0, fidelity=f, success_probability=p, attempt_period_ns=period, classical_delay_ns=delay)
    return graph


def path_of(graph: nx.Graph) -> list[str]:
    return [f"n{i}" for i in range(graph.number_of_nodes())]


# ------------------------------------------------------------------ the expected wait


@pytest.mark.parametrize("n", range(1, 9))
def test_equal_links_wait_the_harmonic_number_of_means(n):
    """For n equal exponential links E[max] = H_n / λ (the harmonic-number approximation,
    Shchukin, Schmidt & van Loock 2019). The integral is numeric: within 1e-6 relative."""
    rate = 1 / 3000
    harmonic = sum(1 / k for k in range(1, n + 1))
    assert expected_all_links_ns([rate] * n) == pytest.approx(harmonic / rate, rel=1e-6)


def test_unequal_links_wait_by_inclusion_exclusion():
    """E[max] = Σ over non-empty subsets S of (−1)^(|S|+1) / Σ_S λ, exact for exponentials;
    rates four orders of magnitude apart, within 1e-6 relative."""
    rates = [1e-2, 3e-4, 1e-5, 7e-3]
    exact = sum((-1) ** (size + 1) / sum(subset) for size in range(1, len(rates) + 1) for subset in itertools.combinations(rates, size))
    assert expected_all_links_ns(rates) == pytest.approx(exact, rel=1e-6)
    assert expected_all_links_ns([math.inf, 1e-3]) == pytest.approx(1000.0, rel=1e-6)  # a link ready at once adds nothing
    assert expected_all_links_ns([0.0, 1e-3]) == math.inf
    assert expected_all_links_ns([]) == 0.0


def test_the_wait_brackets_the_attempts_of_geometric_links():
    """Attempts of period τ succeeding with probability p: the time to a link's first pair is
    τ·ceil(T/τ) with T exponential of rate −ln(1 − p)/τ (same survival at every boundary), so
    the time until all links have one lies in [E[max T], E[max T] + τ). 20,000 draws of 4 links
    at p = 0.05 (standard error about 0.4 τ): the sample mean within that bracket widened by 5
    standard errors."""
    rng = np.random.default_rng(12)
    p, period, draws = 0.05, 1000, 20_000
    attempts = rng.geometric(p, size=(draws, 4)).max(axis=1) * period
    mean, se = attempts.mean(), attempts.std(ddof=1) / math.sqrt(draws)
    expected = expected_all_links_ns([link_arrival_rate_per_ns("a", "b", {"success_probability": p, "attempt_period_ns": period})] * 4)
    assert expected - 5 * se <= mean <= expected + period + 5 * se
    assert se < 0.5 * period  # the check has teeth: the bracket is narrower than the spread allowed


def test_route_decay_is_the_mean_hold_time_of_the_waiting_model():
    """The model (routing module docstring): links start at once, link i's pair comes after an
    exponential time; a repeater swaps when both its links have a pair; the ends hold theirs
    until every link has one, plus the classical delay to the farthest repeater. Sampled 50,000
    times on 3 unequal links with a different T1/T2 at every node, the mean summed exponents
    match route_decay within 5 standard errors."""
    graph = nx.Graph()
    memories = {"a": (4e6, 2e6), "b": (1e7, 5e6), "c": (3e6, 1e6), "d": (8e6, 8e6)}
    for node, (t1, t2) in memories.items():
        graph.add_node(node, t1_ns=t1, t2_ns=t2)
    figures = [("a", "b", 0.02, 1000, 700), ("b", "c", 0.005, 2000, 300), ("c", "d", 0.05, 500, 900)]
    for a, b, p, period, delay in figures:
        graph.add_edge(a, b, fidelity=0.9, success_probability=p, attempt_period_ns=period, classical_delay_ns=delay)
    rates = np.array([-math.log1p(-p) / period for _, _, p, period, _ in figures])
    rng = np.random.default_rng(5)
    draws = 50_000
    arrive = rng.exponential(1 / rates, size=(draws, 3))
    everything = arrive.max(axis=1)
    swap_b, swap_c = np.maximum(arrive[:, 0], arrive[:, 1]), np.maximum(arrive[:, 1], arrive[:, 2])
    held = {  # node -> total time its halves are held, per draw
        "a": everything - arrive[:, 0] + 700 + 300,
        "b": (swap_b - arrive[:, 0]) + (swap_b - arrive[:, 1]),
        "c": (swap_c - arrive[:, 1]) + (swap_c - arrive[:, 2]),
        "d": everything - arrive[:, 2] + 300 + 900,
    }
    dephase = sum(held[node] / memories[node][1] for node in held)
    relax = sum(held[node] / memories[node][0] for node in held)
    decay = route_decay(graph, ["a", "b", "c", "d"])
    for sample, figure in ((dephase, decay[0]), (dephase, decay[1]), (relax, decay[2])):
        assert abs(sample.mean() - figure) < 5 * sample.std(ddof=1) / math.sqrt(draws)


# ------------------------------------------------------------------ the expected fidelity


def test_with_ideal_memories_it_is_the_swap_algebra_of_the_links():
    """No T1/T2 on the nodes: the figure is 1/4 + 3/4 Π (4F_i − 1)/3 (Dür et al. 1999), the
    Werner fold the network layer's goodness uses."""
    rng = np.random.default_rng(3)
    for n in range(1, 9):
        fidelities = list(rng.uniform(0.6, 1.0, size=n))
        graph = chain(fidelities)
        assert route_decay(graph, path_of(graph)) == (0.0, 0.0, 0.0)
        assert expected_route_fidelity(graph, path_of(graph)) == pytest.approx(route_fidelity(graph, path_of(graph)), abs=1e-12)
        assert expected_route_fidelity(graph, path_of(graph)) == pytest.approx(chain_goodness(fidelities), abs=1e-12)


def test_two_links_with_dephasing_memories_by_hand():
    """Two equal links of rate λ, T2 only. Both links there after 1/λ + 1/λ − 1/(2λ) = 1.5/λ;
    the repeater swaps then and holds each half 0.5/λ; each end holds its half 0.5/λ plus one
    classical delay d (the farthest repeater is one hop away). Dephasing exponent
    E = (4 · 0.5/λ + 2d)/T2 on c_X and c_Y, none on c_Z: F = (1 + x² (2e^{−E} + 1))/4."""
    p, period, d, t2 = 0.01, 1000, 500, 2e5
    graph = chain([0.95, 0.95], p=p, period=period, delay=d, t2=t2)
    rate = -math.log1p(-p) / period
    exponent = (2 / rate + 2 * d) / t2
    x = werner_factor(0.95)
    assert route_decay(graph, ["n0", "n1", "n2"]) == pytest.approx((exponent, exponent, 0.0), rel=1e-6)
    by_hand = (1 + x * x * (2 * math.exp(-exponent) + 1)) / 4
    assert expected_route_fidelity(graph, ["n0", "n1", "n2"]) == pytest.approx(by_hand, rel=1e-6)
    assert by_hand < route_fidelity(graph, ["n0", "n1", "n2"]) - 0.05  # decoherence costs here, and is counted
    assert expected_route_fidelity(chain([0.95], t2=t2), ["n0", "n1"]) == pytest.approx(0.95)  # one link waits for nothing


@pytest.mark.parametrize("n", range(1, 7))
def test_the_uniform_link_target_composes_back_to_the_end_to_end_target(n):
    """Links that give exactly the per-link target compose, with the same waits, to the target."""
    for target in (0.5, 0.7, 0.85):
        decohering = chain([0.99] * n, t1=5e7, t2=2e7)
        link = uniform_link_target(decohering, path_of(decohering), target)
        assert expected_route_fidelity(chain([link] * n, t1=5e7, t2=2e7), path_of(decohering)) == pytest.approx(target, abs=1e-9)
    assert uniform_link_target(chain([0.9]), ["n0", "n1"], 0.8) == pytest.approx(0.8)
    assert uniform_link_target(chain([0.9] * 3), path_of(chain([0.9] * 3)), 0.2) == 0.25  # no constraint below 1/4
    assert uniform_link_target(chain([0.9] * 3, t2=1e4), path_of(chain([0.9] * 3)), 0.9) > 1  # no link could do it


def test_the_old_rule_misses_the_target_on_decohering_memories():
    """F^(1/n) per link, on 4 links with T2 = 10 ms waiting about 2 ms: links at that fidelity
    compose to well under F; the uniform target composes to F."""
    graph = chain([0.99] * 4, p=0.002, t2=1e7)
    old = 0.8 ** (1 / 4)
    assert expected_route_fidelity(chain([old] * 4, p=0.002, t2=1e7), path_of(graph)) < 0.8 - 0.05
    new = uniform_link_target(graph, path_of(graph), 0.8)
    assert new > old
    assert expected_route_fidelity(chain([new] * 4, p=0.002, t2=1e7), path_of(graph)) == pytest.approx(0.8, abs=1e-9)


# ------------------------------------------------------------------ admission


def test_no_target_changes_nothing():
    graph = chain([0.5, 0.5], t2=1e3)
    assert admit(graph, ["n0", "n1", "n2"], 0.0) == Admitted(["n0", "n1", "n2"], 0.0)


def test_a_reachable_target_is_admitted_with_the_uniform_link_target():
    graph = chain([0.97, 0.98, 0.99], t2=1e8)
    admitted = admit(graph, path_of(graph), 0.9)
    assert isinstance(admitted, Admitted) and admitted.path == path_of(graph)
    assert admitted.link_min_fidelity == pytest.approx(uniform_link_target(graph, path_of(graph), 0.9))
    assert admitted.link_min_fidelity <= 0.97


def test_an_unreachable_target_is_refused_with_the_best_reachable_figure():
    """The weakest link (0.9) bounds a uniform per-link target: the best end-to-end figure is
    three links of 0.9 with the chain's decoherence; just above it is refused, just below it
    admitted."""
    graph = chain([0.9, 0.99, 0.99], t2=1e8)
    best = reachable_fidelity(graph, path_of(graph))
    assert best == pytest.approx(expected_route_fidelity(chain([0.9] * 3, t2=1e8), path_of(graph)), abs=1e-12)
    refused = admit(graph, path_of(graph), best + 1e-4)
    assert isinstance(refused, Refused) and refused.best_fidelity == pytest.approx(best)
    assert "out of reach" in refused.reason and f"{best:.4f}" in refused.reason
    assert isinstance(admit(graph, path_of(graph), best - 1e-4), Admitted)
    assert isinstance(admit(graph, path_of(graph), 0.995), Refused)  # above every link's fidelity


def test_a_better_route_is_taken_when_the_chosen_one_falls_short():
    """a-b-z (two links of 0.8) is the head's route; a-c-d-z (three of 0.99) reaches 0.95."""
    graph = nx.Graph()
    figures = {"success_probability": 0.1, "attempt_period_ns": 1000, "classical_delay_ns": 100}
    graph.add_edge("a", "b", fidelity=0.8, length_km=1, **figures)
    graph.add_edge("b", "z", fidelity=0.8, length_km=1, **figures)
    for u, v in (("a", "c"), ("c", "d"), ("d", "z")):
        graph.add_edge(u, v, fidelity=0.99, length_km=1, **figures)
    admitted = admit(graph, ["a", "b", "z"], 0.95)
    assert isinstance(admitted, Admitted) and admitted.path == ["a", "c", "d", "z"]
    assert isinstance(admit(graph, ["a", "b", "z"], 0.95, excluded={frozenset(("c", "d"))}), Refused)


def test_links_with_operating_points_are_asked_for_the_least_that_is_enough():
    """Two links announce (F, p) points: (0.9, 0.1), (0.95, 0.01), (0.99, 0.001). With T2 = 1 ms
    the slowest point waits so long that it composes worse than the middle one: the best
    reachable figure is at 0.95, and a target the fast point cannot meet moves both links to
    the middle one, whose waits the per-link target then includes."""
    points = ((0.9, 0.1), (0.95, 0.01), (0.99, 0.001))
    graph = chain([0.9, 0.9], p=0.1, t2=1e6)
    for u, v in graph.edges:
        graph.edges[u, v]["operating_points"] = points

    def at(fidelity: float, p: float) -> float:
        return expected_route_fidelity(chain([fidelity, fidelity], p=p, t2=1e6), ["n0", "n1", "n2"])

    assert at(0.95, 0.01) > max(at(0.99, 0.001), at(0.9, 0.1))
    assert reachable_fidelity(graph, ["n0", "n1", "n2"]) == pytest.approx(at(0.95, 0.01), abs=1e-12)
    target = (at(0.9, 0.1) + at(0.95, 0.01)) / 2
    admitted = admit(graph, ["n0", "n1", "n2"], target)
    assert isinstance(admitted, Admitted) and 0.9 < admitted.link_min_fidelity <= 0.95
    assert admitted.link_min_fidelity == pytest.approx(uniform_link_target(chain([0.9, 0.9], p=0.01, t2=1e6), ["n0", "n1", "n2"], target))


# ------------------------------------------------------------------ in a running stack


def decohering_chain(hops: int, min_fidelity: float, number: int = 40) -> dict[str, Any]:
    """hops × 10 km single-click links at α = 0.05 (F ≈ 0.959, p ≈ 0.047 per 49 µs attempt,
    smaller α announced as operating points), memories with T2 = 10 ms."""
    names = [f"n{i}" for i in range(hops + 1)]
    hardware = {"memory": {"num_qubits": 4, "t2_ns": 10_000_000}, "emission_efficiency": 0.75}
    detector = {"efficiency": 0.8, "dark_count_probability": 0.0}
    return {
        "name": "decohering-chain",
        "seed": 1,
        "nodes": [{"name": n, "hardware": hardware} for n in names],
        "links": [
            {"a": a, "b": b, "length_km": 10, "detector": detector, "bright_state_population": 0.05} for a, b in itertools.pairwise(names)
        ],
        "implementations": {"physical": "model-heralding", "link": "fast-forward-egp"},
        "applications": [
            {"node": "n0", "request": {"kind": "pairs", "remote_node": names[-1], "number": number, "min_fidelity": min_fidelity}}
        ],
    }


def test_the_head_refuses_an_unreachable_target_at_once_with_the_best_figure(monkeypatch):
    sim = assemble(parse_scenario(decohering_chain(4, 0.0)))
    head = sim.network.entities["n0"]["network"]
    best = reachable_fidelity(head.topology, ["n0", "n1", "n2", "n3", "n4"])
    sent: list[Any] = []

    class Capture:  # the head's context, with what it sends up kept here
        def __init__(self, ctx: Any) -> None:
            self._ctx = ctx

        def send_up(self, msg: Any) -> None:
            sent.append(msg)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._ctx, name)

    monkeypatch.setattr(head, "ctx", Capture(head.ctx))
    head.handle_above(NetRequest(request_id=7, remote_node="n4", min_fidelity=0.75))
    assert len(sent) == 1 and isinstance(sent[0], NetRejected)
    assert sent[0].best_fidelity == pytest.approx(best) and 0.6 < best < 0.75
    assert head._open_requests == {}  # nothing set up


def test_in_a_run_a_target_out_of_reach_ends_at_once_and_one_in_reach_changes_nothing():
    """4 hops, T2 = 10 ms: the expected end-to-end figure is about 0.68. A target of 0.75 is
    refused before any attempt (the old per-link rule, 0.75^(1/4) = 0.93, below what the
    links give anyway, accepted it and delivered pairs near 0.67). A target of 0.6 asks the
    links for less than they give at their fastest point: the same run, number for number,
    as no target."""
    refused = assemble(parse_scenario(decohering_chain(4, 0.75))).run()
    (app,) = refused.applications
    assert (app.outcome, app.error_code) == ("error", "REJECTED") and "out of reach" in app.detail
    assert refused.counters.get("station.attempt", 0) == 0
    met, none = (assemble(parse_scenario(decohering_chain(4, target))).run() for target in (0.6, 0.0))
    assert met.status == none.status == "done"
    assert (met.events, met.sim_time_ns) == (none.events, none.sim_time_ns)
    assert met.applications[0].mean_goodness == none.applications[0].mean_goodness
    assert met.applications[0].mean_goodness > 0.6


# ------------------------------------------------------------------ conformance


@pytest.mark.conformance
def test_a_layer_that_ignores_the_announced_fidelities_fails_net_admit_1():
    """AdmitsBlindly accepts alice -> carol at 0.96 over links of 0.97 (they compose to 0.9412)
    and fails it later at the link; the in-reach requests of NET-ADMIT-2 it still serves, and the
    reference passes both."""
    clauses = ["NET-ADMIT-1", "NET-ADMIT-2"]
    broken = run_conformance("network", broken_networks.AdmitsBlindly, select=clauses)
    assert set(broken.failed_clauses()) == {"NET-ADMIT-1"}, broken.to_text()
    assert all(clause.detail for clause in broken.clauses if clause.status == "fail")
    assert run_conformance("network", select=clauses).passed
