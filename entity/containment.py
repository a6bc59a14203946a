"""Keeping the implementation under test inside the conformance kit's rules.

Theory of operation
-------------------
A conformance verdict is worth something only if the implementation under
test cannot steer the kit. The kit's checks signal their verdicts with
exceptions (:class:`ClauseFailure`, :class:`NotApplicable`), they run under
hypothesis, which has control exceptions of its own, and the implementation's
handlers run inside all of that, in the kit's own process. This module holds
what keeps the two apart:

* **What a handler may raise.** The harness calls every handler of the
  implementation through one boundary (``qnetstack.entity.harness.Driver``),
  which hands whatever the handler raised to :func:`from_implementation`. An
  ordinary exception goes on as it is, labelled with the call it came from
  (:class:`CallContext`: node, handler, simulated time, the message being
  handled). An exception that would steer the kit or end the run (the kit's
  own exceptions, hypothesis's, ``SystemExit``, a ``KeyboardInterrupt`` that
  is no real Ctrl-C, any other ``BaseException``) becomes an
  :class:`ImplementationFault`: an ordinary failure of the clause being
  checked, naming what was raised and where.
* **What a handler may change.** Service messages are frozen pydantic models,
  but ``object.__setattr__`` still changes them. :func:`snapshot` takes a
  deep, cheap copy of a message, so the harness can tell at the end of a run
  that a message handed to the implementation, or sent by it, has changed.
* **How long a clause may take.** :class:`ClauseTimer` raises
  :class:`ClauseTimeout` from a ``SIGALRM`` handler when a clause runs past
  its limit, naming the implementation's function that was running (read
  from the frame stack when the timer fires). A handler that swallows it is
  interrupted again every second, and the clause fails anyway: the timer
  remembers that it fired. It also tells a real Ctrl-C (its own ``SIGINT``
  handler saw it) from a ``KeyboardInterrupt`` the implementation raised.
  Once a clause's time is up, the harness calls no handler again in it.

The kit runs the implementation in its own process, so an implementation
that kills the process (``os._exit``, a signal) ends the run; the verdict
line, the JSON report and the JUnit file are then missing, never wrong.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np
from hypothesis.errors import HypothesisException
from pydantic import BaseModel

__all__ = [
    "ACTIVE_CALLS",
    "CallContext",
    "ClauseFailure",
    "ClauseTimeout",
    "ClauseTimer",
    "ImplementationFault",
    "MessageLog",
    "NotApplicable",
    "call_context",
    "clause_timer",
    "describe_change",
    "from_implementation",
    "is_kit_module",
    "is_runner_module",
    "label",
    "short",
    "snapshot",
]


class ClauseFailure(AssertionError):
    """A check found behaviour the clause forbids."""


class NotApplicable(Exception):
    """The implementation does not offer what the clause is about."""


class ImplementationFault(Exception):
    """The implementation did something the kit cannot take at face value:
    raised one of the kit's or hypothesis's control exceptions, tried to end
    the process, or changed a message it was handed or had sent."""


class ClauseTimeout(BaseException):
    """A clause ran past its time limit (raised by :class:`ClauseTimer` only).

    A ``BaseException``, so that neither hypothesis nor the harness's
    ``except Exception`` takes it for a finding and runs the example again."""


# ------------------------------------------------------------------- frames

# the conformance kit's modules: an implementation never runs in them
_KIT_MODULES = frozenset(
    f"qnetstack.entity.{name}" for name in ("checks", "conformance", "containment", "devices", "harness", "imports", "kernel", "qubits")
)
_LAYER_KIT = re.compile(r"^qnetstack\.\w+\.conformance(\.|$)")
_RUNNERS = ("hypothesis", "_pytest", "pytest", "pluggy", "_hypothesis")


def is_kit_module(name: str) -> bool:
    """True for the conformance kit's own modules (``entity``'s and every layer's ``conformance``)."""
    return name in _KIT_MODULES or bool(_LAYER_KIT.match(name))


def is_runner_module(name: str) -> bool:
    """True for code that runs the checks rather than the implementation:
    the kit, hypothesis (and its per-test modules), pytest and the standard library."""
    return is_kit_module(name) or name.startswith(_RUNNERS) or name.partition(".")[0] in sys.stdlib_module_names


