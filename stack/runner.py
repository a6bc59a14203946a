"""Running an assembled network to a stated end: done, failed or stalled.

:func:`run_network` runs the kernel in chunks of :data:`CHUNK_EVENTS` events
and looks at the run between chunks; it adds no event of its own, so a run
that completes processes exactly the events it would in one go, and its
numbers do not change. Between chunks it checks, in this order:

* **progress**: a request *progresses* when it is submitted, when a result
  naming it reaches its user (``TeleportResult``, ``PairResult``), when it
  closes (``AppDone``, ``AppError``) and, for a QKD request (which tells its
  user nothing before its key), when the network delivers one of its pairs at
  its head. The run is **stalled** when some request
  is open and no request has progressed for ``stall_after_ns`` of simulated
  time (checked exactly: a chunk also ends, without moving the clock, when
  the next event lies beyond the span) or for ``stall_after_events`` events
  (checked between chunks), and when the kernel runs out of events or reaches
  ``max_time_ns`` / ``max_events`` with requests open. The same watch applies
  once every request has closed: layers that go on for the span are cut
  (reason ``busy``) and the run is judged by its requests. Nothing is watched
  while no request is open and some are still to come, and a scenario without
  application requests is bounded by its stop condition only.
* **wall clock**: with a wall limit the run ends at the first chunk boundary
  after it (stalled, reason ``wall_limit``). A single event that still runs a
  second later (a handler that loops) is interrupted by ``SIGALRM``; this needs
  the main thread of a platform with ``signal.setitimer``, elsewhere only the
  check between chunks applies.

An exception raised by any entity ends the run as **failed**, with the node,
layer, implementation, simulated time and message the entity was handling
(:class:`~qnetstack.stack.report.HandlerError`).

Default stall spans (used when the scenario's ``stop`` leaves them out): a
link's expected time per pair is its attempt period over its success
probability per attempt. A single-click link may run at a lower bright-state
population (slower) to reach a request's minimum fidelity; the probability is
taken at the fastest operating point the link announces that reaches the
strictest per-link fidelity any request may ask for: the one the reference
network layer's admission asks the links of the request's route for
(:func:`qnetstack.network.admission.admit`: the swap algebra with the memories'
decoherence during the expected wait, on the route the scenario's metric picks;
a request it would refuse asks nothing of the links). A network layer that asks
for more should be run with explicit spans. The time span is :data:`STALL_FACTOR` times
the sum over all links of (expected time per pair + a round trip of its
classical channel), at least :data:`MIN_STALL_NS`. An end-to-end pair needs
one pair of each link on its path and a few classical messages, and a link's
wait for a pair is geometric: the chance that it exceeds 100 times its mean
is e^-100. The factor leaves room for what the sum does not model, requests
contending for links and memory (in healthy runs of 120 concurrent requests
on a three-node chain the longest spell without progress was 3 % of the
span). The event span is
:data:`STALL_FACTOR` × :data:`EVENTS_PER_ATTEMPT` times the sum over links of
the expected attempts per pair (1/p), at least :data:`MIN_STALL_EVENTS`; it
catches a run that spins without simulated time passing.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qnetstack.application.service import AppDone, AppError, AppErrorCode, PairResult, TeleportResult
from qnetstack.entity import Wait
from qnetstack.entity import kernel as kernel_module
from qnetstack.network.admission import Admitted, admit
from qnetstack.network.routing import NoRoute, shortest_route
from qnetstack.stack.report import HandlerError, RunEnd
from qnetstack.stack.runtime import LAYERS, Network

__all__ = [
    "CHUNK_EVENTS",
    "STALL_FACTOR",
    "EVENTS_PER_ATTEMPT",
    "MIN_STALL_NS",
    "MIN_STALL_EVENTS",
    "WALL_GRACE_S",
    "Limits",
    "RunProgress",
    "WallLimitReached",
    "default_stall_spans",
    "strictest_link_target",
    "run_network",
    "describe_waits",
]

CHUNK_EVENTS = 1000  # events between two looks at the run (a look costs microseconds)
STALL_FACTOR = 100
EVENTS_PER_ATTEMPT = 20  # kernel events per link attempt in per-attempt mode, whole stack (about 10 measured), doubled
MIN_STALL_NS = 1_000_000
MIN_STALL_EVENTS = 100_000
WALL_GRACE_S = 1.0  # how long an event may still run after the wall limit before SIGALRM cuts it
MESSAGE_CHARS = 300  # of a message's repr in an error report


class WallLimitReached(BaseException):
    """Raised by the SIGALRM handler inside the event that runs past the wall limit.

    A BaseException, like KeyboardInterrupt, so that a handler's own
    ``except Exception`` does not swallow it."""


@dataclass(frozen=True)
class RunProgress:
    """Where a running run is, for a progress display (wall time included: not part of any result)."""

    events: int
    sim_time_ns: int
    requests: int  # in the scenario
    requests_done: int
    requests_closed: int
    results: int  # results delivered to users
    wall_s: float


@dataclass(frozen=True)
class Limits:
    """When a run stops, all resolved (None: no such limit)."""

    max_time_ns: int | None
    max_events: int | None
    stall_after_ns: int
    stall_after_events: int
    wall_limit_s: float | None = None


def default_stall_spans(network: Network, scenario: Any) -> tuple[int, int]:
    """(stall_after_ns, stall_after_events) by the rule in the module docstring."""
    nodes = [n.name for n in scenario.nodes]
    target = strictest_link_target(network, scenario)
    seen: set[frozenset[str]] = set()
    time_ns = 0.0
    attempts = 0.0
    for node in nodes:
        device = network.entities.get(node, {}).get("physical")
        describe = getattr(device, "capabilities", None)
        if describe is None:
            continue
        for neighbour, link in describe().links.items():
            if frozenset((node, neighbour)) in seen:
                continue
            seen.add(frozenset((node, neighbour)))
            time_ns += 2 * link.classical_delay_ns
            p = _success_probability(link, target)
            if p > 0:  # a link that never succeeds adds nothing: requests over it cannot progress anyway
                time_ns += link.attempt_period_ns / p
                attempts += 1 / p
    time_ns += _pulse_block_span_ns(scenario)
    stall_ns = max(MIN_STALL_NS, math.ceil(STALL_FACTOR * time_ns))
    stall_events = max(MIN_STALL_EVENTS, math.ceil(STALL_FACTOR * EVENTS_PER_ATTEMPT * attempts))
    return stall_ns, stall_events


def _pulse_block_span_ns(scenario: Any) -> float:
    """The longest a decoy-BB84 request of the scenario goes between two pulse blocks: a block's
    pulses at the source's rate, plus a round trip over its pulse link."""
    links = {(p.sender, p.receiver): p for p in getattr(scenario, "pulse_links", ())}
    longest = 0.0
    for app in scenario.applications:
        link = links.get((app.node, app.request.remote_node))
        if link is not None and getattr(app.request, "protocol", None) == "bb84-decoy":
            pulse_link = link.pulse_link()
            longest = max(longest, app.request.block_size * pulse_link.pulse_period_ns + 2 * pulse_link.fibre.delay_ns())
    return longest


