"""The reference link layer driven alone: fake physical layer, fake peer, no kernel."""

from __future__ import annotations

import pytest

from qnetstack.link.egp import PeerCreate, SingleClickEgp
from qnetstack.link.service import (
    EntanglementId,
    LinkAck,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    LinkOkMeasure,
    RequestType,
)
from qnetstack.physical.service import Basis, BellState, FreeQubit, HeraldAttempt, HeraldResult, Measure
from tests.fakes import FakeContext, FakeDevice, heralding_link

DELAY = 50_000
START = 2 * DELAY + 1  # the agreed start: two one-way delays and 1 ns, so a refusal arrives first


def make(node: str = "alice", peer: str = "bob", fidelity: float = 0.9, num_qubits: int = 4):
    device = FakeDevice(node, {peer: heralding_link(peer, fidelity=fidelity, delay_ns=DELAY)}, num_qubits=num_qubits)
    ctx = FakeContext(node, device)
    egp = SingleClickEgp(ctx)
    egp.start()
    return egp, ctx, device


def herald(attempt_id: int, success: bool, handle: int = 0, seq: int = 0, state=BellState.PSI_PLUS, neighbour="bob"):
    if not success:
        return HeraldResult(neighbour=neighbour, attempt_id=attempt_id, success=False)
    return HeraldResult(
        neighbour=neighbour,
        attempt_id=attempt_id,
        success=True,
        handle=handle,
        bell_state=state,
        herald_sequence=seq,
        fidelity_estimate=0.88,
        herald_time_ns=123,
    )


def test_create_is_acked_and_announced_to_the_peer_with_a_common_start():
    egp, ctx, _ = make()
    egp.handle_above(LinkCreate(remote_node="bob", number=2, purpose_id=7))
    assert ctx.up == [LinkAck(create_id=0, remote_node="bob", purpose_id=7, cancellable=True)]
    ((dest, msg),) = ctx.peer
    assert dest == "bob" and isinstance(msg, PeerCreate)
    assert msg.start_ns == START and msg.number == 2 and msg.origin_node == "alice"
    assert ctx.down == []  # nothing is attempted before the agreed start
    ctx.advance(egp, START)
    assert ctx.down == [HeraldAttempt(neighbour="bob", attempt_id=0)]


@pytest.mark.parametrize(
    "request_, code",
    [
        (LinkCreate(remote_node="carol"), LinkErrorCode.CREATE),
        (LinkCreate(remote_node="alice"), LinkErrorCode.CREATE),
        (LinkCreate(remote_node="bob", min_fidelity=0.95), LinkErrorCode.UNSUPP),
    ],
)
def test_bad_requests_get_the_right_error_at_once(request_, code):
    egp, ctx, _ = make()
    egp.handle_above(request_)
    (err,) = ctx.up
    assert isinstance(err, LinkError) and err.code is code and err.origin_node == "alice"
    assert ctx.peer == [] and ctx.timers == {}


def test_no_memory_is_unsupported():
    egp, ctx, _ = make(num_qubits=0)
    egp.handle_above(LinkCreate(remote_node="bob"))
    assert ctx.up[0].code is LinkErrorCode.UNSUPP


def test_attempts_repeat_until_number_pairs_then_stop():
    egp, ctx, _ = make()
    egp.handle_above(LinkCreate(remote_node="bob", number=2, purpose_id=3))
    ctx.advance(egp, START)
    egp.handle_below(herald(0, False))
    egp.handle_below(herald(1, True, handle=2, seq=0))
    egp.handle_below(herald(2, True, handle=3, seq=1, state=BellState.PSI_MINUS))
    attempts = [m.attempt_id for m in ctx.down]
    assert attempts == [0, 1, 2]  # no attempt after the second pair
    oks = ctx.take(LinkOkKeep)
    assert [ok.handle for ok in oks] == [2, 3]
    assert oks[0].ent_id == EntanglementId(creator="alice", peer="bob", sequence=0)
    assert oks[1].bell_state is BellState.PSI_MINUS
    assert all(ok.purpose_id == 3 and ok.goodness == 0.88 and ok.goodness_time_ns == 123 for ok in oks)
    assert ctx.up.index(ctx.take(LinkAck)[0]) < ctx.up.index(oks[0])  # ACK before OK


