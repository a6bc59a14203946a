"""Scheduling policies (qnetstack.link.scheduler): the registry, the reference
rule as the default, and the earliest-deadline-first example policy
(examples/minimal_link.py) on the reference EGP."""

from __future__ import annotations

import pytest

from examples.minimal_link import EarliestDeadlineFirst, EdfEgp
from qnetstack.link.conformance.harness import LinkConditions, ScriptedCreate, run_link
from qnetstack.link.egp import SingleClickEgp
from qnetstack.link.request import LinkRequest, RequestEvent
from qnetstack.link.scheduler import (
    DEFAULT_POLICY,
    PriorityRoundRobin,
    SchedulingPolicy,
    get_policy,
    policy_names,
    register_policy,
    resolve_policy,
)
from qnetstack.link.service import LinkCreate
from tests.fakes import FakeContext, FakeDevice, heralding_link


def _ctx() -> FakeContext:
    return FakeContext("alice", FakeDevice("alice", {"bob": heralding_link("bob", delay_ns=1_000)}))


# ------------------------------------------------------------------ registry


def test_an_unknown_policy_name_is_refused_with_the_known_names():
    with pytest.raises(ValueError) as raised:
        get_policy("fastest-first")
    message = str(raised.value)
    assert "'fastest-first'" in message
    for name in policy_names():
        assert name in message
    assert DEFAULT_POLICY in policy_names()
    with pytest.raises(ValueError, match="known policies: .*priority-round-robin"):
        SingleClickEgp(_ctx(), scheduler="fastest-first")


def test_a_policy_is_taken_by_name_class_or_object_and_the_reference_rule_is_the_default():
    assert isinstance(SingleClickEgp(_ctx()).scheduler, PriorityRoundRobin)
    assert SingleClickEgp(_ctx()).scheduler.name == "priority-round-robin"
    edf = EarliestDeadlineFirst()
    assert SingleClickEgp(_ctx(), scheduler=edf).scheduler is edf
    assert isinstance(SingleClickEgp(_ctx(), scheduler=EarliestDeadlineFirst).scheduler, EarliestDeadlineFirst)
    assert isinstance(
        SingleClickEgp(_ctx(), scheduler="earliest-deadline-first").scheduler, EarliestDeadlineFirst
    )  # the example registers it
    with pytest.raises(TypeError, match="scheduler must be"):
        resolve_policy(42)  # type: ignore[arg-type]


def test_a_name_cannot_be_taken_by_a_second_policy():
    class Other(SchedulingPolicy):
        def choose(self, requests, now_ns):
            return None

    with pytest.raises(ValueError, match="already registered"):
        register_policy(DEFAULT_POLICY, Other)
    register_policy(DEFAULT_POLICY, PriorityRoundRobin)  # the same one again is harmless
    assert isinstance(get_policy(DEFAULT_POLICY), PriorityRoundRobin)