def strictest_link_target(network: Network, scenario: Any) -> float:
    """The highest fidelity the reference network layer asks of a link for any request of the
    scenario (0.0: none sets a target): per request, the per-link target its admission solves
    on the route the scenario's routing metric picks (or the other route admission settles on),
    over the graph the network entities route on (``network.topology``, set by the assembler).
    A request with no route, or one admission refuses, asks nothing of the links."""
    wanted = [app for app in scenario.applications if app.request.min_fidelity > 0.0]
    topology = network.topology
    if not wanted or topology is None:
        return 0.0
    target = 0.0
    for app in wanted:
        try:
            route = shortest_route(topology, app.node, app.request.remote_node, scenario.routing.metric)
        except NoRoute:
            continue
        admission = admit(topology, route, app.request.min_fidelity)
        if isinstance(admission, Admitted):
            target = max(target, admission.link_min_fidelity)
    return target


def _success_probability(link: Any, target: float) -> float:
    """Success probability per attempt at the operating point a link layer picks for ``target``:
    the fastest announced one that reaches it (none does: the configured one; such requests are refused)."""
    reaching = [s.success_probability for s in link.alpha_settings or () if s.fidelity >= target]
    return max(reaching) if reaching else float(link.success_probability)


class _Watch:
    """Which requests are open and when one last progressed (fed by the user's messages)."""

    def __init__(self, network: Network, scenario: Any) -> None:
        self.keys = {(app.node, app.request.request_id) for app in scenario.applications}
        self.times = sorted(app.at_ns for app in scenario.applications)  # when each is submitted
        self.total = len(self.times)
        self.submitted = 0  # of the scenario's requests, by the last look
        self.closed: set[tuple[str, int]] = set()  # of the scenario's requests
        self.done = 0
        self.results = 0
        self.last_progress_ns = 0
        self.last_progress_events = 0
        self._seen = 0  # progress messages counted at the last look
        network.user_callbacks.append(self._on_user_message)
        # a QKD request tells its user nothing until its key: its pairs' deliveries are its progress
        self._network = network
        self._qkd = {(app.node, app.request.request_id) for app in scenario.applications if app.request.kind == "qkd"}
        self.pairs = 0
        # a trusted-relay request's hops are QKD requests its relays make: any pair delivered at its head is progress
        self._relayed = any(app.request.kind == "qkd-relay" for app in scenario.applications)
        if self._qkd or self._relayed:
            network.delivery_callbacks.append(self._on_pair)
            network.progress_callbacks.append(self._on_pulse_block)

    def _on_pulse_block(self, time_ns: int) -> None:
        # a decoy-BB84 request's pulse blocks are its progress, as pairs are for the others
        self.pairs += 1
        self.last_progress_ns = time_ns

    def _on_pair(self, time_ns: int, node: str, msg: Any) -> None:
        pair_id = msg.pair_id
        if node == pair_id.head and (self._relayed or self._network.net_requests.get((node, pair_id.request_id)) in self._qkd):
            self.pairs += 1
            self.last_progress_ns = time_ns

    def _on_user_message(self, time_ns: int, node: str, msg: Any) -> None:
        if isinstance(msg, (TeleportResult, PairResult)):
            self.results += 1
        elif isinstance(msg, (AppDone, AppError)):
            if isinstance(msg, AppError) and msg.code is AppErrorCode.DUPLICATE_ID:
                return  # a refused duplicate closes nothing
            key = (node, msg.request_id)
            if key in self.keys and key not in self.closed:
                self.closed.add(key)
                self.done += isinstance(msg, AppDone)
        else:
            return
        self.last_progress_ns = time_ns

    @property
    def open(self) -> int:
        return self.submitted - len(self.closed)

    @property
    def pending(self) -> bool:
        """Some request of the scenario is still to be submitted."""
        return self.submitted < self.total

    def look(self, now_ns: int, events: int) -> None:
        """Take note of submissions and progress since the last look."""
        while self.submitted < self.total and self.times[self.submitted] <= now_ns:
            self.last_progress_ns = max(self.last_progress_ns, self.times[self.submitted])
            self.submitted += 1
            self._seen = -1  # a submission is progress
        progress = self.results + len(self.closed) + self.pairs
        if progress != self._seen:
            self._seen = progress
            self.last_progress_events = events

    def progress(self, now_ns: int, events: int, wall_s: float) -> RunProgress:
        return RunProgress(
            events=events,
            sim_time_ns=now_ns,
            requests=self.total,
            requests_done=self.done,
            requests_closed=len(self.closed),
            results=self.results,
            wall_s=wall_s,
        )