def test_responder_serves_the_peer_request_and_names_the_pair_the_same_way():
    egp, ctx, _ = make(node="bob", peer="alice")
    egp.handle_peer(
        "alice",
        PeerCreate(
            create_id=5,
            origin_node="alice",
            purpose_id=1,
            number=1,
            min_fidelity=0.0,
            type=RequestType.K,
            basis=Basis.Z,
            start_ns=START,
            deadline_ns=None,
        ),
    )
    ctx.advance(egp, START)
    assert ctx.down == [HeraldAttempt(neighbour="alice", attempt_id=0)]
    egp.handle_below(herald(0, True, handle=1, seq=4, neighbour="alice"))
    (ok,) = ctx.take(LinkOkKeep)
    assert ok.create_id == 5 and ok.origin_node == "alice" and ok.remote_node == "alice"
    assert ok.ent_id == EntanglementId(creator="alice", peer="bob", sequence=4)


def test_measure_directly_measures_the_heralded_qubit():
    egp, ctx, device = make()
    device.measure_outcomes.append(1)
    egp.handle_above(LinkCreate(remote_node="bob", type=RequestType.M, basis=Basis.X))
    ctx.advance(egp, START)
    egp.handle_below(herald(0, True, handle=0))
    (ok,) = ctx.take(LinkOkMeasure)
    assert ok.outcome == 1 and ok.basis is Basis.X
    assert Measure(handle=0, basis=Basis.X) in device.ops


def test_deadline_ends_the_request_with_timeout_and_frees_a_late_success():
    egp, ctx, device = make()
    egp.handle_above(LinkCreate(remote_node="bob", max_time_ns=3 * DELAY))
    ctx.advance(egp, START)
    egp.handle_below(herald(0, False))  # attempt 1 goes out
    ctx.advance(egp, 3 * DELAY)
    (err,) = ctx.take(LinkError)
    assert err.code is LinkErrorCode.TIMEOUT and err.create_id == 0
    egp.handle_below(herald(1, True, handle=2))  # herald of the attempt in flight
    assert ctx.take(LinkOkKeep) == []
    assert FreeQubit(handle=2) in device.ops
    assert [m.attempt_id for m in ctx.down] == [0, 1]  # nothing after the timeout


def test_requests_from_both_ends_are_served_in_the_same_order_at_both_ends():
    """Both ends order by (start, origin, create id): the same active request."""
    a, actx, _ = make("alice", "bob")
    b, bctx, _ = make("bob", "alice")
    a.handle_above(LinkCreate(remote_node="bob", purpose_id=1))
    b.handle_above(LinkCreate(remote_node="alice", purpose_id=2))
    # deliver each PeerCreate to the other end after the channel delay
    actx.advance(a, DELAY)
    bctx.advance(b, DELAY)
    b.handle_peer("alice", actx.peer[0][1])
    a.handle_peer("bob", bctx.peer[0][1])
    actx.advance(a, START)
    bctx.advance(b, START)
    a.handle_below(herald(0, True, handle=0, seq=0))
    b.handle_below(herald(0, True, handle=0, seq=0, neighbour="alice"))
    (ok_a,) = actx.take(LinkOkKeep)
    (ok_b,) = bctx.take(LinkOkKeep)
    assert ok_a.purpose_id == ok_b.purpose_id
    assert ok_a.ent_id == ok_b.ent_id


def test_wrong_message_type_is_refused_loudly():
    egp, _, _ = make()
    with pytest.raises(Exception, match="serves LinkCreate"):
        egp.handle_above("CREATE please")
