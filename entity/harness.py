"""The driver every layer's conformance harness runs on, and a memo of its runs.

The conformance harness of each layer runs the implementation under test on a
few nodes and plays everything around it: the layer above (scripted requests,
recorded responses), the layer below (scripted or random outcomes) and the
classical channel between the nodes. :class:`Driver` is what the four
harnesses share: the kernel, the seeded random streams, one
:class:`HarnessContext` per entity, the bookkeeping of which input an entity
was handling when it sent something (its *cause*), and the run loop that
starts the entities, plays the script and turns an implementation's
exception into a finding instead of an error of the harness.

Every call into the implementation goes through one door,
:meth:`Driver.enter` (building an entity, ``start``, the ``handle_*``
methods, a physical device's ``execute``): it is where the kit keeps the
implementation to its rules (:mod:`qnetstack.entity.containment`). An
exception out of a handler is labelled with the call it came from (node,
handler, simulated time, message), or turned into a failure when it would
steer the kit (the kit's own exceptions, hypothesis's, ``SystemExit``, a
``KeyboardInterrupt`` without a Ctrl-C); and a message handed to the
implementation (from above or below) or sent by it must not change: the
door and the context keep a snapshot of each, and
:meth:`Driver.check_unchanged` compares them all at the end of a run.

:class:`HarnessContext` is the :class:`qnetstack.entity.Context` an entity sees
in a harness. It keeps the stack's timing rules, so an implementation that
passes in the harness behaves the same way when assembled:

* ``send_peer`` delivers after the harness's channel delay for that pair of
  nodes, as a kernel event;
* timers are kernel events;
* ``send_up`` / ``send_down`` hand the message to the harness's callback at
  the moment it is sent, so the harness can tell which input caused it. The
  harness must not call back into the entity from inside such a callback: it
  schedules whatever it does in reply as a kernel event (at the same instant
  or later), which keeps the stack's rule that no entity is called
  re-entrantly.

:class:`RunMemo` makes each distinct harness run once: a run is a function of
the implementation, the scenario and the seed, so two checks that ask for the
same run can share one record.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from qnetstack.entity.containment import (
    ACTIVE_CALLS,
    CallContext,
    ImplementationFault,
    MessageLog,
    clause_timer,
    describe_change,
    from_implementation,
    label,
    short,
)
from qnetstack.entity.kernel import Kernel

_TIMER = clause_timer()

__all__ = ["HarnessContext", "Delivery", "NodeDevice", "Driver", "Sent", "RunMemo", "fingerprint"]

Delivery = Callable[[Any], None]
Cause = tuple[str, int | None]


@dataclasses.dataclass(frozen=True)
class Sent:
    """A message the implementation sent (up to the layer above, or down to the
    one below): when, on which node, and what it was handling then (``cause``,
    as :class:`Driver` records it)."""

    time_ns: int
    node: str
    msg: Any
    cause: Cause


class HarnessContext:
    """One entity's view of a harness: its node, the kernel's clock, its callbacks."""

    def __init__(
        self,
        kernel: Kernel,
        node: str,
        rng: np.random.Generator,
        device: Any,
        on_up: Callable[[str, Any], None],
        on_down: Callable[[str, Any], None],
        on_peer: Callable[[str, str, Any], None],
        peer_delay_ns: Callable[[str, str], int],
        on_timer: Callable[[str, Hashable], None] | None = None,
        sent: MessageLog | None = None,
        on_device: Callable[[str, Hashable, Any], None] | None = None,
    ) -> None:
        self._kernel = kernel
        # what the entity reads and never changes: plain attributes
        self.node = node
        self.rng = rng
        self.device = device
        self._on_up = on_up
        self._on_down = on_down
        self._on_peer = on_peer
        self._peer_delay_ns = peer_delay_ns
        self._on_timer = on_timer
        self._on_device = on_device
        # every message sent up or down, so that the driver can tell one changed after it was sent
        self._sent = sent
        self.entity: Any = None  # set by the harness once the entity exists
        self.traces: list[tuple[int, str, dict[str, Any]]] = []

    @property
    def now_ns(self) -> int:
        return self._kernel.now_ns

    def send_up(self, msg: Any) -> None:
        if self._sent is not None:
            self._sent.record(msg, self.entity, "send_up", self.node, self._kernel.now_ns)
        self._on_up(self.node, msg)

    def send_down(self, msg: Any) -> None:
        if self._sent is not None:
            self._sent.record(msg, self.entity, "send_down", self.node, self._kernel.now_ns)
        self._on_down(self.node, msg)

    def send_peer(self, node: str, msg: Any) -> None:
        delay = self._peer_delay_ns(self.node, node)
        self._kernel.schedule(delay, self._on_peer, self.node, node, msg)

    def set_timer(self, delay_ns: int, tag: Hashable) -> int:
        if delay_ns < 0:
            raise ValueError(f"set_timer: delay_ns must be >= 0, got {delay_ns}")
        return self._kernel.schedule(delay_ns, self._fire, tag)

    def cancel_timer(self, timer_id: int) -> None:
        self._kernel.cancel(timer_id)

    def trace(self, event: str, **fields: Any) -> None:
        self.traces.append((self._kernel.now_ns, event, fields))

    def _fire(self, tag: Hashable) -> None:
        if self._on_timer is not None:
            self._on_timer(self.node, tag)
        else:
            self.entity.handle_timer(tag)

    def request_device(self, op: Any, tag: Hashable) -> None:
        """Perform ``op`` on the harness's device once its duration has passed
        (the device's ``duration_ns(op)``; 0 for a device without durations)
        and hand the result to the entity's ``handle_device(tag, result)``.

        A fake device keeps no busy marks: the operation is executed when its
        time is up, which is what a device that takes time answers too."""
        duration = getattr(self.device, "duration_ns", None)
        delay = 0 if duration is None else int(duration(op))
        self._kernel.schedule(delay, self._device_done, op, tag)

    def _device_done(self, op: Any, tag: Hashable) -> None:
        perform = getattr(self.device, "perform", None)
        result = self.device.execute(op) if perform is None else perform(op)
        if self._on_device is not None:
            self._on_device(self.node, tag, result)
        else:
            self.entity.handle_device(tag, result)


class NodeDevice:
    """The device service as one node sees it, over a harness's fake of every
    node's devices (an object with ``execute(node, op)`` and
    ``capabilities(node)``)."""

    def __init__(self, devices: Any, node: str) -> None:
        self._devices = devices
        self._node = node

    def execute(self, op: Any) -> Any:
        return self._devices.execute(self._node, op)

    def capabilities(self) -> Any:
        return self._devices.capabilities(self._node)

    def duration_ns(self, op: Any) -> int:
        """How long ``op`` takes on this device (0 when the fake gives operations no time)."""
        duration = getattr(self._devices, "duration_ns", None)
        return 0 if duration is None else int(duration(self._node, op))

    def perform(self, op: Any) -> Any:
        """``op`` carried out once its duration has passed (the request path, ``request_device``)."""
        perform = getattr(self._devices, "perform", None)
        return self._devices.execute(self._node, op) if perform is None else perform(self._node, op)


class Driver:
    """The kernel, the entities and the run loop of one harness run.

    ``streams`` independent random streams are spawned from ``seed`` (the
    harness decides which entity or fake gets which). An entity's output is
    recorded with the input it was handling when it sent it, ``cause``:
    ``(kind, i)`` for the i-th scripted input (``kind`` is the harness's name
    for its requests), else ``("below", None)``, ``("peer", None)``,
    ``("timer", None)``, ``("device", None)`` (an answer to ``request_device``)
    or ``("start", None)``.
    """

    # handlers whose argument is a message from the kit (the layer above or below):
    # the implementation must leave it as it was given
    HANDED_IN = frozenset({"handle_above", "handle_below", "execute"})

    def __init__(self, seed: int, streams: int) -> None:
        self.kernel = Kernel()
        self.streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(streams)]
        self.entities: dict[str, Any] = {}
        self.contexts: dict[str, HarnessContext] = {}
        self.cause: Cause = ("start", None)
        # every message handed to the implementation, and every message it sent
        self.handed_in = MessageLog()
        self.sent = MessageLog()

    # ------------------------------------------------------------- building

    def context(
        self, node: str, rng: np.random.Generator, device: Any, on_up: Callable[[str, Any], None], on_down: Callable[[str, Any], None]
    ) -> HarnessContext:
        """A context for the entity of ``node``; peer messages go through :meth:`deliver_peer`."""
        ctx = HarnessContext(
            self.kernel,
            node,
            rng,
            device,
            on_up,
            on_down,
            self.deliver_peer,
            self.peer_delay_ns,
            on_timer=self.deliver_timer,
            sent=self.sent,
            on_device=self.deliver_device,
        )
        self.contexts[node] = ctx
        return ctx

    def build(self, node: str | None, factory: Any, *args: Any) -> Any:
        """``factory(*args)``: build the implementation's object (an entity, a backend) through :meth:`enter`."""
        return self.enter(node, factory, *args)

    def add(self, node: str, entity: Any) -> None:
        self.contexts[node].entity = entity
        self.entities[node] = entity

    # --------------------------------------------------- what a harness decides

    def peer_delay_ns(self, sender: str, node: str) -> int:
        """The classical delay from ``sender`` to ``node``."""
        raise NotImplementedError

    def refuse_peer(self, sender: str, node: str, msg: Any) -> bool:
        """True when a peer message must not be delivered (the harness records why)."""
        return False

    # ------------------------------------------------------------- delivery

    def call(self, cause: Cause, fn: Callable[..., Any], *args: Any) -> Any:
        """Call into an entity, with what it sends meanwhile tagged with ``cause``."""
        self.cause = cause
        try:
            return self.enter(None, fn, *args)
        finally:
            self.cause = ("timer", None)

    def enter(self, node: str | None, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, a call into the implementation (on ``node``, or the
        node whose entity ``fn`` is a method of), kept to the kit's rules.

        An exception out of it is labelled with the call, or replaced by an
        :class:`ImplementationFault` when the kit must not take it as it is
        (:func:`qnetstack.entity.containment.from_implementation`). A message
        ``fn`` is handed (:attr:`HANDED_IN`) goes on record, with a snapshot,
        for :meth:`check_unchanged`."""
        if _TIMER.expired:  # the clause's time is up (and a handler swallowed the timeout): call nothing more
            _TIMER.refuse()
        name = getattr(fn, "__name__", "")
        if name in self.HANDED_IN and len(args) == 1:
            self.handed_in.record(args[0], getattr(fn, "__self__", None), name, node, self.kernel.now_ns)
        ACTIVE_CALLS.append((self, node, fn, args))
        try:
            return fn(*args)
        except BaseException as exc:
            fault = from_implementation(exc, lambda: self.describe_call(node, fn, args))
            if fault is None:
                raise
            raise fault from exc
        finally:
            ACTIVE_CALLS.pop()

    def describe_call(self, node: str | None, fn: Any, args: tuple[Any, ...]) -> CallContext:
        """The call ``fn(*args)`` described for a report: handler, node, time, message."""
        owner = getattr(fn, "__self__", None)
        if owner is None:  # a factory: the implementation's class, or a backend's method
            return CallContext(
                node=node, handler=getattr(fn, "__qualname__", None) or short(fn, 80), time_ns=self.kernel.now_ns, message=""
            )
        if node is None:
            node = next((n for n, entity in self.entities.items() if entity is owner), None)
        message = ", ".join(short(a) for a in args)
        return CallContext(node=node, handler=f"{type(owner).__name__}.{fn.__name__}", time_ns=self.kernel.now_ns, message=message)

    def check_unchanged(self) -> None:
        """Raise :class:`ImplementationFault` if a message handed to the
        implementation, or sent by it, has changed since (a frozen model can
        still be changed with ``object.__setattr__``). The logs are emptied:
        the run is over."""
        try:
            self._check_unchanged()
        finally:
            self.handed_in.clear()
            self.sent.clear()

    def _check_unchanged(self) -> None:
        for log, what in ((self.handed_in, "handed to"), (self.sent, "sent by")):
            index = log.first_changed()
            if index is None:
                continue
            message, owner, node, time_ns = log.messages[index], log.owners[index], log.nodes[index], log.times[index]
            if node is None:
                node = next((n for n, entity in self.entities.items() if entity is owner), None)
            action = log.actions[index] if owner is None else f"{type(owner).__name__}.{log.actions[index]}"
            where = f"{action} on {node}" if node is not None else action
            change = describe_change(log.snapshots[index], message)
            fault = ImplementationFault(
                f"the {type(message).__name__} {what} {where} at t={time_ns} ns was changed afterwards ({change}): "
                f"an implementation must not change a message it is handed or has sent"
            )
            label(fault, CallContext(node=node, handler=action, time_ns=time_ns, message=short(message)))
            raise fault

    def deliver_below(self, node: str, msg: Any) -> None:
        self.call(("below", None), self.entities[node].handle_below, msg)

    def deliver_peer(self, sender: str, node: str, msg: Any) -> None:
        if self.refuse_peer(sender, node, msg):
            return
        self.call(("peer", None), self.entities[node].handle_peer, sender, msg)

    def deliver_timer(self, node: str, tag: Hashable) -> None:
        self.call(("timer", None), self.entities[node].handle_timer, tag)

    def deliver_device(self, node: str, tag: Hashable, result: Any) -> None:
        self.call(("device", None), self.entities[node].handle_device, tag, result)

    # ------------------------------------------------------------- the run

    def play(self, script: Sequence[Any], kind: str, until_ns: int | None, max_events: int | None) -> BaseException | None:
        """Start every entity, send the ``script`` (items with ``at_ns``,
        ``node`` and ``request``) from above at their times, run to ``until_ns``.

        Returns the implementation's exception instead of raising it: a crash
        is a finding of the run, not an error of the harness."""
        try:
            for node in self.entities:
                self.call(("start", None), self.entities[node].start)
            for index, scripted in enumerate(script):
                self.kernel.schedule(scripted.at_ns, self._send, kind, index, scripted)
            self.kernel.run(until_ns=until_ns, max_events=max_events)
            self.check_unchanged()
        except Exception as exc:  # the implementation crashed: a finding, not a harness error
            self.handed_in.clear()
            self.sent.clear()
            return exc
        return None

    def _send(self, kind: str, index: int, scripted: Any) -> None:
        self.call((kind, index), self.entities[scripted.node].handle_above, scripted.request)


# ------------------------------------------------------------------- memo


class _Unshareable(Exception):
    """A value that does not say by itself what a run does (a random generator, an object with state)."""


def fingerprint(value: Any) -> Hashable:
    """A hashable value equal for two arguments exactly when they describe the same run.

    Scalars keep their type (``1``, ``1.0`` and ``True`` differ); dataclasses
    and pydantic models are their type and fields; classes are themselves
    (kept alive by the key, so never confused with a later class at the same
    address); functions are their code, defaults and closure. Anything else
    (a random generator, an object with state) raises :class:`_Unshareable`.
    """
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return (type(value), value)
    if isinstance(value, enum.Enum):
        return value
    if isinstance(value, (tuple, list, frozenset, set)):
        items = [fingerprint(v) for v in value]
        if isinstance(value, (frozenset, set)):
            return (type(value), frozenset(items))
        return (type(value), tuple(items))
    if isinstance(value, dict):
        return (dict, tuple((fingerprint(k), fingerprint(v)) for k, v in value.items()))
    if isinstance(value, type):
        return value
    if isinstance(value, BaseModel):
        return (type(value), tuple((k, fingerprint(v)) for k, v in value.__dict__.items()))
    if dataclasses.is_dataclass(value):
        return (type(value), tuple(fingerprint(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, np.ndarray):
        return (np.ndarray, value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, types.FunctionType):
        cells = tuple(fingerprint(c.cell_contents) for c in value.__closure__ or ())
        return (value.__code__, fingerprint(value.__defaults__), fingerprint(value.__kwdefaults__), cells)
    if isinstance(value, functools.partial):
        return (functools.partial, fingerprint(value.func), fingerprint(value.args), fingerprint(value.keywords))
    raise _Unshareable(type(value).__name__)


class RunMemo:
    """``run(impl, *args, **kwargs)``, made once per distinct call and then shared.

    A harness run is a function of its arguments (the implementation, the
    scenario, the seed): conformance requires an implementation's behaviour to
    depend only on its inputs and its random streams. Calls whose arguments
    cannot be fingerprinted, and runs in which the implementation crashed
    (their exception object is raised by each check that judges them, and
    hypothesis annotates it), are made afresh every time, and so are runs
    during which a clause ran out of time. The latest ``max_runs`` runs are kept.
    """

    def __init__(self, run: Callable[..., Any], *, max_runs: int = 256) -> None:
        functools.update_wrapper(self, run)
        self._run = run
        self._max_runs = max_runs
        self._runs: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            key = (fingerprint(args), fingerprint(kwargs))
        except _Unshareable:
            return self._run(*args, **kwargs)
        found = self._runs.get(key)
        if found is not None:
            self._runs.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        result = self._run(*args, **kwargs)
        # a crashed run is made afresh by each check that asks (its exception is
        # annotated by each); so is one in which the clause's time ran out and
        # the implementation swallowed the timeout (it is no faithful run)
        if getattr(result, "crashed", None) is None and not _TIMER.expired:
            self._runs[key] = result
            if len(self._runs) > self._max_runs:
                self._runs.popitem(last=False)
        return result

    def clear(self) -> None:
        self._runs.clear()

    def __len__(self) -> int:
        return len(self._runs)