def _module_of(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


def short(value: Any, limit: int = 160) -> str:
    """``repr(value)``, cut to ``limit`` characters (a repr may be huge or may raise)."""
    try:
        text = repr(value)
    except Exception as exc:  # a hostile or broken __repr__ must not break the report
        text = f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------- calls into the impl


@dataclass(frozen=True)
class CallContext:
    """The call into the implementation an exception (or a timeout) came from."""

    node: str | None
    handler: str  # "MyEgp.handle_above"
    time_ns: int | None  # simulated time
    message: str  # what the handler was handed, cut short

    def describe(self) -> str:
        """``"MyEgp.handle_above on alice at t=0 ns, handling LinkCreate(...)"``"""
        where = [self.handler]
        if self.node is not None:
            where.append(f"on {self.node}")
        if self.time_ns is not None:
            where.append(f"at t={self.time_ns} ns")
        text = " ".join(where)
        return f"{text}, handling {self.message}" if self.message else text


_CONTEXT_ATTRIBUTE = "_qnetstack_call_context"


def call_context(exc: BaseException) -> CallContext | None:
    """The call ``exc`` came out of, when it came out of the implementation."""
    found = getattr(exc, _CONTEXT_ATTRIBUTE, None)
    return found if isinstance(found, CallContext) else None


def label(exc: BaseException, context: CallContext) -> None:
    """Record on ``exc`` the call it came out of (the first label stays)."""
    if call_context(exc) is None:
        try:
            setattr(exc, _CONTEXT_ATTRIBUTE, context)
        except (AttributeError, TypeError):  # an exception type that takes no attributes: it goes unlabelled
            pass


# The calls into the implementation under way, innermost last, as
# ``(driver, node, fn, args)``: ``driver.describe_call(node, fn, args)`` makes
# the call's :class:`CallContext` when asked (only on an exception or a
# timeout, so a call costs one tuple, a push and a pop). One list for the
# process: the kit runs its checks in one thread, the only one the timer can
# interrupt. The harness appends and pops it around each call.
ACTIVE_CALLS: list[tuple[Any, str | None, Callable[..., Any], tuple[Any, ...]]] = []


def from_implementation(exc: BaseException, context: Callable[[], CallContext]) -> BaseException | None:
    """What the boundary raises for ``exc``, which a handler of the implementation raised.

    ``None``: re-raise ``exc`` as it is (an ordinary exception, now labelled
    with its call; or the kit's own timeout or a real Ctrl-C passing through).
    Otherwise an :class:`ImplementationFault` to raise instead."""
    if _TIMER.owns(exc):
        return None
    if isinstance(exc, ImplementationFault) or call_context(exc) is not None:
        return None  # an inner boundary has judged it already
    ctx = context()
    verdict = _forbidden(exc)
    if verdict is None:
        label(exc, ctx)
        return None
    fault = ImplementationFault(f"{type(exc).__name__}{_args(exc)}: {verdict}")
    label(fault, ctx)
    return fault


def _args(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"({exc.code!r})"
    text = str(exc)
    return f"({text[:160]!r})" if text else ""


def _forbidden(exc: BaseException) -> str | None:
    """Why the kit cannot let ``exc`` out of a handler as it is, or None."""
    if isinstance(exc, KeyboardInterrupt):
        return "no Ctrl-C was pressed; a handler may not stop the run"
    if isinstance(exc, SystemExit):
        return "a handler may not end the process (sys.exit)"
    if isinstance(exc, ClauseTimeout):
        return "the conformance kit's own timeout; an implementation may not raise it"
    if isinstance(exc, (NotApplicable, ClauseFailure)):
        return "the conformance kit's own exception; an implementation may not raise it (it would decide the clause)"
    if isinstance(exc, HypothesisException):
        return "one of hypothesis's own exceptions; an implementation may not raise it (hypothesis would skip the example)"
    if not isinstance(exc, Exception):
        return "not an Exception; a handler may raise only ordinary exceptions"
    return None


# ---------------------------------------------------------------- snapshots

_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes})
# types whose values cannot change: the atoms, and every enum class met so far
_PLAIN: set[type] = set(_ATOMS)
_MODELS: set[type] = set()  # pydantic model classes met so far (a set lookup is faster than isinstance)


