"""swap-asap's ``pairs_per_request``: one link CREATE for several pairs over repeaters.

With ``w`` pairs per request the hop's creator asks for ``w`` link pairs at once and for the
next ones only when both ends of the hop have used all of them; the circuit reserves ``w``
qubits at each end and ``2 w`` at each repeater. The runs below check that it keeps to that
(never more than ``w`` link pairs of a hop held at a node), that crossing circuits still all
complete, that the estimate still tracks the oracle, and that it costs fewer events.
"""

from __future__ import annotations

import itertools

import pytest

from qnetstack.link.service import LinkCreate
from qnetstack.network.peer import HopFreed, Reserve
from qnetstack.network.policy import PolicyError, make_policy
from qnetstack.network.service import NetRejected, NetRequest
from qnetstack.network.swap_asap import SwapAsap
from qnetstack.physical.service import BellState
from qnetstack.stack import assemble, parse_scenario
from tests.test_network_alone import FakeContext, FakeDevice, accept, chain, forward, link_ok
from tests.test_runs import FAST, assert_settled, grid

TWO = {"pairs_per_request": 2}


def make(node: str, graph, options=TWO):
    device = FakeDevice(node)
    ctx = FakeContext(node, device)
    entity = SwapAsap(ctx, graph, policy_options=options)
    entity.start()
    return entity, ctx, device


def test_the_option_must_be_a_whole_number_of_at_least_one():
    assert make_policy("swap-asap", {"pairs_per_request": 3}).qubits_held(4, 2) == 6
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(PolicyError, match="pairs_per_request must be a whole number >= 1"):
            make_policy("swap-asap", {"pairs_per_request": bad})


def test_the_head_reserves_w_at_each_end_and_2w_at_each_repeater_and_one_hop_stays_at_one():
    head, ctx, _ = make("alice", chain("alice", "r", "bob"))
    accept(head, ctx, NetRequest(request_id=0, remote_node="bob", number=5))
    assert sorted((dest, m.qubits) for dest, m in ctx.peer if isinstance(m, Reserve)) == [("bob", 2), ("r", 4)]
    assert head.memory.reserved(("alice", 0)) == 2
    (create,) = ctx.take(LinkCreate)
    assert create.number == 2
    # one hop: the link makes the pairs one after the other, one qubit at each end as before
    assert make_policy("swap-asap", TWO).qubits_held(1, 0) == make_policy("swap-asap", TWO).qubits_held(1, 1) == 1


def test_a_circuit_a_repeater_cannot_hold_is_refused_naming_what_it_would_hold():
    graph = chain("alice", "r", "bob")
    graph.nodes["r"]["num_qubits"] = 3
    head, ctx, _ = make("alice", graph)
    head.handle_above(NetRequest(request_id=0, remote_node="bob"))
    (rejected,) = ctx.up
    assert isinstance(rejected, NetRejected)
    assert rejected.reason == "node 'r' has 3 memory qubit(s) and the circuit would hold up to 4 there (policy 'swap-asap')"


def test_a_repeater_asks_for_the_next_two_pairs_once_both_ends_have_used_both():
    repeater, ctx, device = make("r", chain("alice", "r", "bob"))
    repeater.handle_peer("alice", Reserve(head="alice", circuit=0, request_id=0, path=("alice", "r", "bob"), qubits=4))
    repeater.handle_peer("alice", forward(number=5, label=5))
    (create,) = ctx.take(LinkCreate)
    assert create.number == 2
    device.bell_outcomes.extend([BellState.PHI_PLUS] * 2)
    for seq, handle in ((1, 0), (2, 2)):
        repeater.handle_below(link_ok("alice", handle, BellState.PHI_PLUS, 5, origin="alice", seq=seq))
    for seq, handle in ((3, 1), (4, 3)):
        repeater.handle_below(link_ok("bob", handle, BellState.PHI_PLUS, create.purpose_id, origin="r", seq=seq, create_id=0))
    assert [dest for dest, m in ctx.peer if isinstance(m, HopFreed)] == ["alice", "alice"]  # both of alice's pairs used
    assert len(ctx.take(LinkCreate)) == 1  # bob may still hold its halves of the r-bob pairs
    repeater.handle_peer("bob", HopFreed(head="alice", circuit=0))
    assert len(ctx.take(LinkCreate)) == 1  # one of the two is still held at bob
    repeater.handle_peer("bob", HopFreed(head="alice", circuit=0))
    creates = ctx.take(LinkCreate)
    assert [c.number for c in creates] == [2, 2]


