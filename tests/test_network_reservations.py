"""Memory reservations of the reference network layer: the book of one node, and the
set-up messages driven by hand (fake device and context, no kernel)."""

from __future__ import annotations

import pytest

from qnetstack.entity import EntityError
from qnetstack.link.service import LinkCreate
from qnetstack.network.circuit import CircuitState
from qnetstack.network.memory import MemoryBook, WaitingSetUp
from qnetstack.network.peer import Forward, HopFreed, Release, Reserve, Reserved
from qnetstack.network.service import NetError, NetErrorCode, NetRejected, NetRequest
from qnetstack.physical.service import BellMeasure, BellState
from tests.test_network_alone import accept, chain, forward, link_ok, make


def setup(name: str, qubits: int) -> WaitingSetUp:
    return WaitingSetUp((name, 0), qubits, (name, 0))


# ------------------------------------------------------------------ the book


def test_set_ups_are_granted_while_they_fit_and_queue_first_come_first_served():
    book = MemoryBook(3)
    assert book.ask(setup("a", 2)) and book.free == 1
    assert not book.ask(setup("b", 2))  # does not fit: waits
    assert not book.ask(setup("c", 1))  # would fit, but does not overtake b (the fairness rule)
    assert [w.key for w in book.waiting()] == [("b", 0), ("c", 0)]
    assert [w.key for w in book.release(("a", 0))] == [("b", 0), ("c", 0)]
    assert book.free == 0 and len(book) == 2 and book.waiting() == []


def test_a_waiting_set_up_released_leaves_the_queue_and_the_rest_is_served():
    book = MemoryBook(2)
    book.ask(setup("a", 2))
    book.ask(setup("b", 2))
    book.ask(setup("c", 1))
    assert book.release(("b", 0)) == []  # nothing freed: c still waits behind a's reservation
    assert [w.key for w in book.release(("a", 0))] == [("c", 0)]
    assert book.release(("nobody", 0)) == [] and book.reserved(("c", 0)) == 1


def test_a_smaller_priority_value_waits_ahead_of_larger_ones_and_first_come_first_served_within_one():
    book = MemoryBook(2)
    book.ask(setup("a", 2))
    assert not book.ask(WaitingSetUp(("low", 0), 1, ("low", 0), priority=3))
    assert not book.ask(WaitingSetUp(("mid", 0), 2, ("mid", 0), priority=1))
    assert not book.ask(WaitingSetUp(("urgent", 0), 1, ("urgent", 0), priority=0))
    assert not book.ask(WaitingSetUp(("mid2", 0), 1, ("mid2", 0), priority=1))
    assert [w.key[0] for w in book.waiting()] == ["urgent", "mid", "mid2", "low"]
    # urgent fits; mid (2 qubits) does not fit beside it, and nothing overtakes mid
    assert [w.key[0] for w in book.release(("a", 0))] == ["urgent"]
    assert [w.key[0] for w in book.release(("urgent", 0))] == ["mid"]
    assert [w.key[0] for w in book.release(("mid", 0))] == ["mid2", "low"]


def test_a_set_up_of_a_smaller_priority_value_is_granted_at_once_past_larger_ones_that_wait():
    book = MemoryBook(5)
    book.ask(setup("a", 3))
    assert not book.ask(WaitingSetUp(("big", 0), 3, ("big", 0), priority=2))
    assert book.ask(WaitingSetUp(("small", 0), 1, ("small", 0), priority=1))  # fits, nothing of priority <= 1 waits
    assert book.free == 1
    assert not book.ask(WaitingSetUp(("late", 0), 1, ("late", 0), priority=2))  # would fit, but big came first
    assert [w.key[0] for w in book.waiting()] == ["big", "late"]


def test_the_book_knows_what_can_never_fit_and_refuses_a_second_ask():
    book = MemoryBook(2)
    assert book.never_fits(3) and not book.never_fits(2)
    book.ask(setup("a", 1))
    with pytest.raises(ValueError, match="twice"):
        book.ask(setup("a", 1))


# ------------------------------------------------------------------ set-up


