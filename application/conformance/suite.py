"""Conformance suite of the application service (``specs/application.md``), clause by clause.

Every check takes the implementation under test (a class or factory built as
``Impl(ctx)``), drives it through :mod:`qnetstack.application.conformance.harness` and
raises :class:`ClauseFailure` naming what it saw. Most checks let hypothesis
generate the scenario: who asks whom for what (teleport or pairs, how many,
which states, which minimum fidelity, when), what the network does with each
request (serve, reject, abort after some pairs), each pair's Bell frame, true
fidelity, goodness and delivery times at its two ends, and the outcomes of
the sender's Bell measurements. Example counts keep the whole suite to about
ten seconds for the reference implementation.

Every response names its request (``specs/application.md``, "Request ids"):
the generated requests carry ids unique per node, so a closing message is
matched to its request by (node, ``request_id``) and a result by (sender or
head, ``request_id``, index). Checks of the unknown-session rule replay, after
a run has ended, every message the network and the peers delivered in it: each
then names a session that has ended.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from qnetstack.application.conformance.harness import (
    NODES,
    AppConditions,
    AppHarness,
    AppRun,
    Fate,
    PairScript,
    ScriptedRequest,
    SentUp,
    TeleportTruth,
    run_app,
)
from qnetstack.application.qkd.key_length import finite_key_entanglement
from qnetstack.application.qkd.reconcile import ReconciliationResult, reconciler_names, register_reconciler
from qnetstack.application.service import (
    CAP_APP_PAIRS,
    CAP_APP_QKD,
    CAP_APP_QKD_RELAY,
    CAP_APP_TELEPORT,
    CARDINAL_STATES,
    AppDone,
    AppError,
    AppErrorCode,
    AppResponse,
    BlochState,
    KeyAborted,
    KeyDelivered,
    PairResult,
    PairsRequest,
    QkdRelayRequest,
    QkdRequest,
    RelayAborted,
    RelayKeyInfo,
    TeleportRequest,
    TeleportResult,
)
from qnetstack.entity.checks import check_responses, judge_runs, missing_methods, no_misuse, refuses_from_above, still_held
from qnetstack.entity.checks import failure as _fail
from qnetstack.entity.checks import raise_if_crashed as _no_crash
from qnetstack.entity.conformance import ClauseFailure, ImplementationError, NotApplicable, Suite, explore, sampled
from qnetstack.network.service import NetAccepted, NetError, NetErrorCode, NetRejected, NetRequest, PairDelivered, PairId, RequestType
from qnetstack.physical.service import BellState

__all__ = ["SUITE"]

SUITE = Suite(layer="application", spec="specs/application.md", reference="qnetstack.application.apps:BasicApps")
SUITE.provides_clause("APP-IMPL-1", any_of=(CAP_APP_TELEPORT, CAP_APP_PAIRS))
SUITE.imports_clause("APP-IMPL-2")
# Every check that asks for a run gets it from here: each distinct run (implementation,
# scenario, seed) is made once while the suite runs, however many checks judge it.
run_app = SUITE.share_runs(run_app)

FIDELITY_TOLERANCE = 1e-6  # the harness's truth is exact; this only absorbs rounding
EXAMPLES = 25  # hypothesis examples per property check
_RESPONSE = TypeAdapter(AppResponse)
_CAPS = {"teleport": "application:teleport", "pairs": "application:pairs"}


# ---------------------------------------------------------------- shape


@SUITE.validator
def _validate(impl: Any) -> None:
    name = getattr(impl, "__qualname__", repr(impl))
    if not callable(impl):
        raise ImplementationError(f"{impl!r} is not a class or factory")
    if inspect.isclass(impl):
        _require_methods(impl, name)
    try:
        inspect.signature(impl).bind(object())
    except TypeError:
        raise ImplementationError(f"{name} cannot be built as {name}(ctx)") from None
    except ValueError:
        pass  # no introspectable signature (a builtin): building it below decides
    try:
        harness = AppHarness(impl, AppConditions(), [])
    except Exception as exc:
        raise ImplementationError(f"{name}(ctx) raised {type(exc).__name__}: {exc}") from None
    _require_methods(harness.entities[NODES[0]], name)


def _require_methods(obj: Any, name: str) -> None:
    missing = missing_methods(obj)
    if missing:
        raise ImplementationError(f"{name!r} does not implement the application service: no {', '.join(missing)}")


def _kinds(impl: Any) -> tuple[str, ...]:
    """The request kinds the implementation serves (``PROVIDES``; both if it does not say)."""
    provides = getattr(impl, "PROVIDES", None)
    if provides is None:
        return ("teleport", "pairs")
    return tuple(k for k, cap in _CAPS.items() if cap in provides)


def _require(impl: Any, kind: str) -> tuple[str, ...]:
    if kind not in _kinds(impl):
        raise NotApplicable(f"the implementation does not serve {kind} requests (PROVIDES lacks {_CAPS[kind]})")
    return (kind,)


# ------------------------------------------------------------ scenarios

_angles = st.floats(0.0, math.pi, allow_nan=False)
_phases = st.floats(0.0, 2 * math.pi, allow_nan=False, exclude_max=True)
bloch_states = st.sampled_from(CARDINAL_STATES) | st.builds(BlochState, theta_rad=_angles, phi_rad=_phases)

# Each strategy a scenario draws from is built once (the same draws, the same examples):
# hypothesis validates every new strategy object it is given, and building them anew in
# every scenario made that validation cost more than the draws and the simulated runs.
_OUTCOMES = st.lists(st.sampled_from(list(BellState)), max_size=8)
_STATES = st.none() | st.lists(bloch_states, min_size=1, max_size=3)


@functools.cache
def _pair_lists(delay: int, perfect: bool) -> st.SearchStrategy[list[PairScript]]:
    return st.lists(
        st.builds(
            PairScript,
            bell_state=st.sampled_from(list(BellState)),
            fidelity=st.sampled_from([1.0] if perfect else [1.0, 0.95, 0.8, 0.6]),
            goodness=st.sampled_from([0.5, 0.75, 0.9, 0.99]),
            gap_ns=st.integers(1, 3 * delay),
            tail_offset_ns=st.integers(-delay, 2 * delay),
        ),
        min_size=1,
        max_size=6,
    )


@st.composite
def scenarios(
    draw: Any,
    kinds: tuple[str, ...],
    actions: tuple[str, ...] = ("serve",),
    perfect: bool = False,
    max_requests: int = 4,
) -> tuple[AppConditions, list[ScriptedRequest], int]:
    """A random scenario: conditions, scripted requests, and how long to run.

    ``actions`` are the fates the network may give a request; ``perfect``
    makes every pair exactly its Bell state (true fidelity 1).
    """
    delay = draw(sampled(1_000, 10_000, 50_000))
    pairs = draw(_pair_lists(delay, perfect))
    outcomes = draw(_OUTCOMES)
    conditions = AppConditions(delay_ns=delay, pairs=tuple(pairs), bell_outcomes=tuple(outcomes))
    requests = []
    made: Counter[str] = Counter()
    for _ in range(draw(st.integers(1, max_requests))):
        node = draw(sampled(*NODES))
        remote = draw(sampled(*(n for n in NODES if n != node)))
        number = draw(st.integers(1, 3))
        min_fidelity = draw(sampled(0.0, 0.5, 0.8))
        # unique at the node, in no particular order, and not always 0, 1, 2, ...
        request_id = 10 * made[node] + draw(st.integers(0, 9))
        made[node] += 1
        request: TeleportRequest | PairsRequest
        if draw(sampled(*kinds)) == "teleport":
            states = draw(_STATES)
            request = TeleportRequest(request_id=request_id, remote_node=remote, number=number, states=states, min_fidelity=min_fidelity)
        else:
            request = PairsRequest(request_id=request_id, remote_node=remote, number=number, min_fidelity=min_fidelity)
        action = draw(sampled(*actions))
        fate = Fate(action, draw(st.integers(0, number - 1)) if action == "abort" else 0)
        requests.append(ScriptedRequest(draw(st.integers(0, 5 * delay)), node, request, fate))
    # every pair arrives within ~3 gaps of 3 delays plus 2 delays of offset; the
    # sender's message one delay later: 200 delays leave a wide margin
    horizon = max(r.at_ns for r in requests) + 200 * delay
    return conditions, requests, horizon


def _property(
    impl: Any,
    check: Callable[[AppRun], None],
    *,
    serving: str | None = None,
    actions: tuple[str, ...] = ("serve",),
    perfect: bool = False,
    examples: int = EXAMPLES,
) -> None:
    """Run ``check`` on the runs of ``examples`` generated scenarios; with ``serving``,
    of requests of that kind only (not applicable if the implementation does not serve it)."""
    kinds = _kinds(impl) if serving is None else _require(impl, serving)
    if not kinds:
        raise NotApplicable("the implementation serves neither teleport nor pairs requests")

    judge_runs(run_app, impl, scenarios(kinds, actions, perfect), check, examples)


def _kind(request: TeleportRequest | PairsRequest | QkdRequest) -> str:
    return request.kind


def _fails(scripted: ScriptedRequest) -> bool:
    """Will the network refuse or cut short this request?"""
    r = scripted.request
    bad_remote = r.remote_node not in NODES or r.remote_node == scripted.node
    return bad_remote or scripted.fate.action in ("reject", "abort")


def _closings(run: AppRun) -> list[SentUp]:
    return run.sent((AppDone, AppError))


def _all_closed(run: AppRun) -> bool:
    """Has every node sent as many closing messages as it got requests?"""
    asked = Counter(r.node for r in run.requests)
    closed = Counter(u.node for u in _closings(run))
    return all(closed[n] >= asked[n] for n in asked)


# ------------------------------------------------------------- messages


@SUITE.clause("APP-MSG-1")
def responses_valid(impl: Any) -> None:
    def check(run: AppRun) -> None:
        check_responses(
            run.up, (TeleportResult, PairResult, KeyDelivered, AppDone, AppError, KeyAborted), _RESPONSE, "an application response"
        )

    _property(impl, check, actions=("serve", "reject", "abort"))


@SUITE.clause("APP-MSG-2")
def foreign_input_refused(impl: Any) -> None:
    entity = AppHarness(impl, AppConditions(), []).entities[NODES[0]]
    entity.start()
    refuses_from_above(entity, "teleport please")


@SUITE.clause("APP-TIME-1")
def times_are_now(impl: Any) -> None:
    fields: dict[type, str] = {TeleportResult: "received_time_ns", PairResult: "reported_time_ns", AppDone: "time_ns"}

    def check(run: AppRun) -> None:
        for up in run.up:
            name = fields.get(type(up.msg))
            if name is not None and getattr(up.msg, name) != up.time_ns:
                raise _fail(f"{name}={getattr(up.msg, name)} but it was sent at t={up.time_ns} ns", up)

    _property(impl, check, actions=("serve", "abort"))


# ------------------------------------------------------------- network use


@SUITE.clause("APP-NET-1")
def net_requests_valid(impl: Any) -> None:
    def check(run: AppRun) -> None:
        used: dict[str, set[int]] = {n: set() for n in NODES}
        for down in run.down:
            msg = down.msg
            where = f" (t={down.time_ns} ns at {down.node}: {msg!r})"
            if not isinstance(msg, NetRequest):
                raise ClauseFailure(f"sent down a {type(msg).__name__}, which is not a NetRequest" + where)
            try:
                NetRequest.model_validate(msg.model_dump())
            except ValidationError as exc:
                raise ClauseFailure(f"sent down a NetRequest that does not validate: {exc.errors()[0]['msg']}" + where) from None
            if msg.request_id in used[down.node]:
                raise ClauseFailure(f"request_id {msg.request_id} used twice by {down.node}" + where)
            used[down.node].add(msg.request_id)

    _property(impl, check, actions=("serve", "reject", "abort"))


@SUITE.clause("APP-NET-2")
def net_requests_match(impl: Any) -> None:
    def check(run: AppRun) -> None:
        for down in run.down:
            msg = down.msg
            if down.cause[0] != "request" or not isinstance(msg, NetRequest):
                continue
            request = run.requests[down.cause[1]].request  # type: ignore[index]
            where = f" (t={down.time_ns} ns at {down.node}: {msg!r}, for {request!r})"
            if msg.remote_node != request.remote_node:
                raise ClauseFailure(f"NetRequest names {msg.remote_node!r}, the request {request.remote_node!r}" + where)
            if msg.type is not RequestType.K:
                raise ClauseFailure(f"NetRequest asks for type {msg.type.value}; the application needs the qubits (K)" + where)
            if msg.min_fidelity < request.min_fidelity:
                raise ClauseFailure(f"NetRequest min_fidelity {msg.min_fidelity} is below the request's {request.min_fidelity}" + where)

    _property(impl, check)


# ------------------------------------------------------------ ending


def _by_id(run: AppRun) -> dict[tuple[str, int], ScriptedRequest]:
    """The scripted requests by (node, request_id): generated ids are unique per node."""
    return {(r.node, r.request.request_id): r for r in run.requests}


@SUITE.clause("APP-END-1")
def at_most_one_closing(impl: Any) -> None:
    def check(run: AppRun) -> None:
        asked = _by_id(run)
        closed: set[tuple[str, int]] = set()
        for up in _closings(run):
            msg = up.msg
            key = (up.node, msg.request_id)
            scripted = asked.get(key)
            if scripted is None:
                raise _fail(f"{up.node} got no request with request_id {msg.request_id}", up)
            if key in closed:
                raise _fail(f"a second closing message for request {msg.request_id} of {up.node}", up)
            closed.add(key)
            if msg.request_kind != scripted.request.kind:
                raise _fail(f"request_kind {msg.request_kind!r} for a {scripted.request.kind!r} request", up)
            if isinstance(msg, AppDone) and msg.remote_node != scripted.request.remote_node:
                raise _fail(f"remote_node {msg.remote_node!r} for a request to {scripted.request.remote_node!r}", up)

    _property(impl, check, actions=("serve", "reject", "abort"))


@SUITE.clause("APP-END-2")
def every_request_done(impl: Any) -> None:
    def check(run: AppRun) -> None:
        for (node, request_id), scripted in _by_id(run).items():
            done = [u.msg.completed for u in run.sent(AppDone, node) if u.msg.request_id == request_id]
            if done != [scripted.request.number]:
                raise ClauseFailure(
                    f"{node}'s {scripted.request.kind} request {request_id} for {scripted.request.number} items was "
                    f"served in full by the network; by t={run.end_ns} ns its AppDones report completed={done}"
                )
        errors = run.sent(AppError)
        if errors:
            raise _fail("an AppError although the network served every pair", errors[0])

    _property(impl, check)


def _closing_counts(run: AppRun) -> None:
    """Per request: one AppError (REJECTED or ABORTED) if the network failed it, else one AppDone."""
    for (node, request_id), scripted in _by_id(run).items():
        errors = [u.msg.code for u in run.sent(AppError, node) if u.msg.request_id == request_id]
        dones = sum(u.msg.request_id == request_id for u in run.sent(AppDone, node))
        if _fails(scripted):
            rejected = scripted.fate.action != "abort" or not _reachable(scripted)
            wanted = [AppErrorCode.REJECTED if rejected else AppErrorCode.ABORTED]
            expected = f"one AppError with code {wanted[0].value} and no AppDone"
        else:
            wanted, expected = [], "one AppDone and no AppError"
        if (errors, dones) != (wanted, 0 if wanted else 1):
            r = scripted.request
            raise ClauseFailure(
                f"{node}'s {r.kind} request {request_id} to {r.remote_node!r} for {r.number} item(s) "
                f"(network: {scripted.fate.action}) should end with {expected}; by t={run.end_ns} ns it got "
                f"AppError codes {[c.value for c in errors]} and {dones} AppDone"
            )


def _reachable(scripted: ScriptedRequest) -> bool:
    remote = scripted.request.remote_node
    return remote in NODES and remote != scripted.node


@SUITE.clause("APP-ERR-1")
def rejected_is_error(impl: Any) -> None:
    kinds = _kinds(impl)
    if not kinds:
        raise NotApplicable("the implementation serves neither teleport nor pairs requests")
    # requests to no node and to the node itself: a network rejects those
    for remote in ("zed", NODES[0]):
        for kind in kinds:
            run = run_app(impl, AppConditions(), [ScriptedRequest(0, NODES[0], _request(kind, remote))], until_ns=10_000_000)
            _no_crash(run)
            _closing_counts(run)
    _property(impl, _closing_counts, actions=("serve", "reject"))


@SUITE.clause("APP-ERR-2")
def aborted_is_error(impl: Any) -> None:
    kinds = _kinds(impl)
    if not kinds:
        raise NotApplicable("the implementation serves neither teleport nor pairs requests")
    # The network tells both ends of an aborted request (NetError names the
    # head). The tail's request ids are its own, so the abort of alice's first
    # request must not touch bob's first request, which has the same id.
    slow = AppConditions(pairs=(PairScript(gap_ns=50_000),))
    for mine, theirs in ((k, j) for k in kinds for j in kinds):
        requests = [
            ScriptedRequest(0, NODES[1], _request(theirs, NODES[0], 2)),
            ScriptedRequest(10, NODES[0], _request(mine, NODES[1], 2), Fate("abort", 0)),
        ]
        run = run_app(impl, slow, requests, until_ns=10_000_000)
        _no_crash(run)
        _closing_counts(run)
    _property(impl, _closing_counts, actions=("serve", "abort"), examples=60)


# ------------------------------------------------------------ ids and sessions


def _pairs_of(run: AppRun, index: int) -> list[Any]:
    return [p for p in run.pairs.values() if p.request == index]


def _failed_at(run: AppRun, node: str, index: int) -> int | None:
    """When the network told ``node`` that scripted request ``index`` failed (None: it did not)."""
    net_ids = {d.msg.request_id for d in run.down if d.node == node and d.cause == ("request", index) and isinstance(d.msg, NetRequest)}
    for time_ns, at, msg in run.below:
        if at == node and isinstance(msg, (NetRejected, NetError)) and msg.request_id in net_ids:
            if isinstance(msg, NetRejected) or msg.head == node:
                return time_ns
    return None


@SUITE.clause("APP-ID-1", "every response names the request_id of the request it answers")
def responses_name_their_request(impl: Any) -> None:
    def check(run: AppRun) -> None:
        index = {id(r): i for i, r in enumerate(run.requests)}
        asked = _by_id(run)
        for i, up in enumerate(run.up):
            msg = up.msg
            if isinstance(msg, (AppDone, AppError)):
                scripted = asked.get((up.node, msg.request_id))
                if scripted is None:
                    raise _fail(f"{up.node} has no request with request_id {msg.request_id}", up)
                k = index[id(scripted)]
                if isinstance(msg, AppDone):
                    # done means every pair of that request was delivered here first
                    late = [p.pair_id for p in _pairs_of(run, k) if p.delivered.get(up.node, up.time_ns + 1) > up.time_ns]
                    if late or len(_pairs_of(run, k)) < scripted.request.number:
                        raise _fail(f"AppDone names request {msg.request_id}, whose pairs were not all delivered yet", up)
                else:
                    failed = _failed_at(run, up.node, k)
                    if failed is None or failed > up.time_ns:
                        raise _fail(f"AppError names request {msg.request_id}, which the network had not failed", up)
            elif isinstance(msg, TeleportResult):
                ids = {s.request.request_id for t in run.teleport_truth.get(i, []) if (s := run.request_of(t.pair)) is not None}
                if ids and msg.request_id not in ids:
                    raise _fail(f"the pair used was made for {msg.sender}'s request {sorted(ids)}", up)
            elif isinstance(msg, PairResult):
                pair = run.pairs.get(msg.pair_id)
                scripted = run.request_of(pair) if pair is not None else None
                if scripted is not None and msg.request_id != scripted.request.request_id:
                    raise _fail(f"pair {msg.pair_id} was made for request {scripted.request.request_id}", up)

    _property(impl, check, actions=("serve", "reject", "abort"))


@SUITE.clause("APP-ID-2", "a request whose id is open at its node is refused with AppError DUPLICATE_ID; the open one goes on")
def duplicate_id_refused(impl: Any) -> None:
    kinds = _kinds(impl)
    if not kinds:
        raise NotApplicable("the implementation serves neither teleport nor pairs requests")

    @explore(15)
    @given(scenario=scenarios(kinds), pick=st.integers(0, 100), offset=st.floats(0.0, 1.0), kind=st.sampled_from(kinds))
    def prop(scenario: tuple[AppConditions, list[ScriptedRequest], int], pick: int, offset: float, kind: str) -> None:
        conditions, requests, horizon = scenario
        base = run_app(impl, conditions, requests, until_ns=horizon)
        _no_crash(base)
        original = base.requests[pick % len(base.requests)]
        closing = [u for u in _closings(base) if (u.node, u.msg.request_id) == (original.node, original.request.request_id)]
        if len(closing) != 1:
            return  # APP-END-2 reports it
        open_until = closing[0].time_ns
        if open_until <= original.at_ns:
            return  # closed at once: never open at a later instant
        at = original.at_ns + int(offset * (open_until - 1 - original.at_ns))  # while it is open
        request_id = original.request.request_id
        twin = ScriptedRequest(at, original.node, _request(kind, original.request.remote_node, 1, request_id))
        # a second, later request with the id once it is free again: served as usual
        reuse = ScriptedRequest(open_until + 1, original.node, _request(kind, original.request.remote_node, 1, request_id))
        run = run_app(impl, conditions, requests + [twin], until_ns=horizon)
        _no_crash(run)
        twin_index = next(i for i, r in enumerate(run.requests) if r is twin)
        answers = [u for u in run.up if u.cause == ("request", twin_index)]
        refusals = [u for u in answers if isinstance(u.msg, AppError) and u.msg.code is AppErrorCode.DUPLICATE_ID]
        if len(answers) != 1 or len(refusals) != 1 or refusals[0].msg.request_id != request_id:
            raise ClauseFailure(
                f"{original.node} got a {kind} request with request_id {request_id} at t={at} ns while its request with "
                f"that id was open (until t={open_until} ns); it answered {[u.msg for u in answers]} instead of one "
                "AppError DUPLICATE_ID naming the id"
            )
        if any(d.cause == ("request", twin_index) for d in run.down):
            raise ClauseFailure(f"the refused request with request_id {request_id} was sent to the network")
        others = [(u.time_ns, u.node, u.msg) for u in run.up if u is not refusals[0]]
        if others != [(u.time_ns, u.node, u.msg) for u in base.up]:
            raise ClauseFailure(f"refusing a request with the open id {request_id} at {original.node} changed what the other requests got")
        again = run_app(impl, conditions, requests + [reuse], until_ns=horizon + open_until)
        _no_crash(again)
        reuse_index = next(i for i, r in enumerate(again.requests) if r is reuse)
        refused = [u for u in again.up if u.cause == ("request", reuse_index) and isinstance(u.msg, AppError)]
        if refused:
            raise _fail(f"request_id {request_id} was refused after its request had closed at t={open_until} ns", refused[0])

    prop()


def _unknown_traces(traces: list[tuple[int, str, dict[str, Any]]]) -> int:
    return sum(event == "unknown_session" for _, event, _ in traces)


@SUITE.clause("APP-SESS-1", "a network or peer message naming no session it holds is dropped and traced unknown_session")
def unknown_sessions_dropped(impl: Any) -> None:
    # 1. a fresh node: every network message names a request it never made
    node, other = NODES[0], NODES[1]
    stray = PairId(head=node, tail=other, request_id=7, index=0)
    strays = [
        NetAccepted(request_id=7, path=[node, other]),
        NetRejected(request_id=7, reason="never asked"),
        NetError(request_id=7, head=node, code=NetErrorCode.OTHER),
        NetError(request_id=0, head=other, code=NetErrorCode.OTHER),  # the tail's copy: another node's request
        PairDelivered(pair_id=stray, remote_node=other, bell_state=BellState.PHI_PLUS, goodness=0.9, goodness_time_ns=0, handle=0),
    ]
    harness = AppHarness(impl, AppConditions(), [])
    _no_crash(harness.run(until_ns=1))
    for msg in strays:
        try:
            harness.deliver_below(node, msg)
        except Exception as exc:
            raise ClauseFailure(f"{node} raised {type(exc).__name__} on {msg!r}, which names no session of it: {exc}") from None
    harness.kernel.run(until_ns=harness.kernel.now_ns + 100 * harness.conditions.delay_ns)
    _quiet(harness, 0, 0, 0, {node: len(strays)}, "messages naming requests it never made")

    # 2. after a run: every message the network and the peers delivered, again
    kinds = _kinds(impl)
    if not kinds:
        return

    @explore(15)
    @given(scenario=scenarios(kinds), seed=st.integers(0, 2**16))
    def prop(scenario: tuple[AppConditions, list[ScriptedRequest], int], seed: int) -> None:
        conditions, requests, horizon = scenario
        harness = AppHarness(impl, conditions, requests, seed)
        run = harness.run(until_ns=horizon)
        _no_crash(run)
        if not (run.quiescent and _all_closed(run)):
            return  # APP-END-2 reports it
        below, peer = list(run.below), list(run.peer)
        up, down, misuse = len(harness.up), len(harness.down), len(harness.devices.misuse)
        expected = Counter(n for _, n, _ in below) + Counter(n for _, _, n, _ in peer)
        expected = Counter({n: expected[n] + _unknown_traces(harness.contexts[n].traces) for n in NODES})
        for _, at, msg in below:
            try:
                harness.deliver_below(at, msg)
            except Exception as exc:
                raise ClauseFailure(f"{at} raised {type(exc).__name__} on a repeated {msg!r}: {exc}") from None
        for _, sender, at, msg in peer:
            try:
                harness.deliver_peer(sender, at, msg)
            except Exception as exc:
                raise ClauseFailure(f"{at} raised {type(exc).__name__} on a repeated peer message {msg!r}: {exc}") from None
        harness.kernel.run(until_ns=harness.kernel.now_ns + horizon)
        _quiet(harness, up, down, misuse, expected, "every network and peer message of a finished run, delivered again")
        if len(harness.peer) != 2 * len(peer):
            raise ClauseFailure("a repeated message of a finished run made the application send a peer message")

    prop()


def _quiet(harness: AppHarness, up: int, down: int, misuse: int, unknown: dict[str, int], what: str) -> None:
    """Nothing was sent or operated on since the counts given, and each node traced ``unknown`` drops in all."""
    if len(harness.up) > up:
        raise _fail(f"after {what}, the application sent {harness.up[up].msg!r} to its user", harness.up[up])
    if len(harness.down) > down:
        raise ClauseFailure(f"after {what}, the application sent {harness.down[down].msg!r} to the network")
    if len(harness.devices.misuse) > misuse:
        raise ClauseFailure(f"after {what}: {harness.devices.misuse[misuse]}")
    for node, count in unknown.items():
        traced = _unknown_traces(harness.contexts[node].traces)
        if traced != count:
            raise ClauseFailure(f"after {what}, {node} traced {traced} unknown_session events in all; {count} expected")


def _request(kind: str, remote: str, number: int = 1, request_id: int = 0) -> TeleportRequest | PairsRequest:
    if kind == "teleport":
        return TeleportRequest(request_id=request_id, remote_node=remote, number=number)
    return PairsRequest(request_id=request_id, remote_node=remote, number=number)


# ----------------------------------------------------------- teleportation


def _teleport_results(run: AppRun) -> Iterator[tuple[SentUp, list[TeleportTruth]]]:
    """Each TeleportResult sent up, with the pairs that may have carried it (the harness's truth)."""
    for i, up in enumerate(run.up):
        if isinstance(up.msg, TeleportResult):
            yield up, run.teleport_truth.get(i, [])


@SUITE.clause("APP-TELEPORT-1")
def teleport_corrects(impl: Any) -> None:
    def check(run: AppRun) -> None:
        for up, truths in _teleport_results(run):
            candidates = [t for t in truths if t.fidelity_requested is not None]
            if not candidates:
                continue  # APP-TELEPORT-2 reports a result no pair explains
            best = max(candidates, key=lambda t: t.fidelity_requested or 0.0)
            if best.fidelity_requested < 1 - FIDELITY_TOLERANCE:  # type: ignore[operator]
                pair = best.pair
                raise _fail(
                    f"after teleporting over pair {pair.pair_id} (frame {pair.bell_state.value}, fidelity 1) the "
                    f"receiver's qubit has fidelity {best.fidelity_requested:.6f} to the requested state "
                    f"{best.requested!r}: the correction X^x Z^z must use the XOR of the sender's outcome and the "
                    "pair's frame",
                    up,
                )

    _property(impl, check, serving="teleport", perfect=True, examples=40)


@SUITE.clause("APP-TELEPORT-2")
def teleport_result_fields(impl: Any) -> None:
    def check(run: AppRun) -> None:
        for up, candidates in _teleport_results(run):
            msg = up.msg
            if not candidates:
                raise _fail(f"no pair from {msg.sender} with index {msg.index} was delivered at {up.node} before this result", up)
            teleports = [t for t in candidates if t.requested is not None or run.request_of(t.pair) is None]
            if not teleports:
                raise _fail("the pair this result names was made for a pairs request, not a teleport", up)
            states = [t for t in teleports if t.requested is None or _same_state(t.requested, msg.state)]
            if not states:
                raise _fail(f"the request asked for state {teleports[0].requested!r} at index {msg.index}", up)
            if not any(abs(t.pair.goodness - msg.pair_goodness) <= 1e-9 for t in states):
                raise _fail(f"pair_goodness {msg.pair_goodness} but the network gave goodness {states[0].pair.goodness}", up)

    _property(impl, check, serving="teleport", actions=("serve", "abort"))


def _same_state(a: BlochState, b: BlochState) -> bool:
    """The same pure state (|<a|b>|^2 = 1), however its angles are written."""
    ca, cb = math.cos(a.theta_rad / 2), math.cos(b.theta_rad / 2)
    sa, sb = math.sin(a.theta_rad / 2), math.sin(b.theta_rad / 2)
    overlap = abs(ca * cb + sa * sb * complex(math.cos(b.phi_rad - a.phi_rad), math.sin(b.phi_rad - a.phi_rad))) ** 2
    return overlap >= 1 - 1e-9


@SUITE.clause("APP-TELEPORT-3")
def teleport_fidelity_honest(impl: Any) -> None:
    def check(run: AppRun) -> None:
        for up, candidates in _teleport_results(run):
            msg = up.msg
            if candidates and not any(abs(t.fidelity_reported - msg.oracle_fidelity) <= FIDELITY_TOLERANCE for t in candidates):
                truths = sorted({round(t.fidelity_reported, 6) for t in candidates})
                raise _fail(
                    f"oracle_fidelity {msg.oracle_fidelity:.6f} but the receiver's qubit has fidelity {truths} to "
                    "the reported state when the result is sent",
                    up,
                )

    _property(impl, check, serving="teleport")


@SUITE.clause("APP-TELEPORT-4")
def teleport_every_index(impl: Any) -> None:
    def check(run: AppRun) -> None:
        expected: Counter[tuple[str, str, int, int]] = Counter()
        for r in run.requests:
            if isinstance(r.request, TeleportRequest):
                expected.update((r.node, r.request.remote_node, r.request.request_id, k) for k in range(r.request.number))
        got = Counter((u.msg.sender, u.node, u.msg.request_id, u.msg.index) for u in run.sent(TeleportResult))
        if got != expected:
            missing = sorted((expected - got).elements())
            extra = sorted((got - expected).elements())
            raise ClauseFailure(
                f"(sender, receiver, request_id, index) of TeleportResults by t={run.end_ns} ns: missing {missing}, "
                f"unexpected or repeated {extra}"
            )

    _property(impl, check, serving="teleport")


@SUITE.clause("APP-DEV-1")
def teleport_waits_for_the_device(impl: Any) -> None:
    _require(impl, "teleport")
    delay = AppConditions().delay_ns
    conditions = AppConditions(
        bell_measure_ns=3 * delay, gate_ns=delay // 2, pairs=tuple(PairScript(bell_state=frame) for frame in BellState)
    )
    sender, receiver = NODES[0], NODES[1]
    number = 4
    run = run_app(
        impl, conditions, [ScriptedRequest(0, sender, TeleportRequest(remote_node=receiver, number=number))], until_ns=400 * delay
    )
    _no_crash(run)
    at_once = [m for m in run.misuse if "request_device" in m]
    if at_once:
        raise ClauseFailure(f"an operation that takes time was executed at once: {at_once[0]}")
    results = run.sent(TeleportResult)
    if sorted(u.msg.index for u in results) != list(range(number)):
        raise ClauseFailure(
            f"with a Bell measurement of {conditions.bell_measure_ns} ns and gates of {conditions.gate_ns} ns, the receiver "
            f"reported indices {sorted(u.msg.index for u in results)} of 0..{number - 1} by t={run.end_ns} ns"
        )
    for up in results:
        if up.msg.oracle_fidelity < 1 - FIDELITY_TOLERANCE:
            raise _fail(f"over pairs of fidelity 1 the state arrived with fidelity {up.msg.oracle_fidelity:.6f}", up)


# ------------------------------------------------------------------ lost pairs


@SUITE.clause("APP-LOST-1")
def lost_pairs_are_freed_and_not_reported(impl: Any) -> None:
    """Each request kind the implementation provides, alice -> bob for 3 items, over pairs that
    take turns: a good pair, one lost at the head, a good pair, one lost at the tail. The network's
    PairLost comes before the head's message about the pair reaches the tail, and after it
    (1 ns and 3 classical delays after the delivery); for teleportation also while the sender's
    Bell measurement of that pair is under way (it takes 2 classical delays). The network makes
    another pair for each lost one, so every request must still end with AppDone completed=3,
    no result may name a lost pair, and nothing may be held at the end."""
    delay = AppConditions().delay_ns
    sender, receiver = NODES[0], NODES[1]
    number = 3
    for kind in _kinds(impl):
        for lost_after, measure_ns in ((1, 0), (3 * delay, 0), (1, 2 * delay)):
            if measure_ns and kind != "teleport":
                continue
            scripts = (
                PairScript(),
                PairScript(lost_at="head", lost_after_ns=lost_after),
                PairScript(tail_offset_ns=delay // 2),
                PairScript(lost_at="tail", lost_after_ns=lost_after),
            )
            conditions = AppConditions(pairs=scripts, bell_measure_ns=measure_ns)
            request = ScriptedRequest(0, sender, _request(kind, receiver, number, request_id=7))
            run = run_app(impl, conditions, [request], until_ns=400 * delay)
            _no_crash(run)
            where = f"{kind} request of {number} with pairs lost at either end (PairLost {lost_after} ns after the delivery)"
            no_misuse(run, f"{where}: ")
            lost_ids = {(p.head, p.request_id, p.index) for p in run.lost}
            for up in run.sent((PairResult, TeleportResult)):
                msg = up.msg
                named = (
                    (msg.pair_id.head, msg.pair_id.request_id, msg.pair_id.index)
                    if isinstance(msg, PairResult)
                    else next(((h, r, i) for h, r, i in lost_ids if (h, i) == (msg.sender, msg.index)), None)
                )
                if named in lost_ids:
                    raise _fail(f"{where}: a result for a pair the network declared lost", up)
            dones = [u.msg.completed for u in run.sent(AppDone, sender)]
            if dones != [number] or run.sent(AppError):
                raise ClauseFailure(
                    f"{where}: the network made a pair in place of each lost one, yet by t={run.end_ns} ns the request got "
                    f"AppDone completed={dones} and {len(run.sent(AppError))} AppError"
                )
            results = run.sent((PairResult, TeleportResult), receiver)
            if len(results) != number:
                raise ClauseFailure(f"{where}: {len(results)} results at {receiver}, not {number}")
            held = still_held(run.held_at_end, "app")
            if held:
                raise ClauseFailure(f"{where}: the application still holds qubits {held} at the end")


# ------------------------------------------------------------------ a lost end


@SUITE.clause("APP-FAULT-1")
def a_lost_end_is_waited_for_no_longer(impl: Any) -> None:
    """Each request kind the implementation provides, alice -> bob for 4 items, 2 pairs served.
    Tail lost: bob crashes 1 ns after both ends got the 2nd pair (before any message of alice's
    about them can reach it) and alice gets NetError END_LOST 1 ns later. Head lost: alice
    crashes 1 ns after NetAccepted, bob gets the 2 pairs and then END_LOST. The crashed node
    gets nothing more; nothing it holds is judged."""
    sender, receiver = NODES[0], NODES[1]
    number, served = 4, 2
    for kind in _kinds(impl):
        for lost_end in ("tail", "head"):
            fate = Fate(action="end_lost", after=served, lost_end=lost_end)
            request = ScriptedRequest(0, sender, _request(kind, receiver, number, request_id=5), fate)
            run = run_app(impl, AppConditions(), [request], until_ns=400 * AppConditions().delay_ns)
            _no_crash(run)
            where = f"{kind} request of {number} whose {lost_end} crashed after {served} pairs (NetError END_LOST at the other end)"
            survivor = sender if lost_end == "tail" else receiver
            if lost_end == "tail":
                closing = [u for u in run.sent((AppDone, AppError), sender) if u.msg.request_id == 5]
                codes = [u.msg.code.value if isinstance(u.msg, AppError) else "AppDone" for u in closing]
                if codes != [AppErrorCode.REMOTE_LOST.value]:
                    raise ClauseFailure(
                        f"{where}: the request ended with {codes or 'nothing'} by t={run.end_ns} ns, not one AppError REMOTE_LOST"
                    )
            else:
                late = [u for u in run.sent((PairResult, TeleportResult), receiver) if u.time_ns > min(run.crashed_nodes.values())]
                if late:
                    raise _fail(f"{where}: a result for a pair of the lost head's request", late[0])
            held = still_held({survivor: run.held_at_end.get(survivor, {})}, "app")
            if held:
                raise ClauseFailure(f"{where}: at t={run.end_ns} ns the application at {survivor} still holds qubits {held[survivor]}")


# ------------------------------------------------------------------ pairs


@SUITE.clause("APP-PAIR-1")
def pair_result_fields(impl: Any) -> None:
    def check(run: AppRun) -> None:
        seen: set[Any] = set()
        for up in run.sent(PairResult):
            msg = up.msg
            pair = run.pairs.get(msg.pair_id)
            if pair is None or up.node not in pair.delivered or pair.delivered[up.node] > up.time_ns:
                raise _fail(f"no pair {msg.pair_id} had been delivered at {up.node}", up)
            if up.node != msg.pair_id.tail:
                raise _fail(f"PairResult sent at {up.node}, not at the pair's tail {msg.pair_id.tail}", up)
            scripted = run.request_of(pair)
            if scripted is not None and not isinstance(scripted.request, PairsRequest):
                raise _fail(f"pair {msg.pair_id} was made for a {_kind(scripted.request)} request", up)
            if msg.pair_id in seen:
                raise _fail(f"a second PairResult for {msg.pair_id}", up)
            seen.add(msg.pair_id)
            if abs(msg.goodness - pair.goodness) > 1e-9:
                raise _fail(f"goodness {msg.goodness} but the network gave {pair.goodness}", up)

    _property(impl, check, serving="pairs", actions=("serve", "abort"))


@SUITE.clause("APP-PAIR-2")
def pair_fidelity_honest(impl: Any) -> None:
    def check(run: AppRun) -> None:
        for up in run.sent(PairResult):
            pair = run.pairs.get(up.msg.pair_id)
            if pair is not None and abs(up.msg.oracle_fidelity - pair.fidelity) > FIDELITY_TOLERANCE:
                raise _fail(
                    f"oracle_fidelity {up.msg.oracle_fidelity:.6f} but pair {pair.pair_id} was delivered with true "
                    f"fidelity {pair.fidelity} to {pair.bell_state.value} (memories do not decay in the harness)",
                    up,
                )

    _property(impl, check, serving="pairs")


@SUITE.clause("APP-PAIR-3")
def pair_every_pair(impl: Any) -> None:
    def check(run: AppRun) -> None:
        expected = {
            pid for pid, pair in run.pairs.items() if (s := run.request_of(pair)) is not None and isinstance(s.request, PairsRequest)
        }
        got = {u.msg.pair_id for u in run.sent(PairResult)}
        if expected - got:
            missing = sorted(expected - got, key=lambda p: (p.head, p.request_id, p.index))
            raise ClauseFailure(f"by t={run.end_ns} ns no PairResult for {len(missing)} pair(s), e.g. {missing[0]!r}")
        asked = sum(r.request.number for r in run.requests if isinstance(r.request, PairsRequest))
        if len(got) != asked:
            raise ClauseFailure(f"{asked} pairs were asked for and served, {len(got)} PairResults were sent")

    _property(impl, check, serving="pairs")


# ------------------------------------------------------------- resources


@SUITE.clause("APP-RES-1")
def only_own_qubits(impl: Any) -> None:
    _property(impl, no_misuse, actions=("serve", "reject", "abort"))


@SUITE.clause("APP-RES-2")
def no_leaked_qubits(impl: Any) -> None:
    def check(run: AppRun) -> None:
        if not _all_closed(run):
            return  # an open request may hold qubits; APP-END-2 / APP-ERR-* report it
        for node, leaked in still_held(run.held_at_end, "app").items():
            raise ClauseFailure(
                f"every request was closed, yet at t={run.end_ns} ns the application at {node} still holds "
                f"qubits {leaked} it never freed or measured"
            )

    _property(impl, check, actions=("serve", "reject", "abort"))


# ------------------------------------------------------------------ QKD
#
# QKD runs are few and long (thousands of pairs each), so they are fixed scenarios, not
# generated ones: BBM92 and E91 between alice and bob over Werner pairs in all four Bell
# frames, delivered at the tail before and after the head. The error correction of one
# scenario is a reconciler registered here that corrects nothing (``QKD_NO_EC``): the keys
# then differ after it, which only verification can tell.

QKD_NO_EC = "conformance-no-correction"
_QKD_PAIRS = 2000  # enough for a key at ε = 0.1 from pairs of fidelity 0.98 (QBER ≈ 1.3 %)


class _NoCorrection:
    """A reconciler that discloses nothing and hands Bob's key back as it is."""

    name = QKD_NO_EC

    def reconcile(self, alice: Any, bob: Any, qber_estimate: float, rng: Any) -> ReconciliationResult:
        return ReconciliationResult(method=self.name, key=bob.copy(), leaked_bits=0, efficiency=0.0, channel_uses=0, passes=0)


if QKD_NO_EC not in reconciler_names():
    register_reconciler(QKD_NO_EC, _NoCorrection)


def _qkd_scenarios() -> list[tuple[AppConditions, list[ScriptedRequest], int]]:
    def pairs(fidelity: float) -> tuple[PairScript, ...]:
        return tuple(
            PairScript(bell_state=b, fidelity=fidelity, gap_ns=500, tail_offset_ns=offset)
            for b, offset in zip(BellState, (0, 700, -400, 3000), strict=True)
        )

    def one(
        fidelity: float, seed_id: int, pairs_asked: int = _QKD_PAIRS, **request: Any
    ) -> tuple[AppConditions, list[ScriptedRequest], int]:
        qkd = QkdRequest(request_id=seed_id, remote_node="bob", pairs=pairs_asked, epsilon=0.1, sample_fraction=0.35, **request)
        return AppConditions(delay_ns=10_000, pairs=pairs(fidelity)), [ScriptedRequest(0, "alice", qkd)], 10**10

    return [
        one(0.98, 1, protocol="bbm92"),
        one(0.995, 2, 2 * _QKD_PAIRS, protocol="e91"),  # a quarter of E91's rounds are key rounds
        one(0.98, 3, protocol="bbm92", ec=QKD_NO_EC),
        one(0.75, 4, protocol="bbm92"),
    ]


def _qkd_runs(impl: Any) -> Iterator[AppRun]:
    if CAP_APP_QKD not in (getattr(impl, "PROVIDES", None) or ()):
        raise NotApplicable(f"the implementation does not serve QKD requests (PROVIDES lacks {CAP_APP_QKD})")
    for conditions, requests, horizon in _qkd_scenarios():
        run = run_app(impl, conditions, requests, horizon)
        _no_crash(run)
        yield run


def _keys(run: AppRun) -> list[SentUp]:
    return run.sent(KeyDelivered)


@SUITE.clause("APP-QKD-1")
def qkd_keys_equal_at_both_ends(impl: Any) -> None:
    for run in _qkd_runs(impl):
        by_id: dict[str, list[SentUp]] = {}
        for up in _keys(run):
            by_id.setdefault(up.msg.key_id, []).append(up)
        for key_id, ups in by_id.items():
            nodes = sorted(up.node for up in ups)
            head = ups[0].msg.head
            tail = next((up.msg.remote_node for up in ups if up.node == head), None)
            if len(ups) != 2 or set(nodes) != {head, tail}:
                raise _fail(f"key {key_id} was delivered at {nodes}, not once at each end", ups[0])
            if ups[0].msg.key_hex != ups[1].msg.key_hex:
                raise _fail(f"key {key_id} differs between {nodes[0]} and {nodes[1]}", ups[1])


@SUITE.clause("APP-QKD-2")
def qkd_no_key_after_an_abort(impl: Any) -> None:
    for run in _qkd_runs(impl):
        aborted = {(u.node, u.msg.request_id) for u in run.sent(AppError)}
        for up in _keys(run):
            if (up.msg.head, up.msg.request_id) in aborted:
                raise _fail(f"key {up.msg.key_id} delivered at {up.node}, yet the request ended with an AppError", up)
        for scripted in run.requests:
            request = scripted.request
            closings = [u for u in _closings(run) if u.node == scripted.node and u.msg.request_id == request.request_id]
            if len(closings) != 1:
                raise ClauseFailure(
                    f"QKD request {scripted.node}#{request.request_id} got {len(closings)} closing messages by t={run.end_ns} ns"
                )
            keys = [u for u in _keys(run) if u.msg.head == scripted.node and u.msg.request_id == request.request_id]
            if isinstance(closings[0].msg, AppDone) and len(keys) != 2:
                raise _fail(f"the request is done, yet {len(keys)} KeyDelivered name it (one at each end expected)", closings[0])


@SUITE.clause("APP-QKD-3")
def qkd_length_within_the_bound(impl: Any) -> None:
    for run in _qkd_runs(impl):
        for up in _keys(run):
            msg = up.msg
            key_bits = msg.sifted_bits - msg.sample_bits
            if key_bits < 1 or msg.sample_bits < 1 or msg.sample_errors > msg.sample_bits:
                raise _fail(f"figures that give no key: {msg.sifted_bits} sifted, {msg.sample_bits} sampled", up)
            bound = finite_key_entanglement(
                key_bits, msg.sample_bits, msg.sample_errors, msg.leaked_ec_bits + msg.verify_bits, msg.epsilon_sec, msg.epsilon_cor
            )
            if msg.length > bound.length:
                raise _fail(f"a {msg.length}-bit key, above the finite-key bound of {bound.length} bits for its figures", up)
            if len(bytes.fromhex(msg.key_hex)) != (msg.length + 7) // 8:
                raise _fail(f"key_hex holds {len(msg.key_hex) // 2} bytes for a {msg.length}-bit key", up)


@SUITE.clause("APP-QKD-4")
def qkd_epsilon_reported(impl: Any) -> None:
    for run in _qkd_runs(impl):
        asked = {(s.node, s.request.request_id): s.request for s in run.requests}
        for up in _keys(run):
            msg = up.msg
            request = asked.get((msg.head, msg.request_id))
            if not isinstance(request, QkdRequest):
                raise _fail(f"key {msg.key_id} names no request of {msg.head}", up)
            if msg.epsilon != request.epsilon or abs(msg.epsilon_sec + msg.epsilon_cor - msg.epsilon) > 1e-12 * msg.epsilon:
                raise _fail(
                    f"ε {msg.epsilon} (sec {msg.epsilon_sec} + cor {msg.epsilon_cor}) but the request asked for {request.epsilon}", up
                )
            if msg.key_sha256 != hashlib.sha256(bytes.fromhex(msg.key_hex)).hexdigest():
                raise _fail("key_sha256 is not the SHA-256 of key_hex", up)


# ------------------------------------------------------------ keys through trusted relays
#
# Two fixed runs: alice asks carol for a key through bob over Werner pairs (F = 0.99, 3000 a hop) on both
# hops, and the same request whose first hop the network rejects. Hop requests the relay makes
# on its own are served (they answer no scripted request). Not applicable without
# ``application:qkd-relay``.


def _relay_scenarios() -> list[tuple[AppConditions, list[ScriptedRequest], int]]:
    pairs = tuple(
        PairScript(bell_state=b, fidelity=0.99, gap_ns=500, tail_offset_ns=o) for b, o in zip(BellState, (0, 700, -400, 3000), strict=True)
    )
    conditions = AppConditions(delay_ns=10_000, pairs=pairs)

    def one(request_id: int, fate: Fate) -> tuple[AppConditions, list[ScriptedRequest], int]:
        relay = QkdRelayRequest(request_id=request_id, remote_node="carol", relays=["bob"], pairs=3000, epsilon=0.2, sample_fraction=0.35)
        return conditions, [ScriptedRequest(0, "alice", relay, fate)], 10**10  # type: ignore[arg-type]

    return [one(1, Fate()), one(2, Fate(action="reject"))]


@functools.cache
def _relay_runs_of(impl: Any) -> tuple[AppRun, ...]:
    return tuple(run_app(impl, *scenario) for scenario in _relay_scenarios())


def _relay_runs(impl: Any) -> tuple[AppRun, ...]:
    if CAP_APP_QKD_RELAY not in (getattr(impl, "PROVIDES", None) or ()):
        raise NotApplicable(f"the implementation does not serve trusted-relay requests (PROVIDES lacks {CAP_APP_QKD_RELAY})")
    runs = _relay_runs_of(impl)
    for run in runs:
        _no_crash(run)
    return runs


@SUITE.clause("APP-RELAY-1")
def relay_keys_equal_at_both_ends(impl: Any) -> None:
    served, _ = _relay_runs(impl)
    keys = served.sent(KeyDelivered)
    infos = served.sent(RelayKeyInfo)
    if sorted(u.node for u in keys) != ["alice", "carol"]:
        raise ClauseFailure(f"the served relay request's key was delivered at {sorted(u.node for u in keys)}, not at alice and carol")
    first, second = keys
    if first.msg.key_id != second.msg.key_id or first.msg.key_hex != second.msg.key_hex:
        raise _fail(f"the key differs between {first.node} and {second.node}", second)
    if sorted(u.node for u in infos) != ["alice", "carol"] or infos[0].msg != infos[1].msg or infos[0].msg.key_id != first.msg.key_id:
        raise ClauseFailure(f"RelayKeyInfo for key {first.msg.key_id}: {[u.node for u in infos]}, not one equal copy at each end")


@SUITE.clause("APP-RELAY-2")
def relay_key_as_long_as_the_shortest_hop(impl: Any) -> None:
    served, _ = _relay_runs(impl)
    for up in served.sent(RelayKeyInfo):
        info = up.msg
        if not info.hop_lengths or info.length != min(info.hop_lengths):
            raise _fail(f"a {info.length}-bit end key from hop keys of {info.hop_lengths} bits", up)
        if any(a.length < info.length for a in info.announcements):
            raise _fail("an announcement covers fewer bits than the end key", up)
    for up in served.sent(KeyDelivered):
        if len(bytes.fromhex(up.msg.key_hex)) != (up.msg.length + 7) // 8:
            raise _fail(f"key_hex holds {len(up.msg.key_hex) // 2} bytes for a {up.msg.length}-bit key", up)


@SUITE.clause("APP-RELAY-3")
def relay_trust_stated(impl: Any) -> None:
    served, _ = _relay_runs(impl)
    infos = served.sent(RelayKeyInfo)
    if not infos:
        raise ClauseFailure("the served relay request delivered no RelayKeyInfo")
    for up in infos:
        info = up.msg
        if info.trusted_relays != ["bob"] or info.path != ["alice", "bob", "carol"]:
            raise _fail(f"trusted relays {info.trusted_relays} on path {info.path}; the request named bob on alice-bob-carol", up)
        if len(info.hop_key_ids) != 2 or len(set(info.hop_key_ids)) != 2:
            raise _fail(f"hop keys {info.hop_key_ids} for a path of two hops", up)
        if [a.relay for a in info.announcements] != ["bob"]:
            raise _fail(f"announcements by {[a.relay for a in info.announcements]}; one by bob expected", up)


@SUITE.clause("APP-RELAY-4")
def relay_failed_hop_ends_both_ends(impl: Any) -> None:
    _, rejected = _relay_runs(impl)
    keys = rejected.sent(KeyDelivered)
    if keys:
        raise _fail("a key was delivered although the first hop was rejected", keys[0])
    errors = [u for u in rejected.sent(AppError) if u.node == "alice"]
    aborted = [u for u in rejected.sent(RelayAborted) if u.node == "carol"]
    if len(errors) != 1 or errors[0].msg.code is not AppErrorCode.REJECTED:
        raise ClauseFailure(f"alice got {[e.msg.code.value for e in errors]} for the rejected hop, not one AppError REJECTED")
    if len(aborted) != 1 or aborted[0].msg.code is not AppErrorCode.REJECTED:
        raise ClauseFailure(f"carol got {[a.msg.code.value for a in aborted]}, not one RelayAborted REJECTED")


@SUITE.clause("APP-RELAY-5")
def relay_epsilon_reported(impl: Any) -> None:
    served, _ = _relay_runs(impl)
    (scripted,) = served.requests
    request: Any = scripted.request  # a QkdRelayRequest (_relay_scenarios)
    for up in served.sent(KeyDelivered):
        msg = up.msg
        if msg.epsilon != request.epsilon or abs(msg.epsilon_sec + msg.epsilon_cor - msg.epsilon) > 1e-12 * msg.epsilon:
            raise _fail(f"ε {msg.epsilon} (sec {msg.epsilon_sec} + cor {msg.epsilon_cor}); the request asked for {request.epsilon}", up)
        if msg.key_sha256 != hashlib.sha256(bytes.fromhex(msg.key_hex)).hexdigest():
            raise _fail("key_sha256 is not the SHA-256 of key_hex", up)


class _TamperingHarness(AppHarness):
    """The harness with a man in the middle on the peer channel: every message that offers
    ``tampered(rng)`` (what an adversary can rewrite in it) arrives altered (APP-QKD-5)."""

    altered = 0

    def deliver_peer(self, sender: str, node: str, msg: Any) -> None:
        alter = getattr(msg, "tampered", None)
        if callable(alter):
            self.altered += 1
            msg = alter(self.streams[-1])
        super().deliver_peer(sender, node, msg)


@SUITE.clause("APP-QKD-5")
def qkd_altered_messages_stop_the_key(impl: Any) -> None:
    if CAP_APP_QKD not in (getattr(impl, "PROVIDES", None) or ()):
        raise NotApplicable(f"the implementation does not serve QKD requests (PROVIDES lacks {CAP_APP_QKD})")
    conditions, requests, horizon = _qkd_scenarios()[0]  # clean pairs: a key unless the adversary is caught
    harness = _TamperingHarness(impl, conditions, requests)
    run = harness.run(horizon)
    _no_crash(run)
    if not harness.altered:
        raise NotApplicable("the implementation's peer messages offer no tampered(): the harness's adversary cannot alter them")
    for up in _keys(run):
        raise _fail(f"{harness.altered} messages were altered, yet key {up.msg.key_id} was delivered", up)
    ends = sorted((u.node, u.msg.code.value) for u in run.sent((AppError, KeyAborted)))
    if ends != [("alice", "AUTH_FAILED"), ("bob", "AUTH_FAILED")]:
        raise ClauseFailure(f"{harness.altered} messages were altered, yet the ends closed with {ends}, not AUTH_FAILED at both")


@SUITE.clause("APP-QKD-6")
def qkd_both_ends_end_alike(impl: Any) -> None:
    for run in _qkd_runs(impl):
        for scripted in run.requests:
            request, head = scripted.request, scripted.node
            closings = [u for u in _closings(run) if u.node == head and u.msg.request_id == request.request_id]
            if not closings:
                continue  # APP-QKD-2 says it must close
            mine = [u for u in run.up if getattr(u.msg, "head", None) == head and getattr(u.msg, "request_id", None) == request.request_id]
            keys = [u for u in mine if isinstance(u.msg, KeyDelivered)]
            aborted = [u for u in mine if isinstance(u.msg, KeyAborted)]
            closing = closings[0]
            if isinstance(closing.msg, AppDone):
                if aborted:
                    raise _fail("the request is done, yet a KeyAborted names it", aborted[0])
                if len({u.msg.key_sha256 for u in keys}) > 1:
                    raise _fail("the two ends' keys have different hashes", keys[-1])
                continue
            code = closing.msg.code
            if code is AppErrorCode.REMOTE_LOST:
                continue
            at_tail = [u for u in aborted if u.node == request.remote_node]
            if len(at_tail) != 1 or len(aborted) != 1:
                raise _fail(
                    f"the request ended {code.value} at {head}, but {request.remote_node} got {len(at_tail)} KeyAborted "
                    f"({len(aborted)} in all) by t={run.end_ns} ns",
                    closing,
                )
            if at_tail[0].msg.code is not code:
                raise _fail(f"the tail was told {at_tail[0].msg.code.value}, the head {code.value}", at_tail[0])
