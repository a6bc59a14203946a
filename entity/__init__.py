"""The contract between a protocol entity and whatever runs it.

Theory of operation
-------------------
Every layer implementation in qnetstack is a *sans-I/O* state machine (the style
of h11 and aioquic): it never reads a clock, never sleeps, never calls another
layer's object. It is given a :class:`Context` when it is built and reacts to
four kinds of input, each a method of :class:`Entity`:

* ``handle_above(msg)``  a request from the layer above on the same node;
* ``handle_below(msg)``  a confirmation or indication from the layer below;
* ``handle_peer(sender, msg)``  a message from the same layer on node ``sender``;
* ``handle_timer(tag)``  a timer it set has fired.

Everything it does goes out through the context: ``send_up``, ``send_down``,
``send_peer`` (delivered after the classical channel's delay), ``set_timer`` /
``cancel_timer``, ``now_ns``, its own random stream ``rng``, the node's
physical *device* service ``device`` and ``trace`` for the event log.

Device operations that take time
--------------------------------
``ctx.device.execute(op)`` answers at once and takes no simulated time.
An operation that takes the node's hardware time (a gate, a measurement, a
Bell measurement) is asked for with ``ctx.request_device(op, tag)``: the
device performs it once its duration has passed (the qubits it names wait,
and decohere, meanwhile, and are busy for every other operation) and the
runner calls the entity's ``handle_device(tag, result)`` with the result
``execute`` would have returned at that moment. A zero duration answers in
the same simulated instant, as a later event. An entity that asks for device
operations this way must offer ``handle_device``; ``tag`` is the entity's own
and comes back unchanged, so the entity matches the answer to the session
that asked.

A handler returns, or raises an ordinary ``Exception``; it never ends the
process (``sys.exit``) or raises a ``BaseException``, and it never changes a
message it is handed or has sent: the service messages are frozen values,
shared with whoever sent them (``object.__setattr__`` can still change one,
and must not). The conformance kit fails any clause during which an
implementation breaks these rules (``specs/README.md``).

The kernel in ``stack`` is one implementation of :class:`Context`; a test
harness that plays the neighbours is another. That is what lets any layer be
tested alone.

Optional introspection: ``describe_waits()``
--------------------------------------------
An entity MAY offer ``describe_waits() -> list[Wait]``: one :class:`Wait` per
open session, saying what the session waits for, which request it serves,
which requests of the layer below it waits on and how many memory qubits of
the node it holds. A runner asks only when it has to explain a run that
stopped with requests open (a stall, a deadline, a wall-clock limit), so the
method is off the hot path: it computes its answer from the entity's state
when called, and it MUST NOT change that state, send anything or draw random
numbers (a run that is asked and one that is not give the same numbers). An
entity without the method is still run and reported; the report then says
only that its requests are open.

Requests are named as the service that carries them names them, as
``(node, id)`` pairs, so a runner can follow one request down the layers:
an application session names the user's request ``(node, request_id)`` and
the network request it made ``(node, NetRequest.request_id)``; a network
session names that network request ``(head, request_id)`` and its link
requests ``(origin node, create_id)``; a link session names its own
``(origin node, create_id)``.

This package sits below every layer, so it imports nothing from them.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

__all__ = ["Context", "Entity", "EntityError", "RequestName", "Wait", "DescribesWaits", "UsesDeviceTime"]

RequestName = tuple[str, int]  # (node that made the request, its id in the service that carries it)


class EntityError(RuntimeError):
    """An entity was driven in a way its service specification forbids."""


@runtime_checkable
class Context(Protocol):
    """What an entity may use to act on the world. Provided by the runner."""

    @property
    def node(self) -> str:
        """Name of the node this entity lives on."""
        ...

    @property
    def now_ns(self) -> int:
        """Current simulated time in integer nanoseconds."""
        ...

    @property
    def rng(self) -> np.random.Generator:
        """This entity's own random stream (independent of every other entity)."""
        ...

    @property
    def device(self) -> Any:
        """The node's physical device service (``qnetstack.physical.service.DeviceService``)."""
        ...

    def send_up(self, msg: Any) -> None:
        """Deliver ``msg`` to the layer above on this node (same instant, queued)."""
        ...

    def send_down(self, msg: Any) -> None:
        """Deliver ``msg`` to the layer below on this node (same instant, queued)."""
        ...

    def send_peer(self, node: str, msg: Any) -> None:
        """Send ``msg`` to the same layer on ``node`` over the classical channel."""
        ...

    def set_timer(self, delay_ns: int, tag: Hashable) -> int:
        """Fire ``handle_timer(tag)`` after ``delay_ns``; returns a timer id."""
        ...

    def cancel_timer(self, timer_id: int) -> None:
        """Cancel a timer that has not fired yet (no-op if it has)."""
        ...

    def trace(self, event: str, **fields: Any) -> None:
        """Record an event for the run's trace and counters."""
        ...

    def request_device(self, op: Any, tag: Hashable) -> None:
        """Have the node's device perform ``op`` in its simulated duration; the
        result comes back as ``handle_device(tag, result)`` (see "Device
        operations that take time")."""
        ...


@runtime_checkable
class Entity(Protocol):
    """A protocol entity: one layer's state machine on one node."""

    def start(self) -> None:
        """Called once at time zero, after every entity of the network exists."""
        ...

    def handle_above(self, msg: Any) -> None: ...

    def handle_below(self, msg: Any) -> None: ...

    def handle_peer(self, sender: str, msg: Any) -> None: ...

    def handle_timer(self, tag: Hashable) -> None: ...


@runtime_checkable
class UsesDeviceTime(Protocol):
    """An entity that asks for device operations with ``ctx.request_device``."""

    def handle_device(self, tag: Hashable, result: Any) -> None:
        """The device finished the operation asked for with ``tag``; ``result`` is
        its result (a ``qnetstack.physical.service`` device result or ``DeviceError``)."""
        ...


class Wait(NamedTuple):
    """One open session of an entity and what it waits for (see ``describe_waits``).

    ``session`` is the entity's own short name for the session and
    ``waiting_for`` a few words on what would let it go on (``"a link pair
    with bob"``, ``"its turn on the link (2 requests ahead)"``). ``request``
    names the request of the layer above that the session serves, ``below``
    the requests of the layer below it waits on (see "Optional
    introspection" above); ``peer`` is the other node it depends on, if one;
    ``holds`` is how many memory qubits of this node it holds now.
    """

    session: str
    waiting_for: str
    request: RequestName | None = None
    below: tuple[RequestName, ...] = ()
    peer: str | None = None
    holds: int = 0


@runtime_checkable
class DescribesWaits(Protocol):
    """An entity that answers "what are you waiting for" (optional)."""

    def describe_waits(self) -> list[Wait]:
        """One :class:`Wait` per open session; changes nothing."""
        ...
