"""Link-state routing in the running network layer (network/reroute.py): views changed by
advertisements, open circuits moved off a link that went down, degraded links avoided.

The grid runs use the model-driven backend on a 3x3 grid of 2 km links with four qubits per
node (the helpers of tests/test_faults.py) and are judged as there once they settle: every
request ended, no qubit held, no memory set aside.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest

from qnetstack.application.service import AppDone, AppError, PairResult
from qnetstack.link.service import BellState, EntanglementId, LinkOkKeep
from qnetstack.network import reroute
from qnetstack.network.linkstate import FidelityWatch, LinkStateAdvert
from qnetstack.network.node import NetworkNode
from qnetstack.network.service import NetAccepted, NetRequest
from qnetstack.stack import assemble, parse_scenario
from qnetstack.stack.conform import run_conformance
from tests import broken_networks
from tests.fakes import FakeContext, FakeDevice
from tests.test_faults import CROSSING, assert_settled, ends, grid, run

FIRST = {"node": "n00", "request": {"kind": "pairs", "remote_node": "n22", "number": 30}}


def links_of(path: Any) -> set[frozenset[str]]:
    return {frozenset(hop) for hop in zip(path, path[1:])}


def reroutes(simulation: Any) -> list[dict[str, Any]]:
    return [r for r in simulation.network.trace.records if r["event"] == "network.reroute"]


def pair_indices(network: Any, head: str, request_id: int) -> list[int]:
    """The indices of the pairs the tail reported for the head's network request."""
    return sorted(m.pair_id.index for _, _, m in network.user_messages if isinstance(m, PairResult) and m.pair_id.head == head)


def baseline_path(applications: list[dict[str, Any]], head: str) -> tuple[str, ...]:
    baseline, _ = run(grid({}, applications))
    network = baseline.network
    (made,) = [net for net, user in network.net_requests.items() if user[0] == head]
    return network.paths[made]


def test_a_cut_mid_run_moves_the_circuits_on_it_and_every_request_gets_all_its_pairs():
    path = baseline_path([FIRST], "n00")
    cut = (path[2], path[3])  # a link away from both ends: only the path tells them of it
    simulation, result = run(grid({"link_cuts": [{"link": list(cut), "at_ns": 1_000_000}]}, [FIRST], keep_trace=True))
    assert_settled(simulation, result)
    network = simulation.network
    closed = ends(network)
    assert isinstance(closed[("n00", 0)], AppDone) and closed[("n00", 0)].completed == 30, closed
    (moved,) = reroutes(simulation)
    assert frozenset(cut) not in links_of(moved["path"])
    # pairs delivered before the cut stay delivered; the new circuit numbers on from there
    first = moved["first_index"]
    assert 0 < first < 30, "the cut must fall while the request runs, or the test proves nothing"
    assert pair_indices(network, "n00", 0) == list(range(30))
    # the cut was flooded: both its ends advertised it, and every node's view lost the link
    assert network.trace.counts["network.advert"] >= 2
    for node in (n for n in network.entities if "~" not in n):
        view = network.entities[node]["network"]._reroute.view
        assert not view.is_up(*cut), node


def test_crossing_requests_all_finish_when_a_link_some_of_them_use_is_cut():
    paths = [baseline_path([app], app["node"]) for app in CROSSING]
    cut = ["n01", "n11"]
    assert any(frozenset(cut) in links_of(p) for p in paths), "the cut link must carry a circuit"
    simulation, result = run(grid({"link_cuts": [{"link": cut, "at_ns": 1_000_000}]}, keep_trace=True))
    assert_settled(simulation, result)
    closed = ends(simulation.network)
    assert all(isinstance(msg, AppDone) and msg.completed == 30 for msg in closed.values()), closed
    assert reroutes(simulation)


def test_a_stale_view_routes_over_the_cut_link_and_the_circuit_is_moved():
    """n00 asks 1 ns after a link far from it is cut: the advertisement of the cut (10 us per
    2 km hop) has not reached it, so it routes over the cut link; the circuit fails there and
    moves to a path its view, by then, knows to avoid."""
    path = baseline_path([FIRST], "n00")
    cut = (path[2], path[3])
    late = {"node": "n00", "at_ns": 1_000_001, "request": {"kind": "pairs", "remote_node": "n22", "number": 5}}
    simulation, result = run(grid({"link_cuts": [{"link": list(cut), "at_ns": 1_000_000}]}, [late], keep_trace=True))
    assert_settled(simulation, result)
    network = simulation.network
    (made,) = network.net_requests
    assert frozenset(cut) in links_of(network.paths[made]), "the head's view must still be stale when it routes"
    (moved,) = reroutes(simulation)
    assert frozenset(cut) not in links_of(moved["path"])
    assert isinstance(ends(network)[("n00", 0)], AppDone)
    assert pair_indices(network, "n00", 0) == list(range(5))