def snapshot(value: Any) -> Any:
    """A deep copy of what ``value`` says, cheap to take and to compare with ``==``.

    Pydantic models by their attributes, dataclasses by their fields,
    containers by their items, arrays by their bytes. An object of any other
    kind cannot be copied faithfully and is taken as unchanged. The harness
    takes one of every message that crosses the boundary (tens of thousands
    per suite), hence the fast path for a model whose values are all plain:
    one tuple, ``(class, *values)``."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind not in _MODELS and isinstance(value, BaseModel):
        _MODELS.add(kind)
    if kind in _MODELS:
        fields = value.__dict__
        extra = value.__pydantic_extra__
        if extra is None and _PLAIN.issuperset(map(type, fields.values())):
            return (kind, *fields.values())  # every value is plain: nothing deeper can change
        # the same tuple as above when every value is plain (a plain value is its own snapshot)
        values = [snapshot(v) for v in fields.values()]
        return (kind, *values) if extra is None else (kind, *values, ("extra", snapshot(extra)))
    if isinstance(value, enum.Enum):
        _PLAIN.add(kind)
        return value
    if isinstance(value, (list, tuple)):
        return (kind, tuple(snapshot(item) for item in value))
    if isinstance(value, dict):
        return (kind, tuple((snapshot(k), snapshot(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (kind, frozenset(snapshot(item) for item in value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (kind, tuple(snapshot(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, np.ndarray):
        return (np.ndarray, value.dtype.str, value.shape, value.tobytes())
    return (kind, "opaque")


def describe_change(before: Any, value: Any) -> str:
    """What changed in ``value`` since ``before`` (its :func:`snapshot`), in a few words."""
    now = snapshot(value)
    if isinstance(value, BaseModel) and isinstance(before, tuple) and len(before) == len(now):
        names = list(value.__dict__)
        changed = [f"{name} {_shown(old)} -> {_shown(new)}" for name, old, new in zip(names, before[1:], now[1:]) if old != new]
        if changed:
            return ", ".join(changed)
    return "its contents changed"


def _shown(item: Any) -> str:
    """An atom's snapshot is the atom; anything deeper is only said to have changed."""
    return short(item, 60) if type(item) in _PLAIN else "(a nested value)"


class MessageLog:
    """Messages that crossed the boundary, each with its snapshot, to be
    compared at the end of a run (:meth:`first_changed`).

    Kept as parallel lists: a run logs thousands of messages, and every extra
    object per message is one more for the garbage collector to scan."""

    __slots__ = ("messages", "snapshots", "owners", "actions", "nodes", "times")

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.snapshots: list[Any] = []
        self.owners: list[Any] = []  # the entity the message was handed to or sent by
        self.actions: list[str] = []  # "handle_above", "send_up", ...
        self.nodes: list[str | None] = []
        self.times: list[int] = []

    def record(self, message: Any, owner: Any, action: str, node: str | None, time_ns: int) -> None:
        self.messages.append(message)
        self.snapshots.append(snapshot(message))
        self.owners.append(owner)
        self.actions.append(action)
        self.nodes.append(node)
        self.times.append(time_ns)

    def clear(self) -> None:
        """Forget every message. A harness is cyclic garbage once its run ends, so
        what it holds waits for the garbage collector; cleared, the log's part
        goes at once, and the collector has that much less to scan."""
        for column in (self.messages, self.snapshots, self.owners, self.actions, self.nodes, self.times):
            column.clear()

    def first_changed(self) -> int | None:
        """The index of the first message that is no longer what its snapshot says."""
        for index, (message, before) in enumerate(zip(self.messages, self.snapshots)):
            if snapshot(message) != before:
                return index
        return None


# -------------------------------------------------------------------- timer


