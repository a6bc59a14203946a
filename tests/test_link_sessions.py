"""The reference EGP routes every event to its request by (origin, create_id)
and drops what names a request or attempt it does not hold (specs/link.md
LINK-SESS-1): traced ``unknown_session``, nothing sent, nothing changed, a
stray qubit freed. Driven alone: fake device, fake peer, no kernel."""

from __future__ import annotations

import pytest

from qnetstack.entity import EntityError
from qnetstack.link.egp import SingleClickEgp
from qnetstack.link.peer import PeerCreate, PeerLost, PeerMultiplex, PeerRefuse
from qnetstack.link.request import RequestState
from qnetstack.link.service import LinkCreate, LinkError, LinkErrorCode, LinkOkKeep, RequestType
from qnetstack.physical.service import Basis, BellState, FreeQubit, HeraldAttempt, HeraldResult
from tests.fakes import FakeContext, FakeDevice, heralding_link

DELAY = 1_000
START = 2 * DELAY + 1


def _egp():
    device = FakeDevice("alice", {"bob": heralding_link("bob", delay_ns=DELAY)}, num_qubits=4)
    ctx = FakeContext("alice", device)
    egp = SingleClickEgp(ctx)
    egp.start()
    return egp, ctx, device


def _success(attempt_id: int, handle: int = 1, seq: int = 5, neighbour: str = "bob") -> HeraldResult:
    return HeraldResult(
        neighbour=neighbour, attempt_id=attempt_id, success=True, handle=handle, bell_state=BellState.PSI_PLUS,
        herald_sequence=seq, fidelity_estimate=0.9, herald_time_ns=0,
    )  # fmt: skip


def _unknown(ctx: FakeContext) -> list[dict]:
    return [fields for event, fields in ctx.traces if event == "unknown_session"]


def _sent(ctx: FakeContext) -> tuple[int, int, int]:
    return len(ctx.up), len(ctx.down), len(ctx.peer)


def _peer_create(create_id: int = 0, origin: str = "bob", start_ns: int = START) -> PeerCreate:
    return PeerCreate(
        create_id=create_id, origin_node=origin, purpose_id=0, number=2, min_fidelity=0.0, type=RequestType.K,
        basis=Basis.Z, start_ns=start_ns, deadline_ns=None,
    )  # fmt: skip


def test_a_herald_for_an_attempt_not_in_flight_frees_its_qubit_and_changes_nothing():
    egp, ctx, device = _egp()
    egp.handle_above(LinkCreate(remote_node="bob", number=2))
    ctx.advance(egp, START)
    assert ctx.down == [HeraldAttempt(neighbour="bob", attempt_id=0)]
    before = _sent(ctx)
    egp.handle_below(_success(attempt_id=7, handle=2))  # never sent
    egp.handle_below(HeraldResult(neighbour="bob", attempt_id=8, success=False))
    egp.handle_below(_success(attempt_id=0, handle=3, neighbour="carol"))  # not even a neighbour
    assert _sent(ctx) == before
    assert [op for op in device.ops if isinstance(op, FreeQubit)] == [FreeQubit(handle=2), FreeQubit(handle=3)]
    assert [(f["kind"], f["session"]) for f in _unknown(ctx)] == [("herald", ("bob", 7)), ("herald", ("bob", 8)), ("herald", ("carol", 0))]
    # the attempt really in flight is still credited to its request
    egp.handle_below(_success(attempt_id=0, handle=0))
    assert [type(m) for m in ctx.up[1:]] == [LinkOkKeep]


def test_a_refusal_of_a_request_not_held_is_dropped():
    egp, ctx, _ = _egp()
    egp.handle_above(LinkCreate(remote_node="bob", max_time_ns=500, tag=4))  # ends at its deadline before the start
    ctx.advance(egp, 600)
    (timeout,) = ctx.take(LinkError)
    assert timeout.code is LinkErrorCode.TIMEOUT and timeout.tag == 4
    before = _sent(ctx)
    egp.handle_peer("bob", PeerRefuse(create_id=0, code=LinkErrorCode.REJECTED))  # it came after the deadline
    egp.handle_peer("bob", PeerRefuse(create_id=99, code=LinkErrorCode.REJECTED))  # never opened
    assert _sent(ctx) == before
    assert [(f["kind"], f["session"]) for f in _unknown(ctx)] == [("peer_refuse", ("alice", 0)), ("peer_refuse", ("alice", 99))]


def test_a_timer_of_a_request_that_ended_is_dropped():
    """A request refused by the responder ends 1 ns before its agreed start; its
    start timer then names a request this end no longer holds."""
    egp, ctx, _ = _egp()
    egp.handle_above(LinkCreate(remote_node="bob"))
    ctx.now_ns = START - 1
    egp.handle_peer("bob", PeerRefuse(create_id=0, code=LinkErrorCode.UNSUPP))
    (err,) = ctx.take(LinkError)
    assert err.code is LinkErrorCode.UNSUPP
    ctx.advance(egp, START)
    assert ctx.down == []
    egp.handle_timer(("deadline", ("alice", 0)))  # as a late timer would
    assert len(ctx.take(LinkError)) == 1
    assert [(f["kind"], f["session"]) for f in _unknown(ctx)] == [("start_timer", ("alice", 0)), ("deadline_timer", ("alice", 0))]


def test_a_lost_pair_this_end_never_reported_is_dropped():
    egp, ctx, _ = _egp()
    egp.handle_peer("bob", PeerLost(sequence=3))
    assert _sent(ctx) == (0, 0, 0)
    assert [(f["kind"], f["session"]) for f in _unknown(ctx)] == [("peer_lost", ("bob", 3))]


def test_peer_messages_from_a_node_that_is_not_a_neighbour_are_dropped():
    egp, ctx, _ = _egp()
    egp.handle_peer("carol", _peer_create(origin="carol"))
    egp.handle_peer("carol", PeerMultiplex(max_in_flight=4))
    egp.handle_peer("carol", PeerLost(sequence=0))
    assert _sent(ctx) == (0, 0, 0)  # in particular no PeerRefuse to a node we have no link with
    assert [f["kind"] for f in _unknown(ctx)] == ["peer_create", "peer_multiplex", "peer_lost"]
    assert egp._requests == {}


def test_a_replayed_announcement_does_not_open_the_request_twice():
    egp, ctx, _ = _egp()
    egp.handle_peer("bob", _peer_create())
    egp.handle_peer("bob", _peer_create())
    assert [f["session"] for f in _unknown(ctx)] == [("bob", 0)]
    ctx.advance(egp, START)
    assert ctx.down == [HeraldAttempt(neighbour="bob", attempt_id=0)]  # one request, one attempt slot
    assert egp._requests[("bob", 0)].state is RequestState.ACTIVE


def test_a_message_of_a_kind_the_link_layer_does_not_speak_is_still_an_error():
    egp, _, _ = _egp()
    with pytest.raises(EntityError, match="from peer 'bob'"):
        egp.handle_peer("bob", "hello")