def test_a_cut_with_no_other_path_ends_the_request_with_link_failure():
    line = {
        "seed": 1,
        "nodes": [{"name": n, "hardware": {"memory": {"num_qubits": 4}}} for n in ("a", "b", "c")],
        "links": [{"a": "a", "b": "b", "length_km": 2}, {"a": "b", "b": "c", "length_km": 2}],
        "implementations": {"physical": "model-heralding"},
        "applications": [{"node": "a", "request": {"kind": "pairs", "remote_node": "c", "number": 200}}],
        "faults": {"link_cuts": [{"link": ["b", "c"], "at_ns": 500_000}]},
    }
    simulation = assemble(parse_scenario(line))
    simulation.run()
    network = simulation.network
    error = ends(network)[("a", 0)]
    assert isinstance(error, AppError) and "LINK_FAILURE" in error.detail and "no other path" in error.detail
    assert all(not network.entities[n]["physical"].held_handles() for n in ("a", "b", "c"))


def test_a_request_moved_too_often_ends_with_link_failure(monkeypatch):
    monkeypatch.setattr(reroute, "MAX_REROUTES", 0)
    path = baseline_path([FIRST], "n00")
    simulation, result = run(grid({"link_cuts": [{"link": [path[2], path[3]], "at_ns": 1_000_000}]}, [FIRST]))
    assert_settled(simulation, result)
    error = ends(simulation.network)[("n00", 0)]
    assert isinstance(error, AppError) and "LINK_FAILURE" in error.detail and "moved 0 times" in error.detail


def test_a_run_without_link_changes_sends_no_advertisement():
    simulation, _ = run(grid({}))
    counts = simulation.network.trace.counts
    assert counts["network.advert"] == 0 and counts["network.reroute"] == 0
    assert counts["network.deliver"] > 0  # the run did deliver pairs: the links were used


# ------------------------------------------------------------------ degraded links


def test_the_fidelity_watch_does_not_fire_on_the_scatter_of_a_healthy_link():
    """10 000 pairs whose goodness scatters by sd 0.05 around the announced 0.9 (far more
    than the reference links, which report the same goodness for every pair): a window of 50
    has a mean with sd 0.007, so the margin of 0.05 is 7 sd away; the chance that any of the
    ~10 000 windows crosses it is below 1e-7. Shifted 0.08 down, the first full window fires."""
    topology = nx.Graph()
    topology.add_edge("a", "b", fidelity=0.9)
    rng = np.random.default_rng(5)
    healthy = FidelityWatch(topology, "a")
    assert all(healthy.observe("b", float(g)) is None for g in np.clip(rng.normal(0.9, 0.05, 10_000), 0, 1))
    sick = FidelityWatch(topology, "a")
    changes = [sick.observe("b", float(g)) for g in np.clip(rng.normal(0.82, 0.05, 200), 0, 1)]
    fired = [(i, c) for i, c in enumerate(changes) if c is not None]
    assert len(fired) == 1 and fired[0][0] == FidelityWatch.WINDOW - 1 and fired[0][1][0] is True
    assert abs(fired[0][1][1] - 0.82) < 0.03  # 4 sd of a 50-pair mean
    # recovery: once, when the mean of the window is back within half the margin
    back = [c for c in (sick.observe("b", 0.9) for _ in range(FidelityWatch.WINDOW)) if c is not None]
    assert len(back) == 1 and back[0][0] is False and 0.875 <= back[0][1] < 0.9


def _grid(n: int = 3) -> nx.Graph:
    g = nx.Graph()
    for i in range(n):
        for j in range(n):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < n and j + dj < n:
                    g.add_edge(f"n{i}{j}", f"n{i + di}{j + dj}", length_km=2.0, fidelity=0.9)
    return nx.freeze(g)


