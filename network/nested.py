"""Nested (doubling) entanglement swapping: the ``nested`` policy.

Theory of operation
-------------------
In the repeater protocol of Briegel, Dür, Cirac & Zoller (PRL 81, 5932, 1998;
Dür, Briegel, Cirac & Zoller, PRA 59, 169, 1999) the links of a path of
``2^k`` links are joined in levels: at level 1 the repeaters at odd positions
(1, 3, 5, ...) swap their two link pairs, making pairs over two links; at
level 2 the repeaters at positions 2 mod 4 swap two such pairs, making pairs
over four links; and so on, until the middle node joins the two halves of
the path. Each level doubles the span of the pairs, and the distance each
swap spans is known in advance, which is what lets the papers distil at every
level.

Segments. A *segment* is a stretch ``(a, b)`` of the path (positions of its
first and last node, ``b - a >= 1``). Its *midpoint* is ``(a + b) // 2``; the
repeater there joins a pair spanning ``(a, m)`` with one spanning ``(m, b)``.
Splitting the whole path ``(0, n)`` at its midpoint, then each part at its
own, down to single links, gives every repeater exactly one segment
(:func:`segment_of`). For ``n = 2^k`` this is the doubling scheme of the
papers; for other ``n`` it is the balanced binary split, the left part never
longer than the right (3 links: node 2 joins links 1-2 and 2-3, then node 1
joins link 0-1 with that pair). A repeater's *level* is the number of
splits below it, ``ceil(log2(b - a))``.

How a repeater learns that a pair spans its side's segment. A side of
length one is a link: any link pair held there does. A longer side
``(a, m)`` is made by the repeater at its midpoint (its *child*); after its
swap the child sends ``SegmentReady`` to the one repeater that needs it, the
*parent* whose side the new segment is (an end of the segment, never both:
:func:`parent_of`). The message names the parent's own link pair by
``ent_id`` (the pair whose half there now spans the segment) and the link
pair at the segment's other end, which the parent puts in its own
``SegmentReady`` when it swaps in turn. The head and tail learn nothing new:
they follow ``SwapRecord`` s as for any other order of swaps.

A ``SegmentReady`` never arrives before its circuit is set up at the parent:
a parent upstream of the child was set up before it (the ``Forward`` travels
head to tail), and one downstream received the ``Forward`` before a link
pair on its hop towards the child could be made, at least a link's
heralding earlier.

Goodness. Every half of every link pair is held from its link's herald time
until the swap at its node (or the delivery, at an end), whatever the order
of the swaps: the repeater's ``SwapRecord`` carries its own two halves'
decay, as under swap-asap, and the Bell-diagonal composition
(:mod:`~qnetstack.network.bell_diagonal`) multiplies correlations, which
commute. The nested order makes halves wait longer (a parent waits for its
children's messages), and that time is in the records.

What it holds (and reserves): as swap-asap, one link pair per hop side at a
time over repeaters (the entity paces the hops with ``HopFreed``).

What the policy keeps: per circuit at a repeater, the segment each of its
link pairs spans now, learnt from ``SegmentReady``; it lives as long as the
circuit's session (a weak map), so an ended circuit leaves nothing behind.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, ClassVar

from qnetstack.link.service import EntanglementId
from qnetstack.network.circuit import Circuit, CircuitAtRepeater, CircuitEnd
from qnetstack.network.pairs import LinkPair, PairStore
from qnetstack.network.peer import SegmentReady, SwapRecord

__all__ = ["NestedPolicy", "level_of", "parent_of", "segment_of"]

Segment = tuple[int, int]


def segment_of(hops: int, position: int) -> Segment:
    """The segment ``(a, b)`` that the repeater at ``position`` (0 < position < hops) joins:
    the one of the balanced binary split of ``(0, hops)`` whose midpoint it is."""
    if not 0 < position < hops:
        raise ValueError(f"position {position} is not a repeater of a path of {hops} links")
    a, b = 0, hops
    while True:
        middle = (a + b) // 2
        if position == middle:
            return (a, b)
        if position < middle:
            b = middle
        else:
            a = middle


def level_of(hops: int, position: int) -> int:
    """The level of the repeater at ``position``: 1 joins two links, 2 two pairs of level 1, ..."""
    a, b = segment_of(hops, position)
    return math.ceil(math.log2(b - a))


def parent_of(hops: int, segment: Segment) -> int | None:
    """The repeater that joins ``segment`` (a longer-than-one-link part of the split) with its
    neighbour segment; None for the whole path, which nobody joins further."""
    if segment == (0, hops):
        return None
    a, b = 0, hops
    while True:
        middle = (a + b) // 2
        if segment in ((a, middle), (middle, b)):
            return middle
        if segment[1] <= middle:
            b = middle
        else:
            a = middle


def _key(ent: EntanglementId) -> tuple[str, str, int]:
    return (ent.creator, ent.peer, ent.sequence)


class _Span:
    """What a repeater knows of one of its link pairs' halves: the segment it spans now and
    the link pair whose half is at that segment's other end."""

    __slots__ = ("segment", "far")

    def __init__(self, segment: Segment, far: EntanglementId) -> None:
        self.segment = segment
        self.far = far


