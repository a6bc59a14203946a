"""Conformance suite of the link service (``specs/link.md``), clause by clause.

Every check takes the implementation class under test, drives it through
:mod:`qnetstack.link.conformance.harness` and raises :class:`ClauseFailure` naming what
it saw. Most checks let hypothesis generate the scenario: request sequences
(who asks, when, how many pairs, type, basis, purpose, deadline, minimum
fidelity), loss patterns, herald fidelities, memory sizes and lifetimes, and
how long the layer above holds its qubits. Example counts are chosen so that
the whole suite runs in well under a minute on a laptop.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from qnetstack.entity.checks import check_responses, judge_runs, missing_methods, no_misuse, refuses_from_above, still_held
from qnetstack.entity.checks import failure as _fail
from qnetstack.entity.checks import raise_if_crashed as _no_crash
from qnetstack.entity.conformance import ClauseFailure, ImplementationError, NotApplicable, Suite, explore, none_or_integers, sampled
from qnetstack.link.conformance.harness import NODES, LinkConditions, LinkRun, ScriptedCreate, SentUp, run_link
from qnetstack.link.service import (
    CAP_LINK_ALPHA,
    CAP_LINK_ATOMIC,
    CAP_LINK_CANCEL,
    CAP_LINK_K,
    CAP_LINK_M,
    CAP_LINK_PRIORITY,
    CAP_LINK_R,
    CAP_LINK_RECV,
    LinkAck,
    LinkCancel,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    LinkOkMeasure,
    LinkRecv,
    LinkResponse,
    LinkStopRecv,
    RandomBasis,
    RequestType,
)
from qnetstack.physical.service import Basis, BellState, HeraldResult, InitQubit, QubitAllocated

__all__ = ["SUITE"]

SUITE = Suite(layer="link", spec="specs/link.md", reference="qnetstack.link.egp:SingleClickEgp")
SUITE.provides_clause("LINK-IMPL-1", any_of=(CAP_LINK_K, CAP_LINK_M, CAP_LINK_R))
SUITE.imports_clause("LINK-IMPL-2")
# Every check that asks for a run gets it from here: each distinct run (implementation,
# scenario, seed) is made once while the suite runs, however many checks judge it.
run_link = SUITE.share_runs(run_link)

GOODNESS_TOLERANCE = 0.01  # |goodness - true fidelity| allowed (LINK-OK-5)
EXAMPLES = 30  # hypothesis examples per property check: well under 1 s per check for the reference
_RESPONSE = TypeAdapter(LinkResponse)


# ---------------------------------------------------------------- shape


@SUITE.validator
def _validate(impl: Any) -> None:
    if not callable(impl):
        raise ImplementationError(f"{impl!r} is not a class or factory")
    missing = missing_methods(impl)
    if missing:
        raise ImplementationError(f"{getattr(impl, '__qualname__', impl)!r} does not implement the link service: no {', '.join(missing)}")
    if inspect.isclass(impl):
        try:
            inspect.signature(impl).bind(object())
        except TypeError:
            raise ImplementationError(f"{impl.__qualname__} cannot be built as {impl.__qualname__}(ctx)") from None


def _types(impl: Any) -> list[RequestType]:
    provides = getattr(impl, "PROVIDES", None)
    if provides is None:
        return [RequestType.K, RequestType.M]
    kinds = ((RequestType.K, CAP_LINK_K), (RequestType.M, CAP_LINK_M), (RequestType.R, CAP_LINK_R))
    return [t for t, cap in kinds if cap in provides]


def _require(impl: Any, capability: str, what: str) -> None:
    if capability not in (getattr(impl, "PROVIDES", None) or ()):
        raise NotApplicable(f"the implementation does not offer {what} (PROVIDES lacks {capability})")


def _require_type(impl: Any, kind: RequestType) -> None:
    if kind not in _types(impl):
        raise NotApplicable(f"the implementation does not provide type {kind.value} (PROVIDES lacks link:{kind.value})")


# ------------------------------------------------------------ scenarios

# Each strategy a scenario draws from is built once (the same draws, the same examples):
# hypothesis validates every new strategy object it is given, and building them anew in
# every scenario made that validation cost more than the draws and the simulated runs.
_LOSS = st.none() | st.lists(st.booleans(), max_size=10).map(tuple)
_FIDELITIES = st.lists(st.sampled_from([0.7, 0.8, 0.85, 0.9]), min_size=1, max_size=4)
_TAG = st.none() | st.integers(0, 5) | st.integers(0, 2**31 - 1)


@st.composite
def scenarios(
    draw: Any,
    types: tuple[RequestType, ...],
    live: bool = False,
    deadlines: bool = False,
    max_creates: int = 4,
) -> tuple[LinkConditions, list[ScriptedCreate], int]:
    """A random scenario: conditions, scripted CREATEs, and how long to run.

    ``live=True`` keeps to scenarios where every request can complete (some
    success probability, fresh pairs good enough): used by the liveness checks.
    ``deadlines=True`` gives every request a ``max_time_ns`` and keeps success
    rare, so that deadlines are reached: used by the timeout checks.
    """
    delay = draw(sampled(1_000, 10_000, 50_000))
    probabilities: tuple[float, ...]
    if live:
        probabilities = (0.2, 0.5, 1.0)
    elif deadlines:
        probabilities = (0.0, 0.02, 0.1)
    else:
        probabilities = (0.0, 0.1, 0.3, 1.0)
    probability = draw(sampled(*probabilities))
    loss = None if deadlines else draw(_LOSS)
    lifetime = draw(sampled(None, 30 * delay, 300 * delay))
    fidelities = tuple(draw(_FIDELITIES))
    conditions = LinkConditions(
        delay_ns=delay,
        success_probability=probability,
        loss_pattern=loss,
        capability_fidelity=0.9,
        herald_fidelities=fidelities,
        memory_lifetime_ns=lifetime,
        num_qubits=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        upper_hold_ns=draw(sampled(0, delay, 20 * delay)),
    )
    creates = []
    for _ in range(draw(st.integers(1, max_creates))):
        node = draw(sampled(*NODES))
        remote = NODES[1] if node == NODES[0] else NODES[0]
        request = LinkCreate(
            remote_node=remote,
            min_fidelity=0.0 if live else draw(sampled(0.0, 0.5, 0.8)),
            max_time_ns=(
                None if live else draw(st.integers(delay, 60 * delay)) if deadlines else draw(none_or_integers(delay, 60 * delay))
            ),
            purpose_id=draw(st.integers(0, 3)),
            number=draw(st.integers(1, 3)),
            type=draw(sampled(*types)),
            basis=draw(sampled(*Basis)),
        )
        creates.append(ScriptedCreate(at_ns=draw(st.integers(0, 10 * delay)), node=node, request=request))
    # Long enough for every live request: 12 pairs at p >= 0.2 need ~60 attempt periods
    # on average; 3000 periods leave no realistic chance of running out.
    horizon = max(c.at_ns for c in creates) + (3000 if live else 200) * delay
    return conditions, creates, horizon


@functools.cache
def _scenarios(types: tuple[RequestType, ...], deadlines: bool) -> st.SearchStrategy[tuple[LinkConditions, list[ScriptedCreate], int]]:
    """:func:`scenarios` built once per arguments, for the composites that draw from it."""
    return scenarios(types, deadlines=deadlines)


def _property(
    impl: Any,
    check: Callable[[LinkRun], None],
    *,
    live: bool = False,
    deadlines: bool = False,
    examples: int = EXAMPLES,
    types: tuple[RequestType, ...] | None = None,
) -> None:
    """Run ``check`` on the runs of ``examples`` generated scenarios (of ``types``:
    default, every type the implementation provides)."""
    types = tuple(_types(impl)) if types is None else types

    judge_runs(run_link, impl, scenarios(types, live=live, deadlines=deadlines), check, examples)


def _request_key(msg: Any) -> tuple[str, int]:
    return (msg.origin_node, msg.create_id)


def _accepted(run: LinkRun) -> dict[tuple[str, int], ScriptedCreate]:
    """Accepted requests by (origin node, create id)."""
    out = {}
    for up in run.up:
        if isinstance(up.msg, LinkAck) and up.cause[0] == "create":
            out[(up.node, up.msg.create_id)] = run.creates[up.cause[1]]  # type: ignore[index]
    return out


def _other(node: str) -> str:
    return NODES[1] if node == NODES[0] else NODES[0]


def _single(impl: Any, creates: list[ScriptedCreate], conditions: LinkConditions | None = None, until_ns: int = 2_000_000) -> LinkRun:
    run = run_link(impl, conditions or LinkConditions(), creates, until_ns=until_ns)
    _no_crash(run)
    return run


def _immediate(run: LinkRun, index: int) -> list[SentUp]:
    return [u for u in run.up if u.cause == ("create", index)]


# --------------------------------------------------------------- CREATE


@SUITE.clause("LINK-CREATE-1")
def create_answered_once(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        for index, create in enumerate(run.creates):
            if not isinstance(create.request, LinkCreate):
                continue
            answers = _immediate(run, index)
            if len(answers) != 1 or not isinstance(answers[0].msg, (LinkAck, LinkError)):
                raise ClauseFailure(
                    f"CREATE #{index} on {create.node} at t={create.at_ns} ns was answered while handling it by "
                    f"{[type(a.msg).__name__ for a in answers]}, expected exactly one LinkAck or LinkError"
                )

    _property(impl, check)


@SUITE.clause("LINK-CREATE-2")
def create_ids_distinct(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        for node in NODES:
            ids = [u.msg.create_id for u in run.up if u.node == node and u.cause[0] == "create"]
            if len(ids) != len(set(ids)):
                raise ClauseFailure(f"{node} gave create ids {ids} to its CREATEs: some repeat")

    _property(impl, check)


@SUITE.clause("LINK-CREATE-3")
def create_bad_remote(impl: Any) -> None:
    for remote in ("alice", "carol"):
        create = ScriptedCreate(0, "alice", LinkCreate(remote_node=remote, type=_types(impl)[0]))
        run = _single(impl, [create])
        answers = _immediate(run, 0)
        if len(answers) != 1 or not isinstance(answers[0].msg, LinkError) or answers[0].msg.code is not LinkErrorCode.CREATE:
            raise ClauseFailure(f"CREATE to remote_node={remote!r} on alice was answered {[a.msg for a in answers]}, expected ERR CREATE")
        if run.oks() or run.pairs:
            raise ClauseFailure(f"after refusing a CREATE to {remote!r}, pairs were still attempted or delivered")


@SUITE.clause("LINK-CREATE-4")
def create_unreachable_fidelity(impl: Any) -> None:
    conditions = LinkConditions(capability_fidelity=0.8)
    create = ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", min_fidelity=0.95, type=_types(impl)[0]))
    run = _single(impl, [create], conditions)
    answers = _immediate(run, 0)
    if len(answers) != 1 or not isinstance(answers[0].msg, LinkError) or answers[0].msg.code is not LinkErrorCode.UNSUPP:
        raise ClauseFailure(
            f"CREATE with min_fidelity 0.95 on a link whose capabilities give 0.8 was answered "
            f"{[a.msg for a in answers]}, expected ERR UNSUPP"
        )


@SUITE.clause("LINK-CREATE-5")
def create_without_memory(impl: Any) -> None:
    conditions = LinkConditions(num_qubits=(0, 2))
    for kind in _types(impl):
        run = _single(impl, [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", type=kind))], conditions)
        answers = _immediate(run, 0)
        if len(answers) != 1 or not isinstance(answers[0].msg, LinkError) or answers[0].msg.code is not LinkErrorCode.UNSUPP:
            raise ClauseFailure(
                f"type {kind.value} CREATE on a node with 0 qubits was answered {[a.msg for a in answers]}, expected ERR UNSUPP"
            )


@SUITE.clause("LINK-ACK-1")
def ack_echoes(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        for index, create in enumerate(run.creates):
            for up in _immediate(run, index):
                if isinstance(up.msg, LinkAck) and (
                    up.msg.remote_node != create.request.remote_node or up.msg.purpose_id != create.request.purpose_id
                ):
                    raise _fail(f"ACK of CREATE #{index} ({create.request!r}) does not echo remote_node/purpose_id", up)

    _property(impl, check)


# ---------------------------------------------------------- correlation


def _tagged(draw: Any, creates: list[ScriptedCreate]) -> list[ScriptedCreate]:
    """The scenario's CREATEs with tags (some null, some repeated: tags are the caller's own)."""
    tagged = []
    for create in creates:
        tag = draw(_TAG)
        tagged.append(ScriptedCreate(create.at_ns, create.node, create.request.model_copy(update={"tag": tag})))
    return tagged


@st.composite
def _tag_scenarios(draw: Any, types: tuple[RequestType, ...]) -> tuple[LinkConditions, list[ScriptedCreate], int]:
    """Generated scenarios whose requests end every way an ERR can end them:
    deadlines (TIMEOUT, and now and then EXPIRE), a CREATE to a non-neighbour
    (refused at once), and a purpose bob did not consent to (REJECTED by the
    responder) when the implementation serves consent."""
    conditions, creates, horizon = draw(_scenarios(types, deadlines=draw(st.booleans())))
    extra = [ScriptedCreate(draw(st.integers(0, 5 * conditions.delay_ns)), "alice", LinkCreate(remote_node="carol", type=types[0]))]
    if draw(st.booleans()):
        extra += [
            ScriptedCreate(0, "bob", LinkRecv(remote_node="alice", purpose_id=0)),
            ScriptedCreate(10, "alice", LinkCreate(remote_node="bob", purpose_id=9, type=types[0])),
        ]
    return conditions, _tagged(draw, creates + extra), horizon


def _tag_property(impl: Any, check: Callable[[LinkRun], None]) -> None:
    types = tuple(_types(impl))
    consent = CAP_LINK_RECV in (getattr(impl, "PROVIDES", None) or ())

    @explore(EXAMPLES)
    @given(scenario=_tag_scenarios(types), seed=st.integers(0, 2**16))
    def prop(scenario: tuple[LinkConditions, list[ScriptedCreate], int], seed: int) -> None:
        conditions, creates, horizon = scenario
        if not consent:
            creates = [c for c in creates if not isinstance(c.request, LinkRecv)]
        run = run_link(impl, conditions, creates, until_ns=horizon, seed=seed)
        _no_crash(run)
        check(run)

    prop()


@SUITE.clause("LINK-TAG-1", "at the origin the ACK and every ERR of a request carry its CREATE's tag")
def tag_echoed_at_origin(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        tags: dict[tuple[str, int], int | None] = {}  # (origin, create id) -> its CREATE's tag
        for up in run.up:
            msg = up.msg
            if up.cause[0] == "create" and isinstance(msg, (LinkAck, LinkError)):
                create = run.creates[up.cause[1]].request  # type: ignore[index]
                if msg.tag != create.tag:
                    raise _fail(f"the answer to a CREATE tagged {create.tag!r} carries tag {msg.tag!r}", up)
                tags[(up.node, msg.create_id)] = create.tag
            elif isinstance(msg, LinkError) and msg.origin_node == up.node:
                key = (up.node, msg.create_id)
                if key in tags and msg.tag != tags[key]:
                    raise _fail(f"an ERR {msg.code.value} of a request whose CREATE was tagged {tags[key]!r} carries tag {msg.tag!r}", up)

    _tag_property(impl, check)


@SUITE.clause("LINK-TAG-2", "at the responder every ERR carries tag null")
def tag_absent_at_responder(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        for up in run.errors():
            if up.msg.origin_node != up.node and up.msg.tag is not None:
                raise _fail(f"an ERR {up.msg.code.value} at the responder carries the origin's tag {up.msg.tag!r}", up)

    _tag_property(impl, check)


# ------------------------------------------------------------------- OK


@SUITE.clause("LINK-OK-1")
def ok_after_ack(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        acked: set[tuple[str, int]] = set()
        for up in run.up:
            if isinstance(up.msg, LinkAck):
                acked.add((up.node, up.msg.create_id))
            elif isinstance(up.msg, (LinkOkKeep, LinkOkMeasure, LinkError)) and up.msg.origin_node == up.node:
                if up.cause[0] != "create" and (up.node, up.msg.create_id) not in acked:
                    raise _fail("a message about a request reached the origin before the request's ACK", up)

    _property(impl, check)


@SUITE.clause("LINK-OK-2")
def ok_at_both_ends(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        slack = 2 * run.conditions.delay_ns
        by_node: dict[str, dict[Any, SentUp]] = {n: {} for n in NODES}
        for up in run.oks():
            by_node[up.node][up.msg.ent_id] = up
        for node in NODES:
            other = _other(node)
            for ent_id, up in by_node[node].items():
                twin = by_node[other].get(ent_id)
                if twin is None:
                    revoked = [
                        e
                        for e in run.errors(node)
                        if e.msg.code is LinkErrorCode.EXPIRE and e.msg.ent_id == ent_id and e.time_ns <= up.time_ns + slack
                    ]
                    if not revoked and up.time_ns + slack <= run.end_ns:
                        raise _fail(f"OK for pair {ent_id!r} was delivered at {node} but never at {other}", up)
                    continue
                if abs(twin.time_ns - up.time_ns) > slack:
                    raise _fail(f"the two OKs of {ent_id!r} are {abs(twin.time_ns - up.time_ns)} ns apart (> {slack})", up)
                mine, theirs = up.msg, twin.msg
                for name in ("create_id", "origin_node", "purpose_id", "bell_state"):
                    if getattr(mine, name) != getattr(theirs, name):
                        raise _fail(
                            f"the two OKs of {ent_id!r} disagree on {name}: "
                            f"{getattr(mine, name)!r} at {node}, {getattr(theirs, name)!r} at {other}",
                            up,
                        )
                if mine.remote_node != other:
                    raise _fail(f"OK at {node} names remote_node {mine.remote_node!r}, not {other!r}", up)

    _property(impl, check)


@SUITE.clause("LINK-OK-3")
def ok_ids_unique(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        for node in NODES:
            seen: set[Any] = set()
            for up in run.oks(node):
                ent = up.msg.ent_id
                if ent in seen:
                    raise _fail(f"{node} delivered two OKs with ent_id {ent!r}", up)
                seen.add(ent)
                other = _other(up.msg.origin_node)
                if ent.creator != up.msg.origin_node or ent.peer != other:
                    raise _fail(f"ent_id {ent!r} should be (creator={up.msg.origin_node!r}, peer={other!r}, ...)", up)

    _property(impl, check)


@SUITE.clause("LINK-OK-4")
def ok_right_pair(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        halves: dict[Any, dict[str, Any]] = {}
        for up in run.oks():
            msg = up.msg
            if isinstance(msg, LinkOkKeep):
                pair = run.pair_of(up.node, msg.handle, up.time_ns)
                if pair is None:
                    raise _fail(f"OK at {up.node} hands up qubit {msg.handle}, which no herald entangled", up)
            else:
                pair = _measured_pair(run, up)
                if pair is None:
                    raise _fail(f"type-M OK at {up.node} reports an outcome no heralded qubit of {up.node} gave", up)
            if msg.bell_state is not pair.bell_state:
                raise _fail(f"OK says {msg.bell_state.value} but the station heralded {pair.bell_state.value} for that pair", up)
            halves.setdefault(msg.ent_id, {})[up.node] = pair.sequence
        for ent_id, seqs in halves.items():
            if len(set(seqs.values())) > 1:
                raise ClauseFailure(f"the two OKs of {ent_id!r} name qubits of different heralded pairs {seqs}")

    _property(impl, check)


@SUITE.clause("LINK-OK-5")
def ok_goodness_honest(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        for up in run.oks():
            msg = up.msg
            pair = run.pair_of(up.node, msg.handle, up.time_ns) if isinstance(msg, LinkOkKeep) else _measured_pair(run, up)
            if pair is None:
                continue  # LINK-OK-4 reports it
            # type M carries no time of goodness: it is the herald time (specs/link.md, LINK-OK-5)
            time_ns = msg.goodness_time_ns if isinstance(msg, LinkOkKeep) else pair.herald_time_ns
            if time_ns > up.time_ns:
                raise _fail(f"goodness_time_ns {time_ns} is later than the OK itself", up)
            truth = pair.fidelity_at(time_ns)
            if abs(msg.goodness - truth) > GOODNESS_TOLERANCE:
                raise _fail(
                    f"goodness {msg.goodness:.4f} but the pair's true fidelity at t={time_ns} ns is {truth:.4f} "
                    f"(tolerance {GOODNESS_TOLERANCE})",
                    up,
                )

    _property(impl, check)


def _measured_pair(run: LinkRun, up: SentUp) -> Any:
    """The heralded pair a type-M OK reports on: of the pairs whose qubit at this
    node was measured (in the OK's basis, with its outcome) before the OK was
    sent and not yet reported by an earlier OK, the one measured last (in the
    order of the measurements, so that pairs measured at one instant, as with
    several attempts in flight, are told apart)."""
    attribution = getattr(run, "_m_attribution", None)
    if attribution is None:
        attribution = {}
        claimed: set[tuple[str, int]] = set()
        for index, other in enumerate(run.up):
            if not isinstance(other.msg, LinkOkMeasure):
                continue
            best = None
            for node, sequence in reversed(run.measure_log[: run.measures_before_up.get(index, 0)]):
                got = run.pairs[sequence].measured.get(node)
                if (
                    node == other.node
                    and (node, sequence) not in claimed
                    and got is not None
                    and (got[0], got[1]) == (other.msg.basis.value, other.msg.outcome)
                ):
                    best = run.pairs[sequence]
                    break
            if best is not None:
                claimed.add((other.node, best.sequence))
            attribution[id(other)] = best
        run._m_attribution = attribution  # type: ignore[attr-defined]
    return attribution.get(id(up))


@SUITE.clause("LINK-OK-6")
def ok_meets_min_fidelity(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        accepted = _accepted(run)
        for up in run.oks():
            create = accepted.get(_request_key(up.msg))
            if create is not None and up.msg.goodness < create.request.min_fidelity:
                raise _fail(f"goodness {up.msg.goodness} is below the request's min_fidelity {create.request.min_fidelity}", up)

    _property(impl, check)


@SUITE.clause("LINK-OK-7")
def ok_at_most_number(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        accepted = _accepted(run)
        for node in NODES:
            counts: dict[tuple[str, int], int] = {}
            for up in run.oks(node):
                key = _request_key(up.msg)
                counts[key] = counts.get(key, 0) + 1
                create = accepted.get(key)
                if create is not None and counts[key] > create.request.number:
                    raise _fail(f"request {key} asked for {create.request.number} pairs; {node} got OK number {counts[key]}", up)

    _property(impl, check)


@SUITE.clause("LINK-OK-8")
def ok_measure(impl: Any) -> None:
    _require_type(impl, RequestType.M)

    def check(run: LinkRun) -> None:
        accepted = _accepted(run)
        for up in run.oks():
            msg = up.msg
            create = accepted.get(_request_key(msg))
            if create is None:
                continue
            wanted = create.request.type
            if wanted is RequestType.R:
                continue  # LINK-R-1
            if wanted is RequestType.M and not isinstance(msg, LinkOkMeasure):
                raise _fail("a type-M request got an OK that is not LinkOkMeasure", up)
            if wanted is RequestType.K and not isinstance(msg, LinkOkKeep):
                raise _fail("a type-K request got an OK that is not LinkOkKeep", up)
            if isinstance(msg, LinkOkMeasure):
                if up.node == msg.origin_node and create.request.random_basis is RandomBasis.NONE and msg.basis is not create.request.basis:
                    raise _fail(f"the request asked basis {create.request.basis.value}, the OK reports {msg.basis.value}", up)
                if _measured_pair(run, up) is None:
                    raise _fail("no heralded qubit of this node was measured with this basis and outcome before the OK", up)

    _property(impl, check)


# -------------------------------------------------------- errors, ending


@SUITE.clause("LINK-TIMEOUT-1")
def timeout_in_time(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        slack = 2 * run.conditions.delay_ns
        accepted = _accepted(run)
        for key, create in accepted.items():
            max_time = create.request.max_time_ns
            if max_time is None:
                continue
            deadline = create.at_ns + max_time
            if deadline + slack > run.end_ns:
                continue  # the run ended too soon to judge
            for node in NODES:
                oks = [u for u in run.oks(node) if _request_key(u.msg) == key]
                errs = [u for u in run.errors(node) if _request_key(u.msg) == key]
                if len(oks) >= create.request.number:
                    continue
                timeouts = [u for u in errs if u.msg.code is LinkErrorCode.TIMEOUT]
                if not errs:
                    raise ClauseFailure(
                        f"request {key} (max_time_ns={max_time}, CREATE at t={create.at_ns}) had {len(oks)} of "
                        f"{create.request.number} pairs at {node} and no ERR by t={deadline + slack}"
                    )
                if timeouts:
                    first = timeouts[0]
                    if first.time_ns > deadline + slack:
                        raise _fail(f"ERR TIMEOUT came after max_time + {slack} ns (deadline t={deadline})", first)
                    if node == create.node and first.time_ns < deadline:
                        raise _fail(f"ERR TIMEOUT at the origin before max_time ran out (deadline t={deadline})", first)

    _property(impl, check, deadlines=True)


@SUITE.clause("LINK-ERR-1")
def nothing_after_error(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        ended: set[tuple[str, tuple[str, int]]] = set()
        for up in run.up:
            if isinstance(up.msg, LinkError):
                ended.add((up.node, _request_key(up.msg)))
            elif isinstance(up.msg, (LinkOkKeep, LinkOkMeasure)) and (up.node, _request_key(up.msg)) in ended:
                raise _fail("an OK followed the ERR that ended its request", up)

    _property(impl, check)


@SUITE.clause("LINK-END-1")
def every_request_ends(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        for key, create, node, oks in _still_open(run):
            raise ClauseFailure(
                f"request {key} ({create.request.number} pairs, CREATE at t={create.at_ns}) still open at {node} "
                f"after {run.end_ns - create.at_ns} ns with {oks} OKs, success probability "
                f"{run.conditions.success_probability}, {run.conditions.num_qubits} qubits"
            )

    _property(impl, check, live=True, examples=12)


PEER_LOSS = 0.2  # of the messages between the two link entities, in the lossy-network check (LINK-REL-1)


def _takes_reliable(impl: Any) -> bool:
    """Whether the implementation can be built with ``reliable=True`` (by name or ``**kwargs``)."""
    try:
        parameters = inspect.signature(impl).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "reliable" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


@functools.cache
def _lossy_scenarios(types: tuple[RequestType, ...]) -> st.SearchStrategy[tuple[LinkConditions, list[ScriptedCreate], int]]:
    """The live scenarios of LINK-END-1 on a classical channel that loses ``PEER_LOSS`` of the messages."""
    return scenarios(types, live=True).map(
        lambda drawn: (dataclasses.replace(drawn[0], peer_loss_probability=PEER_LOSS), drawn[1], drawn[2])
    )


@SUITE.clause("LINK-REL-1")
def survives_lost_peer_messages(impl: Any) -> None:
    if not _takes_reliable(impl):
        raise NotApplicable("the implementation takes no reliable argument (scenario link.reliable)")
    reliable = functools.partial(impl, reliable=True)

    def check(run: LinkRun) -> None:
        for key, create, node, oks in _still_open(run):
            raise ClauseFailure(
                f"with {run.peer_lost} of the link entities' messages lost: request {key} ({create.request.number} pairs, "
                f"CREATE at t={create.at_ns}) still open at {node} after {run.end_ns - create.at_ns} ns with {oks} OKs"
            )
        sent = {(t, node, a.attempt_id) for t, node, a in run.attempts}
        for t, node, attempt_id in sorted(sent):
            if (t, _other(node), attempt_id) not in sent:
                raise ClauseFailure(
                    f"with {run.peer_lost} messages lost: t={t} ns: {node} sent attempt {attempt_id} and {_other(node)} "
                    "sent none with that id (the ends are out of step)"
                )
        last = max([u.time_ns for u in run.up] + [c.at_ns for c in run.creates])
        if run.end_ns - last >= 2 * run.conditions.delay_ns:  # the heralds of the last attempts have come
            for node, leaked in still_held(run.held_at_end, "link").items():
                raise ClauseFailure(f"with {run.peer_lost} messages lost: every request ended, yet {node}'s link layer holds {leaked}")

    judge_runs(run_link, reliable, _lossy_scenarios(tuple(_types(impl))), check, 12)


# ------------------------------------------------------------- resources


@SUITE.clause("LINK-RES-1")
def no_leaked_qubits(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        if next(_still_open(run), None) is not None:
            return  # an open request may hold qubits legitimately
        last = max([u.time_ns for u in run.up] + [c.at_ns for c in run.creates])
        if run.end_ns - last < 2 * run.conditions.delay_ns:
            return  # heralds of the last attempts may still be in flight
        for node, leaked in still_held(run.held_at_end, "link").items():
            raise ClauseFailure(
                f"all requests ended by t={last} ns, yet at t={run.end_ns} ns {node}'s link layer still holds "
                f"qubits {leaked} it never handed up or freed"
            )

    _property(impl, check)


def _still_open(run: LinkRun) -> Iterator[tuple[tuple[str, int], ScriptedCreate, str, int]]:
    """Each accepted request, with a node at which it has not ended (neither all
    its pairs nor an ERR) and the number of OKs it got there."""
    for key, create in _accepted(run).items():
        for node in NODES:
            oks = [u for u in run.oks(node) if _request_key(u.msg) == key]
            if len(oks) < create.request.number and not any(_request_key(u.msg) == key for u in run.errors(node)):
                yield key, create, node, len(oks)


@SUITE.clause("LINK-RES-2")
def only_own_qubits(impl: Any) -> None:
    _property(impl, no_misuse)


# ------------------------------------------------------------- sessions


class _TraceTap:
    """An entity's context that also keeps what the entity traces."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self.events: list[tuple[str, dict[str, Any]]] = []

    def trace(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))
        self._ctx.trace(event, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


STRAY_ATTEMPT_ID = 10**9  # far above any attempt id a run of the suite reaches


@SUITE.clause(
    "LINK-SESS-1", "a herald for an attempt not in flight is dropped: no error, nothing changed, qubit freed, traced unknown_session"
)
def unknown_herald_dropped(impl: Any) -> None:
    """The generated scenario is run twice with the same seed: as it is, and
    with stray heralds (successes with a freshly allocated qubit, and
    failures) delivered to both ends at odd instants, for attempt ids that
    were never sent down. Each must be dropped on the spot (nothing sent, the
    qubit freed, ``unknown_session`` traced) and the run must otherwise be the
    same, message for message and attempt for attempt."""
    from qnetstack.link.conformance.harness import LinkHarness

    def stray_run(conditions: LinkConditions, creates: list[ScriptedCreate], horizon: int, seed: int) -> LinkRun:
        taps: dict[str, _TraceTap] = {}

        def tapped(ctx: Any) -> Any:
            taps[ctx.node] = _TraceTap(ctx)
            return impl(taps[ctx.node])

        harness = LinkHarness(tapped, conditions, creates, seed)
        physical = harness.physical
        findings: list[str] = []

        def inject(node: str, index: int, success: bool) -> None:
            now = harness.kernel.now_ns
            handle = None
            if success:
                allocated = physical.execute(node, InitQubit())
                if not isinstance(allocated, QubitAllocated):
                    return  # the memory is full: no qubit to herald
                handle = allocated.handle
            stray = HeraldResult(
                neighbour=_other(node),
                attempt_id=STRAY_ATTEMPT_ID + index,
                success=success,
                handle=handle,
                bell_state=BellState.PSI_PLUS if success else None,
                herald_sequence=STRAY_ATTEMPT_ID + index if success else None,
                fidelity_estimate=0.9 if success else None,
                herald_time_ns=now if success else None,
            )
            counts = (len(harness.up), len(physical.attempts), len(physical.misuse))
            traced = len(taps[node].events)
            try:
                harness.entities[node].handle_below(stray)
            except Exception as exc:  # noqa: BLE001 - any exception is the finding
                findings.append(f"t={now} {node}: a stray herald (attempt {stray.attempt_id}) raised {type(exc).__name__}: {exc}")
                return
            if (len(harness.up), len(physical.attempts), len(physical.misuse)) != counts:
                findings.append(f"t={now} {node}: a stray herald (attempt {stray.attempt_id}) made the link layer send or do something")
            if handle is not None and physical.book[node].get(handle) == "link":
                findings.append(f"t={now} {node}: the qubit {handle} of a stray successful herald was not freed at once")
            if not any(event == "unknown_session" for event, _ in taps[node].events[traced:]):
                findings.append(f"t={now} {node}: a stray herald (attempt {stray.attempt_id}) was not traced as unknown_session")

        step = conditions.delay_ns * 7 + 13  # odd instants: nothing else happens then
        for index in range(12):
            harness.kernel.schedule(17 + index * step, inject, NODES[index % 2], index, index % 3 != 2)
        run = harness.run(horizon)
        if findings:
            raise ClauseFailure("; ".join(findings[:3]))
        return run

    @explore(EXAMPLES // 2)
    @given(scenario=scenarios(tuple(_types(impl))), seed=st.integers(0, 2**16))
    def prop(scenario: tuple[LinkConditions, list[ScriptedCreate], int], seed: int) -> None:
        conditions, creates, horizon = scenario
        plain = run_link(impl, conditions, creates, until_ns=horizon, seed=seed)
        _no_crash(plain)
        strayed = stray_run(conditions, creates, horizon, seed)
        _no_crash(strayed)
        seen = [(u.time_ns, u.node, u.msg) for u in strayed.up]
        if seen != [(u.time_ns, u.node, u.msg) for u in plain.up]:
            raise ClauseFailure("with stray heralds dropped, the messages sent up differ from the same run without them")
        if strayed.attempts != plain.attempts:
            raise ClauseFailure("with stray heralds dropped, the attempts sent down differ from the same run without them")

    prop()


# --------------------------------------------------------------- messages


@SUITE.clause("LINK-MSG-1")
def responses_valid(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        check_responses(run.up, (LinkAck, LinkOkKeep, LinkOkMeasure, LinkError), _RESPONSE, "a link-service response")

    _property(impl, check)


@SUITE.clause("LINK-MSG-2")
def foreign_input_refused(impl: Any) -> None:
    from qnetstack.link.conformance.harness import LinkHarness

    entity = LinkHarness(impl, LinkConditions(), []).entities["alice"]
    entity.start()
    refuses_from_above(entity, "CREATE please")


# ------------------------------------------------------------ the full service


def _ok_ups(run: LinkRun, node: str, key: tuple[str, int] | None = None) -> list[SentUp]:
    return [u for u in run.oks(node) if key is None or _request_key(u.msg) == key]


def _key_of(run: LinkRun, index: int) -> tuple[str, int] | None:
    """(origin, create id) of the i-th scripted CREATE if it was accepted."""
    for up in _immediate(run, index):
        if isinstance(up.msg, LinkAck):
            return (run.creates[index].node, up.msg.create_id)
    return None


def _answer(run: LinkRun, index: int, within_ns: int) -> Any:
    """The ERR that ended the i-th CREATE at its origin within ``within_ns``, or None."""
    create = run.creates[index]
    for up in _immediate(run, index):
        if isinstance(up.msg, LinkError):
            return up.msg
    key = _key_of(run, index)
    for up in run.errors(create.node):
        if _request_key(up.msg) == key and up.time_ns <= create.at_ns + within_ns:
            return up.msg
    return None


@SUITE.clause("LINK-R-1")
def remote_state_preparation(impl: Any) -> None:
    _require(impl, CAP_LINK_R, "type R")

    def check(run: LinkRun) -> None:
        accepted = _accepted(run)
        for up in run.oks():
            create = accepted.get(_request_key(up.msg))
            if create is None or create.request.type is not RequestType.R:
                continue
            msg = up.msg
            if up.node == msg.origin_node:
                if not isinstance(msg, LinkOkMeasure) or msg.basis is not create.request.basis:
                    raise _fail(f"type R at the origin must be a LinkOkMeasure in basis {create.request.basis.value}", up)
                if _measured_pair(run, up) is None:
                    raise _fail("no heralded qubit of the origin was measured with this basis and outcome before the OK", up)
            else:
                if not isinstance(msg, LinkOkKeep):
                    raise _fail("type R at the responder must be a LinkOkKeep", up)
                pair = run.pair_of(up.node, msg.handle, up.time_ns)
                if pair is None or up.node in pair.measured and pair.measured[up.node][2] <= up.time_ns:
                    raise _fail("the responder's qubit of a type-R pair was not handed up unmeasured", up)

    _property(impl, check, types=(RequestType.R,), examples=15)


@SUITE.clause("LINK-BASIS-1")
def random_bases(impl: Any) -> None:
    _require_type(impl, RequestType.M)
    # 40 pairs: a basis of a 3-set is missed with probability <= 3 (2/3)^40 < 1e-6, and
    # the two ends agree on every pair with probability (1/3)^40 if drawn independently.
    conditions = LinkConditions(delay_ns=1_000, success_probability=1.0, num_qubits=(2, 2))
    request = LinkCreate(remote_node="bob", type=RequestType.M, number=40, random_basis=RandomBasis.XZ, remote_random_basis=RandomBasis.XYZ)
    run = _single(impl, [ScriptedCreate(0, "alice", request)], conditions, until_ns=400_000)
    sets = {"alice": {Basis.X, Basis.Z}, "bob": {Basis.X, Basis.Y, Basis.Z}}
    bases: dict[str, dict[Any, Basis]] = {}
    for node, allowed in sets.items():
        oks = _ok_ups(run, node)
        if len(oks) != 40:
            raise ClauseFailure(f"a 40-pair type-M request on a lossless link gave {len(oks)} OKs at {node}")
        bases[node] = {u.msg.ent_id: u.msg.basis for u in oks}
        used = set(bases[node].values())
        if not used <= allowed or used != allowed:
            raise ClauseFailure(
                f"{node} drew bases {sorted(b.value for b in used)} over 40 pairs from the set {sorted(b.value for b in allowed)}"
            )
        for up in oks:
            if _measured_pair(run, up) is None:
                raise _fail("the OK's basis and outcome are not those of a measurement of the pair's qubit", up)
    if all(bases["alice"][e] is bases["bob"].get(e) for e in bases["alice"]):
        raise ClauseFailure("the two ends used the same basis for all 40 pairs: the draws are not independent")
    fixed = LinkCreate(remote_node="bob", type=RequestType.M, number=3, basis=Basis.X, remote_basis=Basis.Y)
    run = _single(impl, [ScriptedCreate(0, "alice", fixed)], conditions)
    for node, wanted in (("alice", Basis.X), ("bob", Basis.Y)):
        got = {u.msg.basis for u in _ok_ups(run, node)}
        if got != {wanted}:
            raise ClauseFailure(f"basis=X, remote_basis=Y: {node} measured in {sorted(b.value for b in got)}, expected {wanted.value}")
    # CHSH: the origin draws from {Z, X}, the responder from {ZX_PLUS, ZX_MINUS}; an
    # implementation may refuse it with UNSUPP. 40 pairs miss a basis of a 2-set
    # with probability <= 2 (1/2)^40 < 1e-11.
    chsh = LinkCreate(remote_node="bob", type=RequestType.M, number=40, random_basis=RandomBasis.CHSH, remote_random_basis=RandomBasis.CHSH)
    run = _single(impl, [ScriptedCreate(0, "alice", chsh)], conditions, until_ns=400_000)
    refusal = _answer(run, 0, 4 * conditions.delay_ns)
    if refusal is not None:
        if refusal.code is not LinkErrorCode.UNSUPP:
            raise ClauseFailure(f"a CHSH request was answered {refusal!r}: serve it or refuse it with UNSUPP")
        return
    for node, allowed in (("alice", {Basis.Z, Basis.X}), ("bob", {Basis.ZX_PLUS, Basis.ZX_MINUS})):
        oks = _ok_ups(run, node)
        used = {u.msg.basis for u in oks}
        if len(oks) != 40 or used != allowed:
            raise ClauseFailure(
                f"random_basis=remote_random_basis=CHSH, 40 pairs: {node} got {len(oks)} OKs in bases "
                f"{sorted(b.value for b in used)}, expected 40 drawn from {sorted(b.value for b in allowed)}"
            )
        for up in oks:
            if _measured_pair(run, up) is None:
                raise _fail("the OK's basis and outcome are not those of a measurement of the pair's qubit", up)


@SUITE.clause("LINK-ALPHA-1")
def operating_point(impl: Any) -> None:
    _require(impl, CAP_LINK_ALPHA, "the choice of the single-click operating point")
    settings = ((0.05, 0.1, 0.93), (0.1, 0.2, 0.88), (0.2, 0.4, 0.78))
    conditions = LinkConditions(delay_ns=1_000, capability_fidelity=0.88, alpha_settings=settings, num_qubits=(2, 2))
    for min_fidelity, alpha in ((0.9, 0.05), (0.85, 0.1), (0.5, 0.2)):
        request = LinkCreate(remote_node="bob", min_fidelity=min_fidelity, number=2, type=_types(impl)[0])
        run = _single(impl, [ScriptedCreate(0, "alice", request)], conditions)
        used = {(node, a.bright_state_population) for _, node, a in run.attempts}
        if used != {("alice", alpha), ("bob", alpha)}:
            raise ClauseFailure(
                f"min_fidelity {min_fidelity} with settings {settings}: attempts used {sorted(used)}, expected α={alpha} at both ends"
            )
    run = _single(impl, [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", min_fidelity=0.95, type=_types(impl)[0]))], conditions)
    err = _answer(run, 0, 0)
    if err is None or err.code is not LinkErrorCode.UNSUPP:
        raise ClauseFailure(f"min_fidelity 0.95, no setting above 0.93: answered {err!r}, expected ERR UNSUPP")


@SUITE.clause("LINK-PRIO-1")
def priority_first(impl: Any) -> None:
    _require(impl, CAP_LINK_PRIORITY, "priorities")
    kind = _types(impl)[0]
    conditions = LinkConditions(delay_ns=1_000, success_probability=1.0, num_qubits=(4, 4))
    low = LinkCreate(remote_node="bob", priority=3, number=3, type=kind)
    high = LinkCreate(remote_node="bob", priority=0, number=3, type=kind)
    run = _single(impl, [ScriptedCreate(0, "alice", low), ScriptedCreate(0, "alice", high)], conditions)
    for node in NODES:
        order = [0 if _request_key(u.msg) == _key_of(run, 1) else 3 for u in _ok_ups(run, node)]
        if order != [0, 0, 0, 3, 3, 3]:
            raise ClauseFailure(f"priority 3 and 0 requests made together, lossless link: {node} got pairs in priority order {order}")
    # a higher-priority request arriving later: at most the run in flight still goes to the lower one
    conditions = LinkConditions(delay_ns=1_000, success_probability=0.3, num_qubits=(4, 4))
    for seed in range(3):
        low = LinkCreate(remote_node="bob", priority=2, number=20, type=kind)
        high = LinkCreate(remote_node="bob", priority=1, number=2, type=kind)
        run = run_link(impl, conditions, [ScriptedCreate(0, "alice", low), ScriptedCreate(10_000, "alice", high)], 2_000_000, seed)
        _no_crash(run)
        high_key, low_key = _key_of(run, 1), _key_of(run, 0)
        for node in NODES:
            highs = _ok_ups(run, node, high_key)
            if len(highs) != 2:
                raise ClauseFailure(f"the priority-1 request got {len(highs)} of 2 pairs at {node}")
            # both ends know of a request one round trip after its CREATE at the latest
            between = [u for u in _ok_ups(run, node, low_key) if 10_000 + 2 * conditions.delay_ns + 1 < u.time_ns < highs[-1].time_ns]
            if len(between) > 1:
                raise _fail(f"{len(between)} pairs went to a priority-2 request while a priority-1 request was waiting", between[1])


@SUITE.clause("LINK-FAIR-1")
def round_robin(impl: Any) -> None:
    _require(impl, CAP_LINK_PRIORITY, "fair sharing")
    kind = _types(impl)[0]
    conditions = LinkConditions(delay_ns=1_000, success_probability=1.0, num_qubits=(4, 4))
    creates = [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", purpose_id=p, number=3, type=kind)) for p in (1, 2, 3)]
    run = _single(impl, creates, conditions)
    for node in NODES:
        order = [u.msg.purpose_id for u in _ok_ups(run, node)]
        if (
            sorted(order) != [1, 1, 1, 2, 2, 2, 3, 3, 3]
            or any(order[i] == order[i + 1] for i in range(len(order) - 1))
            or len(set(order[:3])) != 3
        ):
            raise ClauseFailure(f"three equal-priority requests of 3 pairs each, lossless link: {node} got pairs for purposes {order}")


@SUITE.clause("LINK-CONSEC-1")
def consecutive(impl: Any) -> None:
    _require(impl, CAP_LINK_PRIORITY, "the consecutive flag")
    kind = _types(impl)[0]
    # the first 6 attempts fail, then alternate: the first request has started when the others arrive
    pattern = (False,) * 6 + (True, False, True, False, True) + (True,) * 10
    conditions = LinkConditions(delay_ns=1_000, success_probability=1.0, loss_pattern=pattern, num_qubits=(4, 4))
    creates = [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", purpose_id=1, number=3, priority=3, consecutive=True, type=kind)),
        ScriptedCreate(5_000, "alice", LinkCreate(remote_node="bob", purpose_id=2, number=2, priority=0, type=kind)),
        ScriptedCreate(5_000, "bob", LinkCreate(remote_node="alice", purpose_id=3, number=2, priority=3, type=kind)),
    ]
    run = _single(impl, creates, conditions)
    for node in NODES:
        order = [u.msg.purpose_id for u in _ok_ups(run, node)]
        if order[:3] != [1, 1, 1] or sorted(order[3:]) != [2, 2, 3, 3]:
            raise ClauseFailure(f"a consecutive request (purpose 1) that had started was interleaved with later ones at {node}: {order}")


@SUITE.clause("LINK-MUX-1")
def attempts_in_step(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        sent = {(t, node, a.attempt_id): a for t, node, a in run.attempts}
        for (t, node, attempt_id), attempt in sent.items():
            twin = sent.get((t, _other(node), attempt_id))
            if twin is None:
                raise ClauseFailure(f"t={t} ns: {node} sent attempt {attempt_id} and {_other(node)} sent no attempt with that id")
            if (twin.max_attempts, twin.bright_state_population) != (attempt.max_attempts, attempt.bright_state_population):
                raise ClauseFailure(
                    f"t={t} ns: the two ends sent attempt {attempt_id} with different max_attempts or bright_state_population"
                )
        answered: dict[tuple[str, int], list[int]] = {}  # (node, attempt id) -> times of its results
        for t, node, result in run.results:
            answered.setdefault((node, result.attempt_id), []).append(t)
        last: dict[tuple[str, int], int] = {}
        for t, node, attempt in sorted(run.attempts, key=lambda x: x[0]):
            key = (node, attempt.attempt_id)
            before = last.get(key)
            if before is not None and not any(before <= s <= t for s in answered.get(key, ())):
                raise ClauseFailure(
                    f"t={t} ns: {node} sent attempt id {attempt.attempt_id} again while the one of t={before} ns was in flight"
                )
            last[key] = t

    # live scenarios (no deadlines, no minimum fidelity): the ends of an implementation that
    # breaks another clause (reports or ends requests differently) may legitimately drift apart
    _property(impl, check, live=True, examples=20)


@SUITE.clause("LINK-ATOMIC-1")
def atomic_all_or_nothing(impl: Any) -> None:
    _require(impl, CAP_LINK_ATOMIC, "the atomic flag")
    for seed in range(3):
        conditions = LinkConditions(delay_ns=1_000, success_probability=0.3, num_qubits=(3, 3), upper_hold_ns=50_000)
        creates = [
            ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=3, atomic=True)),
            ScriptedCreate(0, "bob", LinkCreate(remote_node="alice", number=1, type=_types(impl)[0], purpose_id=5)),
        ]
        run = run_link(impl, conditions, creates, 3_000_000, seed)
        _no_crash(run)
        key = _key_of(run, 0)
        for node in NODES:
            oks = _ok_ups(run, node, key)
            if len(oks) != 3 or len({u.time_ns for u in oks}) != 1 or len({u.msg.handle for u in oks}) != 3:
                raise ClauseFailure(
                    f"atomic request for 3 pairs: {node} got {len(oks)} OKs at times {[u.time_ns for u in oks]} "
                    f"with handles {[getattr(u.msg, 'handle', None) for u in oks]}"
                )
            for up in oks:
                pair = run.pair_of(node, up.msg.handle, up.time_ns)
                if pair is None or any(t <= up.time_ns for _, _, t in pair.measured.values()):
                    raise _fail("an atomic OK hands up a qubit whose pair no longer exists", up)
        # rare successes and a short deadline: no OK at all, the held pairs are freed
        conditions = LinkConditions(delay_ns=1_000, success_probability=0.15, num_qubits=(3, 3))
        run = run_link(
            impl,
            conditions,
            [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=3, atomic=True, max_time_ns=12_000))],
            200_000,
            seed,
        )
        _no_crash(run)
        for node in NODES:
            if run.oks(node) and len(run.oks(node)) != 3:
                raise ClauseFailure(f"an atomic request for 3 pairs delivered {len(run.oks(node))} at {node}")
            if not run.oks(node) and not run.errors(node):
                raise ClauseFailure(f"an atomic request that got no OK at {node} did not end with an ERR")
            leaked = sorted(h for h, owner in run.held_at_end[node].items() if owner == "link")
            if leaked:
                raise ClauseFailure(f"after an atomic request ended without OKs, {node}'s link layer still holds qubits {leaked}")


@SUITE.clause("LINK-ATOMIC-2")
def atomic_unservable(impl: Any) -> None:
    _require(impl, CAP_LINK_ATOMIC, "the atomic flag")
    conditions = LinkConditions(delay_ns=1_000, num_qubits=(2, 4))
    cases = [("alice", "bob", RequestType.K), ("bob", "alice", RequestType.K)]
    if RequestType.M in _types(impl):
        cases.append(("alice", "bob", RequestType.M))
    for origin, remote, kind in cases:
        number = 3 if kind is RequestType.K else 1
        run = _single(impl, [ScriptedCreate(0, origin, LinkCreate(remote_node=remote, number=number, atomic=True, type=kind))], conditions)
        err = _answer(run, 0, 2 * conditions.delay_ns + 1)
        if err is None or err.code is not LinkErrorCode.UNSUPP or run.oks():
            raise ClauseFailure(
                f"atomic type-{kind.value} CREATE for {number} pairs from {origin} (qubits alice 2, bob 4): answered {err!r}, expected ERR UNSUPP"
            )


@SUITE.clause("LINK-NORES-1")
def atomic_no_resources(impl: Any) -> None:
    _require(impl, CAP_LINK_ATOMIC, "the atomic flag")
    conditions = LinkConditions(delay_ns=1_000, success_probability=0.0, num_qubits=(4, 3))
    holding = ScriptedCreate(0, "bob", LinkCreate(remote_node="alice", number=2, atomic=True))
    plain = ScriptedCreate(5_000, "alice", LinkCreate(remote_node="bob", number=2, type=_types(impl)[0], max_time_ns=50_000))
    for origin, index in (("alice", 2), ("bob", 2)):  # alice: bob (the responder) lacks qubits; bob: itself
        second = ScriptedCreate(5_000, origin, LinkCreate(remote_node=_other(origin), number=2, atomic=True))
        run = _single(impl, [holding, plain, second], conditions)
        err = _answer(run, index, 2 * conditions.delay_ns + 1)
        if err is None or err.code is not LinkErrorCode.NORES:
            raise ClauseFailure(
                f"a second atomic CREATE for 2 pairs from {origin} while 2 of bob's 3 qubits are reserved: answered {err!r}, expected ERR NORES"
            )
        if any(e.msg.code is LinkErrorCode.NORES for e in run.errors() if _request_key(e.msg) == _key_of(run, 1)):
            raise ClauseFailure("a request that is not atomic got ERR NORES")


@SUITE.clause("LINK-RECV-1")
def consent(impl: Any) -> None:
    _require(impl, CAP_LINK_RECV, "RECV / STOP_RECV")
    kind = _types(impl)[0]
    delay = 1_000
    conditions = LinkConditions(delay_ns=delay, success_probability=1.0, num_qubits=(4, 4))
    creates = [
        ScriptedCreate(0, "bob", LinkRecv(remote_node="alice", purpose_id=1)),
        ScriptedCreate(0, "bob", LinkRecv(remote_node=None, purpose_id=3)),
        ScriptedCreate(10, "alice", LinkCreate(remote_node="bob", purpose_id=1, type=kind)),
        ScriptedCreate(10, "alice", LinkCreate(remote_node="bob", purpose_id=2, type=kind)),
        ScriptedCreate(10, "alice", LinkCreate(remote_node="bob", purpose_id=3, type=kind)),
        ScriptedCreate(20 * delay, "bob", LinkStopRecv(remote_node="alice", purpose_id=1)),
        ScriptedCreate(30 * delay, "alice", LinkCreate(remote_node="bob", purpose_id=1, type=kind)),
    ]
    run = _single(impl, creates, conditions)
    for index, served in ((2, True), (3, False), (4, True), (6, False)):
        key = _key_of(run, index)
        purpose = creates[index].request.purpose_id
        oks = [u for u in run.oks() if _request_key(u.msg) == key]
        if served and len(oks) != 2:
            raise ClauseFailure(f"a CREATE for consented purpose {purpose} (CREATE #{index}) got {len(oks)} OKs over both ends, expected 2")
        if not served:
            err = _answer(run, index, 2 * delay + 1)
            if err is None or err.code is not LinkErrorCode.REJECTED or oks:
                raise ClauseFailure(
                    f"CREATE #{index} for purpose {purpose} without consent: answered {err!r} with {len(oks)} OKs, expected ERR REJECTED within one round trip"
                )


@SUITE.clause("LINK-RECV-2")
def consent_opt_in(impl: Any) -> None:
    _require(impl, CAP_LINK_RECV, "RECV / STOP_RECV")
    conditions = LinkConditions(delay_ns=1_000, success_probability=1.0)
    run = _single(impl, [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", purpose_id=65535, type=_types(impl)[0]))], conditions)
    if len(run.oks("alice")) != 1 or len(run.oks("bob")) != 1:
        raise ClauseFailure(f"without any RECV at bob, a CREATE for purpose 65535 got {len(run.oks())} OKs, expected one at each end")


@SUITE.clause("LINK-EXPIRE-1")
def expire_names_a_lost_pair(impl: Any) -> None:
    def check(run: LinkRun) -> None:
        for up in run.errors():
            if up.msg.code is not LinkErrorCode.EXPIRE:
                continue
            earlier = [o for o in run.oks(up.node) if o.msg.ent_id == up.msg.ent_id and o.time_ns <= up.time_ns]
            if up.msg.ent_id is None or not earlier or _request_key(earlier[0].msg) != _request_key(up.msg):
                raise _fail("EXPIRE does not name a pair of that request reported earlier at this node", up)
            if any(o.msg.ent_id == up.msg.ent_id for o in run.oks(_other(up.node))):
                raise _fail("EXPIRE revokes a pair that the other end reported too", up)

    _property(impl, check, deadlines=True)


# --------------------------------------------------------------- cancel

CANCEL_TAG = 1  # the tag of the request a cancel scenario withdraws


@st.composite
def _cancel_scenarios(draw: Any, types: tuple[RequestType, ...]) -> tuple[LinkConditions, list[ScriptedCreate], int]:
    """One request (tag 1) withdrawn at a drawn time: before its start, while it runs or after
    it ended; sometimes with a second request on the link that is not withdrawn."""
    delay = draw(sampled(1_000, 10_000))
    conditions = LinkConditions(
        delay_ns=delay,
        success_probability=draw(sampled(0.1, 0.3, 1.0)),
        num_qubits=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        upper_hold_ns=draw(sampled(0, delay, 20 * delay)),
    )
    kind = draw(sampled(*types))
    origin = draw(sampled(*NODES))
    withdrawn = LinkCreate(
        remote_node=_other(origin),
        number=draw(st.integers(1, 30)),
        type=kind,
        tag=CANCEL_TAG,
        max_time_ns=draw(none_or_integers(delay, 100 * delay)),
    )
    creates = [ScriptedCreate(0, origin, withdrawn)]
    if draw(st.booleans()):
        node = draw(sampled(*NODES))
        creates.append(
            ScriptedCreate(draw(st.integers(0, 10 * delay)), node, LinkCreate(remote_node=_other(node), number=2, type=kind, tag=2))
        )
    cancel_at = draw(st.integers(0, 80 * delay))
    creates.append(ScriptedCreate(cancel_at, origin, LinkCancel(tag=CANCEL_TAG)))
    return conditions, creates, cancel_at + 3000 * delay


def _cancel_property(impl: Any, check: Callable[[LinkRun, int, tuple[str, int], bool], None]) -> None:
    """Judge ``check(run, cancel time, key of the withdrawn request, whether it is alone on the link)``."""
    _require(impl, CAP_LINK_CANCEL, "CANCEL")

    def judged(run: LinkRun) -> None:
        (cancel,) = [c for c in run.creates if isinstance(c.request, LinkCancel)]
        key = _key_of(run, 0)
        if key is None:
            raise ClauseFailure(f"the CREATE to withdraw ({run.creates[0].request!r}) was not accepted")
        check(run, cancel.at_ns, key, len(run.creates) == 2)

    judge_runs(run_link, impl, _cancel_scenarios(tuple(_types(impl))), judged, EXAMPLES)


def _end_of(run: LinkRun, node: str, key: tuple[str, int], number: int) -> SentUp | None:
    """What ended the request at ``node``: its ERR, or its number-th OK; None if it is open."""
    for up in run.up:
        if up.node != node:
            continue
        if isinstance(up.msg, LinkError) and _request_key(up.msg) == key and up.msg.code is not LinkErrorCode.EXPIRE:
            return up
    oks = _ok_ups(run, node, key)
    return oks[number - 1] if len(oks) >= number else None


@SUITE.clause("LINK-CANCEL-1", "a CANCEL ends its request at both ends with ERR CANCELLED within one round trip")
def cancel_ends_both(impl: Any) -> None:
    def check(run: LinkRun, cancel_ns: int, key: tuple[str, int], alone: bool) -> None:
        acks = [u for u in _immediate(run, 0) if isinstance(u.msg, LinkAck)]
        if not acks or not acks[0].msg.cancellable:
            raise ClauseFailure(f"an implementation that provides {CAP_LINK_CANCEL} sent an ACK without cancellable: {acks!r}")
        by_ns = cancel_ns + 2 * run.conditions.delay_ns
        number = run.creates[0].request.number
        for node in NODES:
            end = _end_of(run, node, key, number)
            if end is None or end.time_ns > by_ns:
                raise ClauseFailure(f"CANCEL at t={cancel_ns} ns: the request had not ended at {node} by t={by_ns} ns (its end: {end!r})")
            err = end.msg
            if isinstance(err, LinkError) and err.code is LinkErrorCode.CANCELLED and err.tag != (CANCEL_TAG if node == key[0] else None):
                raise _fail(f"ERR CANCELLED at {node} carries tag {err.tag}", end)

    _cancel_property(impl, check)


@SUITE.clause("LINK-CANCEL-2", "no attempt for a cancelled request after one round trip, no pair after its ERR")
def cancel_stops_attempts(impl: Any) -> None:
    def check(run: LinkRun, cancel_ns: int, key: tuple[str, int], alone: bool) -> None:
        by_ns = cancel_ns + 2 * run.conditions.delay_ns
        if alone:  # the only request on the link: every attempt is for it
            late = [(t, node) for t, node, _ in run.attempts if t > by_ns]
            if late:
                raise ClauseFailure(f"CANCEL at t={cancel_ns} ns of the link's only request: attempts were still sent at {late[:3]}")
        ends = [up for up in run.errors() if _request_key(up.msg) == key and up.msg.code is not LinkErrorCode.EXPIRE]
        for end in ends:
            for node in NODES:
                after = [u for u in _ok_ups(run, node, key) if u.time_ns > end.time_ns]
                if after:
                    raise _fail(f"a pair of the cancelled request was reported at {node} after its ERR at {end.node}", after[0])

    _cancel_property(impl, check)


@SUITE.clause("LINK-CANCEL-3", "after a cancelled request ended at both ends, the link layer holds no qubit for it")
def cancel_holds_nothing(impl: Any) -> None:
    def check(run: LinkRun, cancel_ns: int, key: tuple[str, int], alone: bool) -> None:
        for node in NODES:
            leaked = sorted(h for h, owner in run.held_at_end[node].items() if owner == "link")
            if leaked:
                raise ClauseFailure(f"CANCEL at t={cancel_ns} ns: when the run settled, {node}'s link layer still held qubits {leaked}")

    _cancel_property(impl, check)


@SUITE.clause("LINK-CANCEL-4", "a CANCEL naming no open request of this node is dropped and traced unknown_session")
def cancel_unknown_dropped(impl: Any) -> None:
    """The same scenario with and without CANCELs that name nothing open here (a request
    that has ended, an unknown tag, a request the other end opened): the runs must be the
    same, message for message and attempt for attempt, and each CANCEL traced."""
    _require(impl, CAP_LINK_CANCEL, "CANCEL")
    from qnetstack.link.conformance.harness import LinkHarness

    kind = _types(impl)[0]
    delay = 1_000
    conditions = LinkConditions(delay_ns=delay, success_probability=0.5, num_qubits=(4, 4))
    creates = [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=1, type=kind, tag=CANCEL_TAG)),
        ScriptedCreate(0, "bob", LinkCreate(remote_node="alice", number=30, type=kind, tag=2)),
    ]
    later = 40 * delay
    cancels = [
        ScriptedCreate(later, "alice", LinkCancel(tag=CANCEL_TAG)),  # ended by then (a lossless start would take 4 periods)
        ScriptedCreate(later, "alice", LinkCancel(tag=99)),  # never used
        ScriptedCreate(later, "alice", LinkCancel(tag=2)),  # bob's request: not alice's to withdraw
    ]

    def tapped_run(script: list[ScriptedCreate], seed: int) -> tuple[LinkRun, int]:
        """The run, and how many unknown_session events alice traced in it."""
        taps: dict[str, _TraceTap] = {}

        def tapped(ctx: Any) -> Any:
            taps[ctx.node] = _TraceTap(ctx)
            return impl(taps[ctx.node])

        run = LinkHarness(tapped, conditions, script, seed).run(2_000_000)
        _no_crash(run)
        return run, sum(event == "unknown_session" for event, _ in taps["alice"].events)

    for seed in range(3):
        plain, plain_unknown = tapped_run(creates, seed)
        if len(_ok_ups(plain, "alice", _key_of(plain, 0))) != 1 or plain.oks("alice")[0].time_ns >= later:
            raise ClauseFailure("a request for one pair on a link with success probability 0.5 was not served within 40 periods")
        cancelled, unknown = tapped_run(creates + cancels, seed)
        caused = [u for u in cancelled.up if u.cause[0] == "create" and isinstance(cancelled.creates[u.cause[1]].request, LinkCancel)]  # type: ignore[index]
        if caused:
            raise _fail("a CANCEL naming no open request of the node made the link layer send something up", caused[0])
        if [(u.time_ns, u.node, u.msg) for u in cancelled.up] != [(u.time_ns, u.node, u.msg) for u in plain.up]:
            raise ClauseFailure("with CANCELs naming nothing open, the messages sent up differ from the same run without them")
        if cancelled.attempts != plain.attempts:
            raise ClauseFailure("with CANCELs naming nothing open, the attempts sent down differ from the same run without them")
        if unknown - plain_unknown < len(cancels):
            raise ClauseFailure(
                f"of {len(cancels)} CANCELs naming nothing open at alice, only {unknown - plain_unknown} were traced unknown_session"
            )