def test_a_link_reported_worse_than_announced_is_advertised_and_avoided_by_new_circuits():
    """Link pairs on n00's first hop come in with goodness 0.6 (a hand-made link report: the
    reference physical layer cannot change a link's figures mid-run). After a window of them
    n00 advertises the link at 0.6 to its neighbours, and a new circuit routed by expected
    fidelity takes the other, equally long way."""
    topology = _grid()
    ctx = FakeContext("n00", FakeDevice("n00", num_qubits=4))
    node = NetworkNode(ctx, topology, metric="fidelity")
    node.handle_above(NetRequest(request_id=0, remote_node="n11", number=1))
    (before,) = ctx.take(NetAccepted)
    hop = before.path[1]
    for sequence in range(FidelityWatch.WINDOW):
        ok = LinkOkKeep(
            create_id=0,
            origin_node=hop,  # the neighbour's: no circuit of n00 takes it, it just waits
            ent_id=EntanglementId(creator=hop, peer="n00", sequence=sequence),
            purpose_id=999,
            remote_node=hop,
            bell_state=BellState.PHI_PLUS,
            goodness=0.6,
            goodness_time_ns=0,
            handle=sequence % 4,
        )
        assert not [m for _, m in ctx.peer if isinstance(m, LinkStateAdvert)]
        node.handle_below(ok)
    adverts = [(to, m) for to, m in ctx.peer if isinstance(m, LinkStateAdvert)]
    assert sorted(to for to, _ in adverts) == sorted(topology.neighbors("n00"))
    (report,) = adverts[0][1].links
    assert report.neighbour == hop and report.up and report.fidelity == pytest.approx(0.6)
    node.handle_above(NetRequest(request_id=1, remote_node="n11", number=1))
    after = ctx.take(NetAccepted)[-1]
    assert after.path[1] != hop and len(after.path) == len(before.path)


# ------------------------------------------------------------------ conformance


@pytest.mark.conformance
@pytest.mark.parametrize(
    "broken, expected",
    [("EndsMovableCircuits", {"NET-ROUTE-2"}), ("IgnoresAdverts", {"NET-ROUTE-1"})],
)
def test_a_network_layer_that_does_not_route_on_link_state_fails_the_routing_clauses(broken, expected):
    """EndsMovableCircuits ends a circuit on a cut link although another path exists;
    IgnoresAdverts never hears of a cut away from it and routes over it. The controls pass."""
    controls = {"NET-REQ-1", "NET-END-1", "NET-FAULT-1", "NET-FAULT-2"}
    report = run_conformance("network", getattr(broken_networks, broken), select=sorted({"NET-ROUTE-1", "NET-ROUTE-2"} | controls))
    assert set(report.failed_clauses()) == expected, report.to_text()
    assert all(clause.detail for clause in report.clauses if clause.status == "fail")


@pytest.mark.conformance
def test_the_reference_passes_the_routing_clauses():
    report = run_conformance("network", select=["NET-ROUTE-1", "NET-ROUTE-2"])
    assert not report.failed_clauses() and len(report.clauses) == 2, report.to_text()


def test_a_tail_that_crashes_ends_its_request_at_the_head_instead_of_leaving_it_waiting():
    """n22 crashes while n00 -> n22 runs: the circuit fails with a link down, so the head waits
    for the tail's count to move the request; none comes, and after its bound (four classical
    delays of the path) the request ends with LINK_FAILURE rather than staying open."""
    crash = {"node": "n22", "at_ns": 1_000_000}
    simulation, result = run(grid({"node_crashes": [crash]}, [FIRST]))
    assert_settled(simulation, result)
    error = ends(simulation.network)[("n00", 0)]
    assert isinstance(error, AppError) and "the tail did not say" in error.detail, error


def test_a_request_with_a_deadline_keeps_it_across_a_move():
    """A deadline ample for the moved request (20 ms) is carried to its new circuit: the request
    finishes, and the head keeps no timer, move or open request for it afterwards."""
    from tests.test_faults import DeadlineApps

    path = baseline_path([FIRST], "n00")
    data = grid({"link_cuts": [{"link": [path[2], path[3]], "at_ns": 1_000_000}]}, [FIRST])
    simulation = assemble(parse_scenario(data), {"application": DeadlineApps})
    result = simulation.run()
    assert_settled(simulation, result)
    assert isinstance(ends(simulation.network)[("n00", 0)], AppDone)
    assert simulation.network.trace.counts["network.reroute"] == 1
    head = simulation.network.entities["n00"]["network"]
    assert not head._reroute._moving and not head._open_requests


def test_views_share_the_topology_until_they_change():
    """Assembly stays linear in the nodes: no view copies the graph until its node hears of a
    change, and a node that heard of one copies it once, for itself."""
    quiet, _ = run(grid({}))
    shared = {id(layers["network"].topology) for n, layers in quiet.network.entities.items() if "~" not in n}
    assert len(shared) == 1
    for node, layers in quiet.network.entities.items():
        if "~" not in node:
            assert layers["network"]._reroute.view.graph() is layers["network"].topology, node
    cut, _ = run(grid({"link_cuts": [{"link": ["n01", "n11"], "at_ns": 1_000_000}]}))
    graphs = [layers["network"]._reroute.view.graph() for n, layers in cut.network.entities.items() if "~" not in n]
    assert len({id(g) for g in graphs}) == len(graphs)  # each node its own copy, made once it changed
    assert all(not g.has_edge("n01", "n11") for g in graphs)