def run_network(
    network: Network,
    scenario: Any,
    limits: Limits,
    on_progress: Callable[[RunProgress], None] | None = None,
) -> RunEnd:
    """Start the entities and run the network until it ends; say how it ended."""
    watch = _Watch(network, scenario)
    kernel = network.kernel
    started = time.monotonic()
    wall_deadline = None if limits.wall_limit_s is None else started + limits.wall_limit_s
    try:
        with _alarm(None if limits.wall_limit_s is None else limits.wall_limit_s + WALL_GRACE_S):
            failure = _start(network)
            if failure is not None:
                return RunEnd(status="failed", reason="error", detail=failure.headline, error=failure)
            return _loop(network, watch, limits, wall_deadline, started, on_progress)
    except WallLimitReached as exc:
        error = _handler_error(network, exc, wall_limit=limits.wall_limit_s)
        if error is None:  # it landed between two events: the run is merely cut, as at a chunk boundary
            return _stalled("wall_limit", f"the wall-clock limit of {limits.wall_limit_s:g} s was reached")
        return RunEnd(status="failed", reason="wall_limit", detail=error.headline, error=error)
    except Exception as exc:
        error = _handler_error(network, exc)
        if error is None:
            raise  # not raised by an entity: a fault of the stack itself
        return RunEnd(status="failed", reason="error", detail=error.headline, error=error)
    finally:
        if on_progress is not None:
            on_progress(watch.progress(kernel.now_ns, kernel.events_processed, time.monotonic() - started))


