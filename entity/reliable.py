"""A reliable channel for an entity's peer messages over a lossy classical network.

Theory of operation
-------------------
The reference layers assume that a peer message, once sent, arrives, and that two
messages between the same two nodes arrive in the order they were sent (the stack's
classical channel between two nodes has one fixed delay). A scenario with classical
faults breaks both. :class:`ReliableContext` gives a layer back both guarantees with
automatic repeat request, after the sliding-window protocols of HDLC and TCP
(Bertsekas & Gallager, *Data Networks*, 2nd ed., 1992, §2.4; RFC 9293 §3.8). It sits
below every layer, so the link and network layers use the one protocol
(``qnetstack.network.reliable`` binds it to the network's topology and messages):

* **Numbering.** The node wraps every peer message in ``Sequenced`` with the next
  number of its stream to that receiver (one stream per receiver, from 0).
* **Acknowledging.** The receiver answers every ``Sequenced`` that reaches it with
  ``Ack`` at once, a copy it already has included (the ``Ack`` of the first copy
  may be the one that was lost).
* **Retransmitting.** The sender keeps each message until its ``Ack`` comes and
  sends it again when none came within a round trip to the receiver and a margin
  (``2 x D + 1 us``, with ``D`` the one-way classical delay the layer names). After
  ``max_tries`` sendings it gives up on the message and traces so
  (``<layer>.reliable_gave_up``).
* **Once, in order.** The receiver hands each message to the layer once, in the
  order of the numbers: one that arrives ahead of a gap waits for the gap to be
  filled. What it has seen is the next number it waits for plus the numbers
  above it that wait, so it stays as small as the messages in flight. Every
  ``Sequenced`` carries the sender's lowest number it may still send again
  (``base``): what lies below was acknowledged or given up, so the receiver
  stops waiting for it.
* **Restarts.** A node that crashes loses its streams. Each incarnation of a node
  numbers its streams apart (``epoch``, the simulated time its entity was built):
  a receiver that meets a newer epoch of a sender starts that stream afresh, drops
  what is left of an older one, and waits for nothing below the new ``base``; a
  receiver that restarted does the same with the first message it gets. ``Ack``
  names the epoch it answers, so an answer to an earlier incarnation is ignored.

A message sent at ``t`` therefore reaches its receiver by ``t + (max_tries - 1) x
timeout + D`` (:meth:`ReliableContext.worst_delay_ns`) or the sender gives up on it:
a layer that agrees on instants by messages (the link layer's start and stop times)
leaves that much room. The channel is opt-in per layer: it doubles the messages (one
``Ack`` each) and adds a timer per message.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from qnetstack.entity import Context
from qnetstack.entity.message import Message

__all__ = ["MAX_TRIES", "RETRANSMIT", "RETRANSMIT_MARGIN_NS", "Ack", "ReliableContext", "Sequenced"]

# At a loss probability of 0.2 each way a sending goes unanswered with probability
# 1 - 0.8**2 = 0.36, and 16 sendings in a row with 0.36**16 < 1e-7: a run of 10**5
# messages gives up on none with probability above 0.99.
MAX_TRIES = 16
# The receiver answers in the instant a message arrives, so an Ack comes back exactly one
# round trip after its message left; the margin keeps the timer from firing in that instant.
RETRANSMIT_MARGIN_NS = 1_000
RETRANSMIT = "retransmit"  # first item of the channel's timer tags: (RETRANSMIT, receiver, seq)


class Sequenced(Message):
    """A peer message ``inner`` sent over the reliable channel: number ``seq`` of those the
    sender (in its incarnation ``epoch``, the time its entity was built) sent to the receiver.
    ``base`` is the sender's lowest number it may still send again: everything below it was
    acknowledged or given up, so the receiver waits for nothing below it."""

    kind: Literal["sequenced"] = "sequenced"
    epoch: int = Field(ge=0)
    seq: int = Field(ge=0)
    base: int = Field(ge=0)
    inner: Message


class Ack(Message):
    """The receiver of ``Sequenced`` number ``seq`` of the sender's incarnation ``epoch`` has it."""

    kind: Literal["sequenced_ack"] = "sequenced_ack"
    epoch: int = Field(ge=0)
    seq: int = Field(ge=0)


