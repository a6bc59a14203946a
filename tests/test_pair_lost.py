"""A pair delivered at one end only, when its request moves to another path, is declared lost
there (``PairLost``, specs/network.md NET-PAIR-7), and the applications free it and end honestly
(specs/application.md APP-LOST-1).

The stack run is the one that stalled before: examples/grid-faults.yaml with nested swapping,
seed 1. The link to n12 goes down (n12 crashes) after n00 delivered pair 7 of its request to
n22 and before n22 could; the request moved on and n00 held that half for ever, waiting for
n22's report.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import yaml

from qnetstack.application.apps import BasicApps, HeldPair, PairLostAtHead, Release
from qnetstack.application.service import AppDone, PairResult, PairsRequest
from qnetstack.network import reroute
from qnetstack.network.circuit import CircuitEvent, CircuitState
from qnetstack.network.node import NetworkNode
from qnetstack.network.peer import Forward, Reserve, Reserved, TailDelivered
from qnetstack.network.peer import Release as NetRelease
from qnetstack.network.service import (
    BellState,
    NetAccepted,
    NetError,
    NetErrorCode,
    NetRequest,
    PairDelivered,
    PairId,
    PairLost,
    RequestType,
)
from qnetstack.physical.service import Basis
from qnetstack.stack import assemble, parse_scenario
from qnetstack.stack.conform import run_conformance
from tests.fakes import FakeContext, FakeDevice

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ through the stack


def grid_faults_nested() -> Any:
    data = yaml.safe_load((ROOT / "examples" / "grid-faults.yaml").read_text(encoding="utf-8"))
    data["network"] = {**data.get("network", {}), "policy": "nested"}
    data["seed"] = 1
    data["keep_trace"] = True
    return assemble(parse_scenario(data))


def test_the_grid_run_that_stalled_ends_done_with_every_pair_at_both_ends_once_and_nothing_held():
    simulation = grid_faults_nested()
    result = simulation.run()
    assert result.status == "done", result
    network = simulation.network
    records = network.trace.records
    lost = [(r["node"], r["head"], r["request_id"], r["index"]) for r in records if r["event"] == "network.pair_lost"]
    assert lost == [("n00", "n00", 0, 7)], "the run must hold the one-ended pair, or the test proves nothing"
    delivered = Counter((r["node"], r["head"], r["request_id"], r["index"]) for r in records if r["event"] == "network.deliver")
    assert all(count == 1 for count in delivered.values()), "an index delivered twice at an end"
    assert ("n22", "n00", 0, 7) not in delivered and delivered[("n00", "n00", 0, 7)] == 1
    # every other pair of the request is delivered at both ends, and there are `number` of them
    at_head = {i for node, head, rid, i in delivered if (node, head, rid) == ("n00", "n00", 0)}
    at_tail = {i for node, head, rid, i in delivered if (node, head, rid) == ("n22", "n00", 0)}
    assert at_head - at_tail == {7} and at_tail <= at_head and len(at_tail) == 30
    # the lost pair is never reported, each other one once; every request gets all it asked for
    reported = [
        m.pair_id.index
        for _, _, m in network.user_messages
        if isinstance(m, PairResult) and m.pair_id.head == "n00" and m.pair_id.request_id == 0
    ]
    assert sorted(reported) == sorted(at_tail)
    dones = {(node, m.request_id): m.completed for _, node, m in network.user_messages if isinstance(m, AppDone)}
    asked = {(a.node, a.request.request_id): a.request.number for a in simulation.scenario.applications}
    assert dones == asked
    held = {node: layers["physical"].held_handles() for node, layers in network.entities.items() if "~" not in node}
    assert not any(held.values()), held


# ------------------------------------------------------------------ the network layer alone


def _grid() -> nx.Graph:
    g = nx.Graph()
    for i in range(3):
        for j in range(3):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < 3 and j + dj < 3:
                    g.add_edge(f"n{i}{j}", f"n{i + di}{j + dj}", length_km=2.0, fidelity=0.9)
    return nx.freeze(g)


def _head_whose_circuit_failed(delivered: list[int]) -> tuple[FakeContext, NetworkNode, Any]:
    """n00 runs request 0 (10 pairs) to its neighbour n01, has handed up ``delivered``, and the
    link between them goes down: the request waits for the tail's count to move on."""
    ctx = FakeContext("n00", FakeDevice("n00", num_qubits=4))
    node = NetworkNode(ctx, _grid())
    node.handle_above(NetRequest(request_id=0, remote_node="n01", number=10))
    (accepted,) = ctx.take(NetAccepted)
    assert accepted.path == ["n00", "n01"]
    for to, msg in list(ctx.peer):  # the path's memory is set aside: the circuit runs
        if isinstance(msg, Reserve):
            node.handle_peer(to, Reserved(head="n00", circuit=msg.circuit, node=to))
    circuit = node._open_requests[0]
    assert circuit.state is CircuitState.RUNNING
    for index in delivered:  # what _hand_up counts for each pair it hands up
        circuit.delivered += 1
        node._reroute.handed_up(circuit, index)
    node._reroute.link_changed("n01", up=False)  # as its link layer's DOWN makes it
    node._fail(circuit, CircuitEvent.LINK_FAILED, "cut", tell_path=True, code=NetErrorCode.LINK_FAILURE, down_link=("n00", "n01"))
    ctx.up.clear()
    ctx.peer.clear()
    return ctx, node, circuit


