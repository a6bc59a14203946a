"""A reliable channel for the network layer's peer messages over a lossy classical network.

Theory of operation
-------------------
The reference network layer assumes that a peer message, once sent, arrives, and
that two messages between the same two nodes arrive in the order they were sent
(the stack's classical channel between two nodes has one fixed delay). A scenario
with classical faults breaks both: a lost ``Forward`` leaves a circuit without its
next step, a lost ``Release`` leaves memory reserved, a delayed message can be
overtaken. :class:`ReliableContext` gives the layer back both guarantees with
automatic repeat request, after the sliding-window protocols of HDLC and TCP
(Bertsekas & Gallager, *Data Networks*, 2nd ed., 1992, §2.4; RFC 9293 §3.8):

* **Numbering.** The node wraps every peer message in ``Sequenced`` with the next
  number of its stream to that receiver (one stream per receiver, from 0).
* **Acknowledging.** The receiver answers every ``Sequenced`` that reaches it with
  ``Ack`` at once, a copy it already has included (the ``Ack`` of the first copy
  may be the one that was lost).
* **Retransmitting.** The sender keeps each message until its ``Ack`` comes and
  sends it again when none came within a round trip to the receiver and a margin
  (``2 x D + 1 us``, with ``D`` the classical delay along the topology's shortest
  path: the links' ``classical_delay_ns``, else their fibre delay). After
  ``max_tries`` sendings it gives up on the message: the trace says so
  (``network.reliable_gave_up``), and the circuit it belonged to ends by its
  deadline, if it has one.
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

The channel is opt-in (scenario ``network: {reliable: true}``): it doubles the
messages (one ``Ack`` each) and adds a timer per message, so a run without it is
the same, event for event, as before it existed.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from qnetstack.entity import Context
from qnetstack.entity.message import Message
from qnetstack.network.peer import Ack, Sequenced
from qnetstack.physical.params import fibre_delay_ns

__all__ = ["MAX_TRIES", "RETRANSMIT", "RETRANSMIT_MARGIN_NS", "ReliableContext"]

# At a loss probability of 0.2 each way a sending goes unanswered with probability
# 1 - 0.8**2 = 0.36, and 16 sendings in a row with 0.36**16 < 1e-7: a run of 10**5
# messages gives up on none with probability above 0.99.
MAX_TRIES = 16
# The receiver answers in the instant a message arrives, so an Ack comes back exactly one
# round trip after its message left; the margin keeps the timer from firing in that instant.
RETRANSMIT_MARGIN_NS = 1_000
RETRANSMIT = "retransmit"  # first item of the channel's timer tags: (RETRANSMIT, receiver, seq)


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
    """The network entity's context with ``send_peer`` made reliable (see the module
    docstring); everything else goes to ``ctx`` unchanged.

    The entity hands the channel what reaches it: :meth:`received` for ``Sequenced`` and
    ``Ack`` (it returns the messages to handle, in order) and :meth:`timer` for timer tags
    that start with :data:`RETRANSMIT`."""

    def __init__(self, ctx: Context, topology: nx.Graph, max_tries: int = MAX_TRIES) -> None:
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, not {max_tries}")
        self._ctx = ctx
        self._topology = topology
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
        self._ctx.send_peer(node, Sequenced(epoch=self.epoch, seq=seq, base=stream.base(), inner=entry.msg))
        entry.timer = self._ctx.set_timer(self.timeout_ns(node), (RETRANSMIT, node, seq))

    def timeout_ns(self, node: str) -> int:
        """How long to wait for the ``Ack`` of a message to ``node``: a round trip and a margin."""
        timeout = self._timeouts.get(node)
        if timeout is None:
            delay = nx.shortest_path_length(self._topology, self._ctx.node, node, weight=_link_delay_ns)
            timeout = self._timeouts[node] = 2 * round(delay) + RETRANSMIT_MARGIN_NS
        return timeout

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
            self._ctx.trace("network.reliable_gave_up", to=node, seq=seq, message=type(entry.msg).__name__, tries=entry.tries)
            return
        self.retransmissions += 1
        self._ctx.trace("network.retransmit", to=node, seq=seq, message=type(entry.msg).__name__)
        self._transmit(node, stream, seq, entry)

    # ------------------------------------------------------------ receiving

    def received(self, sender: str, msg: Sequenced | Ack) -> list[Message]:
        """Take a ``Sequenced`` or ``Ack`` from ``sender``; return the messages now to be
        handled, in the order they were sent (none, one, or several that waited for this one)."""
        if isinstance(msg, Ack):
            self._acknowledged(sender, msg)
            return []
        stream = self._in.get(sender)
        if stream is None or msg.epoch > stream.epoch:
            stream = self._in[sender] = _Inbound(msg.epoch, msg.base)
        elif msg.epoch < stream.epoch:  # from an incarnation of the sender that crashed since
            self._ctx.trace("network.reliable_stale", sender=sender, epoch=msg.epoch, seq=msg.seq)
            return []
        self._ctx.send_peer(sender, Ack(epoch=msg.epoch, seq=msg.seq))
        ready: list[Message] = []
        held = stream.held
        if msg.base > stream.expected:
            # the sender sends nothing below base again: what waits below it goes on, gaps are skipped
            for seq in sorted(seq for seq in held if seq < msg.base):
                ready.append(held.pop(seq))
            stream.expected = msg.base
        if msg.seq < stream.expected or msg.seq in held:
            self.duplicates += 1
            self._ctx.trace("network.duplicate", sender=sender, seq=msg.seq)
        else:
            held[msg.seq] = msg.inner
        while stream.expected in held:
            ready.append(held.pop(stream.expected))
            stream.expected += 1
        return ready

    def _acknowledged(self, sender: str, ack: Ack) -> None:
        stream = self._out.get(sender)
        if stream is None or ack.epoch != self.epoch:
            return
        entry = stream.unacked.pop(ack.seq, None)
        if entry is not None and entry.timer is not None:
            self._ctx.cancel_timer(entry.timer)


def _link_delay_ns(u: str, v: str, data: dict[str, Any]) -> float:
    """One link's classical delay: as the physical layer announced it, else its fibre's."""
    delay = data.get("classical_delay_ns")
    return float(delay) if delay is not None else float(fibre_delay_ns(float(data["length_km"])))