@dataclass
class _Unacked:
    msg: Message
    tries: int = 0
    timer: int | None = None


@dataclass
class _Outbound:
    """A stream to one receiver: the next number, and the messages sent but not acknowledged
    (in the order of their numbers: a dict keeps the order of insertion)."""

    next_seq: int = 0
    unacked: dict[int, _Unacked] = field(default_factory=dict)

    def base(self) -> int:
        return next(iter(self.unacked), self.next_seq)


@dataclass
class _Inbound:
    """A stream from one sender's incarnation: the next number to hand on, and the messages
    that arrived ahead of it."""

    epoch: int
    expected: int
    held: dict[int, Message] = field(default_factory=dict)


class ReliableContext:
    """An entity's context with ``send_peer`` made reliable (see the module docstring);
    everything else goes to ``ctx`` unchanged.

    ``delay_ns(node)`` is the one-way classical delay to ``node`` (asked once per node, when
    the first message to it is sent); ``layer`` names the trace events (``<layer>.retransmit``
    and so on); ``sequenced`` and ``ack`` are the message classes the channel wraps and
    answers with (a layer may keep its own, with the fields of :class:`Sequenced` and
    :class:`Ack`). The entity hands the channel what reaches it: :meth:`received` for those
    two (it returns the messages to handle, in order) and :meth:`timer` for timer tags that
    start with :data:`RETRANSMIT`."""

    def __init__(
        self,
        ctx: Context,
        delay_ns: Callable[[str], float],
        layer: str,
        max_tries: int = MAX_TRIES,
        sequenced: type[Message] = Sequenced,
        ack: type[Message] = Ack,
    ) -> None:
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, not {max_tries}")
        self._ctx = ctx
        self._delay_ns = delay_ns
        self._layer = layer
        self._ack = ack
        # the same classes, seen as what builds the envelopes (the pydantic plugin knows only
        # Message's fields, not the layer's class's)
        self._make_sequenced: Callable[..., Message] = sequenced
        self._make_ack: Callable[..., Message] = ack
        self.max_tries = max_tries
        self.epoch = ctx.now_ns
        self._out: dict[str, _Outbound] = {}
        self._in: dict[str, _Inbound] = {}
        self._timeouts: dict[str, int] = {}
        self.retransmissions = 0
        self.duplicates = 0
        self.gave_up = 0

    # ------------------------------------------------------------ the context, passed on

    @property
    def node(self) -> str:
        return self._ctx.node

    @property
    def now_ns(self) -> int:
        return self._ctx.now_ns

    @property
    def rng(self) -> np.random.Generator:
        return self._ctx.rng

    @property
    def device(self) -> Any:
        return self._ctx.device

    @property
    def keeps_transitions(self) -> bool:
        return bool(getattr(self._ctx, "keeps_transitions", True))

    def send_up(self, msg: Any) -> None:
        self._ctx.send_up(msg)

    def send_down(self, msg: Any) -> None:
        self._ctx.send_down(msg)

    def set_timer(self, delay_ns: int, tag: Hashable) -> int:
        return self._ctx.set_timer(delay_ns, tag)

    def cancel_timer(self, timer_id: int) -> None:
        self._ctx.cancel_timer(timer_id)

    def trace(self, event: str, **fields: Any) -> None:
        self._ctx.trace(event, **fields)

    def request_device(self, op: Any, tag: Hashable) -> None:
        self._ctx.request_device(op, tag)

    # ------------------------------------------------------------ sending

    def send_peer(self, node: str, msg: Any) -> None:
        stream = self._out.get(node)
        if stream is None:
            stream = self._out[node] = _Outbound()
        seq = stream.next_seq
        stream.next_seq += 1
        entry = stream.unacked[seq] = _Unacked(msg)
        self._transmit(node, stream, seq, entry)

    def _transmit(self, node: str, stream: _Outbound, seq: int, entry: _Unacked) -> None:
        entry.tries += 1
        self._ctx.send_peer(node, self._make_sequenced(epoch=self.epoch, seq=seq, base=stream.base(), inner=entry.msg))
        entry.timer = self._ctx.set_timer(self.timeout_ns(node), (RETRANSMIT, node, seq))

    def timeout_ns(self, node: str) -> int:
        """How long to wait for the ``Ack`` of a message to ``node``: a round trip and a margin."""
        timeout = self._timeouts.get(node)
        if timeout is None:
            timeout = self._timeouts[node] = 2 * round(self._delay_ns(node)) + RETRANSMIT_MARGIN_NS
        return timeout

    def worst_delay_ns(self, node: str) -> int:
        """The latest a message sent now reaches ``node``, unless the channel gives up on it:
        its last sending leaves ``max_tries - 1`` timeouts from now and takes one delay."""
        return (self.max_tries - 1) * self.timeout_ns(node) + round(self._delay_ns(node))

    def timer(self, tag: tuple[str, str, int]) -> None:
        """A retransmission timer fired: send the message again, or give up on it."""
        _, node, seq = tag
        stream = self._out[node]
        entry = stream.unacked.get(seq)
        if entry is None:  # acknowledged in the same instant
            return
        entry.timer = None
        if entry.tries >= self.max_tries:
            del stream.unacked[seq]
            self.gave_up += 1
            self._ctx.trace(f"{self._layer}.reliable_gave_up", to=node, seq=seq, message=type(entry.msg).__name__, tries=entry.tries)
            return
        self.retransmissions += 1
        self._ctx.trace(f"{self._layer}.retransmit", to=node, seq=seq, message=type(entry.msg).__name__)
        self._transmit(node, stream, seq, entry)

    # ------------------------------------------------------------ receiving

    def received(self, sender: str, msg: Any) -> list[Message]:
        """Take a ``Sequenced`` or ``Ack`` from ``sender``; return the messages now to be
        handled, in the order they were sent (none, one, or several that waited for this one)."""
        if isinstance(msg, self._ack):
            self._acknowledged(sender, msg)
            return []
        stream = self._in.get(sender)
        if stream is None or msg.epoch > stream.epoch:
            stream = self._in[sender] = _Inbound(msg.epoch, msg.base)
        elif msg.epoch < stream.epoch:  # from an incarnation of the sender that crashed since
            self._ctx.trace(f"{self._layer}.reliable_stale", sender=sender, epoch=msg.epoch, seq=msg.seq)
            return []
        self._ctx.send_peer(sender, self._make_ack(epoch=msg.epoch, seq=msg.seq))
        ready: list[Message] = []
        held = stream.held
        if msg.base > stream.expected:
            # the sender sends nothing below base again: what waits below it goes on, gaps are skipped
            for seq in sorted(seq for seq in held if seq < msg.base):
                ready.append(held.pop(seq))
            stream.expected = msg.base
        if msg.seq < stream.expected or msg.seq in held:
            self.duplicates += 1
            self._ctx.trace(f"{self._layer}.duplicate", sender=sender, seq=msg.seq)
        else:
            held[msg.seq] = msg.inner
        while stream.expected in held:
            ready.append(held.pop(stream.expected))
            stream.expected += 1
        return ready

    def _acknowledged(self, sender: str, ack: Any) -> None:
        stream = self._out.get(sender)
        if stream is None or ack.epoch != self.epoch:
            return
        entry = stream.unacked.pop(ack.seq, None)
        if entry is not None and entry.timer is not None:
            self._ctx.cancel_timer(entry.timer)
