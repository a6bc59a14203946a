"""Swap-as-soon-as-possible along a shortest path: the reference network layer.

Theory of operation
-------------------
A request for pairs between a *head* (where it is made) and a *tail* sets up a
*circuit* along the shortest path (networkx, by fibre length):

1. The head answers ``NetAccepted`` and sends ``Forward`` to every other node on
   the path. Each node on the path (head included) then asks its link layer for
   ``number`` type-K pairs with its downstream neighbour, tagged with the
   circuit's purpose id: over repeaters one CREATE per pair, the next once the
   previous pair is swapped or delivered (so no link fills the memories while
   another lags); on a one-hop circuit one CREATE for all of them.
2. Link pairs of a circuit are matched in order: the k-th pair on every link of
   the path belongs to the k-th end-to-end pair.
3. A repeater holding the k-th pair on both sides Bell-measures the two qubits
   at once (swap ASAP) and sends a ``SwapRecord`` (its outcome and the Bell
   states of its two links) to both ends.
4. An end that holds its k-th link pair and all records for k knows the
   end-to-end Bell state: the XOR of the Pauli frames of every link and every
   swap outcome (the frame bookkeeping of QNP's TRACK and the V1Q data plane).
   It delivers ``PairDelivered`` with that state; no correction gate is applied
   (the frame is tracked, so no gate noise is added). For type M the end
   measures the qubit and the tail flips its outcome by the frame, so both ends
   report outcomes as if the pair were PHI_PLUS.
5. A request with ``max_time_ns`` that is still open at the head when it runs
   out ends with ``NetError`` TIMEOUT there; the head tells every other node of
   the path with ``CircuitFailed``, as a node does when one of its link
   requests fails. Each node then frees the link pairs the circuit still holds
   there, and frees at once any link pair that arrives later for it (a link
   request still running when the circuit failed), so a failure leaves no
   memory qubit taken.

Goodness is an estimate that treats every link pair as a Werner state of its
link goodness: swapping Werner states of fidelities F1, F2 gives
F1·F2 + (1−F1)(1−F2)/3 (Dür, Briegel, Cirac & Zoller, PRA 59, 169, 1999).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from qnetstack.entity import Context, EntityError
from qnetstack.link.service import (
    CAP_LINK_K,
    LinkAck,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    LinkOkMeasure,
    RequestType,
)
from qnetstack.network.service import (
    CAP_NET_K,
    CAP_NET_M,
    NetAccepted,
    NetError,
    NetErrorCode,
    NetRejected,
    NetRequest,
    PairDelivered,
    PairId,
)
from qnetstack.physical.service import (
    CAP_DEVICE,
    Basis,
    BellMeasure,
    BellMeasureResult,
    BellState,
    FreeQubit,
    Measure,
    MeasureResult,
)

__all__ = ["SwapAsap", "Forward", "SwapRecord", "CircuitFailed", "werner_swap_fidelity"]


class _Peer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Forward(_Peer):
    """Head -> every node on the path: set up this circuit."""

    kind: Literal["forward"] = "forward"
    head: str
    request_id: int
    path: list[str]
    number: int = Field(ge=1)
    type: RequestType
    basis: Basis
    link_min_fidelity: float


class SwapRecord(_Peer):
    """Repeater -> both ends: the swap of the k-th pairs was done."""

    kind: Literal["swap_record"] = "swap_record"
    head: str
    request_id: int
    index: int
    position: int  # index of the repeater in the path
    outcome: BellState
    upstream_bell_state: BellState
    downstream_bell_state: BellState
    upstream_goodness: float
    downstream_goodness: float


class CircuitFailed(_Peer):
    kind: Literal["circuit_failed"] = "circuit_failed"
    head: str
    request_id: int
    detail: str
    code: NetErrorCode = NetErrorCode.LINK_FAILURE


def werner_swap_fidelity(f1: float, f2: float) -> float:
    """Fidelity after swapping two Werner states (Dür et al. 1999)."""
    return f1 * f2 + (1.0 - f1) * (1.0 - f2) / 3.0


def purpose_of(head: str, request_id: int) -> int:
    """16-bit link purpose id for a circuit (CRC of its name, so every node
    derives the same value without asking)."""
    return zlib.crc32(f"{head}/{request_id}".encode()) & 0xFFFF


@dataclass
class _Circuit:
    head: str
    tail: str
    request_id: int
    path: list[str]
    position: int
    number: int
    type: RequestType
    basis: Basis
    purpose_id: int
    # neighbour -> list of link OKs received in order (None once consumed)
    pairs: dict[str, list[LinkOkKeep | None]] = field(default_factory=dict)
    records: dict[int, dict[int, SwapRecord]] = field(default_factory=dict)
    delivered: int = 0
    swapped: int = 0
    requested: int = 0  # link pairs asked of the downstream link so far
    link_min_fidelity: float = 0.0
    deadline_timer: int | None = None  # head only: the max_time_ns timer
    deadline_ns: int | None = None  # head only: when max_time_ns runs out

    @property
    def key(self) -> tuple[str, int]:
        return (self.head, self.request_id)

    @property
    def upstream(self) -> str | None:
        return self.path[self.position - 1] if self.position > 0 else None

    @property
    def downstream(self) -> str | None:
        return self.path[self.position + 1] if self.position + 1 < len(self.path) else None

    @property
    def is_end(self) -> bool:
        return self.position in (0, len(self.path) - 1)


class SwapAsap:
    """Reference network-layer entity."""

    PROVIDES = frozenset({CAP_NET_K, CAP_NET_M})
    REQUIRES = frozenset({CAP_LINK_K, CAP_DEVICE})

    def __init__(self, ctx: Context, topology: nx.Graph) -> None:
        self.ctx = ctx
        self.topology = topology
        self._circuits: dict[tuple[str, int], _Circuit] = {}
        self._by_purpose: dict[int, _Circuit] = {}
        self._early_pairs: dict[int, list[LinkOkKeep]] = {}
        # purposes of circuits that ended here (16-bit, so at most 65536): a link pair
        # for one of them that arrives later is a leftover, freed at once
        self._ended: set[int] = set()
        # Our LinkCreates in the order sent; ACKs (or immediate errors) come back
        # in the same order, which is how a create_id is tied to its circuit.
        self._awaiting_ack: deque[_Circuit] = deque()
        self._by_create_id: dict[int, _Circuit] = {}

    def start(self) -> None:
        pass

    # ------------------------------------------------------------ entity API

    def handle_above(self, msg: Any) -> None:
        if not isinstance(msg, NetRequest):
            raise EntityError(f"network layer got {type(msg).__name__} from above; it serves NetRequest")
        me = self.ctx.node
        key = (me, msg.request_id)
        if key in self._circuits:
            self.ctx.send_up(NetRejected(request_id=msg.request_id, reason=f"request_id {msg.request_id} is in use"))
            return
        if msg.type is RequestType.R:
            # The request type is shared with the link service, which gained type R
            # (remote state preparation); this network layer delivers K and M only.
            self.ctx.send_up(NetRejected(request_id=msg.request_id, reason="type R (remote state preparation) is not served end to end"))
            return
        if msg.type is RequestType.M and not msg.basis.is_pauli:
            # The tail corrects its outcome by flipping it (``_flips``); a Pauli frame
            # turns (Z ± X)/√2 into (Z ∓ X)/√2, which no flip can undo.
            self.ctx.send_up(
                NetRejected(request_id=msg.request_id, reason=f"type M in basis {msg.basis.value}: only X, Y and Z are served end to end")
            )
            return
        if msg.remote_node == me or msg.remote_node not in self.topology:
            self.ctx.send_up(NetRejected(request_id=msg.request_id, reason=f"unknown remote node {msg.remote_node!r}"))
            return
        try:
            path = nx.shortest_path(self.topology, me, msg.remote_node, weight="length_km")
        except nx.NetworkXNoPath:
            self.ctx.send_up(NetRejected(request_id=msg.request_id, reason=f"no path from {me!r} to {msg.remote_node!r}"))
            return
        hops = len(path) - 1
        # Per-link target so that, with independent links, the product meets the
        # end-to-end wish; a heuristic until routing weighs real link fidelities.
        link_min_fidelity = msg.min_fidelity ** (1.0 / hops) if msg.min_fidelity > 0 else 0.0
        forward = Forward(
            head=me,
            request_id=msg.request_id,
            path=path,
            number=msg.number,
            type=msg.type,
            basis=msg.basis,
            link_min_fidelity=link_min_fidelity,
        )
        self.ctx.send_up(NetAccepted(request_id=msg.request_id, path=path))
        for node in path[1:]:
            self.ctx.send_peer(node, forward)
        deadline = None if msg.max_time_ns is None else self.ctx.now_ns + msg.max_time_ns
        circuit = self._install(forward, deadline_ns=deadline)
        if msg.max_time_ns is not None:
            circuit.deadline_timer = self.ctx.set_timer(msg.max_time_ns, ("deadline", me, msg.request_id))

    def handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, Forward):
            self._install(msg)
        elif isinstance(msg, SwapRecord):
            circuit = self._circuits.get((msg.head, msg.request_id))
            if circuit is not None:
                circuit.records.setdefault(msg.index, {})[msg.position] = msg
                self._try_deliver(circuit, msg.index)
        elif isinstance(msg, CircuitFailed):
            circuit = self._circuits.get((msg.head, msg.request_id))
            if circuit is not None:
                self._fail(circuit, msg.detail, tell_path=False, code=msg.code)
        else:
            raise EntityError(f"network layer got {type(msg).__name__} from peer {sender!r}")

    def handle_below(self, msg: Any) -> None:
        if isinstance(msg, LinkAck):
            circuit = self._awaiting_ack.popleft()
            self._by_create_id[msg.create_id] = circuit
            return
        if isinstance(msg, LinkOkKeep):
            circuit = self._by_purpose.get(msg.purpose_id)
            if circuit is None and msg.purpose_id in self._ended:
                # made for a circuit that has ended here (a link request still running when
                # it failed): nobody will use it, so it must not hold the memory
                self.ctx.device.execute(FreeQubit(handle=msg.handle))
                self.ctx.trace("network.leftover_pair", purpose_id=msg.purpose_id, remote=msg.remote_node)
                return
            if circuit is None:
                # the circuit's Forward is still on its way here
                self._early_pairs.setdefault(msg.purpose_id, []).append(msg)
                return
            self._add_link_pair(circuit, msg)
        elif isinstance(msg, LinkError):
            self._link_failed(msg)
        elif isinstance(msg, LinkOkMeasure):
            raise EntityError("swap-asap asks only for type K link pairs, yet got a type M OK")
        else:
            raise EntityError(f"network layer got {type(msg).__name__} from below")

    def handle_timer(self, tag: Hashable) -> None:
        if isinstance(tag, tuple) and tag[:1] == ("deadline",):
            circuit = self._circuits.get((tag[1], tag[2]))
            if circuit is not None:  # still open: not every pair was delivered in time
                circuit.deadline_timer = None
                self._fail(circuit, "max_time_ns ran out", tell_path=True, code=NetErrorCode.TIMEOUT)

    # ------------------------------------------------------------ internals

    def _install(self, forward: Forward, deadline_ns: int | None = None) -> _Circuit:
        me = self.ctx.node
        circuit = _Circuit(
            head=forward.head,
            tail=forward.path[-1],
            request_id=forward.request_id,
            path=list(forward.path),
            position=forward.path.index(me),
            number=forward.number,
            type=forward.type,
            basis=forward.basis,
            purpose_id=purpose_of(forward.head, forward.request_id),
            link_min_fidelity=forward.link_min_fidelity,
            deadline_ns=deadline_ns,
        )
        for neighbour in (circuit.upstream, circuit.downstream):
            if neighbour is not None:
                circuit.pairs[neighbour] = []
        self._circuits[circuit.key] = circuit
        self._by_purpose[circuit.purpose_id] = circuit
        self._ended.discard(circuit.purpose_id)
        self._request_next_link_pair(circuit)
        for ok in self._early_pairs.pop(circuit.purpose_id, []):
            self._add_link_pair(circuit, ok)
        return circuit

    def _request_next_link_pair(self, circuit: _Circuit) -> None:
        """Ask the downstream link for more pairs, if the circuit needs some.

        Over repeaters pairs are asked for one at a time, the next only once
        the previous one has been swapped (repeater) or delivered (head).
        Asking for all of them at once lets one link run ahead and fill the
        memories of its ends with pairs that wait for the slower link, until no
        slot is left for the slower link at all (a deadlock seen with 4-qubit
        memories). A one-hop circuit has no other link to wait for, so the head
        asks for all its pairs in one CREATE: the link makes them back to back
        as memory allows (several at once with a multiplexing link layer),
        without a CREATE's set-up (two classical delays) before each pair.
        """
        if circuit.downstream is None or circuit.requested >= circuit.number:
            return
        one_hop = len(circuit.path) == 2
        number = circuit.number - circuit.requested if one_hop else 1
        max_time = None
        if one_hop and circuit.deadline_ns is not None:
            # the link request ends 1 ns after the request's own deadline: by then the circuit has
            # failed with TIMEOUT here, so the link does not go on making pairs nobody will use
            max_time = max(1, circuit.deadline_ns - self.ctx.now_ns + 1)
        circuit.requested += number
        self._awaiting_ack.append(circuit)
        self.ctx.send_down(
            LinkCreate(
                remote_node=circuit.downstream,
                min_fidelity=circuit.link_min_fidelity,
                purpose_id=circuit.purpose_id,
                number=number,
                type=RequestType.K,
                max_time_ns=max_time,
            )
        )

    def _add_link_pair(self, circuit: _Circuit, ok: LinkOkKeep) -> None:
        slots = circuit.pairs.get(ok.remote_node)
        if slots is None:
            raise EntityError(f"link pair with {ok.remote_node!r} does not belong to circuit {circuit.key}")
        index = len(slots)
        slots.append(ok)
        if circuit.is_end:
            self._try_deliver(circuit, index)
        else:
            self._try_swap(circuit, index)

    def _try_swap(self, circuit: _Circuit, index: int) -> None:
        up = circuit.pairs[circuit.upstream]  # type: ignore[index]
        down = circuit.pairs[circuit.downstream]  # type: ignore[index]
        if index >= len(up) or index >= len(down) or up[index] is None or down[index] is None:
            return
        up_ok, down_ok = up[index], down[index]
        assert up_ok is not None and down_ok is not None
        result = self.ctx.device.execute(BellMeasure(handle_a=up_ok.handle, handle_b=down_ok.handle))
        if not isinstance(result, BellMeasureResult):
            raise EntityError(f"Bell measurement for a swap failed: {result}")
        up[index] = down[index] = None
        record = SwapRecord(
            head=circuit.head,
            request_id=circuit.request_id,
            index=index,
            position=circuit.position,
            outcome=result.bell_state,
            upstream_bell_state=up_ok.bell_state,
            downstream_bell_state=down_ok.bell_state,
            upstream_goodness=up_ok.goodness,
            downstream_goodness=down_ok.goodness,
        )
        self.ctx.trace("network.swap", head=circuit.head, request_id=circuit.request_id, index=index)
        self.ctx.send_peer(circuit.head, record)
        self.ctx.send_peer(circuit.tail, record)
        circuit.swapped += 1
        if circuit.swapped >= circuit.number:
            self._forget(circuit)
        else:
            self._request_next_link_pair(circuit)

    def _try_deliver(self, circuit: _Circuit, index: int) -> None:
        neighbour = circuit.downstream if circuit.position == 0 else circuit.upstream
        slots = circuit.pairs[neighbour]  # type: ignore[index]
        if index >= len(slots) or slots[index] is None:
            return
        records = circuit.records.get(index, {})
        repeaters = len(circuit.path) - 2
        if len(records) < repeaters:
            return
        ok = slots[index]
        assert ok is not None
        slots[index] = None
        circuit.records.pop(index, None)
        frame, goodness = self._end_to_end(ok, records, repeaters)
        # one hop: the link's goodness holds at the link's goodness time; over
        # repeaters the Werner estimate has no exact time and is stamped now
        goodness_time = ok.goodness_time_ns if repeaters == 0 else self.ctx.now_ns
        pair_id = PairId(head=circuit.head, tail=circuit.tail, request_id=circuit.request_id, index=index)
        remote = circuit.tail if circuit.position == 0 else circuit.head
        if circuit.type is RequestType.K:
            delivery = PairDelivered(
                pair_id=pair_id,
                remote_node=remote,
                bell_state=frame,
                goodness=goodness,
                goodness_time_ns=goodness_time,
                handle=ok.handle,
            )
        else:
            result = self.ctx.device.execute(Measure(handle=ok.handle, basis=circuit.basis))
            if not isinstance(result, MeasureResult):
                raise EntityError(f"measuring an end-to-end pair failed: {result}")
            outcome = result.outcome
            if circuit.position != 0 and _flips(frame, circuit.basis):
                outcome ^= 1
            delivery = PairDelivered(
                pair_id=pair_id,
                remote_node=remote,
                bell_state=BellState.PHI_PLUS,
                goodness=goodness,
                goodness_time_ns=goodness_time,
                outcome=outcome,
                basis=circuit.basis,
            )
        self.ctx.trace("network.deliver", head=circuit.head, request_id=circuit.request_id, index=index)
        self.ctx.send_up(delivery)
        circuit.delivered += 1
        if circuit.delivered >= circuit.number:
            self._forget(circuit)
        elif circuit.position == 0:
            self._request_next_link_pair(circuit)

    @staticmethod
    def _end_to_end(ok: LinkOkKeep, records: dict[int, SwapRecord], repeaters: int) -> tuple[BellState, float]:
        if repeaters == 0:
            return ok.bell_state, ok.goodness
        frame = BellState.PHI_PLUS
        link_goodness: dict[int, float] = {}
        for position, record in records.items():
            frame = frame.compose(record.outcome)
            # link j joins path[j] and path[j+1]; repeater at position p sits
            # between links p-1 and p
            link_goodness[position - 1] = record.upstream_goodness
            link_goodness[position] = record.downstream_goodness
            if position == 1:
                frame = frame.compose(record.upstream_bell_state)
            frame = frame.compose(record.downstream_bell_state)
        goodness = 1.0
        for j in sorted(link_goodness):
            goodness = link_goodness[j] if j == 0 else werner_swap_fidelity(goodness, link_goodness[j])
        return frame, goodness

    def _link_failed(self, err: LinkError) -> None:
        """A link request of ours failed: the circuit cannot be completed.

        Errors for requests another node made are left to that node, which
        tells the ends (it knows which circuit its request served)."""
        if err.origin_node != self.ctx.node:
            return
        circuit = self._by_create_id.pop(err.create_id, None)
        if circuit is None and self._awaiting_ack:
            circuit = self._awaiting_ack.popleft()  # refused at once: no ACK came first
        if circuit is None or circuit.key not in self._circuits:
            return
        detail = f"link request to {circuit.downstream}: {err.code.value} {err.detail}".strip()
        # a link that can never serve the request (e.g. not at the per-link fidelity) makes the
        # request impossible; any other link error is a failure that a retry might get past
        code = NetErrorCode.UNSUPP if err.code is LinkErrorCode.UNSUPP else NetErrorCode.LINK_FAILURE
        self._fail(circuit, detail, tell_path=True, code=code)

    def _fail(
        self, circuit: _Circuit, detail: str, tell_path: bool, code: NetErrorCode = NetErrorCode.LINK_FAILURE
    ) -> None:
        if tell_path:
            # every other node of the path, repeaters included, so each frees the link pairs it holds
            for node in sorted(set(circuit.path) - {self.ctx.node}):
                self.ctx.send_peer(
                    node, CircuitFailed(head=circuit.head, request_id=circuit.request_id, detail=detail, code=code)
                )
        if circuit.is_end:
            self.ctx.send_up(NetError(request_id=circuit.request_id, head=circuit.head, code=code, detail=detail))
        self._forget(circuit)

    def _forget(self, circuit: _Circuit) -> None:
        """Drop the circuit and free the link pairs it still holds (only a failed
        circuit holds any: a swap or a delivery hands each pair on)."""
        for slots in circuit.pairs.values():
            for index, ok in enumerate(slots):
                if ok is not None:
                    self.ctx.device.execute(FreeQubit(handle=ok.handle))
                    slots[index] = None
        self._ended.add(circuit.purpose_id)
        if circuit.deadline_timer is not None:
            self.ctx.cancel_timer(circuit.deadline_timer)
            circuit.deadline_timer = None
        self._circuits.pop(circuit.key, None)
        if self._by_purpose.get(circuit.purpose_id) is circuit:
            del self._by_purpose[circuit.purpose_id]


def _flips(frame: BellState, basis: Basis) -> bool:
    """Does the frame anti-correlate outcomes in this basis relative to PHI_PLUS?

    For (I ⊗ X^x Z^z)|Φ+>: Z outcomes flip when x = 1, X outcomes when z = 1,
    and Y outcomes when exactly one of them is 1 (YY is anti-correlated for
    Φ+ itself, which the tail's outcome already reflects, so only the frame's
    change is applied).
    """
    x, z = frame.pauli_bits
    if basis is Basis.Z:
        return bool(x)
    if basis is Basis.X:
        return bool(z)
    if basis is Basis.Y:
        return bool(x ^ z)
    raise EntityError(f"no outcome flip corrects a Pauli frame in basis {basis.value} (requests in it are refused)")
