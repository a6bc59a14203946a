"""The reference applications driven alone: fake network layer and device, no kernel."""

from __future__ import annotations

import itertools

import pytest

from qnetstack.application.apps import BasicApps, HeldPair, Release, TeleportBits, teleport_correction
from qnetstack.application.service import CARDINAL_STATES, AppDone, AppError, PairResult, PairsRequest, TeleportRequest, TeleportResult
from qnetstack.network.service import NetRejected, NetRequest, PairDelivered, PairId
from qnetstack.physical.service import ApplyGate, BellMeasure, BellState, FreeQubit, Gate, InitQubit, OracleFidelity, QubitRef
from tests.fakes import FakeContext, FakeDevice


def make(node: str):
    device = FakeDevice(node)
    ctx = FakeContext(node, device)
    app = BasicApps(ctx)
    app.start()
    return app, ctx, device


def delivered(head: str, tail: str, index: int, handle: int, state=BellState.PSI_PLUS, remote="bob") -> PairDelivered:
    return PairDelivered(
        pair_id=PairId(head=head, tail=tail, request_id=0, index=index),
        remote_node=remote,
        bell_state=state,
        goodness=0.9,
        goodness_time_ns=0,
        handle=handle,
    )


def test_teleport_sender_prepares_measures_and_sends_the_outcome():
    app, ctx, device = make("alice")
    device.held.add(0)  # the network's qubit
    app.handle_above(TeleportRequest(remote_node="bob", number=1))
    (net_request,) = ctx.take(NetRequest)
    assert net_request.remote_node == "bob" and net_request.number == 1
    device.bell_outcomes.append(BellState.PHI_MINUS)
    app.handle_below(delivered("alice", "bob", 0, handle=0))
    state = CARDINAL_STATES[0]
    assert InitQubit(theta_rad=state.theta_rad, phi_rad=state.phi_rad) in device.ops
    assert BellMeasure(handle_a=1, handle_b=0) in device.ops
    (dest, bits), = [(d, m) for d, m in ctx.peer if isinstance(m, TeleportBits)]
    assert dest == "bob" and bits.outcome is BellState.PHI_MINUS
    assert ctx.take(AppDone)[0].completed == 1


def test_teleport_receiver_corrects_scores_and_frees():
    app, ctx, device = make("bob")
    device.fidelity = 0.93
    pair = delivered("alice", "bob", 0, handle=2, state=BellState.PSI_PLUS, remote="alice")
    app.handle_below(pair)
    assert ctx.up == []  # waits for the sender's outcome
    app.handle_peer(
        "alice",
        TeleportBits(pair_id=pair.pair_id, outcome=BellState.PHI_MINUS, oracle_state=CARDINAL_STATES[2], goodness=0.9),
    )
    # frame PSI_PLUS (x) composed with outcome PHI_MINUS (z): X then Z
    gates = [op.gate for op in device.ops if isinstance(op, ApplyGate)]
    assert gates == [Gate.X, Gate.Z]
    oracle = next(op for op in device.ops if isinstance(op, OracleFidelity))
    assert oracle.qubits == [QubitRef(node="bob", handle=2)]
    assert FreeQubit(handle=2) in device.ops
    (result,) = ctx.take(TeleportResult)
    assert result.oracle_fidelity == 0.93 and result.sender == "alice" and result.state == CARDINAL_STATES[2]


@pytest.mark.parametrize("outcome, frame", list(itertools.product(BellState, repeat=2)))
def test_teleport_correction_is_the_combined_frame(outcome, frame):
    x, z = outcome.compose(frame).pauli_bits
    assert teleport_correction(outcome, frame) == [g for g, bit in ((Gate.X, x), (Gate.Z, z)) if bit]


def test_pairs_handshake_reads_both_halves_then_releases():
    head, hctx, hdev = make("alice")
    tail, tctx, tdev = make("bob")
    head.handle_above(PairsRequest(remote_node="bob", number=1))
    head.handle_below(delivered("alice", "bob", 0, handle=3))
    (dest, held), = hctx.peer
    assert dest == "bob" and held == HeldPair(pair_id=PairId(head="alice", tail="bob", request_id=0, index=0), handle=3)
    tail.handle_below(delivered("alice", "bob", 0, handle=1, remote="alice"))
    tail.handle_peer("alice", held)
    oracle = next(op for op in tdev.ops if isinstance(op, OracleFidelity))
    assert oracle.qubits == [QubitRef(node="alice", handle=3), QubitRef(node="bob", handle=1)]
    assert oracle.bell_state is BellState.PSI_PLUS
    (result,) = tctx.take(PairResult)
    (dest, release), = tctx.peer
    assert dest == "alice" and isinstance(release, Release)
    head.handle_peer("bob", release)
    assert FreeQubit(handle=3) in hdev.ops
    assert hctx.take(AppDone)[0].completed == 1


def test_network_refusal_becomes_an_app_error():
    app, ctx, _ = make("alice")
    app.handle_above(TeleportRequest(remote_node="bob"))
    app.handle_below(NetRejected(request_id=0, reason="no path"))
    (err,) = ctx.take(AppError)
    assert err.detail == "no path" and err.request_kind == "teleport"