class ClauseTimer:
    """The time limit of each clause, and the tell-tale of a real Ctrl-C.

    :meth:`install` before a suite run and :meth:`uninstall` after it: it
    takes over ``SIGALRM`` (and ``SIGINT``) when it can, which is only in the main
    thread of a platform with ``SIGALRM`` and ``setitimer``; elsewhere
    :attr:`unavailable` says why the run has no time limit. :meth:`limit`
    arms the timer for one check. When it fires, the handler raises a fresh
    :class:`ClauseTimeout` naming what was running, and fires again every
    second (a handler that swallows the exception is interrupted again);
    :attr:`expired` stays true until the next :meth:`limit`: the harness
    calls no handler after it (:meth:`refuse`), and a check that returns
    after a swallowed timeout still fails. A handler that swallows every
    interruption inside a loop it never leaves cannot be stopped from inside
    the process.
    """

    def __init__(self) -> None:
        self.installed = False
        self.unavailable = ""
        self.expired = False
        self.interrupted = False  # a real Ctrl-C arrived
        self.where = ""  # what was running when the timer last fired
        self._raised: list[ClauseTimeout] = []
        self._saved: tuple[Any, Any, tuple[float, float]] | None = None

    def owns(self, exc: BaseException) -> bool:
        """True for the timer's own timeouts and for a real Ctrl-C."""
        if isinstance(exc, ClauseTimeout):
            return any(exc is mine for mine in self._raised)
        return isinstance(exc, KeyboardInterrupt) and self.interrupted

    def install(self, seconds: float | None) -> None:
        """Take over ``SIGINT`` (and, with a limit, ``SIGALRM``) for a suite run."""
        self.expired = self.interrupted = False
        self.unavailable = ""
        self._raised.clear()
        if threading.current_thread() is not threading.main_thread():
            self.unavailable = "not in the main thread, where alarms and Ctrl-C arrive"
            return
        if seconds is not None and not (hasattr(signal, "SIGALRM") and hasattr(signal, "setitimer")):
            self.unavailable = "this platform has no SIGALRM"
            seconds = None
        old_int = signal.signal(signal.SIGINT, self._on_interrupt)
        old_alarm = None
        old_timer = (0.0, 0.0)
        if seconds is not None:
            old_alarm = signal.signal(signal.SIGALRM, self._on_alarm)
            old_timer = signal.setitimer(signal.ITIMER_REAL, 0)
        self._saved = (old_int, old_alarm, old_timer)
        self.installed = seconds is not None

    def uninstall(self) -> None:
        """Give the signals back; harness runs after the suite's are not limited."""
        self.expired = False
        if self._saved is None:
            return
        old_int, old_alarm, old_timer = self._saved
        if old_alarm is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_alarm)
            if old_timer[0] > 0:
                signal.setitimer(signal.ITIMER_REAL, *old_timer)
        # None: the handler was not set from Python, and cannot be put back from it
        signal.signal(signal.SIGINT, signal.default_int_handler if old_int is None else old_int)
        self._saved = None
        self.installed = False

    @contextmanager
    def limit(self, seconds: float | None) -> Iterator[None]:
        """Run the body with at most ``seconds`` before a :class:`ClauseTimeout`."""
        self.expired = False
        self.where = ""
        if not self.installed or seconds is None:
            yield
            return
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3), min(seconds, 1.0))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def refuse(self) -> None:
        """Raise :class:`ClauseTimeout` when the clause's time is up: the
        harness asks before each call into the implementation, so a handler
        that swallowed the timeout is not called again."""
        if self.expired:
            timeout = ClauseTimeout(self.where)
            self._raised.append(timeout)
            raise timeout

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        raise KeyboardInterrupt

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if not self.expired:  # where it first ran out of time (later alarms find what swallowed it)
            self.where = running(frame)
        self.expired = True
        timeout = ClauseTimeout(self.where)
        self._raised.append(timeout)
        raise timeout


_TIMER = ClauseTimer()


def clause_timer() -> ClauseTimer:
    """The process's one timer (signal handlers are per process)."""
    return _TIMER


def running(frame: FrameType | None) -> str:
    """What the implementation was doing at ``frame``: the handler the kit
    called (and its node, time and message) and the innermost function of the
    implementation's own code on the stack."""
    innermost = None
    while frame is not None:
        if not is_runner_module(_module_of(frame)):
            code = frame.f_code
            innermost = f"{code.co_qualname} ({code.co_filename}:{frame.f_lineno})"
            break
        frame = frame.f_back
    if ACTIVE_CALLS:
        driver, node, fn, args = ACTIVE_CALLS[-1]
        text = f"handler {driver.describe_call(node, fn, args).describe()}"
        return f"{text}; it was running {innermost}" if innermost else text
    at = f" (innermost: {innermost})" if innermost else ""
    return f"the kit's own code, outside any handler of the implementation{at}"