def _start(network: Network) -> HandlerError | None:
    for node, layers in network.entities.items():
        for layer, entity in layers.items():
            try:
                entity.start()
            except Exception as exc:
                return _error_report(exc, node, layer, entity, "start", None, network.kernel.now_ns)
    return None


def _loop(
    network: Network,
    watch: _Watch,
    limits: Limits,
    wall_deadline: float | None,
    started: float,
    on_progress: Callable[[RunProgress], None] | None,
) -> RunEnd:
    kernel = network.kernel
    first_events = kernel.events_processed
    stall_ns = limits.stall_after_ns
    while True:
        chunk = CHUNK_EVENTS
        if limits.max_events is not None:
            chunk = min(chunk, limits.max_events - (kernel.events_processed - first_events))
        # stop at the scenario's max_time_ns, or without moving the clock when the quiet span runs out
        until, advance = limits.max_time_ns, True
        # watched while a request is open, and once all have closed (the layers should soon fall quiet);
        # not while none is open and some are still to come (a request submitted late is not a stall)
        watching = watch.total > 0 and (watch.open > 0 or not watch.pending)
        quiet_until = watch.last_progress_ns + stall_ns if watching else None
        if quiet_until is not None and (until is None or quiet_until < until):
            until, advance = quiet_until, False
        reason = kernel.run(until_ns=until, max_events=chunk, advance_to_until=advance) if chunk > 0 else "budget"
        now, events = kernel.now_ns, kernel.events_processed
        watch.look(now, events)
        open_now, pending = watch.open, watch.pending
        if reason == "idle":
            if open_now or pending:
                return _stalled("idle", "no event is left to run, yet requests are open")
            return _finished(watch)
        if reason == "until" and advance:
            return _ended_by_limit(watch, "max_time", f"the run reached stop.max_time_ns = {limits.max_time_ns}")
        if limits.max_events is not None and events - first_events >= limits.max_events:
            return _ended_by_limit(watch, "max_events", f"the run reached stop.max_events = {limits.max_events}")
        quiet_span = None
        if reason == "until" and watch.last_progress_ns + stall_ns == quiet_until:
            quiet_span = f"{stall_ns / 1e6:.3f} ms of simulated time"  # no event, so no progress, before the span ran out
        elif watching and events - watch.last_progress_events > limits.stall_after_events:
            quiet_span = f"{events - watch.last_progress_events} events"
        if quiet_span is not None:
            if open_now or pending:
                return _stalled("stall", f"no request progressed for {quiet_span}")
            busy = _finished(watch, f"cut: every request had closed, yet the layers went on for {quiet_span}")
            return busy.model_copy(update={"reason": "busy"})
        if on_progress is not None:
            on_progress(watch.progress(now, events, time.monotonic() - started))
        if wall_deadline is not None and time.monotonic() >= wall_deadline:
            return _stalled("wall_limit", f"the wall-clock limit of {limits.wall_limit_s:g} s was reached")


