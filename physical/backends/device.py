"""A node's device: its memory slots over the shared quantum world.

Both backends build their node entities on :class:`MemoryDevice`, which
serves the device half of the physical service (``execute``: init, single-
and two-qubit gates, measurements, Bell measurement, free, oracle reads) for
memory slots ``0 .. num_qubits-1`` mapped to qubit ids of the network's one
:class:`~qnetstack.physical.engines.world.QuantumWorld`. The heralded-link
half of a node is added by
:class:`qnetstack.physical.backends.midpoint.LinkEndNode` and the backends'
own node classes.

Two ways in. ``execute(op)`` is synchronous and takes no simulated time, as
the layers above use it today. A ``DeviceRequest`` sent down takes the
operation's duration from the hardware: the device marks the qubits it names
busy, sets a timer for the duration, and when it fires performs the operation
at that moment — so the qubits have waited, and decohered, for the whole
duration (the world applies memory noise lazily for the time a qubit waited)
— and sends the result up in a ``DeviceResponse``. A qubit busy in a request
is refused (``BUSY``) by any other operation until the response. Modelling
the operation as a wait followed by the instant gate and its error channel
splits the noise as NetSquid's processor model does (Coopmans et al.,
Commun. Phys. 4, 164 (2021)): time in memory costs coherence whatever the
qubit does, and the gate adds its own.

Operation errors come from the node's
:class:`~qnetstack.physical.params.MemoryParams`: a depolarising channel
after each gate (Nielsen & Chuang 2000, §8.3.4) and a symmetric flip of each
readout. A Bell measurement is run as the circuit it stands for — CNOT(a → b),
H on a, Z readout of both — and so carries the errors of a two-qubit gate, a
single-qubit gate and two readouts. With perfect figures (the defaults) no
channel is applied and no random number is drawn for them, so runs with the
default hardware are the same, number for number, as before gate errors
existed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np

from qnetstack.entity import Context, EntityError
from qnetstack.entity.refusing import Refusing
from qnetstack.physical.components.memories import depolarising_kraus_arrays
from qnetstack.physical.engines.world import QuantumWorld, bell_vector, bloch_vector
from qnetstack.physical.params import NodeHardware
from qnetstack.physical.service import (
    ApplyGate,
    ApplyTwoQubitGate,
    Basis,
    BellMeasure,
    BellMeasureResult,
    BellState,
    DeviceError,
    DeviceErrorCode,
    DeviceRequest,
    DeviceResponse,
    FreeQubit,
    Gate,
    GateApplied,
    InitQubit,
    Measure,
    MeasureResult,
    OracleFidelity,
    OracleFidelityResult,
    QubitAllocated,
    QubitFreed,
    TwoQubitGate,
    TwoQubitGateApplied,
)

__all__ = ["MemoryDevice", "RESERVED_SLOT"]


def _gate_unitaries() -> dict[Gate, np.ndarray]:
    s = 1 / math.sqrt(2)
    mats = {
        Gate.I: [[1, 0], [0, 1]],
        Gate.X: [[0, 1], [1, 0]],
        Gate.Y: [[0, -1j], [1j, 0]],
        Gate.Z: [[1, 0], [0, -1]],
        Gate.H: [[s, s], [s, -s]],
        Gate.S: [[1, 0], [0, 1j]],
    }
    return {g: _constant(np.array(m, dtype=complex)) for g, m in mats.items()}


def _constant(array: np.ndarray) -> np.ndarray:
    # the world caches lifted operators by object: these must never change
    array.setflags(write=False)
    return array


_GATES = _gate_unitaries()
# CNOT(a -> b) then H on a: maps the Bell basis onto the computational basis
_BELL_ROTATION = _constant(np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 0, 0, -1], [0, 1, -1, 0]], dtype=complex) / math.sqrt(2))
# over |control target> = |00>, |01>, |10>, |11>
_TWO_QUBIT_GATES = {
    TwoQubitGate.CNOT: _constant(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=complex)),
    TwoQubitGate.CZ: _constant(np.diag([1, 1, 1, -1]).astype(complex)),
}


@functools.cache
def _depolarising(fidelity: float, num_qubits: int) -> tuple[np.ndarray, ...] | None:
    """The error channel after a gate of average fidelity ``fidelity`` (None when
    perfect), as read-only arrays shared by every device, so the world lifts
    them onto a group once."""
    if fidelity >= 1.0:
        return None
    return tuple(_constant(k) for k in depolarising_kraus_arrays(fidelity, num_qubits))


def _bloch_unitary(theta: float, phi: float) -> np.ndarray:
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    e = complex(math.cos(phi), math.sin(phi))
    return np.array([[c, -s * e.conjugate()], [s * e, c]], dtype=complex)


# the tag of the device's timers: (DEVICE_TIMER, request id)
DEVICE_TIMER = "device-operation"

# A memory slot taken by an attempt in flight in a backend that creates the
# spin's state only at the herald (qnetstack.physical.backends.heralding_backend): not free, not
# held by the layer above.
RESERVED_SLOT = -1


class MemoryDevice(Refusing):
    """A node's device service: memory slots over the shared quantum world.

    Slots ``0 .. num_qubits-1`` are the handles the layers above see; each
    holds a world qubit id, ``None`` (free) or :data:`RESERVED_SLOT`. Node
    entities of the backends subclass it and add their ends of the links
    (as an entity it refuses every input until then: the physical layer has
    no layer below it and the device sets no timers).
    """

    def __init__(
        self,
        ctx: Context,
        hardware: NodeHardware,
        world: QuantumWorld,
        registry: Mapping[str, MemoryDevice],
    ) -> None:
        self._ctx = ctx
        self.name: str = ctx.node  # read on every attempt: kept, not asked of the context each time
        self.hardware = hardware
        self._world = world
        self._registry = registry
        self._slots: list[int | None] = [None] * hardware.memory.num_qubits
        # a free's answer depends on the slot alone, and messages are immutable: one per slot,
        # built once, spares every pair a message validation
        self._freed = [QubitFreed(handle=handle) for handle in range(hardware.memory.num_qubits)]
        memory = hardware.memory
        self._noise = (memory.t1_ns, memory.t2_ns)
        f1, f2 = memory.single_qubit_gate_fidelity, memory.two_qubit_gate_fidelity
        self._gate_error = None if f1 is None else _depolarising(f1, 1)
        self._two_qubit_error = None if f2 is None else _depolarising(f2, 2)
        self._readout_flip = None if memory.measurement_fidelity is None else 1.0 - memory.measurement_fidelity
        # looked up on every gate and Bell measurement: found once (the hardware model is frozen)
        self._unsupported = frozenset(
            what for what in ("single_qubit_gate", "two_qubit_gate", "measurement") if getattr(memory, f"{what}_fidelity") is None
        )
        t1q, t2q, tm = memory.single_qubit_gate_duration_ns, memory.two_qubit_gate_duration_ns, memory.measurement_duration_ns
        self._durations: dict[type, int] = {ApplyGate: t1q, ApplyTwoQubitGate: t2q, Measure: tm, BellMeasure: t2q + t1q + tm}
        # requests under way: request id -> (operation, start time, its refusal if refused at once);
        # handle -> request id of the busy qubits
        self._under_way: dict[int, tuple[Any, int, DeviceError | None]] = {}
        self._busy: dict[int, int] = {}
        self._ops: dict[type, Callable[[Any], Any]] = {
            InitQubit: self._init,
            ApplyGate: self._gate,
            ApplyTwoQubitGate: self._two_qubit_gate,
            Measure: self._measure,
            BellMeasure: self._bell_measure,
            FreeQubit: self._free,
            OracleFidelity: self._oracle,
        }

    # ---------------------------------------------------------- device service

    def execute(self, op: Any) -> Any:
        handler = self._ops.get(type(op))
        if handler is None:
            return DeviceError(code=DeviceErrorCode.UNSUPPORTED, detail=f"not a device operation: {type(op).__name__}")
        if self._busy:
            busy = [h for h in _handles(op) if h in self._busy]
            if busy:
                detail = f"{self.name}: qubit {busy[0]} is in request {self._busy[busy[0]]}, still under way"
                return DeviceError(code=DeviceErrorCode.BUSY, detail=detail)
        return handler(op)

    def duration_ns(self, op: Any) -> int:
        """How long ``op`` takes when sent as a ``DeviceRequest`` (0 for an init,
        a free, an oracle read and anything the device does not perform)."""
        return self._durations.get(type(op), 0)

    # ------------------------------------------------- requests that take time

    def handle_above(self, msg: Any) -> None:
        if isinstance(msg, DeviceRequest):
            self._request(msg)
            return
        super().handle_above(msg)

    def handle_timer(self, tag: Hashable) -> None:
        if isinstance(tag, tuple) and len(tag) == 2 and tag[0] == DEVICE_TIMER:
            self._complete(tag[1])
            return
        super().handle_timer(tag)

    def _request(self, msg: DeviceRequest) -> None:
        if msg.request_id in self._under_way:
            raise EntityError(
                f"{self._who()}: device request {msg.request_id} is still under way; ids must not be reused before the response"
            )
        op = msg.operation
        named = _handles(op)
        refusal = None
        if len(set(named)) != len(named) or not all(self.qubit_id(h) is not None and h not in self._busy for h in named):
            # refused (a handle named twice, not held, or busy): decided now, answered without taking time
            refusal = self.execute(op)
        self._under_way[msg.request_id] = (op, self._ctx.now_ns, refusal)
        if refusal is None:
            for h in named:
                self._busy[h] = msg.request_id
        self._ctx.set_timer(0 if refusal is not None else self.duration_ns(op), (DEVICE_TIMER, msg.request_id))

    def _complete(self, request_id: int) -> None:
        op, started, refusal = self._under_way.pop(request_id)
        if refusal is None:
            for h in _handles(op):
                del self._busy[h]
        result = self.execute(op) if refusal is None else refusal
        self._ctx.send_up(DeviceResponse(request_id=request_id, result=result, started_ns=started, completed_ns=self._ctx.now_ns))

    def qubit_id(self, handle: int) -> int | None:
        """The world qubit id in memory slot ``handle`` (None if free or reserved). For tests and oracles."""
        if 0 <= handle < len(self._slots):
            qid = self._slots[handle]
            return None if qid is None or qid < 0 else qid
        return None

    def held_handles(self) -> list[int]:
        return [h for h in range(len(self._slots)) if self.qubit_id(h) is not None]

    def _free_slot(self) -> int | None:
        for h, q in enumerate(self._slots):
            if q is None:
                return h
        return None

    def _held(self, handle: int) -> int | DeviceError:
        qid = self.qubit_id(handle)
        if qid is None:
            detail = f"{self.name} holds no qubit in slot {handle}"
            return DeviceError(code=DeviceErrorCode.UNKNOWN_HANDLE, detail=detail)
        return qid

    def _init(self, op: InitQubit) -> QubitAllocated | DeviceError:
        slot = self._free_slot()
        if slot is None:
            detail = f"all {len(self._slots)} memory qubits of {self.name} are in use"
            return DeviceError(code=DeviceErrorCode.NORES, detail=detail)
        now = self._ctx.now_ns
        qid = self._world.new_qubit(now, *self._noise)
        if op.theta_rad != 0.0:
            self._world.apply_unitary([qid], _bloch_unitary(op.theta_rad, op.phi_rad), now)
        self._slots[slot] = qid
        return QubitAllocated(handle=slot)

    def _cannot(self, what: str) -> DeviceError | None:
        """``UNSUPPORTED`` if this hardware has no ``what`` (its fidelity is None)."""
        if what in self._unsupported:
            detail = f"{self.name}'s hardware cannot perform a {what.replace('_', ' ')} ({what}_fidelity is None)"
            return DeviceError(code=DeviceErrorCode.UNSUPPORTED, detail=detail)
        return None

    def _gate(self, op: ApplyGate) -> GateApplied | DeviceError:
        refused = self._cannot("single_qubit_gate")
        if refused is not None:
            return refused
        qid = self._held(op.handle)
        if isinstance(qid, DeviceError):
            return qid
        now = self._ctx.now_ns
        self._world.apply_unitary([qid], _GATES[op.gate], now)
        if self._gate_error is not None:
            self._world.apply_kraus([qid], self._gate_error, now)
        return GateApplied(handle=op.handle)

    def _two_qubit_gate(self, op: ApplyTwoQubitGate) -> TwoQubitGateApplied | DeviceError:
        refused = self._cannot("two_qubit_gate")
        if refused is not None:
            return refused
        held = self._held_two(op.control, op.target, "a two-qubit gate")
        if isinstance(held, DeviceError):
            return held
        qc, qt = held
        now = self._ctx.now_ns
        self._world.apply_unitary([qc, qt], _TWO_QUBIT_GATES[op.gate], now)
        if self._two_qubit_error is not None:
            self._world.apply_kraus([qc, qt], self._two_qubit_error, now)
        return TwoQubitGateApplied(control=op.control, target=op.target)

    def _held_two(self, a: int, b: int, operation: str) -> tuple[int, int] | DeviceError:
        """The world ids of two different qubits this node holds, or why not."""
        if a == b:
            return DeviceError(code=DeviceErrorCode.UNSUPPORTED, detail=f"{operation} needs two different qubits")
        qa, qb = self._held(a), self._held(b)
        if isinstance(qa, DeviceError):
            return qa
        if isinstance(qb, DeviceError):
            return qb
        return qa, qb

    def _read(self, outcome: int) -> int:
        """A readout of ``outcome``, flipped with the hardware's error probability."""
        flip = self._readout_flip
        if flip and self._ctx.rng.random() < flip:
            return 1 - outcome
        return outcome

    def _measure(self, op: Measure) -> MeasureResult | DeviceError:
        refused = self._cannot("measurement")
        if refused is not None:
            return refused
        qid = self._held(op.handle)
        if isinstance(qid, DeviceError):
            return qid
        outcome = self._read(self._world.measure(qid, op.basis, self._ctx.rng, self._ctx.now_ns))
        self._slots[op.handle] = None
        return MeasureResult(outcome=outcome, basis=op.basis)

    def _bell_measure(self, op: BellMeasure) -> BellMeasureResult | DeviceError:
        for what in ("two_qubit_gate", "single_qubit_gate", "measurement"):
            refused = self._cannot(what)
            if refused is not None:
                return refused
        held = self._held_two(op.handle_a, op.handle_b, "a Bell measurement")
        if isinstance(held, DeviceError):
            return held
        qa, qb = held
        now, rng, world = self._ctx.now_ns, self._ctx.rng, self._world
        if self._two_qubit_error is None and self._gate_error is None:
            m_a, m_b = world.measure_two_after(qa, qb, _BELL_ROTATION, rng, now)
        else:
            world.apply_unitary([qa, qb], _TWO_QUBIT_GATES[TwoQubitGate.CNOT], now)
            if self._two_qubit_error is not None:
                world.apply_kraus([qa, qb], self._two_qubit_error, now)
            world.apply_unitary([qa], _GATES[Gate.H], now)
            if self._gate_error is not None:
                world.apply_kraus([qa], self._gate_error, now)
            m_a = world.measure(qa, Basis.Z, rng, now)
            m_b = world.measure(qb, Basis.Z, rng, now)
        m_a, m_b = self._read(m_a), self._read(m_b)
        self._slots[op.handle_a] = self._slots[op.handle_b] = None
        # the parity (m_b) reveals the X frame, the sign (m_a, after H) the Z frame
        return BellMeasureResult.trusted(bell_state=BellState.from_bits(x=m_b, z=m_a))

    def _free(self, op: FreeQubit) -> QubitFreed | DeviceError:
        qid = self._held(op.handle)
        if isinstance(qid, DeviceError):
            return qid
        self._world.discard(qid, self._ctx.now_ns)
        self._slots[op.handle] = None
        return self._freed[op.handle]

    def _oracle(self, op: OracleFidelity) -> OracleFidelityResult | DeviceError:
        qids = []
        for ref in op.qubits:
            node = self._registry.get(ref.node)
            qid = None if node is None else node.qubit_id(ref.handle)
            if qid is None:
                return DeviceError(code=DeviceErrorCode.UNKNOWN_HANDLE, detail=f"no qubit at {ref.node}/{ref.handle}")
            qids.append(qid)
        if len(set(qids)) != len(qids):
            return DeviceError(code=DeviceErrorCode.UNSUPPORTED, detail="the same qubit is named twice")
        if len(qids) == 2 and op.bell_state is not None:
            target = bell_vector(op.bell_state)
        elif len(qids) == 1 and op.bell_state is None:
            target = bloch_vector(op.theta_rad, op.phi_rad)
        else:
            return DeviceError(
                code=DeviceErrorCode.UNSUPPORTED,
                detail="give bell_state for two qubits, or a Bloch state (theta, phi) for one",
            )
        return OracleFidelityResult(fidelity=self._world.fidelity_to_pure(qids, target, self._ctx.now_ns))

    def _who(self) -> str:
        return f"{self.name}/physical"


def _handles(op: Any) -> tuple[int, ...]:
    """The memory slots of this node an operation acts on (an oracle read acts on none)."""
    if isinstance(op, (ApplyGate, Measure, FreeQubit)):
        return (op.handle,)
    if isinstance(op, ApplyTwoQubitGate):
        return (op.control, op.target)
    if isinstance(op, BellMeasure):
        return (op.handle_a, op.handle_b)
    return ()
