"""Circuits as sessions: a circuit *end* (head or tail) and a circuit *at a repeater*.

Theory of operation
-------------------
A request sets up a circuit along one path (specs/network.md §6). Every node
of the path holds one session for it, keyed by the circuit's network-wide
name ``(head, circuit)`` (a serial number the head never reuses):

* :class:`CircuitEnd` at the head and the tail. It is ``setting_up`` until
  its hops are labelled and the link asked, ``running`` while pairs are
  delivered, and ends ``done`` after ``number`` pairs or ``failed`` (a link
  request failed, the head's deadline ran out, or another node said so).
  At the head of a circuit over repeaters, ``reserving`` comes first: the
  head asks every node of the path, one at a time in name order, to set
  memory aside for the circuit, and waits while a node has too little free
  (``qnetstack.network.memory``); it fails there if its deadline runs out
  or a node can never hold the circuit (``no_memory``).
* :class:`CircuitAtRepeater` at every node in between: ``running`` while it
  swaps, ``done`` after ``number`` swaps, ``failed`` as above, or when no
  label is free on its downstream link (``no_label``).

What a session counts or holds (pairs asked, swaps, deliveries, swap records,
the deadline timer) stays in ordinary fields beside its state.

Labels
------
A circuit's link pairs on a hop carry a *label* in the link service's
``purpose_id`` (an int in [0, 65535]). The node that issues the hop's CREATEs
(the upstream one) picks it from :class:`LabelTable`: a label that none of its
live circuits, and none of its link requests still running, uses on that link.
It tells the downstream node in the circuit's ``Forward``. A link pair is
filed under ``(neighbour, creator, label)``, unique at both ends of the hop.
Labels are handed out round robin, so a label just released is the last to
be reused. When all 65536 labels of a link are taken, :class:`LabelsExhausted`
is raised: the head refuses the request, a repeater fails the circuit with
``NetErrorCode.NORES``. Nothing wraps around.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qnetstack.entity import Wait
from qnetstack.entity.machine import Machine, Session
from qnetstack.link.service import RequestType
from qnetstack.network.pairs import HopKey, LinkPair
from qnetstack.network.peer import LABELS, CircuitFailed, Forward, SwapRecord
from qnetstack.network.service import NetErrorCode
from qnetstack.physical.service import Basis

__all__ = [
    "CIRCUIT_END",
    "CIRCUIT_AT_REPEATER",
    "MACHINES",
    "Circuit",
    "CircuitAtRepeater",
    "CircuitEnd",
    "CircuitEvent",
    "CircuitState",
    "JoinedPairs",
    "LabelTable",
    "LabelsExhausted",
]


class CircuitState(str, enum.Enum):
    SETTING_UP = "setting_up"
    RESERVING = "reserving"  # head: memory is being set aside along the path
    RUNNING = "running"
    AT_DEVICE = "at_device"  # an operation that takes the device's time is under way (a swap, a measurement)
    DONE = "done"
    FAILED = "failed"


class CircuitEvent(str, enum.Enum):
    RESERVE = "reserve"  # head: start setting memory aside along the path
    NO_MEMORY = "no_memory"  # a node of the path has fewer memory qubits than the circuit needs there
    SET_UP = "set_up"  # hops labelled, link asked, Forward passed on
    NO_LABEL = "no_label"  # every label of the downstream link is in use
    REFUSED = "refused"  # the set-up says a node upstream had no label: the circuit ends at once
    DELIVER = "deliver"  # an end-to-end pair was sent up here
    SWAP = "swap"  # this repeater joined two link pairs
    COMPLETE = "complete"  # the number-th delivery or swap
    LINK_FAILED = "link_failed"  # a link request of ours on the path failed
    TOLD_FAILED = "told_failed"  # another node of the path ended the circuit
    DEADLINE = "deadline"  # the request's max_time_ns ran out (head)
    TO_DEVICE = "to_device"  # an operation with a duration was handed to the device
    DEVICE_DONE = "device_done"  # the device answered it


_S, _E = CircuitState, CircuitEvent
_FAILURES = (_E.LINK_FAILED, _E.TOLD_FAILED)

CIRCUIT_END = Machine(
    name="network.circuit_end",
    initial=_S.SETTING_UP,
    transitions={
        (_S.SETTING_UP, _E.SET_UP): _S.RUNNING,
        (_S.SETTING_UP, _E.REFUSED): _S.FAILED,
        (_S.SETTING_UP, _E.RESERVE): _S.RESERVING,
        (_S.RESERVING, _E.SET_UP): _S.RUNNING,
        (_S.RESERVING, _E.NO_MEMORY): _S.FAILED,
        (_S.RESERVING, _E.DEADLINE): _S.FAILED,
        (_S.RESERVING, _E.LINK_FAILED): _S.FAILED,  # its first hop, or a node it waits for, is cut off
        (_S.RESERVING, _E.TOLD_FAILED): _S.FAILED,  # a node that reserved for it lost a link of its path
        (_S.RUNNING, _E.DELIVER): _S.RUNNING,
        (_S.RUNNING, _E.COMPLETE): _S.DONE,
        (_S.RUNNING, _E.TO_DEVICE): _S.AT_DEVICE,
        (_S.AT_DEVICE, _E.DEVICE_DONE): _S.RUNNING,
        **{(_S.RUNNING, e): _S.FAILED for e in (*_FAILURES, _E.DEADLINE)},
        **{(_S.AT_DEVICE, e): _S.FAILED for e in (*_FAILURES, _E.DEADLINE)},
    },
    final=frozenset({_S.DONE, _S.FAILED}),
    doc=(
        "A circuit at its head or tail: one per request at each end. Over repeaters the head first "
        "reserves memory at every node of the path (`reserving`; a set-up that does not fit waits "
        "at the node short of memory). The head's deadline (`max_time_ns`) fails it there; the "
        "tail learns of failures from the path. `at_device`: a measurement (type M) or a "
        "distillation step that takes the device's time is under way."
    ),
)

CIRCUIT_AT_REPEATER = Machine(
    name="network.circuit_at_repeater",
    initial=_S.SETTING_UP,
    transitions={
        (_S.SETTING_UP, _E.SET_UP): _S.RUNNING,
        (_S.SETTING_UP, _E.NO_LABEL): _S.FAILED,
        (_S.SETTING_UP, _E.REFUSED): _S.FAILED,
        (_S.RUNNING, _E.SWAP): _S.RUNNING,
        (_S.RUNNING, _E.COMPLETE): _S.DONE,
        (_S.RUNNING, _E.TO_DEVICE): _S.AT_DEVICE,
        (_S.AT_DEVICE, _E.DEVICE_DONE): _S.RUNNING,
        **{(_S.RUNNING, e): _S.FAILED for e in _FAILURES},
        **{(_S.AT_DEVICE, e): _S.FAILED for e in _FAILURES},
    },
    final=frozenset({_S.DONE, _S.FAILED}),
    doc=(
        "A circuit at a node between its ends: it swaps link pairs and is done after `number` swaps. "
        "`at_device`: a Bell measurement (or a distillation step) that takes the device's time is under way."
    ),
)

MACHINES = (CIRCUIT_END, CIRCUIT_AT_REPEATER)


class Circuit(Session[tuple[str, int]]):
    """What every node of a path knows of a circuit (from its ``Forward``)."""

    def __init__(self, forward: Forward, me: str, down_label: int | None, trace: Callable[..., None] | None) -> None:
        super().__init__((forward.head, forward.circuit), trace)
        self.head = forward.head
        self.serial = forward.circuit
        self.request_id = forward.request_id
        self.path = list(forward.path)
        self.tail = self.path[-1]
        self.hops = len(self.path) - 1  # links on the path
        self.position = self.path.index(me)
        self.number = forward.number
        self.type: RequestType = forward.type
        self.basis: Basis = forward.basis
        self.link_min_fidelity = forward.link_min_fidelity
        self.priority = forward.priority
        self.upstream = self.path[self.position - 1] if self.position > 0 else None
        self.downstream = self.path[self.position + 1] if self.position + 1 < len(self.path) else None
        # hop keys (neighbour, creator, label): upstream labels come from the Forward, ours we chose
        self.up_hop: HopKey | None = None if self.upstream is None else (self.upstream, self.upstream, forward.label)
        self.down_hop: HopKey | None = None if self.downstream is None or down_label is None else (self.downstream, me, down_label)
        self.requested = 0  # link pairs asked of the downstream link so far
        self.freed_downstream = 0  # link pairs of the downstream hop the next node has used (HopFreed)
        # while ``at_device``: what the device is doing for the circuit (for describe_waits) and
        # what the entity needs to go on when it answers
        self.at_device: str | None = None
        self.device_context: Any = None
        # a distilling policy's rounds at this end (qnetstack.network.distill.CircuitRounds)
        self.distill: Any = None

    @property
    def used_downstream(self) -> int:
        """Link pairs of the downstream hop this node has used (swapped or delivered)."""
        raise NotImplementedError

    @property
    def hop_keys(self) -> list[HopKey]:
        return [h for h in (self.up_hop, self.down_hop) if h is not None]

    def describe_wait(self, held: dict[HopKey, int], below: tuple[tuple[str, int], ...]) -> Wait:
        """What the circuit waits for at this node (for ``describe_waits``; changes nothing).

        ``held`` counts the link pairs this node holds on each of its hops,
        ``below`` names its open link requests as the link layer does."""
        up = 0 if self.up_hop is None else held.get(self.up_hop, 0)
        down = 0 if self.down_hop is None else held.get(self.down_hop, 0)
        if self.state is CircuitState.SETTING_UP:
            waiting, peer = "its set-up", None
        elif self.state is CircuitState.AT_DEVICE:
            waiting, peer = f"waiting for the device ({self.at_device})", None
        else:
            waiting, peer = self._waiting_for(up, down)
        return Wait(
            session=f"circuit {self.head}/{self.serial} at {self.path[self.position]}",
            waiting_for=waiting,
            request=(self.head, self.request_id),
            below=below,
            peer=peer,
            holds=up + down,
        )

    def _waiting_for(self, up: int, down: int) -> tuple[str, str | None]:
        """What the running circuit needs next here, and the node it depends on."""
        raise NotImplementedError

    def forward_downstream(self, forward: Forward) -> Forward:
        """The ``Forward`` this node passes on, with the label it chose for the next hop."""
        assert self.down_hop is not None
        return forward.model_copy(update={"label": self.down_hop[2]})

    def failure_notice(self, detail: str, code: NetErrorCode) -> CircuitFailed:
        """The ``CircuitFailed`` that ends this circuit at the other nodes of its path."""
        return CircuitFailed(
            head=self.head, circuit=self.serial, request_id=self.request_id, detail=detail, code=code, path=tuple(self.path)
        )


class CircuitEnd(Circuit):
    machine = CIRCUIT_END

    def __init__(self, forward: Forward, me: str, down_label: int | None, trace: Callable[..., None] | None) -> None:
        super().__init__(forward, me, down_label, trace)
        self.is_head = self.position == 0
        # the hop this end's link pairs come on (None at a tail whose set-up was refused)
        self.near_hop = self.down_hop if self.is_head else self.up_hop
        self.remote = self.tail if self.is_head else self.head
        self.delivered = 0
        self.deadline_timer: int | None = None  # head only: the max_time_ns timer
        self.deadline_ns: int | None = None  # head only: when max_time_ns runs out
        # head only, over repeaters: memory qubits the circuit needs per node, and the nodes
        # still to reserve them at (in name order), with the Forward to send once all have
        self.needs: dict[str, int] = {}
        self.to_reserve: list[str] = []
        self.forward: Forward | None = None
        # swap records by the ent_id of the link pair on their side nearer to this end
        self.records: dict[Any, SwapRecord] = {}

    @property
    def used_downstream(self) -> int:
        return self.delivered if self.is_head else 0

    def file_record(self, record: SwapRecord) -> None:
        near = record.upstream_ent_id if self.is_head else record.downstream_ent_id
        self.records[(near.creator, near.peer, near.sequence)] = record

    def chain(self, ent_key: Any) -> list[SwapRecord] | None:
        """The swap records joining link pair ``ent_key`` to the other end, nearest first; None while some are missing."""
        found = []
        key = ent_key
        for _ in range(self.hops - 1):
            record = self.records.get(key)
            if record is None:
                return None
            found.append(record)
            far = record.downstream_ent_id if self.is_head else record.upstream_ent_id
            key = (far.creator, far.peer, far.sequence)
        return found

    def _waiting_for(self, up: int, down: int) -> tuple[str, str | None]:
        if self.state is CircuitState.RESERVING:
            node = self.to_reserve[0]
            return f"memory set aside for it at {node} ({self.needs[node]} qubit(s))", node
        done = f"{self.delivered}/{self.number} delivered"
        rounds = self.distill
        if rounds is not None and rounds.current is not None and rounds.current.outcome is not None:
            return f"the outcome of a distillation round from {self.remote} ({done})", self.remote
        if up + down and self.hops > 1:
            return f"swap records from {', '.join(self.path[1:-1])} for {up + down} held link pair(s) ({done})", self.path[1]
        near = self.downstream if self.is_head else self.upstream
        return f"a link pair with {near} ({done})", near

    def drop_records(self, records: list[SwapRecord]) -> None:
        for record in records:
            near = record.upstream_ent_id if self.is_head else record.downstream_ent_id
            self.records.pop((near.creator, near.peer, near.sequence), None)

    def drop_chain(self, ent_key: Any) -> None:
        """Drop the swap records chained from link pair ``ent_key`` (as far as they have come):
        the pair is dead, so no end-to-end pair will be made of them."""
        key = ent_key
        for _ in range(self.hops - 1):
            record = self.records.pop(key, None)
            if record is None:
                return
            far = record.downstream_ent_id if self.is_head else record.upstream_ent_id
            key = (far.creator, far.peer, far.sequence)


class CircuitAtRepeater(Circuit):
    machine = CIRCUIT_AT_REPEATER

    def __init__(self, forward: Forward, me: str, down_label: int | None, trace: Callable[..., None] | None) -> None:
        super().__init__(forward, me, down_label, trace)
        self.swapped = 0  # swaps made and not voided (qnetstack.network.cutoff)
        # with a cutoff that can void swaps: each swap still standing, under the ent key of
        # both its link pairs, and whether the circuit waits for the tail's CircuitDone
        self.joined: dict[Any, JoinedPairs] = {}
        self.awaits_done = False

    @property
    def used_downstream(self) -> int:
        return self.swapped

    def _waiting_for(self, up: int, down: int) -> tuple[str, str | None]:
        done = f"{self.swapped}/{self.number} swapped"
        if self.awaits_done and self.swapped >= self.number:
            return f"the tail's word that every pair was delivered ({done})", self.tail
        missing = [node for node, count in ((self.upstream, up), (self.downstream, down)) if not count and node is not None]
        if missing:
            return f"a link pair with {' and '.join(missing)} ({done})", missing[0]
        return f"its policy's next swap ({done})", None


@dataclass(frozen=True)
class JoinedPairs:
    """A swap a repeater made: its two link pairs, and whether it sent ``HopFreed`` upstream
    for the upstream one (voiding the swap takes that back)."""

    up: LinkPair
    down: LinkPair
    hop_freed: bool


class LabelsExhausted(Exception):
    """Every label of a link is in use by this node's live circuits and link requests."""

    def __init__(self, node: str, neighbour: str) -> None:
        self.node = node
        self.neighbour = neighbour
        super().__init__(f"all {LABELS} circuit labels of link {node}-{neighbour} are in use at {node}")


class LabelTable:
    """The labels this node uses on each of its links, as the creator of their link pairs.

    A label is held by its circuit while the circuit is live and by each of
    the circuit's link requests on that link until the request ends, so no
    late link pair of an ended circuit can be mistaken for a new circuit's.
    """

    def __init__(self, node: str) -> None:
        self.node = node
        self._holds: dict[str, dict[int, int]] = {}  # neighbour -> label -> number of holders
        self._cursor: dict[str, int] = {}  # neighbour -> the next label to try

    def acquire(self, neighbour: str) -> int:
        held = self._holds.setdefault(neighbour, {})
        if len(held) >= LABELS:
            raise LabelsExhausted(self.node, neighbour)
        label = self._cursor.get(neighbour, 0)
        while label in held:
            label = (label + 1) % LABELS
        held[label] = 1
        self._cursor[neighbour] = (label + 1) % LABELS
        return label

    def hold(self, neighbour: str, label: int) -> None:
        held = self._holds[neighbour]
        held[label] += 1

    def release(self, neighbour: str, label: int) -> None:
        held = self._holds[neighbour]
        held[label] -= 1
        if held[label] == 0:
            del held[label]

    def in_use(self, neighbour: str) -> int:
        return len(self._holds.get(neighbour, {}))