def _finished(watch: _Watch, note: str = "") -> RunEnd:
    failed = len(watch.closed) - watch.done
    status = "failed" if failed else "done"
    detail = note or ("every request closed" if watch.total else "no application requests")
    return RunEnd(status=status, reason="finished", detail=detail)


def _stalled(reason: Any, detail: str) -> RunEnd:
    return RunEnd(status="stalled", reason=reason, detail=detail)


def _ended_by_limit(watch: _Watch, reason: Any, detail: str) -> RunEnd:
    if watch.open or watch.pending:
        return _stalled(reason, detail)
    end = _finished(watch)
    return end.model_copy(update={"reason": reason, "detail": detail})


# ------------------------------------------------------------------ wall clock


class _alarm:
    """SIGALRM after ``seconds`` raises :class:`WallLimitReached` (main thread only; else nothing)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.armed = False
        self.previous: Any = None

    def __enter__(self) -> _alarm:
        usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        if self.seconds is not None and usable:
            self.previous = signal.signal(signal.SIGALRM, _raise_wall_limit)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)


def _raise_wall_limit(signum: int, frame: Any) -> None:
    raise WallLimitReached


# ------------------------------------------------------------------ errors with context

_KERNEL_FILE = Path(kernel_module.__file__).resolve()
_STACK_DIR = Path(__file__).resolve().parent
_RUNNER_FILE = Path(__file__).resolve()
# the machinery between the caller and an entity's handler, left out of the tracebacks shown
_MACHINERY = {_KERNEL_FILE, *(_STACK_DIR / name for name in ("runner.py", "runtime.py", "assembler.py", "cli.py"))}


def _is_machinery(tb: Any) -> bool:
    return Path(tb.tb_frame.f_code.co_filename).resolve() in _MACHINERY


def _handler_error(network: Network, exc: BaseException, wall_limit: float | None = None) -> HandlerError | None:
    """The report of an exception raised inside an event, or None if it was not:
    the traceback does not go below the kernel's loop (e.g. the wall-limit signal
    landed between two events, or the stack itself failed outside the kernel)."""
    failed = network.kernel.failed_event
    tb = exc.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve() != _KERNEL_FILE:
        tb = tb.tb_next
    if failed is None or tb is None or tb.tb_next is None:
        return None
    node, layer, entity, handler, message = _locate(network, failed.callback, failed.args)
    return _error_report(exc, node, layer, entity, handler, message, failed.time_ns, wall_limit)


def _locate(network: Network, callback: Any, args: tuple[Any, ...]) -> tuple[str | None, str | None, Any, str, Any]:
    """(node, layer, entity, handler name, message) of a kernel event."""
    if getattr(callback, "__func__", None) is Network.hand_to_application:
        node, app, request = args
        return node, "application", app, "handle_above", f"handle_above({_short(request)})"
    owner = getattr(callback, "__self__", None)
    handler = getattr(callback, "__name__", repr(callback))
    message: Any = f"{handler}({', '.join(_short(a) for a in args)})"
    for node, layers in network.entities.items():
        for layer, entity in layers.items():
            if entity is owner:
                return node, layer, entity, handler, message
    return None, None, owner, handler, message


def _short(value: Any) -> str:
    return _clip(repr(value))


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _error_report(
    exc: BaseException,
    node: str | None,
    layer: str | None,
    entity: Any,
    handler: str,
    message: Any,
    time_ns: int,
    wall_limit: float | None = None,
) -> HandlerError:
    tb = exc.__traceback__
    while tb is not None and _is_machinery(tb):
        tb = tb.tb_next
    shown = traceback.TracebackException(type(exc), exc, tb or exc.__traceback__)
    # the runner's own frame at the end of a wall-limit traceback (its signal handler) says nothing
    shown.stack = traceback.StackSummary.from_list([f for f in shown.stack if Path(f.filename).resolve() != _RUNNER_FILE])
    text = "".join(shown.format())
    if tb is not None:
        text = text.replace("Traceback (most recent call last):", "Traceback (most recent call last; the stack's own frames left out):", 1)
    if wall_limit is not None:
        what = f"wall-clock limit of {wall_limit:g} s reached"
    else:
        what = f"{type(exc).__name__}: {_clip(str(exc))}" if str(exc) else type(exc).__name__
    return HandlerError(
        node=node,
        layer=layer,
        implementation=None if entity is None else f"{type(entity).__module__}.{type(entity).__qualname__}",
        time_ns=time_ns,
        handler=handler,
        message=message,
        error=what,
        error_type="WallLimitReached" if wall_limit is not None else type(exc).__name__,
        traceback=text,
    )


# ------------------------------------------------------------------ what the layers wait for


def describe_waits(network: Network, nodes: Iterable[str]) -> dict[str, dict[str, list[Wait] | None]]:
    """node -> layer -> the layer's answer to ``describe_waits`` (None: it offers none)."""
    answers: dict[str, dict[str, list[Wait] | None]] = {}
    for node in nodes:
        layers = network.entities.get(node, {})
        answers[node] = {}
        for layer in LAYERS[1:]:
            entity = layers.get(layer)
            if entity is None:
                continue
            describe = getattr(entity, "describe_waits", None)
            answers[node][layer] = list(describe()) if callable(describe) else None
    return answers