def _tail_count(circuit: Any, indices: tuple[int, ...]) -> TailDelivered:
    return TailDelivered(head="n00", circuit=circuit.serial, request_id=0, delivered=len(indices), indices=indices)


def test_the_head_declares_its_one_ended_pairs_lost_and_names_the_tails_in_the_next_forward():
    """Head delivered 0..5, tail 0..4 and 6: pair 5 is the head's alone, pair 6 the tail's. Five
    are complete, so the new circuit makes five more, numbered from 7 (after every index used)."""
    ctx, node, old = _head_whose_circuit_failed([0, 1, 2, 3, 4, 5])
    node.handle_peer("n01", _tail_count(old, (0, 1, 2, 3, 4, 6)))
    lost = ctx.take(PairLost)
    assert [m.pair_id for m in lost] == [PairId(head="n00", tail="n01", request_id=0, index=5)]
    assert not ctx.take(NetError)
    new = node._open_requests[0]
    assert new is not old and "n01" not in new.path[1:2]  # the path around the cut link
    forward = new.forward if new.forward is not None else next(m for _, m in ctx.peer if isinstance(m, Forward))
    assert (forward.first_index, forward.number, forward.lost_at_tail) == (7, 12, (6,))


def test_a_move_with_no_pair_lost_keeps_the_numbers_of_before():
    ctx, node, old = _head_whose_circuit_failed([0, 1, 2])
    node.handle_peer("n01", _tail_count(old, (0, 1, 2)))
    assert not ctx.take(PairLost)
    new = node._open_requests[0]
    forward = new.forward if new.forward is not None else next(m for _, m in ctx.peer if isinstance(m, Forward))
    assert (forward.first_index, forward.number, forward.lost_at_tail) == (3, 10, ())


def test_a_request_that_cannot_move_declares_the_head_pairs_lost_before_its_net_error_and_tells_the_tail(monkeypatch):
    monkeypatch.setattr(reroute, "MAX_REROUTES", 0)
    ctx, node, old = _head_whose_circuit_failed([0, 1, 2])
    node.handle_peer("n01", _tail_count(old, (0, 1, 3)))
    kinds = [type(m) for m in ctx.up]
    assert kinds == [PairLost, NetError], ctx.up
    assert ctx.up[0].pair_id.index == 2
    (release,) = [m for to, m in ctx.peer if isinstance(m, NetRelease) and to == "n01"]
    assert release.lost_at_tail == (3,)


def test_the_tail_declares_lost_what_the_head_names_in_a_forward_or_a_release():
    ctx = FakeContext("n01", FakeDevice("n01", num_qubits=4))
    node = NetworkNode(ctx, _grid())
    forward = Forward(
        head="n00",
        circuit=1,
        request_id=0,
        path=["n00", "n10", "n11", "n01"],
        number=12,
        type=RequestType.K,
        basis=Basis.Z,
        link_min_fidelity=0.5,
        label=3,
        first_index=7,
        lost_at_tail=(6,),
    )
    node.handle_peer("n11", forward)
    assert [m.pair_id for m in ctx.take(PairLost)] == [PairId(head="n00", tail="n01", request_id=0, index=6)]
    ctx.up.clear()
    release = NetRelease(
        head="n00", circuit=2, request_id=4, path=("n00", "n01"), code=NetErrorCode.LINK_FAILURE, detail="x", lost_at_tail=(1, 2)
    )
    node.handle_peer("n00", release)
    assert [type(m) for m in ctx.up] == [PairLost, PairLost, NetError]
    assert [m.pair_id.index for m in ctx.up[:2]] == [1, 2]


