"""The full link service of the reference EGP (specs/link.md): type R, random
bases, priority and round robin, consecutive and atomic requests, consent
(RECV / STOP_RECV), NORES, EXPIRE, the single-click operating point, and bad
input. Driven through the link conformance harness (two EGPs, a fake midpoint
station that knows every pair) or alone with the fakes of ``tests/fakes.py``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qnetstack.link.conformance.harness import LinkConditions, ScriptedCreate, run_link
from qnetstack.link.egp import PeerLost, SingleClickEgp
from qnetstack.link.service import (
    EntanglementId,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    LinkOkMeasure,
    LinkRecv,
    LinkStopRecv,
    RandomBasis,
    RequestType,
)
from qnetstack.physical.service import Basis, BellState, HeraldResult
from tests.fakes import FakeContext, FakeDevice, heralding_link

LOSSLESS = LinkConditions(delay_ns=1_000, success_probability=1.0, num_qubits=(4, 4))


def run(creates, conditions=LOSSLESS, until_ns=2_000_000, seed=0, impl=SingleClickEgp):
    result = run_link(impl, conditions, creates, until_ns=until_ns, seed=seed)
    assert result.crashed is None, result.crashed
    assert result.misuse == []
    return result


def at(node, request, t=0):
    return ScriptedCreate(t, node, request)


def errors(result, node="alice"):
    return [u.msg for u in result.errors(node)]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "fields, name",
    [
        ({"priority": 4}, "priority"),
        ({"priority": -1}, "priority"),
        ({"number": 0}, "number"),
        ({"min_fidelity": 1.5}, "min_fidelity"),
        ({"purpose_id": 65536}, "purpose_id"),
        ({"max_time_ns": 0}, "max_time_ns"),
        ({"type": "Q"}, "type"),
        ({"random_basis": "SIX"}, "random_basis"),
        ({"remote_node": ""}, "remote_node"),
    ],
)
def test_out_of_range_fields_cannot_be_constructed(fields, name):
    with pytest.raises(ValidationError, match=name):
        LinkCreate(**{"remote_node": "bob", **fields})


def test_recv_fields_are_validated_too():
    with pytest.raises(ValidationError, match="purpose_id"):
        LinkRecv(purpose_id=70_000)
    with pytest.raises(ValidationError, match="remote_node"):
        LinkStopRecv(remote_node="")


@pytest.mark.parametrize(
    "request_, code",
    [
        (LinkCreate(remote_node="carol"), LinkErrorCode.CREATE),  # unknown remote node
        (LinkCreate(remote_node="bob", type=RequestType.K, random_basis=RandomBasis.XZ), LinkErrorCode.UNSUPP),
        (LinkCreate(remote_node="bob", type=RequestType.R, remote_basis=Basis.X), LinkErrorCode.UNSUPP),
        (LinkCreate(remote_node="bob", type=RequestType.M, atomic=True), LinkErrorCode.UNSUPP),
        (LinkCreate(remote_node="bob", number=5, atomic=True), LinkErrorCode.UNSUPP),  # 4 qubits
    ],
)
def test_requests_that_cannot_be_served_get_an_error_at_once_and_nothing_happens(request_, code):
    result = run([at("alice", request_)])
    (answer,) = result.up
    assert isinstance(answer.msg, LinkError) and answer.msg.code is code
    assert result.pairs == {} and result.attempts == []


@pytest.mark.parametrize("kind", list(RequestType))
def test_no_memory_at_the_responder_is_unsupported_for_every_type(kind):
    conditions = LinkConditions(delay_ns=1_000, success_probability=1.0, num_qubits=(2, 0))
    result = run([at("alice", LinkCreate(remote_node="bob", type=kind))], conditions)
    (err,) = errors(result)
    assert err.code is LinkErrorCode.UNSUPP and result.oks() == []
    assert [u.msg for u in result.up if u.node == "bob"] == []  # the responder's layer above hears nothing


# ----------------------------------------------------------------- types, bases


def test_type_r_origin_measures_and_responder_keeps_the_same_pair():
    result = run([at("alice", LinkCreate(remote_node="bob", type=RequestType.R, number=3, basis=Basis.X))])
    origin, responder = result.oks("alice"), result.oks("bob")
    assert len(origin) == len(responder) == 3
    for mine, theirs in zip(origin, responder):
        assert isinstance(mine.msg, LinkOkMeasure) and mine.msg.basis is Basis.X
        assert isinstance(theirs.msg, LinkOkKeep) and theirs.msg.ent_id == mine.msg.ent_id
        pair = result.pair_of("bob", theirs.msg.handle, theirs.time_ns)
        assert pair is not None and pair.sequence == mine.msg.ent_id.sequence
        assert "bob" not in pair.measured and pair.measured["alice"][0] == "X"


def test_random_bases_are_uniform_and_independent_at_the_two_ends():
    """400 pairs, bases X/Z at the origin and X/Y/Z at the responder, drawn
    uniformly: each frequency is within 5 standard errors of 1/2 or 1/3
    (SE = sqrt(p(1-p)/400) <= 0.025), and the two ends agree on the basis in
    about P(both X) + P(both Z) = 1/2·1/3 + 1/2·1/3 = 1/3 of the pairs
    (SE 0.024), as independent draws give (BB84: Bennett & Brassard 1984;
    six-state: Bruss, PRL 81, 3018, 1998)."""
    request = LinkCreate(
        remote_node="bob", type=RequestType.M, number=400, random_basis=RandomBasis.XZ, remote_random_basis=RandomBasis.XYZ
    )
    result = run([at("alice", request)], until_ns=5_000_000)
    alice = {u.msg.ent_id: u.msg.basis for u in result.oks("alice")}
    bob = {u.msg.ent_id: u.msg.basis for u in result.oks("bob")}
    assert len(alice) == len(bob) == 400
    assert abs(sum(b is Basis.X for b in alice.values()) / 400 - 1 / 2) < 5 * 0.025
    for basis in (Basis.X, Basis.Y, Basis.Z):
        assert abs(sum(b is basis for b in bob.values()) / 400 - 1 / 3) < 5 * 0.0236
    assert abs(sum(alice[e] is bob[e] for e in alice) / 400 - 1 / 3) < 5 * 0.0236


def test_remote_basis_is_used_at_the_responder():
    request = LinkCreate(remote_node="bob", type=RequestType.M, number=2, basis=Basis.Z, remote_basis=Basis.Y)
    result = run([at("alice", request)])
    assert {u.msg.basis for u in result.oks("alice")} == {Basis.Z}
    assert {u.msg.basis for u in result.oks("bob")} == {Basis.Y}


# ----------------------------------------------------------------- scheduling


def test_interleaved_requests_each_get_their_own_pairs_at_both_ends():
    """Five requests of three types from both ends, with loss: every herald is
    credited to the request its attempt was made for, alike at both ends."""
    conditions = LinkConditions(delay_ns=1_000, success_probability=0.4, num_qubits=(3, 3), upper_hold_ns=3_000)
    creates = [
        at("alice", LinkCreate(remote_node="bob", purpose_id=1, number=4, type=RequestType.K)),
        at("bob", LinkCreate(remote_node="alice", purpose_id=2, number=3, type=RequestType.M)),
        at("alice", LinkCreate(remote_node="bob", purpose_id=3, number=3, type=RequestType.R, priority=1), 2_000),
        at("bob", LinkCreate(remote_node="alice", purpose_id=4, number=2, priority=1), 2_500),
        at("alice", LinkCreate(remote_node="bob", purpose_id=5, number=2, type=RequestType.M, basis=Basis.X), 3_000),
    ]
    result = run(creates, conditions, seed=7)
    sequences = {}
    for up in result.oks():
        sequences.setdefault(up.msg.ent_id, set()).add((up.msg.create_id, up.msg.origin_node, up.msg.purpose_id, up.msg.bell_state))
        if isinstance(up.msg, LinkOkKeep):
            pair = result.pair_of(up.node, up.msg.handle, up.time_ns)
            assert pair is not None and pair.sequence == up.msg.ent_id.sequence and pair.bell_state is up.msg.bell_state
    assert all(len(v) == 1 for v in sequences.values())  # the two ends agree on every pair
    per_purpose = {}
    for up in result.oks("alice"):
        per_purpose[up.msg.purpose_id] = per_purpose.get(up.msg.purpose_id, 0) + 1
    assert per_purpose == {1: 4, 2: 3, 3: 3, 4: 2, 5: 2}
    # type R (purpose 3, origin alice): measured at alice, kept at bob
    assert {type(u.msg) for u in result.oks("alice") if u.msg.purpose_id == 3} == {LinkOkMeasure}
    assert {type(u.msg) for u in result.oks("bob") if u.msg.purpose_id == 3} == {LinkOkKeep}


def test_priority_then_round_robin_on_a_lossless_link():
    creates = [
        at("alice", LinkCreate(remote_node="bob", purpose_id=1, number=2, priority=2)),
        at("alice", LinkCreate(remote_node="bob", purpose_id=2, number=2, priority=2)),
        at("alice", LinkCreate(remote_node="bob", purpose_id=3, number=2, priority=0)),
    ]
    result = run(creates)
    assert [u.msg.purpose_id for u in result.oks("alice")] == [3, 3, 1, 2, 1, 2]
    assert [u.msg.purpose_id for u in result.oks("bob")] == [3, 3, 1, 2, 1, 2]


def test_consecutive_request_is_not_interleaved():
    creates = [
        at("alice", LinkCreate(remote_node="bob", purpose_id=1, number=3, consecutive=True)),
        at("alice", LinkCreate(remote_node="bob", purpose_id=2, number=3)),
    ]
    result = run(creates)
    assert [u.msg.purpose_id for u in result.oks("alice")] == [1, 1, 1, 2, 2, 2]


# ------------------------------------------------------------ atomic, NORES


def test_atomic_request_delivers_all_pairs_together_and_holds_them_meanwhile():
    conditions = LinkConditions(delay_ns=1_000, success_probability=0.3, num_qubits=(3, 3))
    result = run([at("alice", LinkCreate(remote_node="bob", number=3, atomic=True))], conditions)
    for node in ("alice", "bob"):
        oks = result.oks(node)
        assert len(oks) == 3 and len({u.time_ns for u in oks}) == 1
        assert sorted(u.msg.handle for u in oks) == [0, 1, 2]
        heralds = sorted(u.msg.goodness_time_ns for u in oks)
        assert heralds[0] < heralds[-1] <= oks[0].time_ns  # made over time, reported at once


def test_atomic_request_that_times_out_delivers_nothing_and_frees_its_pairs():
    conditions = LinkConditions(delay_ns=1_000, loss_pattern=(True, False, False), success_probability=0.0, num_qubits=(3, 3))
    result = run([at("alice", LinkCreate(remote_node="bob", number=2, atomic=True, max_time_ns=20_000))], conditions)
    assert len(result.pairs) == 1 and result.oks() == []
    assert [e.msg.code for e in result.errors()] == [LinkErrorCode.TIMEOUT, LinkErrorCode.TIMEOUT]
    assert all(owner != "link" for held in result.held_at_end.values() for owner in held.values())


def test_nores_when_other_atomic_requests_reserved_the_memory():
    conditions = LinkConditions(delay_ns=1_000, success_probability=0.0, num_qubits=(3, 3))
    creates = [
        at("alice", LinkCreate(remote_node="bob", number=2, atomic=True)),
        at("alice", LinkCreate(remote_node="bob", number=2, atomic=True), 10),
        at("alice", LinkCreate(remote_node="bob", number=1, atomic=True), 20),
        at("alice", LinkCreate(remote_node="bob", number=5, max_time_ns=5_000), 30),  # not atomic: waits
    ]
    result = run(creates, conditions, until_ns=100_000)
    codes = [u.msg.code if isinstance(u.msg, LinkError) else "ack" for u in result.up if u.cause[0] == "create"]
    assert codes == ["ack", LinkErrorCode.NORES, "ack", "ack"]
    assert [e.msg.code for e in result.errors("alice")] == [LinkErrorCode.NORES, LinkErrorCode.TIMEOUT]


# ------------------------------------------------------------------- consent


def test_consent_is_opt_in_and_refusals_come_back_as_rejected():
    creates = [
        at("alice", LinkCreate(remote_node="bob", purpose_id=7)),  # bob never said anything yet: served
        at("bob", LinkRecv(remote_node="alice", purpose_id=1), 10_000),
        at("alice", LinkCreate(remote_node="bob", purpose_id=7), 20_000),  # now refused
        at("alice", LinkCreate(remote_node="bob", purpose_id=1), 20_000),
        at("bob", LinkStopRecv(remote_node="alice", purpose_id=1), 40_000),
        at("alice", LinkCreate(remote_node="bob", purpose_id=1), 50_000),
    ]
    result = run(creates)
    assert [u.msg.purpose_id for u in result.oks("alice")] == [7, 1]
    rejected = [e for e in result.errors("alice") if e.msg.code is LinkErrorCode.REJECTED]
    assert [e.time_ns for e in rejected] == [22_000, 52_000]  # one round trip after the CREATE
    assert result.errors("bob") == []


def test_require_consent_from_the_start():
    def strict(ctx):
        return SingleClickEgp(ctx, require_consent=True)

    strict.PROVIDES = SingleClickEgp.PROVIDES  # type: ignore[attr-defined]
    creates = [
        at("alice", LinkCreate(remote_node="bob", purpose_id=3)),
        at("alice", LinkRecv(remote_node=None, purpose_id=4)),
        at("bob", LinkCreate(remote_node="alice", purpose_id=4), 10),
    ]
    result = run(creates, impl=strict)
    assert [e.msg.code for e in result.errors("alice")] == [LinkErrorCode.REJECTED]
    assert [u.msg.purpose_id for u in result.oks("bob")] == [4]


# ------------------------------------------------------------------ EXPIRE


def _alone(node="alice", peer="bob"):
    device = FakeDevice(node, {peer: heralding_link(peer, fidelity=0.9, delay_ns=1_000)}, num_qubits=4)
    ctx = FakeContext(node, device)
    egp = SingleClickEgp(ctx)
    egp.start()
    return egp, ctx


def _success(attempt_id, seq, neighbour="bob"):
    return HeraldResult(
        neighbour=neighbour,
        attempt_id=attempt_id,
        success=True,
        handle=0,
        bell_state=BellState.PSI_PLUS,
        herald_sequence=seq,
        fidelity_estimate=0.9,
        herald_time_ns=5,
    )


def test_a_pair_lost_at_the_other_end_is_revoked_with_expire_naming_it():
    egp, ctx = _alone()
    egp.handle_above(LinkCreate(remote_node="bob", number=2))
    ctx.advance(egp, 2_001)
    egp.handle_below(_success(0, seq=9))
    (ok,) = ctx.take(LinkOkKeep)
    egp.handle_peer("bob", PeerLost(sequence=8))  # not a pair we reported: nothing
    assert ctx.take(LinkError) == []
    egp.handle_peer("bob", PeerLost(sequence=9))
    (err,) = ctx.take(LinkError)
    assert err.code is LinkErrorCode.EXPIRE and err.ent_id == ok.ent_id == EntanglementId(creator="alice", peer="bob", sequence=9)


def test_a_success_for_a_request_that_ended_here_is_freed_and_reported_lost_to_the_peer():
    egp, ctx = _alone()
    egp.handle_above(LinkCreate(remote_node="bob", max_time_ns=2_500))
    ctx.advance(egp, 2_001)
    ctx.advance(egp, 2_500)  # deadline first, then the herald of the attempt in flight
    egp.handle_below(_success(0, seq=3))
    assert ctx.take(LinkOkKeep) == []
    assert ("bob", PeerLost(sequence=3)) in ctx.peer


# ------------------------------------------------------- single-click α


def test_the_fastest_setting_that_meets_min_fidelity_is_used_and_unreachable_is_unsupp():
    """Settings follow the single-click trade-off F ≈ 1 - α, p ≈ 2αη
    (Humphreys et al., Nature 558, 268, 2018)."""
    settings = ((0.05, 0.1, 0.94), (0.1, 0.2, 0.89), (0.2, 0.4, 0.79))
    conditions = LinkConditions(delay_ns=1_000, capability_fidelity=0.89, alpha_settings=settings, success_probability=0.2)
    result = run([at("alice", LinkCreate(remote_node="bob", min_fidelity=0.92, number=2))], conditions)
    assert {a.bright_state_population for _, _, a in result.attempts} == {0.05}
    assert all(u.msg.goodness == 0.94 for u in result.oks())  # above the configured α's 0.89
    result = run([at("alice", LinkCreate(remote_node="bob", min_fidelity=0.95))], conditions)
    assert result.up[0].msg.code is LinkErrorCode.UNSUPP