def test_the_head_reserves_in_name_order_before_its_forward_and_first_link_request():
    """alice -> r -> bob: alice reserves its own qubit, then asks bob, then r (names in
    order), and only then sends the Forward and asks its link."""
    head, ctx, _ = make("alice", chain("alice", "r", "bob"))
    head.handle_above(NetRequest(request_id=0, remote_node="bob", number=2))
    assert [(dest, m.qubits) for dest, m in ctx.peer if isinstance(m, Reserve)] == [("bob", 1)]
    assert not ctx.take(Forward) and not ctx.take(LinkCreate)
    head.handle_peer("bob", Reserved(head="alice", circuit=0, node="bob"))
    assert [(dest, m.qubits) for dest, m in ctx.peer if isinstance(m, Reserve)] == [("bob", 1), ("r", 2)]
    head.handle_peer("r", Reserved(head="alice", circuit=0, node="r"))
    assert [dest for dest, m in ctx.peer if isinstance(m, Forward)] == ["r"] and len(ctx.take(LinkCreate)) == 1
    assert head.memory.reserved(("alice", 0)) == 1


def test_a_node_short_of_memory_queues_the_set_up_and_answers_when_a_circuit_ends():
    """r has two qubits: alice's circuit reserves both, so bob's waits until alice
    releases hers; then r answers bob."""
    repeater, ctx, _ = make("r", chain("alice", "r", "bob"))
    repeater.ctx.device.capacity["r"] = 2
    path = ("alice", "r", "bob")
    repeater.handle_peer("alice", Reserve(head="alice", circuit=0, request_id=0, path=path, qubits=2))
    repeater.handle_peer("bob", Reserve(head="bob", circuit=0, request_id=5, path=path[::-1], qubits=2))
    assert [(dest, m.head) for dest, m in ctx.peer if isinstance(m, Reserved)] == [("alice", "alice")]
    (wait,) = repeater.describe_waits()
    assert wait.request == ("bob", 5) and "2 memory qubit(s) to set aside at r (0/2 unreserved" in wait.waiting_for
    release = Release(head="alice", circuit=0, request_id=0, path=path, code=NetErrorCode.TIMEOUT, detail="late")
    repeater.handle_peer("alice", release)
    assert [(dest, m.head) for dest, m in ctx.peer if isinstance(m, Reserved)] == [("alice", "alice"), ("bob", "bob")]
    assert not ctx.take(NetError)  # r is no end of alice's request
    with pytest.raises(EntityError, match="twice"):
        repeater.handle_peer("bob", Reserve(head="bob", circuit=0, request_id=5, path=path[::-1], qubits=2))


def test_a_circuit_that_never_fits_is_refused_at_the_head_when_the_topology_says_so():
    graph = chain("alice", "r", "bob")
    graph.nodes["r"]["num_qubits"] = 1
    head, ctx, _ = make("alice", graph)
    head.handle_above(NetRequest(request_id=0, remote_node="bob"))
    (rejected,) = ctx.up
    assert isinstance(rejected, NetRejected)
    assert rejected.reason == "node 'r' has 1 memory qubit(s) and the circuit would hold up to 2 there (policy 'swap-asap')"
    assert ctx.peer == [] and ctx.down == []
    head.handle_above(NetRequest(request_id=1, remote_node="r"))  # one hop: one qubit at each end fits
    assert [dest for dest, m in ctx.peer if isinstance(m, Reserve)] == ["r"]


def test_a_node_that_can_never_hold_the_circuit_refuses_and_the_request_ends_nores_at_both_ends():
    """Without num_qubits in the topology only r knows it has one qubit: it answers refused,
    the head ends the request with NetError NORES and releases bob and the tail."""
    repeater, r_ctx, _ = make("r", chain("alice", "r", "bob"))
    repeater.ctx.device.capacity["r"] = 1
    path = ("alice", "r", "bob")
    repeater.handle_peer("alice", Reserve(head="alice", circuit=0, request_id=0, path=path, qubits=2))
    ((_, refused),) = r_ctx.peer
    assert refused.refused == "node 'r' has 1 memory qubit(s) and the circuit would hold up to 2 there (policy 'swap-asap')"
    head, ctx, _ = make("alice", chain("alice", "r", "bob"))
    head.handle_above(NetRequest(request_id=0, remote_node="bob"))
    head.handle_peer("bob", Reserved(head="alice", circuit=0, node="bob"))
    head.handle_peer("r", refused)
    (err,) = ctx.take(NetError)
    assert err.code is NetErrorCode.NORES and "'r' has 1 memory qubit" in err.detail
    assert sorted(dest for dest, m in ctx.peer if isinstance(m, Release)) == ["bob", "r"]
    assert head._circuits == {} and len(head.memory) == 0 and not ctx.take(LinkCreate)
    tail, tail_ctx, _ = make("bob", chain("alice", "r", "bob"))
    tail.handle_peer("r", Reserve(head="alice", circuit=0, request_id=0, path=path, qubits=1))
    tail.handle_peer("alice", next(m for dest, m in ctx.peer if isinstance(m, Release) and dest == "bob"))
    (tail_err,) = tail_ctx.take(NetError)
    assert (tail_err.head, tail_err.request_id, tail_err.code) == ("alice", 0, NetErrorCode.NORES)
    assert len(tail.memory) == 0