# ------------------------------------------------------------------ the applications alone


def _delivered(head: str, tail: str, index: int, handle: int, at: str) -> PairDelivered:
    return PairDelivered(
        pair_id=PairId(head=head, tail=tail, request_id=0, index=index),
        remote_node=tail if at == head else head,
        bell_state=BellState.PHI_PLUS,
        goodness=0.9,
        goodness_time_ns=0,
        handle=handle,
    )


def test_the_pairs_head_frees_a_lost_half_tells_the_tail_and_still_ends_with_number_pairs():
    device = FakeDevice("alice")
    ctx = FakeContext("alice", device)
    app = BasicApps(ctx)
    app.handle_above(PairsRequest(request_id=3, remote_node="bob", number=1))
    app.handle_below(NetAccepted(request_id=0, path=["alice", "bob"]))
    device.held.update({0, 1})
    app.handle_below(_delivered("alice", "bob", 0, 0, "alice"))
    app.handle_below(PairLost(pair_id=PairId(head="alice", tail="bob", request_id=0, index=0)))
    assert device.held == {1}, "the lost half is freed"
    told = [m for to, m in ctx.peer if to == "bob"]
    assert [type(m) for m in told] == [HeldPair, PairLostAtHead]
    assert not ctx.take(AppDone)
    # the pair made in its place, reported by the tail: the request is done with one pair
    app.handle_below(_delivered("alice", "bob", 1, 1, "alice"))
    app.handle_peer("bob", Release(pair_id=PairId(head="alice", tail="bob", request_id=0, index=1)))
    (done,) = ctx.take(AppDone)
    assert done.completed == 1 and not device.held


def test_the_receiver_ends_a_lost_pair_without_a_report_in_either_order_and_drops_late_news():
    device = FakeDevice("bob")
    ctx = FakeContext("bob", device)
    app = BasicApps(ctx)
    pid = PairId(head="alice", tail="bob", request_id=0, index=0)
    # the head's HeldPair, then its news that the pair was lost there
    app.handle_peer("alice", HeldPair(request_id=3, pair_id=pid, handle=0))
    app.handle_peer("alice", PairLostAtHead(request_id=3, pair_id=pid))
    assert not app._tails and not ctx.up
    # the other order: the news first, the HeldPair late (dropped as reported)
    other = pid.model_copy(update={"index": 1})
    app.handle_peer("alice", PairLostAtHead(request_id=3, pair_id=other))
    app.handle_peer("alice", HeldPair(request_id=3, pair_id=other, handle=1))
    assert not app._tails and not ctx.up
    assert sum(event == "unknown_session" for event, _ in ctx.traces) == 1
    # a pair delivered at the tail only, declared lost there: its half is freed, nothing reported
    device.held.add(2)
    app.handle_below(_delivered("alice", "bob", 2, 2, "bob"))
    app.handle_below(PairLost(pair_id=pid.model_copy(update={"index": 2})))
    assert not device.held and not app._tails and not ctx.up and not ctx.peer


# ------------------------------------------------------------------ conformance


class IgnoresLostPairs(BasicApps):
    """Drops the network's PairLost, as the applications did before it existed."""

    def handle_below(self, msg: Any) -> None:
        if isinstance(msg, PairLost):
            return
        super().handle_below(msg)


def test_the_reference_passes_the_lost_pair_clauses():
    assert run_conformance("application", select=["APP-LOST-1"]).failed_clauses() == []
    assert run_conformance("network", select=["NET-PAIR-7", "NET-PAIR-2", "NET-ROUTE-2", "NET-MSG-1"]).failed_clauses() == []


def test_an_application_that_ignores_lost_pairs_fails_app_lost_1():
    report = run_conformance("application", IgnoresLostPairs, select=["APP-LOST-1"])
    assert report.failed_clauses() == ["APP-LOST-1"], report.to_text()


@pytest.mark.parametrize("example", ["teleport-chain", "link-pairs"])
def test_runs_in_which_no_circuit_moves_declare_nothing_lost(example):
    data = yaml.safe_load((ROOT / "examples" / f"{example}.yaml").read_text(encoding="utf-8"))
    data["keep_trace"] = True
    simulation = assemble(parse_scenario(data))
    assert simulation.run().status == "done"
    assert "network.pair_lost" not in simulation.network.trace.counts