# ------------------------------------------------------------------ whole runs


def nine_node_chain(options: dict | None, pairs: int = 30, crossing: bool = False) -> dict:
    """n0 - ... - n8, 10 km Barrett-Kok links, four qubits per node, a memory T2 of 1 s."""
    names = [f"n{i}" for i in range(9)]
    apps = [{"node": "n0", "request": {"kind": "pairs", "remote_node": "n8", "number": pairs}}]
    if crossing:
        apps += [
            {"node": "n8", "request": {"kind": "pairs", "remote_node": "n0", "number": pairs}},
            {"node": "n1", "request": {"kind": "pairs", "remote_node": "n7", "number": pairs}},
        ]
    scenario = {
        "name": "chain9",
        "seed": 1,
        "nodes": [{"name": n, "hardware": {"memory": {"num_qubits": 4, "t2_ns": 1_000_000_000}}} for n in names],
        "links": [{"a": a, "b": b, "length_km": 10} for a, b in itertools.pairwise(names)],
        "applications": apps,
        "implementations": {**FAST, "network": "swap-asap"},
    }
    if options:
        scenario["network"] = {"policy": "swap-asap", "policy_options": options}
    return scenario


class CountsHeldPairs(SwapAsap):
    """The reference, noting the most link pairs of one hop of one circuit it held at once."""

    most_held = 0

    def _use(self, circuit, pair):
        CountsHeldPairs.most_held = max(CountsHeldPairs.most_held, len(self._pairs.held(pair.hop)))
        super()._use(circuit, pair)


def test_a_chain_run_holds_at_most_two_pairs_a_hop_side_and_asks_half_the_creates():
    CountsHeldPairs.most_held = 0
    sim = assemble(parse_scenario(nine_node_chain(TWO)), {"network": CountsHeldPairs})
    result = sim.run()
    assert result.status == "done" and result.pairs.count == 30
    assert CountsHeldPairs.most_held == 2  # pipelined, and never past what was reserved
    assert result.counters["link.create"] == 8 * 15  # 8 hops, 30 pairs each, two a CREATE
    assert_settled(sim)
    one_by_one = assemble(parse_scenario(nine_node_chain(None))).run()
    assert one_by_one.counters["link.create"] == 8 * 30
    assert result.events < 0.9 * one_by_one.events


def test_the_estimate_still_tracks_the_oracle():
    """The issue's criterion on the 9-node chain, now with two pairs a CREATE: mean goodness within
    0.01 of the mean oracle fidelity over the same 100 pairs (both read from the same pairs, so the
    gap is the estimate's error, not sampling; it was 0.0002 with one pair a CREATE)."""
    result = assemble(parse_scenario(nine_node_chain(TWO, pairs=100))).run()
    assert result.status == "done" and result.pairs.count == 100
    assert abs(result.pairs.mean_goodness - result.pairs.mean_oracle_fidelity) < 0.01


def test_crossing_circuits_on_the_chain_and_the_grid_all_complete():
    """Each repeater of these four-qubit nodes now holds one circuit at a time (it reserves all four
    qubits): the circuits take turns, and none waits for ever."""
    sim = assemble(parse_scenario(nine_node_chain(TWO, pairs=10, crossing=True)))
    result = sim.run()
    assert result.status == "done" and sum(app.results for app in result.applications) == 30
    assert_settled(sim)
    apps = [
        {"node": "n10", "request": {"kind": "pairs", "remote_node": "n12", "number": 10}},
        {"node": "n00", "request": {"kind": "pairs", "remote_node": "n22", "number": 10}},
        {"node": "n22", "request": {"kind": "teleport", "remote_node": "n00", "number": 10}},
    ]
    scenario = {**grid(apps), "network": {"policy": "swap-asap", "policy_options": TWO}}
    scenario["implementations"] = {**FAST, "network": "swap-asap"}
    sim = assemble(parse_scenario(scenario))
    result = sim.run()
    assert result.status == "done" and [app.results for app in result.applications] == [10, 10, 10]
    assert_settled(sim)
