"""Withdrawing a link request (``LinkCancel``, specs/link.md §2.6, LINK-CANCEL-1..4).

The reference EGP, two instances over the link conformance harness's fake
physical layer (one-way delay = attempt period = 1 µs): the origin's cancel
agrees a stop instant ``cancel + delay + 1 ns`` with the responder; both ends
end the request then with ERR CANCELLED, no attempt starts from then on, a
herald arriving at or after the stop is freed at both ends, and nothing is held
afterwards. Each case is deterministic for its seed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qnetstack.link.conformance.harness import NODES, LinkConditions, ScriptedCreate, run_link
from qnetstack.link.egp import FastForwardEgp, MultiplexedEgp, SingleClickEgp
from qnetstack.link.service import CAP_LINK_CANCEL, LinkAck, LinkCancel, LinkCreate, LinkError, LinkErrorCode
from qnetstack.network.service import NetRequest
from qnetstack.physical.params import fibre_delay_ns
from qnetstack.stack import assemble, parse_scenario
from qnetstack.stack.conform import run_conformance
from tests.broken_links import CancelledAtOneEnd
from tests.fakes import FakeContext, FakeDevice, heralding_link

DELAY = 1_000
START = 2 * DELAY + 1  # the agreed start of a CREATE made at t=0
EGPS = [SingleClickEgp, FastForwardEgp, MultiplexedEgp]


def _run(impl, creates, probability=0.3, until_ns=2_000_000, seed=0, **conditions):
    run = run_link(impl, LinkConditions(delay_ns=DELAY, success_probability=probability, **conditions), creates, until_ns, seed)
    assert run.crashed is None, run.crashed
    return run


def _errors(run, code=LinkErrorCode.CANCELLED):
    return sorted((u.time_ns, u.node, u.msg.tag) for u in run.errors() if u.msg.code is code)


def _held_by_link(run):
    return {node: sorted(h for h, owner in run.held_at_end[node].items() if owner == "link") for node in NODES}


def test_a_cancel_names_exactly_one_of_create_id_and_tag():
    assert LinkCancel(create_id=3).tag is None
    assert LinkCancel(tag=0).create_id is None
    for fields in ({}, {"create_id": 1, "tag": 1}):
        with pytest.raises(ValidationError, match="exactly one"):
            LinkCancel(**fields)


@pytest.mark.parametrize("impl", EGPS, ids=lambda c: c.__name__)
def test_the_reference_offers_cancel_and_says_so_in_its_acks(impl):
    assert CAP_LINK_CANCEL in impl.PROVIDES
    run = _run(impl, [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", tag=4))])
    (ack,) = [u.msg for u in run.up if isinstance(u.msg, LinkAck)]
    assert ack.cancellable and ack.tag == 4


@pytest.mark.parametrize("impl", EGPS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("cancel_ns", [0, DELAY // 2, DELAY])
def test_a_cancel_before_the_start_ends_the_request_with_no_attempt(impl, cancel_ns):
    """The stop (cancel + delay + 1 ns) is not after the agreed start (2 delays + 1 ns):
    at cancel_ns = delay they fall at the same instant, and the stop wins at both ends."""
    creates = [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=5, tag=9)),
        ScriptedCreate(cancel_ns, "alice", LinkCancel(tag=9)),
    ]
    run = _run(impl, creates, probability=1.0)
    stop = cancel_ns + DELAY + 1
    assert stop <= START
    assert run.attempts == []
    assert run.oks() == []
    assert _errors(run) == [(stop, "alice", 9), (stop, "bob", None)]
    assert _held_by_link(run) == {"alice": [], "bob": []}


@pytest.mark.parametrize("impl", EGPS, ids=lambda c: c.__name__)
def test_a_cancel_mid_run_stops_both_ends_at_the_agreed_instant(impl):
    """Every attempt succeeds, so a herald lands exactly at the stop instant (heralds
    come at 3001, 4001, ... ns): it is freed at both ends, reported nowhere."""
    cancel_ns = 20_000
    stop = cancel_ns + DELAY + 1
    creates = [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=1_000, tag=2)),
        ScriptedCreate(cancel_ns, "alice", LinkCancel(tag=2)),
    ]
    run = _run(impl, creates, probability=1.0, num_qubits=(4, 4))
    assert _errors(run) == [(stop, "alice", 2), (stop, "bob", None)]
    assert max(t for t, _, _ in run.attempts) < stop
    alice, bob = run.oks("alice"), run.oks("bob")
    assert [u.msg.ent_id for u in alice] == [u.msg.ent_id for u in bob]
    assert alice and all(u.time_ns < stop for u in alice + bob)
    reported = {u.msg.ent_id.sequence for u in alice}
    at_or_after_stop = [p for s, p in run.pairs.items() if s not in reported]
    assert at_or_after_stop, "a herald at the stop instant was expected in this script"
    assert all(p.herald_time_ns + DELAY // 2 >= stop for p in at_or_after_stop)  # it reached the ends at or after the stop
    assert _held_by_link(run) == {"alice": [], "bob": []}
    assert run.misuse == []


@pytest.mark.parametrize("impl", EGPS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("seed", range(4))
def test_on_a_lossy_link_no_pair_is_reported_after_the_stop_and_nothing_is_held(impl, seed):
    cancel_ns = 37_000 + 250 * seed  # the stop falls between heralds or on one, depending on the seed
    stop = cancel_ns + DELAY + 1
    creates = [
        ScriptedCreate(0, "bob", LinkCreate(remote_node="alice", number=1_000, tag=0)),
        ScriptedCreate(cancel_ns, "bob", LinkCancel(tag=0)),
    ]
    run = _run(impl, creates, probability=0.3, seed=seed, upper_hold_ns=3 * DELAY)
    assert _errors(run) == [(stop, "alice", None), (stop, "bob", 0)]
    assert [u.msg.ent_id for u in run.oks("alice")] == [u.msg.ent_id for u in run.oks("bob")]
    assert all(u.time_ns < stop for u in run.oks())
    assert max(t for t, _, _ in run.attempts) < stop
    assert _held_by_link(run) == {"alice": [], "bob": []}


def test_a_fast_forward_run_in_flight_at_the_stop_is_not_cut_short_but_its_pair_is_freed():
    """p = 0.01: the one run in flight at the stop ends at its first success, long after."""
    cancel_ns = 10_000
    stop = cancel_ns + DELAY + 1
    creates = [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=3, tag=1)),
        ScriptedCreate(cancel_ns, "alice", LinkCancel(tag=1)),
    ]
    run = _run(FastForwardEgp, creates, probability=0.01, seed=3, until_ns=50_000_000)
    assert _errors(run) == [(stop, "alice", 1), (stop, "bob", None)]
    assert len(run.attempts) == 2  # one run, at both ends, started at the agreed start
    assert run.pairs and all(p.herald_time_ns > stop for p in run.pairs.values())
    assert run.oks() == []
    assert _held_by_link(run) == {"alice": [], "bob": []}


def test_a_cancel_after_the_request_ended_changes_nothing():
    creates = [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=1, tag=5))]
    plain = _run(SingleClickEgp, creates, probability=1.0)
    late = _run(SingleClickEgp, [*creates, ScriptedCreate(50_000, "alice", LinkCancel(tag=5))], probability=1.0)
    assert [(u.time_ns, u.node, u.msg) for u in late.up] == [(u.time_ns, u.node, u.msg) for u in plain.up]
    assert late.attempts == plain.attempts
    assert _errors(late) == []


def test_the_responder_cannot_cancel_a_request_it_did_not_make():
    """bob names alice's request by its tag and by its create id: neither is bob's."""
    creates = [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=4, tag=3)),
        ScriptedCreate(5_000, "bob", LinkCancel(tag=3)),
        ScriptedCreate(5_000, "bob", LinkCancel(create_id=0)),
    ]
    run = _run(SingleClickEgp, creates, probability=1.0)
    assert _errors(run) == []
    assert len(run.oks("alice")) == len(run.oks("bob")) == 4


def test_an_unknown_cancel_is_traced_and_sends_nothing():
    device = FakeDevice("alice", {"bob": heralding_link("bob", delay_ns=DELAY)}, num_qubits=4)
    ctx = FakeContext("alice", device)
    egp = SingleClickEgp(ctx)
    egp.start()
    sent = (len(ctx.up), len(ctx.down), len(ctx.peer))
    egp.handle_above(LinkCancel(create_id=7))
    egp.handle_above(LinkCancel(tag=7))
    assert (len(ctx.up), len(ctx.down), len(ctx.peer)) == sent
    assert [f["kind"] for e, f in ctx.traces if e == "unknown_session"] == ["cancel", "cancel"]


def test_the_responders_error_carries_no_tag_and_the_origins_its_tag():
    creates = [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=50, tag=11)),
        ScriptedCreate(8_000, "alice", LinkCancel(create_id=0)),
    ]
    run = _run(SingleClickEgp, creates)
    errors = {u.node: u.msg for u in run.errors()}
    assert isinstance(errors["alice"], LinkError) and errors["alice"].tag == 11 and errors["alice"].create_id == 0
    assert errors["bob"].tag is None and errors["bob"].origin_node == "alice"


CANCEL_CLAUSES = ["LINK-CANCEL-1", "LINK-CANCEL-2", "LINK-CANCEL-3", "LINK-CANCEL-4"]


def test_a_link_that_cancels_at_the_origin_only_is_caught_by_the_cancel_clauses():
    """The responder never hears of the cancel and attempts on alone."""
    report = run_conformance("link", CancelledAtOneEnd, select=CANCEL_CLAUSES)
    assert set(report.failed_clauses()) == {"LINK-CANCEL-1", "LINK-CANCEL-2"}, report.to_text()


def test_the_reference_passes_the_cancel_clauses():
    """Its own item (not after the broken layer's run), so that two workers share the two suite runs."""
    reference = run_conformance("link", SingleClickEgp, select=CANCEL_CLAUSES)
    assert reference.passed, reference.to_text()


# ---------------------------------------------------------------- whole stack

CHAIN = [f"n{i}" for i in range(8)]  # 7 links of 10 km
HOP_KM = 10
DEADLINE_NS = 5_000_000


class EgpWithoutCancel(SingleClickEgp):
    """The reference EGP on a link that does not offer cancel: its ACKs say so."""

    PROVIDES = SingleClickEgp.PROVIDES - {CAP_LINK_CANCEL}


def _timed_out_on_a_long_chain(seed: int, link: type = SingleClickEgp):
    """A request for 1000 pairs n0 -> n7 due in 5 ms, handed to the network layer of n0 (the
    application layer has no deadlines); it times out with link requests of its circuit still
    running. Returns the network and the link pairs made (their times, one per pair)."""
    line = {
        "seed": seed,
        "keep_trace": True,
        "nodes": [{"name": n} for n in CHAIN],
        "links": [{"a": a, "b": b, "length_km": HOP_KM} for a, b in zip(CHAIN, CHAIN[1:])],
        "implementations": {"physical": "model-heralding"},
        "applications": [],
    }
    network = assemble(parse_scenario(line), {"link": link}).network
    network.start()
    request = NetRequest(request_id=7, remote_node=CHAIN[-1], number=1_000, max_time_ns=DEADLINE_NS)
    network.kernel.schedule(0, network.entities[CHAIN[0]]["network"].handle_above, request)
    network.kernel.run()
    records = network.trace.records
    assert any(r["event"] == "unknown_session" and r["kind"] == "NetError" and r["node"] == CHAIN[0] for r in records)
    # each pair is traced link.ok at both ends, at its herald; once per pair, by its sequence
    pairs = {(frozenset((r["node"], r["remote"])), r["sequence"]): r["time_ns"] for r in records if r["event"] == "link.ok"}
    return network, sorted(pairs.values())


def _quiet_after_ns() -> int:
    """Every node of the path has heard of the end (one path delay after the head's deadline),
    and the cancel it sent then has stopped its link (one link delay + 1 ns later)."""
    hop_ns = 2 * fibre_delay_ns(HOP_KM / 2)  # node - station - node, as the stack adds it up
    return DEADLINE_NS + (len(CHAIN) - 1) * hop_ns + hop_ns + 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_after_a_request_times_out_on_a_long_chain_its_link_requests_make_no_more_pairs(seed):
    """Measured on 10 seeds (see the report of this change): before it, 40 link pairs were made
    after the deadline, 14 of them after every node had heard of the end, the last 1.5 ms after
    it; with the cancel 13, none after every node had heard and its link had stopped."""
    network, pairs = _timed_out_on_a_long_chain(seed)
    assert [t for t in pairs if t > _quiet_after_ns()] == []
    records = network.trace.records
    assert any(r["event"] == "link.cancel" for r in records)
    for node in CHAIN:
        assert network.entities[node]["link"]._requests == {}
        layer = network.entities[node]["network"]
        assert layer._requests == {} and not list(layer._pairs)
        assert all(layer.labels.in_use(other) == 0 for other in CHAIN)
    # the two ends of the pair delivered before the deadline are all the devices hold (handed up)
    held = {n: network.entities[n]["physical"].held_handles() for n in CHAIN}
    assert all(not held[n] for n in CHAIN[1:-1])


def test_on_links_without_cancel_the_network_sends_none_and_the_link_requests_run_out():
    late = 0
    for seed in (1, 2, 3):
        network, pairs = _timed_out_on_a_long_chain(seed, EgpWithoutCancel)
        assert not any(r["event"] in ("link.cancel", "unknown_session") and r.get("kind") == "cancel" for r in network.trace.records)
        assert all(network.entities[n]["network"]._requests == {} for n in CHAIN)
        late += len([t for t in pairs if t > _quiet_after_ns()])
    assert late > 0  # the behaviour before cancel: pairs made long after the end, and freed
