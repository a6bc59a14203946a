"""The link pairs a node's network layer holds, each with an explicit state.

Theory of operation
-------------------
A qubit belongs to the network layer from the ``LinkOkKeep`` that names it
until it is handed up, measured, Bell-measured or freed (specs/network.md §1).
Each such link pair is a :class:`LinkPair` session, keyed by its ``ent_id``
(creator, peer, sequence: network-unique, LINK-OK-3), whose machine says
which of those ends it met:

``held`` → ``swapped`` (Bell-measured at a repeater) | ``delivered`` (handed
up, type K) | ``measured`` (type M end) | ``freed`` (discarded).

A pair is filed under its *hop key* ``(neighbour, creator, label)``: the
link it was made on, the node that asked for it and the label that node chose
for the circuit on that link (``purpose_id``). Labels are unique per creator
and link among live circuits, so the hop key names one circuit at both ends
of the hop. :class:`PairStore` holds only pairs in state ``held``; a pair
leaves it with its last transition.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from typing import Any

from qnetstack.entity.machine import Machine, Session
from qnetstack.link.service import LinkOkKeep

__all__ = ["HopKey", "LinkPair", "PairEvent", "PairState", "PairStore", "MACHINES", "LINK_PAIR", "hop_key"]

HopKey = tuple[str, str, int]  # (neighbour, creator, label)


class PairState(str, enum.Enum):
    HELD = "held"
    SWAPPED = "swapped"
    DELIVERED = "delivered"
    MEASURED = "measured"
    FREED = "freed"


class PairEvent(str, enum.Enum):
    SWAP = "swap"
    DELIVER = "deliver"
    MEASURE = "measure"
    FREE = "free"


LINK_PAIR = Machine(
    name="network.link_pair",
    initial=PairState.HELD,
    transitions={
        (PairState.HELD, PairEvent.SWAP): PairState.SWAPPED,
        (PairState.HELD, PairEvent.DELIVER): PairState.DELIVERED,
        (PairState.HELD, PairEvent.MEASURE): PairState.MEASURED,
        (PairState.HELD, PairEvent.FREE): PairState.FREED,
    },
    final=frozenset({PairState.SWAPPED, PairState.DELIVERED, PairState.MEASURED, PairState.FREED}),
    doc=(
        "A link pair the network layer holds at one node, from its `LinkOkKeep` until it is "
        "Bell-measured in a swap, handed up (type K), measured (type M) or freed."
    ),
)

MACHINES = (LINK_PAIR,)


def hop_key(ok: LinkOkKeep) -> HopKey:
    return (ok.remote_node, ok.origin_node, ok.purpose_id)


class LinkPair(Session):
    machine = LINK_PAIR
    __slots__ = ("ok", "hop")

    def __init__(self, ok: LinkOkKeep, trace: Callable[..., None] | None, hop: HopKey | None = None) -> None:
        ent = ok.ent_id
        super().__init__((ent.creator, ent.peer, ent.sequence), trace)
        self.ok = ok
        self.hop = hop_key(ok) if hop is None else hop

    @property
    def handle(self) -> int:
        return self.ok.handle

    @property
    def remote_node(self) -> str:
        return self.ok.remote_node


class PairStore:
    """The held link pairs of one node, by ent_id and by hop (oldest first)."""

    def __init__(self, trace: Callable[..., None] | None) -> None:
        self._trace = trace
        self._by_hop: dict[HopKey, dict[Any, LinkPair]] = {}

    def add(self, ok: LinkOkKeep, hop: HopKey | None = None) -> LinkPair:
        """File the pair ``ok`` names (``hop``: its hop key, when the caller has it already)."""
        pair = LinkPair(ok, self._trace, hop)
        pairs = self._by_hop.get(pair.hop)
        if pairs is None:
            pairs = self._by_hop[pair.hop] = {}
        pairs[pair.key] = pair
        return pair

    def held(self, hop: HopKey) -> list[LinkPair]:
        """The pairs held on ``hop``, in the order they were reported."""
        return list(self._by_hop.get(hop, {}).values())

    def oldest(self, hop: HopKey) -> LinkPair | None:
        pairs = self._by_hop.get(hop)
        return next(iter(pairs.values())) if pairs else None

    def find(self, hop: HopKey, ent_key: Any) -> LinkPair | None:
        return self._by_hop.get(hop, {}).get(ent_key)

    def end(self, pair: LinkPair, event: PairEvent) -> None:
        """``pair`` leaves the store by ``event`` (swap, deliver, measure or free)."""
        pair.fire(event)
        pairs = self._by_hop[pair.hop]
        del pairs[pair.key]
        if not pairs:
            del self._by_hop[pair.hop]

    def __iter__(self) -> Iterator[LinkPair]:
        for pairs in list(self._by_hop.values()):
            yield from list(pairs.values())

    def __len__(self) -> int:
        return sum(len(p) for p in self._by_hop.values())
