"""The reference applications driven alone: fake network layer and device, no kernel."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from qnetstack.application.apps import MACHINES, BasicApps, HeldPair, Release, TeleportBits, TeleportSkipped, teleport_correction
from qnetstack.application.service import (
    CARDINAL_STATES,
    AppDone,
    AppError,
    AppErrorCode,
    PairResult,
    PairsRequest,
    TeleportRequest,
    TeleportResult,
)
from qnetstack.entity import EntityError
from qnetstack.entity.machine import render_markdown
from qnetstack.network.service import NetAccepted, NetError, NetErrorCode, NetRejected, NetRequest, PairDelivered, PairId
from qnetstack.physical.service import ApplyGate, BellMeasure, BellState, FreeQubit, Gate, InitQubit, OracleFidelity, QubitRef
from qnetstack.stack.conform import run_conformance
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
    app.handle_above(TeleportRequest(request_id=9, remote_node="bob", number=1))
    (net_request,) = ctx.take(NetRequest)
    app.handle_below(NetAccepted(request_id=net_request.request_id, path=["alice", "bob"]))
    assert net_request.remote_node == "bob" and net_request.number == 1
    device.bell_outcomes.append(BellState.PHI_MINUS)
    app.handle_below(delivered("alice", "bob", 0, handle=0))
    state = CARDINAL_STATES[0]
    assert InitQubit(theta_rad=state.theta_rad, phi_rad=state.phi_rad) in device.ops
    assert BellMeasure(handle_a=1, handle_b=0) in device.ops
    ((dest, bits),) = [(d, m) for d, m in ctx.peer if isinstance(m, TeleportBits)]
    assert dest == "bob" and bits.outcome is BellState.PHI_MINUS and bits.request_id == 9
    (done,) = ctx.take(AppDone)
    assert (done.request_id, done.completed) == (9, 1)


def test_teleport_receiver_corrects_scores_and_frees():
    app, ctx, device = make("bob")
    device.fidelity = 0.93
    pair = delivered("alice", "bob", 0, handle=2, state=BellState.PSI_PLUS, remote="alice")
    app.handle_below(pair)
    assert ctx.up == []  # waits for the sender's outcome
    app.handle_peer(
        "alice",
        TeleportBits(request_id=4, pair_id=pair.pair_id, outcome=BellState.PHI_MINUS, oracle_state=CARDINAL_STATES[2], goodness=0.9),
    )
    # frame PSI_PLUS (x) composed with outcome PHI_MINUS (z): X then Z
    gates = [op.gate for op in device.ops if isinstance(op, ApplyGate)]
    assert gates == [Gate.X, Gate.Z]
    oracle = next(op for op in device.ops if isinstance(op, OracleFidelity))
    assert oracle.qubits == [QubitRef(node="bob", handle=2)]
    assert FreeQubit(handle=2) in device.ops
    (result,) = ctx.take(TeleportResult)
    assert result.oracle_fidelity == 0.93 and result.sender == "alice" and result.state == CARDINAL_STATES[2]
    assert result.request_id == 4  # the sender's id, carried by its message


@pytest.mark.parametrize("outcome, frame", list(itertools.product(BellState, repeat=2)))
def test_teleport_correction_is_the_combined_frame(outcome, frame):
    x, z = outcome.compose(frame).pauli_bits
    assert teleport_correction(outcome, frame) == [g for g, bit in ((Gate.X, x), (Gate.Z, z)) if bit]


def test_pairs_handshake_reads_both_halves_then_releases():
    head, hctx, hdev = make("alice")
    tail, tctx, tdev = make("bob")
    head.handle_above(PairsRequest(request_id=5, remote_node="bob", number=1))
    head.handle_below(NetAccepted(request_id=0, path=["alice", "bob"]))
    head.handle_below(delivered("alice", "bob", 0, handle=3))
    ((dest, held),) = hctx.peer
    pair_id = PairId(head="alice", tail="bob", request_id=0, index=0)
    assert dest == "bob" and held == HeldPair(request_id=5, pair_id=pair_id, handle=3)
    tail.handle_below(delivered("alice", "bob", 0, handle=1, remote="alice"))
    tail.handle_peer("alice", held)
    oracle = next(op for op in tdev.ops if isinstance(op, OracleFidelity))
    assert oracle.qubits == [QubitRef(node="alice", handle=3), QubitRef(node="bob", handle=1)]
    assert oracle.bell_state is BellState.PSI_PLUS
    (result,) = tctx.take(PairResult)
    assert result.request_id == 5 and result.pair_id == pair_id
    ((dest, release),) = tctx.peer
    assert dest == "alice" and isinstance(release, Release)
    head.handle_peer("bob", release)
    assert FreeQubit(handle=3) in hdev.ops
    (done,) = hctx.take(AppDone)
    assert (done.request_id, done.completed) == (5, 1)


def test_network_refusal_becomes_an_app_error():
    app, ctx, _ = make("alice")
    app.handle_above(TeleportRequest(request_id=3, remote_node="bob"))
    app.handle_below(NetRejected(request_id=0, reason="no path"))
    (err,) = ctx.take(AppError)
    assert err.detail == "no path" and err.request_kind == "teleport"
    assert (err.request_id, err.code) == (3, AppErrorCode.REJECTED)


def test_two_requests_to_the_same_node_are_answered_by_their_ids():
    app, ctx, device = make("alice")
    device.held.update({0, 1})
    app.handle_above(PairsRequest(request_id=7, remote_node="bob", number=1))
    app.handle_above(PairsRequest(request_id=2, remote_node="bob", number=1))
    first, second = ctx.take(NetRequest)
    assert first.request_id != second.request_id  # the network's ids are the entity's own
    for net in (first, second):
        app.handle_below(NetAccepted(request_id=net.request_id, path=["alice", "bob"]))
    # the second request's pair is delivered and released first: its AppDone must name 2, not 7
    pair_id = PairId(head="alice", tail="bob", request_id=second.request_id, index=0)
    app.handle_below(delivered("alice", "bob", 0, handle=1).model_copy(update={"pair_id": pair_id}))
    app.handle_peer("bob", Release(pair_id=pair_id))
    (done,) = ctx.take(AppDone)
    assert done.request_id == 2 and FreeQubit(handle=1) in device.ops


def test_a_request_whose_id_is_open_is_refused_and_the_open_one_goes_on():
    app, ctx, _ = make("alice")
    app.handle_above(TeleportRequest(request_id=1, remote_node="bob"))
    app.handle_above(PairsRequest(request_id=1, remote_node="carol"))
    (err,) = ctx.take(AppError)
    assert (err.request_id, err.code, err.request_kind) == (1, AppErrorCode.DUPLICATE_ID, "pairs")
    (net,) = ctx.take(NetRequest)  # only the first went to the network
    assert net.remote_node == "bob"
    app.handle_below(NetRejected(request_id=net.request_id, reason="no path"))
    err = ctx.up[-1]
    assert (err.request_id, err.code) == (1, AppErrorCode.REJECTED)
    app.handle_above(PairsRequest(request_id=1, remote_node="carol"))  # closed, so the id is free again
    assert len(ctx.take(NetRequest)) == 2 and len(ctx.up) == 2


def unknown_drops(ctx):
    return [fields for event, fields in ctx.traces if event == "unknown_session"]


def test_messages_naming_no_session_are_dropped_and_traced():
    app, ctx, device = make("alice")
    stray = PairId(head="alice", tail="bob", request_id=4, index=0)
    app.handle_below(NetAccepted(request_id=4, path=["alice", "bob"]))
    app.handle_below(NetRejected(request_id=4, reason="no"))
    app.handle_below(NetError(request_id=4, head="alice", code=NetErrorCode.OTHER))
    app.handle_below(NetError(request_id=0, head="bob", code=NetErrorCode.OTHER))  # the tail's copy of bob's abort
    app.handle_below(delivered("alice", "bob", 0, handle=0).model_copy(update={"pair_id": stray}))
    app.handle_peer("bob", Release(pair_id=stray))
    assert len(unknown_drops(ctx)) == 6
    assert ctx.up == [] and ctx.down == [] and ctx.peer == [] and device.ops == []


def test_a_repeated_message_about_a_reported_pair_is_dropped():
    app, ctx, device = make("bob")
    pair = delivered("alice", "bob", 0, handle=2, remote="alice")
    bits = TeleportBits(request_id=0, pair_id=pair.pair_id, outcome=BellState.PHI_PLUS, oracle_state=CARDINAL_STATES[0], goodness=0.9)
    app.handle_below(pair)
    app.handle_peer("alice", bits)
    assert len(ctx.take(TeleportResult)) == 1
    ops = len(device.ops)
    app.handle_peer("alice", bits)
    app.handle_below(pair)
    assert [f["session"] for f in unknown_drops(ctx)] == [pair.pair_id, pair.pair_id]
    assert len(ctx.up) == 1 and len(device.ops) == ops


def test_an_aborted_pairs_request_frees_the_halves_the_tail_still_reports():
    app, ctx, device = make("alice")
    device.held.add(0)
    app.handle_above(PairsRequest(request_id=0, remote_node="bob", number=3))
    app.handle_below(NetAccepted(request_id=0, path=["alice", "bob"]))
    app.handle_below(delivered("alice", "bob", 0, handle=0))
    app.handle_below(NetError(request_id=0, head="alice", code=NetErrorCode.LINK_FAILURE, detail="cut"))
    (err,) = ctx.take(AppError)
    assert (err.request_id, err.code, err.detail) == (0, AppErrorCode.ABORTED, "LINK_FAILURE: cut")
    app.handle_peer("bob", Release(pair_id=PairId(head="alice", tail="bob", request_id=0, index=0)))
    assert FreeQubit(handle=0) in device.ops and len(ctx.up) == 1
    assert unknown_drops(ctx) == []


def test_no_qubit_for_a_state_ends_the_request_and_frees_the_later_halves():
    app, ctx, device = make("alice")
    device.num_qubits = 2
    device.held.update({0, 1})  # both qubits hold the network's halves: none left for the input state
    app.handle_above(TeleportRequest(request_id=6, remote_node="bob", number=2))
    app.handle_below(NetAccepted(request_id=0, path=["alice", "bob"]))
    app.handle_below(delivered("alice", "bob", 0, handle=0))
    (err,) = ctx.take(AppError)
    assert (err.request_id, err.code) == (6, AppErrorCode.NO_QUBIT)
    app.handle_below(delivered("alice", "bob", 1, handle=1))
    assert FreeQubit(handle=1) in device.ops and device.held == set()
    assert len(ctx.up) == 1 and not ctx.take(TeleportBits)
    app.handle_below(delivered("alice", "bob", 2, handle=1))  # the session has ended: dropped
    assert len(unknown_drops(ctx)) == 1
    # the receiver is told about both pairs, so it can free its halves
    skipped = [(dest, msg.pair_id.index) for dest, msg in ctx.peer if isinstance(msg, TeleportSkipped)]
    assert skipped == [("bob", 0), ("bob", 1)]


@pytest.mark.parametrize("skip_first", [False, True])
def test_the_receiver_frees_a_half_the_sender_skipped_and_reports_nothing(skip_first):
    app, ctx, device = make("bob")
    device.held.add(3)
    pair = delivered("alice", "bob", 0, handle=3, remote="alice")
    skip = TeleportSkipped(request_id=6, pair_id=pair.pair_id)
    if skip_first:
        app.handle_peer("alice", skip)
        assert device.held == {3}  # nothing to free before the pair is here
        app.handle_below(pair)
    else:
        app.handle_below(pair)
        app.handle_peer("alice", skip)
    assert device.ops[-1] == FreeQubit(handle=3) and device.held == set()
    assert ctx.up == [] and ctx.peer == []  # no result, nothing to release at the sender
    app.handle_peer("alice", skip)  # a late copy names a pair already settled: dropped
    assert len(unknown_drops(ctx)) == 1


# ------------------------------------------- the new clauses' checks can fail


class AcceptsOpenIds(BasicApps):
    """Takes a request whose id is open as a new one (the later overwrites the earlier)."""

    def handle_above(self, msg):
        self._open.pop(getattr(msg, "request_id", None), None)
        super().handle_above(msg)


class RaisesOnUnknownSessions(BasicApps):
    """Treats a message for a session it does not hold as a fault."""

    def handle_below(self, msg):
        if isinstance(msg, PairDelivered) and msg.pair_id.head == self.ctx.node and msg.pair_id.request_id not in self._heads:
            raise EntityError(f"no request {msg.pair_id.request_id}")
        super().handle_below(msg)


class ResultsNameTheNetworksId(BasicApps):
    """Results name the NetRequest's id instead of the user's request_id."""

    def handle_peer(self, sender, msg):
        if isinstance(msg, (TeleportBits, HeldPair)):
            msg = msg._replace(request_id=msg.pair_id.request_id)
        super().handle_peer(sender, msg)


NEW_CLAUSES = ["APP-ID-1", "APP-ID-2", "APP-SESS-1"]


@pytest.mark.parametrize(
    "impl, expected",
    [(AcceptsOpenIds, {"APP-ID-2"}), (RaisesOnUnknownSessions, {"APP-SESS-1"}), (ResultsNameTheNetworksId, {"APP-ID-1"})],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_broken_applications_fail_the_clause_they_break(impl, expected):
    report = run_conformance("application", impl, select=NEW_CLAUSES)
    assert set(report.failed_clauses()) == expected, report.to_text()


# ------------------------------------------------- the spec's state machines

MACHINES_BLOCK = re.compile(r"(<!-- BEGIN MACHINES[^\n]*-->\n)(.*?)(<!-- END MACHINES -->)", re.DOTALL)


def rendered_machines() -> str:
    """The spec's §7 body: every machine of apps.MACHINES, rendered (without the page title)."""
    page = render_markdown(MACHINES, "Application state machines")
    return page.split("\n", 2)[2]


def test_the_specs_state_machines_are_rendered_from_the_code():
    text = (Path(__file__).resolve().parent.parent / "specs" / "application.md").read_text(encoding="utf-8")
    block = MACHINES_BLOCK.search(text)
    assert block is not None, "specs/application.md lost its MACHINES markers"
    assert block.group(2) == rendered_machines(), (
        "specs/application.md §7 differs from apps.MACHINES; paste tests.test_application_alone.rendered_machines() between the markers"
    )
    for machine in MACHINES:
        assert f"### `{machine.name}`" in block.group(2)