def test_a_policy_module_loaded_twice_registers_without_a_clash():
    """examples/minimal_link.py registers its policy on import; imported as
    ``minimal_link`` (by the CLI, from the examples folder) and as
    ``examples.minimal_link`` (by the tests) it is two class objects of one definition."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "minimal_link.py"
    classes = []
    for name in ("minimal_link", "examples.minimal_link"):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # the second registers a new class object under the same name
        classes.append(module.EarliestDeadlineFirst)
    assert classes[0] is not classes[1]
    assert type(get_policy("earliest-deadline-first")).__qualname__ == "EarliestDeadlineFirst"


# ------------------------------------------------------------ EDF, alone


def _req(create_id: int, start_ns: int = 0, deadline_ns: int | None = None, number: int = 1) -> LinkRequest:
    return LinkRequest(create_id=create_id, origin="alice", remote="bob", start_ns=start_ns, deadline_ns=deadline_ns, number=number)


def test_edf_gives_the_attempt_to_the_ready_request_with_the_earliest_deadline():
    edf = EarliestDeadlineFirst()
    late, early, never, unstarted = (
        _req(0, deadline_ns=9_000),
        _req(1, deadline_ns=5_000),
        _req(2),
        _req(3, start_ns=100, deadline_ns=1_000),
    )
    assert edf.choose([late, early, never, unstarted], now_ns=50) is early  # `unstarted` is not ready yet
    assert edf.choose([late, early, never, unstarted], now_ns=100) is unstarted
    assert edf.choose([never, late], now_ns=0) is late  # no deadline: last
    assert edf.choose([never, _req(4)], now_ns=0) is never  # a tie: the agreed order
    early.in_flight = 1  # its one pair has an attempt in flight: it needs no other
    assert edf.choose([late, early], now_ns=0) is late
    assert edf.choose([], now_ns=0) is None
    assert edf.choose([unstarted], now_ns=0) is None


def test_the_reference_rule_alone_prefers_priority_then_the_least_recently_served():
    rr = PriorityRoundRobin()
    a, b, c = _req(0, number=5), _req(1, number=5), _req(2, number=5)
    c.priority = 1
    a.last_pair, a.last_pair_ns = 4, 10  # a got the link's 4th pair; b has had none
    assert rr.choose([a, b, c], now_ns=20) is b
    b.last_pair, b.last_pair_ns = 5, 15
    assert rr.choose([a, b, c], now_ns=20) is a
    a.consecutive = True
    a.fire(RequestEvent.FIRST_ATTEMPT)  # a consecutive request that started keeps the link
    assert rr.choose([a, b, c], now_ns=20) is a
    assert not rr.may_take_pair(b, b.last_pair, [a, b, c], now_ns=20)


# --------------------------------------------------- EDF on the reference EGP


def _creates() -> list[ScriptedCreate]:
    """Two requests from alice on one link: the first without a deadline, the
    second (made 1 ns later) with one far enough away to be met."""
    return [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=3, purpose_id=1)),
        ScriptedCreate(1, "alice", LinkCreate(remote_node="bob", number=3, purpose_id=2, max_time_ns=1_000_000)),
    ]


def _purposes(impl) -> list[int]:
    conditions = LinkConditions(delay_ns=1_000, success_probability=1.0, num_qubits=(4, 4))
    run = run_link(impl, conditions, _creates(), until_ns=200_000)
    assert run.crashed is None and run.misuse == []
    oks = {node: [u.msg.purpose_id for u in run.oks(node)] for node in ("alice", "bob")}
    assert oks["alice"] == oks["bob"]  # both ends credit each pair to the same request
    return oks["alice"]


def test_edf_serves_the_request_with_a_deadline_first_where_the_reference_takes_turns():
    """Every attempt succeeds, one in flight at a time: the order of the OKs is
    the order the policy chose the requests in."""
    assert _purposes(SingleClickEgp) == [1, 2, 1, 2, 1, 2]  # round robin per pair, the first request first
    # the first request starts 1 ns before the second, so it alone is ready for the first attempt;
    # from then on the request with the deadline first, then the one without
    assert _purposes(EdfEgp) == [1, 2, 2, 2, 1, 1]


def test_the_two_ends_of_a_link_must_run_the_same_policy():
    """specs/link.md §5: with the reference rule at alice and EDF at bob, the
    same heralded pair is reported for different requests at the two ends."""
    conditions = LinkConditions(delay_ns=1_000, success_probability=1.0, num_qubits=(4, 4))
    mixed = run_link(lambda ctx: SingleClickEgp(ctx) if ctx.node == "alice" else EdfEgp(ctx), conditions, _creates(), until_ns=200_000)
    assert mixed.crashed is None
    by_pair = {}
    for up in mixed.oks():
        by_pair.setdefault(up.msg.ent_id.sequence, {})[up.node] = up.msg.purpose_id
    assert any(ends.get("alice") != ends.get("bob") for ends in by_pair.values())