def run_traced(simulation: Any, path: str | Path, **run_options: Any) -> Any:
    """Run an assembled ``Simulation`` (made with ``keep_trace``) and stream its trace
    to ``path`` (format: :mod:`qnetstack.stack.trace`) as it goes.

    The file is opened, and its header written, before the run; the records are
    not kept in memory as well. The ``end`` record is written when the run has
    ended (done, failed or stalled); a run interrupted before that (Ctrl-C) leaves
    the records so far, every line complete, and no ``end`` record.
    ``OSError`` when the file cannot be opened or written."""
    from qnetstack.stack.trace import TraceWriter

    network = simulation.network
    if not network.trace.keep_records:
        raise ValueError("run_traced needs a simulation assembled with keep_trace (its contexts trace messages)")
    writer = TraceWriter(
        path,
        simulation.scenario.name,
        simulation.scenario.seed,
        nodes=_chart_order(simulation.scenario, network),
        links=_trace_links(simulation.scenario, network),
    )
    network.trace.keep_records = False  # streamed, so not held in memory too
    network.trace.sink = writer
    try:
        result = simulation.run(**run_options)
        end = result.end
        writer.finish(network.kernel.now_ns, end.status, end.reason, end.detail)
    finally:
        network.trace.sink = None
        writer.close()
    return result


def _chart_order(scenario: Any, network: Network) -> list[str]:
    """The nodes in the order a chart shows them: the scenario's, each link's station
    after the first of its ends, and any other node of the network last."""
    from qnetstack.stack.assembler import station_name

    order: dict[str, None] = {}
    for node in scenario.nodes:
        order[node.name] = None
        for link in scenario.links:
            if link.a == node.name and station_name(link.a, link.b) in network.entities:
                order[station_name(link.a, link.b)] = None
    for node in network.entities:
        order.setdefault(node, None)
    return list(order)


def _trace_links(scenario: Any, network: Network) -> list[dict[str, Any]]:
    """The scenario's links for the trace header: both ends, the length, and the
    heralding station between them (None for a link without one)."""
    from qnetstack.stack.assembler import station_name

    links = []
    for link in scenario.links:
        station = station_name(link.a, link.b)
        links.append({"a": link.a, "b": link.b, "length_km": link.length_km, "station": station if station in network.entities else None})
    return links
