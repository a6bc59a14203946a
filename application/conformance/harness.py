"""Harness for the application service: any application implementation, alone.

Theory of operation
-------------------
The harness builds the implementation under test on three nodes (``alice``,
``bob``, ``carol``; one instance each, so its own peer protocol runs between
them over classical channels with one fixed delay) and plays the rest:

* **the user** (the layer above) sends the scripted requests at their times and
  records every message the implementation sends up, with the time and the
  input that caused it (``cause``, as in the link harness).
* **the network** (the layer below) is :class:`FakeNetwork`. It answers every
  ``NetRequest`` at once with ``NetAccepted`` or ``NetRejected`` and then
  delivers ``PairDelivered`` at both ends, the tail's copy a scripted offset
  before or after the head's. What it does with a request is the *fate* of the
  scripted user request whose handling sent it: serve every pair, reject, or
  abort with ``NetError`` (at both ends, as the reference network does) after
  some pairs, or crash one end (*end lost*: that node's application gets
  nothing more, neither from the network nor from peers) and tell the other
  end with ``NetError`` ``END_LOST``. Each pair gets a scripted Bell state (its Pauli frame), a true
  fidelity and a goodness that differs from it on purpose, so a check can tell
  the two apart. A script may make its pair *lost* at one end (``lost_at``):
  the pair is delivered at that end only and ``PairLost`` follows there, as
  the reference network does when a request moves to another path between
  the two ends' deliveries; the fake network then makes one more pair, under
  the next index, so the request still gets its ``number`` pairs. It rejects requests for unknown nodes, for the node itself,
  and of type M (every application here needs the qubit kept).
* **the devices** of all nodes share one :class:`QubitRegister`, a small exact
  density-matrix simulator: a delivered pair is the Werner state of its
  fidelity around its Bell state, ``InitQubit`` prepares the asked Bloch
  state, gates act as unitaries, ``BellMeasure`` and ``Measure`` project (the
  outcome is the scripted one when it is possible, else drawn with its Born
  probability) and discard the measured qubits, ``FreeQubit`` traces out.
  Oracle reads answer the true fidelity. So whether a teleportation worked is
  not guessed from the messages: the harness looks at the receiver's qubit.
  With frames written ``|B(x,z)> = (I ⊗ X^x Z^z)|Φ+>``, a sender outcome
  ``B(xm, zm)`` leaves the receiver's half of a ``B(xp, zp)`` pair in
  ``X^(xm⊕xp) Z^(zm⊕zp)|ψ>`` up to phase (Bennett et al., PRL 70, 1895, 1993),
  which the simulator reproduces without being told.

The harness also keeps every message the network and the peers delivered
and each node's ``ctx.trace`` calls, so a check can deliver them again once a
run is over and see how the implementation treats messages for sessions that
have ended (APP-SESS-1).

The device refuses operations on qubits the application does not hold (not
delivered yet, already freed or measured, held by the network) and records
each such misuse. Memories do not decay, so a pair's fidelity is the one it was
delivered with until the application acts on it. What a run produced is an
:class:`AppRun` for the checks in :mod:`qnetstack.application.conformance.suite`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from qnetstack.application.service import CARDINAL_STATES, BlochState, PairsRequest, QkdRequest, TeleportRequest, TeleportResult
from qnetstack.entity.devices import FakeDevices
from qnetstack.entity.harness import Driver, Sent
from qnetstack.entity.kernel import Kernel
from qnetstack.entity.qubits import BASIS_VECTORS, GATE_MATRICES, bell_vector, bloch_vector, werner
from qnetstack.network.service import (
    NetAccepted,
    NetError,
    NetErrorCode,
    NetRejected,
    NetRequest,
    PairDelivered,
    PairId,
    PairLost,
    RequestType,
)
from qnetstack.physical import service as physical_service
from qnetstack.physical.service import (
    ApplyGate,
    BellMeasure,
    BellMeasureResult,
    BellState,
    FreeQubit,
    GateApplied,
    InitQubit,
    Measure,
    MeasureResult,
    OracleFidelity,
    OracleFidelityResult,
    QubitAllocated,
    QubitFreed,
)

__all__ = [
    "NODES",
    "AppConditions",
    "Fate",
    "PairScript",
    "ScriptedRequest",
    "SentUp",
    "SentDown",
    "PairRecord",
    "TeleportTruth",
    "AppRun",
    "QubitRegister",
    "FakeNetwork",
    "AppHarness",
    "run_app",
    "bloch_vector",
    "requested_state",
]

NODES = ("alice", "bob", "carol")

# ------------------------------------------------------------ the script


@dataclass(frozen=True)
class Fate:
    """What the fake network does with the NetRequests sent for one user request."""

    action: Literal["serve", "reject", "abort", "end_lost"] = "serve"
    after: int = 0  # abort, end_lost: pairs delivered (at both ends) before the NetError
    # end_lost: the end that crashes (its application gets nothing more from then on) and
    # NetError END_LOST at the other end. The tail crashes just after the last of the ``after``
    # pairs is delivered at both ends; the head just after NetAccepted (its pairs are then
    # delivered at the tail only)
    lost_end: Literal["head", "tail"] = "tail"

    def __post_init__(self) -> None:
        if self.after < 0:
            raise ValueError("Fate.after must be >= 0")


@dataclass(frozen=True)
class PairScript:
    """How the fake network delivers one pair. Pairs take the scripts in turn."""

    bell_state: BellState = BellState.PHI_PLUS
    fidelity: float = 1.0  # true fidelity: Werner state around bell_state
    goodness: float = 0.9  # what the network claims; deliberately not the truth
    gap_ns: int = 1_000  # head delivery after the previous pair's (or after the request)
    tail_offset_ns: int = 0  # tail delivery relative to the head's (may be negative)
    # delivered at this end only, then declared lost there (PairLost) lost_after_ns later;
    # the pair does not count, and the request gets another in its place
    lost_at: Literal["head", "tail"] | None = None
    lost_after_ns: int = 1

    def __post_init__(self) -> None:
        if not (0.25 <= self.fidelity <= 1.0 and 0.0 <= self.goodness <= 1.0):
            raise ValueError("fidelity must be in [1/4, 1], goodness in [0, 1]")
        if self.gap_ns < 1:
            raise ValueError("gap_ns must be at least 1 ns")
        if self.lost_after_ns < 1:
            raise ValueError("lost_after_ns must be at least 1 ns")


@dataclass(frozen=True)
class AppConditions:
    """The world around the application. Times in ns."""

    delay_ns: int = 10_000  # one-way classical delay between any two nodes
    pairs: tuple[PairScript, ...] = (PairScript(),)
    bell_outcomes: tuple[BellState, ...] = ()  # scripted BellMeasure outcomes, then random
    num_qubits: int = 32  # per node: enough that no scripted scenario runs out
    # how long the devices take (0: at once); an operation that takes time must be asked for
    # with request_device, and one executed at once is noted as misuse
    bell_measure_ns: int = 0
    gate_ns: int = 0  # a single-qubit gate

    def __post_init__(self) -> None:
        if self.delay_ns < 1:
            raise ValueError("delay_ns must be at least 1 ns")
        if self.bell_measure_ns < 0 or self.gate_ns < 0:
            raise ValueError("bell_measure_ns and gate_ns must be >= 0")
        if not self.pairs:
            raise ValueError("at least one PairScript is needed")
        if all(p.lost_at is not None for p in self.pairs):
            raise ValueError("at least one PairScript must make a pair that is not lost")


@dataclass(frozen=True)
class ScriptedRequest:
    """The user of ``node`` sends ``request`` at ``at_ns``; the network gives it ``fate``."""

    at_ns: int
    node: str
    request: TeleportRequest | PairsRequest | QkdRequest
    fate: Fate = Fate()


def requested_state(request: TeleportRequest, index: int) -> BlochState:
    """The state a teleport request asks to send as its ``index``-th (cycling)."""
    states = request.states or CARDINAL_STATES
    return states[index % len(states)]


# ------------------------------------------------------------ the record


# A message the implementation sent to its user (up) or to the network (down); its
# cause is ("request", i) while it handled the i-th scripted request.
SentUp = Sent
SentDown = Sent


@dataclass
class PairRecord:
    """An end-to-end pair the fake network made, and its truth."""

    pair_id: PairId
    request: int | None  # index of the scripted request whose handling asked for it
    bell_state: BellState
    fidelity: float
    goodness: float
    qubits: dict[str, int]  # node -> qubit serial (not the handle: handles are reused)
    handles: dict[str, int]  # node -> handle
    delivered: dict[str, int] = field(default_factory=dict)  # node -> time of PairDelivered


@dataclass(frozen=True)
class TeleportTruth:
    """For a TeleportResult: a pair it may be about, and the receiver's qubit then.

    ``fidelity_reported`` is the true fidelity of the receiver's half of
    ``pair`` to the result's ``state``; ``fidelity_requested`` to the state the
    request asked for at that index (``None`` when the pair's request is not
    known). Both are taken when the result is sent up, or when the qubit was
    last held, if the application let it go before.
    """

    pair: PairRecord
    requested: BlochState | None
    fidelity_reported: float
    fidelity_requested: float | None


@dataclass
class AppRun:
    """Everything a run produced, for the checks to judge."""

    conditions: AppConditions
    requests: list[ScriptedRequest]
    up: list[SentUp]
    down: list[SentDown]
    pairs: dict[PairId, PairRecord]
    teleport_truth: dict[int, list[TeleportTruth]]  # index in ``up`` -> candidates
    misuse: list[str]  # device misuse
    held_at_end: dict[str, dict[int, str]]  # node -> handle -> owner ("app" or "network")
    end_ns: int
    quiescent: bool  # no event was left when the run ended
    crashed: BaseException | None = None
    below: list[tuple[int, str, Any]] = field(default_factory=list)  # (time, node, msg) the network delivered
    peer: list[tuple[int, str, str, Any]] = field(default_factory=list)  # (time, sender, node, msg) delivered
    traces: dict[str, list[tuple[int, str, dict[str, Any]]]] = field(default_factory=dict)  # node -> ctx.trace calls
    lost: set[PairId] = field(default_factory=set)  # pairs the network declared lost (PairScript.lost_at)
    crashed_nodes: dict[str, int] = field(default_factory=dict)  # node -> when it crashed (Fate "end_lost")

    def sent(self, kind: type | tuple[type, ...], node: str | None = None) -> list[SentUp]:
        return [u for u in self.up if isinstance(u.msg, kind) and node in (None, u.node)]

    def request_of(self, pair: PairRecord) -> ScriptedRequest | None:
        return None if pair.request is None else self.requests[pair.request]


# ------------------------------------------------------- quantum register


class _Group:
    """Qubits that may be correlated, and their joint density matrix."""

    __slots__ = ("serials", "rho")

    def __init__(self, serials: list[int], rho: np.ndarray) -> None:
        self.serials = serials
        self.rho = rho


class QubitRegister:
    """Exact density matrices of every live qubit in the harness (all nodes).

    Qubits are named by serial numbers that are never reused. Uncorrelated
    qubits sit in separate groups; groups are merged (tensor product) only
    when an operation needs two of them together, and shrink by partial trace
    when a qubit goes, so every matrix stays a few qubits wide.
    """

    def __init__(self) -> None:
        self._group: dict[int, _Group] = {}
        self._serials = itertools.count()

    def new(self, rho: np.ndarray, n: int) -> list[int]:
        serials = [next(self._serials) for _ in range(n)]
        group = _Group(serials, np.array(rho, dtype=complex))
        for s in serials:
            self._group[s] = group
        return serials

    def __contains__(self, serial: int) -> bool:
        return serial in self._group

    def apply(self, serial: int, unitary: np.ndarray) -> None:
        group = self._group[serial]
        n = len(group.serials)
        i = group.serials.index(serial)
        t = group.rho.reshape([2] * (2 * n))
        t = np.moveaxis(np.tensordot(unitary, t, axes=(1, i)), 0, i)  # U ρ
        t = np.moveaxis(np.tensordot(unitary.conj(), t, axes=(1, n + i)), 0, n + i)  # ... U†
        group.rho = t.reshape(2**n, 2**n)

    def _together(self, serials: list[int]) -> _Group:
        """One group holding all of ``serials``, with them first, in that order."""
        groups: list[_Group] = []
        for s in serials:
            if self._group[s] not in groups:
                groups.append(self._group[s])
        merged = groups[0]
        for other in groups[1:]:
            merged = _Group(merged.serials + other.serials, np.kron(merged.rho, other.rho))
        order = serials + [s for s in merged.serials if s not in serials]
        n = len(order)
        perm = [merged.serials.index(s) for s in order]
        t = merged.rho.reshape([2] * (2 * n)).transpose(perm + [n + p for p in perm])
        merged = _Group(order, t.reshape(2**n, 2**n))
        for s in order:
            self._group[s] = merged
        return merged

    def reduced(self, serials: list[int]) -> np.ndarray:
        """Density matrix of ``serials`` (in that order), the rest traced out."""
        group = self._together(serials)
        k, n = len(serials), len(group.serials)
        t = group.rho.reshape(2**k, 2 ** (n - k), 2**k, 2 ** (n - k))
        return np.einsum("ajbj->ab", t)

    def fidelity(self, serials: list[int], target: np.ndarray) -> float:
        value = float(np.real(target.conj() @ self.reduced(serials) @ target))
        return min(1.0, max(0.0, value))

    def measure(self, serials: list[int], outcomes: list[np.ndarray], choose: Callable[[np.ndarray], int]) -> int:
        """Project ``serials`` on one of the orthonormal ``outcomes`` and discard them.

        ``choose`` gets the Born probabilities and returns the outcome's index.
        """
        group = self._together(serials)
        k, n = len(serials), len(group.serials)
        t = group.rho.reshape(2**k, 2 ** (n - k), 2**k, 2 ** (n - k))
        probabilities = np.array([float(np.real(v.conj() @ np.einsum("ajbj->ab", t) @ v)) for v in outcomes])
        index = choose(np.clip(probabilities, 0.0, None))
        v = outcomes[index]
        rest = np.einsum("a,axby,b->xy", v.conj(), t, v)
        rest = rest / max(float(np.real(np.trace(rest))), 1e-300)
        for s in serials:
            del self._group[s]
        if n > k:
            remaining = _Group(group.serials[k:], rest)
            for s in remaining.serials:
                self._group[s] = remaining
        return index

    def discard(self, serial: int) -> None:
        group = self._together([serial])
        n = len(group.serials)
        t = group.rho.reshape(2, 2 ** (n - 1), 2, 2 ** (n - 1))
        del self._group[serial]
        if n > 1:
            remaining = _Group(group.serials[1:], np.einsum("axay->xy", t))
            for s in remaining.serials:
                self._group[s] = remaining


# ------------------------------------------------------------- devices


@dataclass
class _Slot:
    serial: int
    owner: str  # "app" or "network" (a pair half not yet delivered at this node)


class _Devices(FakeDevices):
    """The device services of every node over one :class:`QubitRegister`."""

    def __init__(self, kernel: Kernel, conditions: AppConditions, rng: np.random.Generator) -> None:
        # the book: node -> handle -> _Slot
        super().__init__(physical_service, {n: conditions.num_qubits for n in NODES}, clock=lambda: kernel.now_ns)
        self.kernel = kernel
        self.conditions = conditions
        self.rng = rng
        self.register = QubitRegister()
        self.last_state: dict[int, np.ndarray] = {}  # serial -> its 1-qubit state when it went
        self._outcomes: Iterator[BellState] = iter(conditions.bell_outcomes)

    def duration_ns(self, node: str, op: Any) -> int:
        if isinstance(op, BellMeasure):
            return self.conditions.bell_measure_ns
        return self.conditions.gate_ns if isinstance(op, ApplyGate) else 0

    def _own(self, node: str, handle: int, op: str) -> int | None:
        """The serial of the application's qubit at ``handle``, or None (and a misuse)."""
        slot = self.book[node].get(handle)
        if slot is None or slot.owner != "app":
            state = "not held" if slot is None else "not delivered to the application yet"
            self.note(node, f"{op} on qubit {handle}, which is {state}")
            return None
        return slot.serial

    def _gone(self, node: str, handle: int) -> None:
        slot = self.book[node].pop(handle)
        if slot.serial in self.register:
            self.last_state[slot.serial] = self.register.reduced([slot.serial])

    def _take(self, node: str, handle: int, op: str) -> int | None:
        """As :meth:`_own`; the qubit also leaves the book (``op`` frees or measures it)."""
        serial = self._own(node, handle, op)
        if serial is not None:
            self._gone(node, handle)
        return serial

    def init_qubit(self, node: str, op: InitQubit) -> Any:
        v = bloch_vector(op.theta_rad, op.phi_rad)
        (serial,) = self.register.new(np.outer(v, v.conj()), 1)
        handle = self.allocate(node, _Slot(serial, "app"))
        if handle is None:
            self.register.discard(serial)
            return self.no_resources()
        return QubitAllocated(handle=handle)

    def apply_gate(self, node: str, op: ApplyGate) -> Any:
        serial = self._own(node, op.handle, f"ApplyGate {op.gate.value}")
        if serial is None:
            return self.unknown_handle()
        self.register.apply(serial, GATE_MATRICES[op.gate])
        return GateApplied(handle=op.handle)

    def free_qubit(self, node: str, op: FreeQubit) -> Any:
        serial = self._take(node, op.handle, "FreeQubit")
        if serial is None:
            return self.unknown_handle()
        self.register.discard(serial)
        return QubitFreed(handle=op.handle)

    def measure(self, node: str, op: Measure) -> Any:
        serial = self._take(node, op.handle, "Measure")
        if serial is None:
            return self.unknown_handle()
        outcome = self.register.measure([serial], list(BASIS_VECTORS[op.basis]), self._draw)
        return MeasureResult(outcome=outcome, basis=op.basis)

    def bell_measure(self, node: str, op: BellMeasure) -> Any:
        a = self._own(node, op.handle_a, "BellMeasure")
        b = self._own(node, op.handle_b, "BellMeasure")
        if a is None or b is None or a == b:
            if a is not None and a == b:
                self.note(node, f"BellMeasure of qubit {op.handle_a} with itself")
            return self.unknown_handle()
        self._gone(node, op.handle_a)
        self._gone(node, op.handle_b)
        states = list(BellState)
        wanted = next(self._outcomes, None)
        index = self.register.measure([a, b], [bell_vector(s) for s in states], self._chooser(states, wanted))
        return BellMeasureResult(bell_state=states[index])

    def oracle_fidelity(self, node: str, op: OracleFidelity) -> Any:
        serials = []
        for ref in op.qubits:
            if ref.node not in self.book:
                self.note(node, f"OracleFidelity on node {ref.node!r}, which does not exist")
                return self.unknown_handle()
            serial = self._own(ref.node, ref.handle, f"OracleFidelity (from {node}) at {ref.node}")
            if serial is None:
                return self.unknown_handle()
            serials.append(serial)
        if len(serials) == 2:
            if op.bell_state is None or serials[0] == serials[1]:
                return self.unsupported("two qubits need a bell_state target")
            return OracleFidelityResult(fidelity=self.register.fidelity(serials, bell_vector(op.bell_state)))
        return OracleFidelityResult(fidelity=self.register.fidelity(serials, bloch_vector(op.theta_rad, op.phi_rad)))

    def _draw(self, probabilities: np.ndarray) -> int:
        return int(self.rng.choice(len(probabilities), p=probabilities / probabilities.sum()))

    def _chooser(self, states: list[BellState], wanted: BellState | None) -> Callable[[np.ndarray], int]:
        def choose(probabilities: np.ndarray) -> int:
            if wanted is not None and probabilities[states.index(wanted)] > 1e-9:
                return states.index(wanted)
            return self._draw(probabilities)  # scripts run out, or ask the impossible

        return choose

    def qubit_state(self, serial: int) -> np.ndarray | None:
        """A qubit's 1-qubit state now, or when it was last held."""
        if serial in self.register:
            return self.register.reduced([serial])
        return self.last_state.get(serial)