def test_a_deadline_that_runs_out_while_the_set_up_waits_ends_it_with_timeout():
    head, ctx, _ = make("alice", chain("alice", "r", "bob"))
    head.handle_above(NetRequest(request_id=0, remote_node="bob", max_time_ns=1_000))
    (circuit,) = head._circuits.values()
    assert circuit.state is CircuitState.RESERVING
    (wait,) = head.describe_waits()
    assert wait.waiting_for == "memory set aside for it at bob (1 qubit(s))" and wait.peer == "bob"
    ctx.advance(head, 1_000)
    (err,) = ctx.take(NetError)
    assert err.code is NetErrorCode.TIMEOUT
    assert [dest for dest, m in ctx.peer if isinstance(m, Release)] == ["bob"]  # asked, and the tail
    assert head._circuits == {} and len(head.memory) == 0
    head.handle_peer("bob", Reserved(head="alice", circuit=0, node="bob"))  # late: changes nothing
    assert not ctx.take(Forward) and ctx.down == []


def test_the_head_waits_for_its_own_memory_first_come_first_served():
    head, ctx, _ = make("alice", chain("alice", "bob"))
    head.ctx.device.capacity["alice"] = 1
    accept(head, ctx, NetRequest(request_id=0, remote_node="bob"))
    head.handle_above(NetRequest(request_id=1, remote_node="bob"))
    assert len(ctx.take(Reserve)) == 1 and len(ctx.take(LinkCreate)) == 1  # the second waits at alice
    (create,) = ctx.take(LinkCreate)
    head.handle_below(link_ok("bob", 0, BellState.PHI_PLUS, create.purpose_id, origin="alice", at="alice"))
    assert [(dest, m.circuit) for dest, m in ctx.peer if isinstance(m, Reserve)] == [("bob", 0), ("bob", 1)]


# ------------------------------------------------------------------ pacing


def test_a_repeater_asks_for_the_next_pair_of_a_hop_once_both_ends_have_used_the_last():
    repeater, ctx, device = make("r", chain("alice", "r", "bob"))
    repeater.handle_peer("alice", Reserve(head="alice", circuit=0, request_id=0, path=("alice", "r", "bob"), qubits=2))
    repeater.handle_peer("alice", forward(number=3, label=5))
    (create,) = ctx.take(LinkCreate)
    device.bell_outcomes.append(BellState.PHI_PLUS)
    repeater.handle_below(link_ok("alice", 0, BellState.PHI_PLUS, 5, origin="alice", seq=1))
    repeater.handle_below(link_ok("bob", 1, BellState.PHI_PLUS, create.purpose_id, origin="r", seq=2))
    assert BellMeasure(handle_a=0, handle_b=1) in device.ops
    assert [dest for dest, m in ctx.peer if isinstance(m, HopFreed)] == ["alice"]  # r used alice's pair
    assert len(ctx.take(LinkCreate)) == 1  # bob may still hold its half of the r-bob pair
    repeater.handle_peer("bob", HopFreed(head="alice", circuit=0))
    assert len(ctx.take(LinkCreate)) == 2
    repeater.handle_peer("bob", HopFreed(head="alice", circuit=0))
    assert len(ctx.take(LinkCreate)) == 2  # never more than one pair of the hop at a time


def test_the_tail_tells_its_upstream_neighbour_when_it_has_used_a_link_pair():
    tail, ctx, _ = make("bob", chain("alice", "r", "bob"))
    tail.handle_peer("r", Reserve(head="alice", circuit=0, request_id=0, path=("alice", "r", "bob"), qubits=1))
    tail.handle_peer("r", forward(number=2, label=3))
    from tests.test_network_alone import ent, record

    tail.handle_below(link_ok("r", 0, BellState.PHI_PLUS, 3, origin="r", seq=7, at="bob"))
    tail.handle_peer("r", record(ent("alice", "r", 1), ent("r", "bob", 7), BellState.PHI_PLUS, BellState.PHI_PLUS, BellState.PHI_PLUS))
    assert [dest for dest, m in ctx.peer if isinstance(m, HopFreed)] == ["r"]