class NestedPolicy:
    """Nested (doubling) swapping: a repeater swaps only two pairs that span the two halves of
    its segment (module docstring); link pairs are asked for as under swap-asap."""

    name: ClassVar[str] = "nested"

    def __init__(self) -> None:
        # circuit session -> ent key of a link pair held here -> what its half spans now
        self._spans: weakref.WeakKeyDictionary[Circuit, dict[Any, _Span]] = weakref.WeakKeyDictionary()

    def to_ask(self, circuit: Circuit, moment: Any) -> int:
        if circuit.downstream is None or circuit.requested >= circuit.number:
            return 0
        return circuit.number - circuit.requested if circuit.hops == 1 else 1

    def to_swap(self, circuit: CircuitAtRepeater, pairs: PairStore) -> tuple[LinkPair, LinkPair] | None:
        assert circuit.up_hop is not None and circuit.down_hop is not None
        a, b = segment_of(circuit.hops, circuit.position)
        m = circuit.position
        up = self._spanning(circuit, pairs.held(circuit.up_hop), (a, m))
        if up is None:
            return None
        down = self._spanning(circuit, pairs.held(circuit.down_hop), (m, b))
        return None if down is None else (up, down)

    def _spanning(self, circuit: Circuit, held: list[LinkPair], side: Segment) -> LinkPair | None:
        """The oldest of ``held`` whose half here spans ``side``."""
        if side[1] - side[0] == 1:
            return held[0] if held else None
        spans = self._spans.get(circuit, {})
        for pair in held:
            span = spans.get(pair.key)
            if span is not None and span.segment == side:
                return pair
        return None

    def to_discard(self, circuit: Circuit, pairs: PairStore) -> list[LinkPair]:
        return []

    def to_deliver(self, circuit: CircuitEnd, pair: LinkPair, records: list[SwapRecord]) -> bool:
        return True

    def qubits_held(self, hops: int, position: int) -> int:
        return 1 if position in (0, hops) else 2

    # ------------------------------------------------------------ segments

    def learn(self, circuit: CircuitAtRepeater, msg: SegmentReady) -> None:
        """A child says this repeater's half of ``msg.near_ent_id`` spans ``msg.segment``."""
        self._spans.setdefault(circuit, {})[_key(msg.near_ent_id)] = _Span((msg.first, msg.last), msg.far_ent_id)

    def swapped(self, circuit: CircuitAtRepeater, up: LinkPair, down: LinkPair) -> tuple[str, SegmentReady] | None:
        """This repeater joined ``up`` and ``down``: the node to tell, and what, that the pair
        now spans its segment (None when the segment is the whole path)."""
        spans = self._spans.get(circuit, {})
        up_span, down_span = spans.pop(up.key, None), spans.pop(down.key, None)
        segment = segment_of(circuit.hops, circuit.position)
        parent = parent_of(circuit.hops, segment)
        if parent is None:
            return None
        left_end = up.ok.ent_id if up_span is None else up_span.far  # the link pair at segment[0]
        right_end = down.ok.ent_id if down_span is None else down_span.far  # the link pair at segment[1]
        at_parent_left = parent == segment[1]  # the segment is the parent's upstream side
        near, far = (right_end, left_end) if at_parent_left else (left_end, right_end)
        message = SegmentReady(
            head=circuit.head, circuit=circuit.serial, first=segment[0], last=segment[1], near_ent_id=near, far_ent_id=far
        )
        return circuit.path[parent], message