# ------------------------------------------------------------- network


class FakeNetwork:
    """The network layer of every node: answers NetRequests, delivers pairs."""

    def __init__(self, harness: AppHarness) -> None:
        self.h = harness
        self.used_ids: dict[str, set[int]] = {n: set() for n in NODES}
        self.pairs: dict[PairId, PairRecord] = {}
        self.lost: set[PairId] = set()  # pairs delivered at one end only and declared lost there
        self._scripts = itertools.cycle(harness.conditions.pairs)

    def on_down(self, node: str, msg: Any) -> None:
        h = self.h
        h.down.append(SentDown(h.kernel.now_ns, node, msg, h.cause))
        if not isinstance(msg, NetRequest) or msg.request_id in self.used_ids[node]:
            return  # APP-NET-1 reports it; a network would refuse it
        self.used_ids[node].add(msg.request_id)
        cause = h.cause
        index = cause[1] if cause[0] == "request" else None
        fate = h.requests[index].fate if index is not None else Fate()
        reason = None
        if msg.remote_node not in NODES or msg.remote_node == node:
            reason = f"no path from {node!r} to {msg.remote_node!r}"
        elif msg.type is not RequestType.K:
            reason = "this network serves type K requests only"
        elif fate.action == "reject":
            reason = "scripted rejection"
        if reason is not None:
            h.kernel.schedule(0, h.deliver_below, node, NetRejected(request_id=msg.request_id, reason=reason))
            return
        h.kernel.schedule(0, h.deliver_below, node, NetAccepted(request_id=msg.request_id, path=[node, msg.remote_node]))
        count = msg.number if fate.action == "serve" else min(fate.after, msg.number)
        now = h.kernel.now_ns
        if fate.action == "end_lost" and fate.lost_end == "head":
            h.kernel.schedule(1, h.crash, node)
        head_time, last = now, now
        made, k = 0, 0
        while made < count:
            script = next(self._scripts)
            head_time += script.gap_ns
            tail_time = max(now + 1, head_time + script.tail_offset_ns)
            pair_id = PairId(head=node, tail=msg.remote_node, request_id=msg.request_id, index=k)
            k += 1
            if script.lost_at is not None:  # one end only; it does not count
                end, at = (node, head_time) if script.lost_at == "head" else (msg.remote_node, tail_time)
                h.kernel.schedule(at - now, self._make_lost_pair, pair_id, index, script, end)
                # the pairs made in its place come after the PairLost, as a network's next
                # circuit does (NET-PAIR-7: before the request's last PairDelivered there)
                head_time = max(head_time, at + script.lost_after_ns)
                last = max(last, head_time)
                continue
            made += 1
            start = min(head_time, tail_time)
            h.kernel.schedule(start - now, self._make_pair, pair_id, index, script, head_time, tail_time)
            last = max(last, head_time, tail_time)
        if fate.action == "abort" and count < msg.number:
            error = NetError(request_id=msg.request_id, head=node, code=NetErrorCode.LINK_FAILURE, detail="scripted abort")
            for end in (node, msg.remote_node):
                h.kernel.schedule(last + 1 - now, h.deliver_below, end, error)
        if fate.action == "end_lost":
            lost, survivor = (msg.remote_node, node) if fate.lost_end == "tail" else (node, msg.remote_node)
            h.kernel.schedule(last + 1 - now, h.crash, lost)
            error = NetError(request_id=msg.request_id, head=node, code=NetErrorCode.END_LOST, detail=f"scripted: {lost} crashed")
            h.kernel.schedule(last + 2 - now, h.deliver_below, survivor, error)

    def _make_pair(self, pair_id: PairId, request: int | None, script: PairScript, head_time: int, tail_time: int) -> None:
        h = self.h
        serials = h.devices.register.new(werner(script.bell_state, script.fidelity), 2)
        qubits = {pair_id.head: serials[0], pair_id.tail: serials[1]}
        handles = {}
        for end, serial in qubits.items():
            handle = h.devices.allocate(end, _Slot(serial, "network"))
            if handle is None:
                raise RuntimeError(f"harness: {end} ran out of qubits; raise AppConditions.num_qubits")
            handles[end] = handle
        record = PairRecord(pair_id, request, script.bell_state, script.fidelity, script.goodness, qubits, handles)
        self.pairs[pair_id] = record
        now = h.kernel.now_ns
        for end, at in ((pair_id.head, head_time), (pair_id.tail, tail_time)):
            h.kernel.schedule(at - now, self._deliver, record, end)

    def _make_lost_pair(self, pair_id: PairId, request: int | None, script: PairScript, end: str) -> None:
        """A pair delivered at ``end`` only (the other half is gone), then declared lost there."""
        h = self.h
        near, far = h.devices.register.new(werner(script.bell_state, script.fidelity), 2)
        h.devices.register.discard(far)
        handle = h.devices.allocate(end, _Slot(near, "network"))
        if handle is None:
            raise RuntimeError(f"harness: {end} ran out of qubits; raise AppConditions.num_qubits")
        record = PairRecord(pair_id, request, script.bell_state, script.fidelity, script.goodness, {end: near}, {end: handle})
        self.pairs[pair_id] = record
        self.lost.add(pair_id)
        self._deliver(record, end)
        h.kernel.schedule(script.lost_after_ns, h.deliver_below, end, PairLost(pair_id=pair_id, reason="scripted: the other half is gone"))

    def _deliver(self, record: PairRecord, end: str) -> None:
        h = self.h
        h.devices.book[end][record.handles[end]].owner = "app"
        record.delivered[end] = h.kernel.now_ns
        pair_id = record.pair_id
        msg = PairDelivered(
            pair_id=pair_id,
            remote_node=pair_id.tail if end == pair_id.head else pair_id.head,
            bell_state=record.bell_state,
            goodness=record.goodness,
            goodness_time_ns=h.kernel.now_ns,
            handle=record.handles[end],
        )
        h.deliver_below(end, msg)


# ------------------------------------------------------------- harness


class AppHarness(Driver):
    """Runs one scripted scenario against an application implementation."""

    def __init__(self, impl: Any, conditions: AppConditions, requests: list[ScriptedRequest], seed: int = 0) -> None:
        super().__init__(seed, streams=len(NODES) + 1)  # one per node, the last for the devices
        self.impl = impl
        self.conditions = conditions
        self.requests = sorted(requests, key=lambda r: r.at_ns)
        self.devices = _Devices(self.kernel, conditions, self.streams[-1])
        self.network = FakeNetwork(self)
        self.up: list[SentUp] = []
        self.down: list[SentDown] = []
        self.teleport_truth: dict[int, list[TeleportTruth]] = {}
        self.below: list[tuple[int, str, Any]] = []  # every delivery from below, kept for APP-SESS-1's replay
        self.peer: list[tuple[int, str, str, Any]] = []  # every peer delivery, likewise
        self.crashed_nodes: dict[str, int] = {}  # node -> when it crashed (Fate "end_lost"): it gets nothing more
        for node, rng in zip(NODES, self.streams):
            ctx = self.context(node, rng, self.devices.device(node), on_up=self._on_up, on_down=self.network.on_down)
            self.add(node, self.build(node, impl, ctx))

    def peer_delay_ns(self, sender: str, node: str) -> int:
        if node not in self.entities or sender == node:
            raise RuntimeError(f"{sender} sent a peer message to {node!r}, which is not another node of the network")
        return self.conditions.delay_ns

    def crash(self, node: str) -> None:
        self.crashed_nodes.setdefault(node, self.kernel.now_ns)

    def deliver_below(self, node: str, msg: Any) -> None:
        if node in self.crashed_nodes:
            return
        self.below.append((self.kernel.now_ns, node, msg))
        super().deliver_below(node, msg)

    def deliver_peer(self, sender: str, node: str, msg: Any) -> None:
        if node in self.crashed_nodes:
            return
        self.peer.append((self.kernel.now_ns, sender, node, msg))
        super().deliver_peer(sender, node, msg)

    def _on_up(self, node: str, msg: Any) -> None:
        if isinstance(msg, TeleportResult):
            self.teleport_truth[len(self.up)] = self._teleport_truth(node, msg)
        self.up.append(SentUp(self.kernel.now_ns, node, msg, self.cause))

    def _teleport_truth(self, node: str, result: TeleportResult) -> list[TeleportTruth]:
        """Pairs from ``result.sender`` to ``node`` with the result's index, and
        the true state of ``node``'s half of each right now."""
        found = []
        for pair in self.network.pairs.values():
            pid = pair.pair_id
            if (pid.head, pid.tail, pid.index) != (result.sender, node, result.index) or node not in pair.delivered:
                continue
            rho = self.devices.qubit_state(pair.qubits[node])
            if rho is None:
                continue
            scripted = self.requests[pair.request] if pair.request is not None else None
            requested = None
            if scripted is not None and isinstance(scripted.request, TeleportRequest):
                requested = requested_state(scripted.request, pid.index)
            found.append(
                TeleportTruth(
                    pair=pair,
                    requested=requested,
                    fidelity_reported=_fidelity(rho, result.state),
                    fidelity_requested=None if requested is None else _fidelity(rho, requested),
                )
            )
        return found

    def run(self, until_ns: int, max_events: int = 200_000) -> AppRun:
        """Start the entities, play the script, run to ``until_ns``; never raises
        for the implementation's exceptions (they are returned in ``crashed``)."""
        crashed = self.play(self.requests, "request", until_ns, max_events)
        return AppRun(
            conditions=self.conditions,
            requests=self.requests,
            up=self.up,
            down=self.down,
            pairs=self.network.pairs,
            teleport_truth=self.teleport_truth,
            misuse=self.devices.misuse,
            held_at_end={n: {h: s.owner for h, s in held.items()} for n, held in self.devices.book.items()},
            end_ns=self.kernel.now_ns,
            quiescent=self.kernel.pending <= 0,
            crashed=crashed,
            below=self.below,
            peer=self.peer,
            traces={n: ctx.traces for n, ctx in self.contexts.items()},
            lost=self.network.lost,
            crashed_nodes=self.crashed_nodes,
        )


def _fidelity(rho: np.ndarray, state: BlochState) -> float:
    v = bloch_vector(state.theta_rad, state.phi_rad)
    return min(1.0, max(0.0, float(np.real(v.conj() @ rho @ v))))


def run_app(impl: Any, conditions: AppConditions, requests: list[ScriptedRequest], until_ns: int, seed: int = 0) -> AppRun:
    """Convenience: build an :class:`AppHarness` and run it."""
    return AppHarness(impl, conditions, requests, seed).run(until_ns)
