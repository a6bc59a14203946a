"""A node's device: its memory slots over the shared quantum world.

Both backends build their node entities on :class:`MemoryDevice`, which
serves the device half of the physical service (``execute``: init, gates,
measurements, Bell measurement, free, oracle reads) for memory slots
``0 .. num_qubits-1`` mapped to qubit ids of the network's one
:class:`~qnetstack.physical.engines.world.QuantumWorld`. Operations are
synchronous and take no simulated time. The heralded-link half of a node is
added by :class:`qnetstack.physical.backends.midpoint.LinkEndNode` and the
backends' own node classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from qnetstack.entity import Context
from qnetstack.entity.refusing import Refusing
from qnetstack.physical.engines.world import QuantumWorld, bell_vector, bloch_vector
from qnetstack.physical.params import NodeHardware
from qnetstack.physical.service import (
    ApplyGate,
    Basis,
    BellMeasure,
    BellMeasureResult,
    BellState,
    DeviceError,
    DeviceErrorCode,
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


def _bloch_unitary(theta: float, phi: float) -> np.ndarray:
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    e = complex(math.cos(phi), math.sin(phi))
    return np.array([[c, -s * e.conjugate()], [s * e, c]], dtype=complex)


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
        self._noise = (hardware.memory.t1_ns, hardware.memory.t2_ns)
        self._ops: dict[type, Callable[[Any], Any]] = {
            InitQubit: self._init,
            ApplyGate: self._gate,
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
        return handler(op)

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

    def _gate(self, op: ApplyGate) -> GateApplied | DeviceError:
        qid = self._held(op.handle)
        if isinstance(qid, DeviceError):
            return qid
        self._world.apply_unitary([qid], _GATES[op.gate], self._ctx.now_ns)
        return GateApplied(handle=op.handle)

    def _measure(self, op: Measure) -> MeasureResult | DeviceError:
        qid = self._held(op.handle)
        if isinstance(qid, DeviceError):
            return qid
        outcome = self._world.measure(qid, op.basis, self._ctx.rng, self._ctx.now_ns)
        self._slots[op.handle] = None
        return MeasureResult(outcome=outcome, basis=op.basis)

    def _bell_measure(self, op: BellMeasure) -> BellMeasureResult | DeviceError:
        if op.handle_a == op.handle_b:
            return DeviceError(code=DeviceErrorCode.UNSUPPORTED, detail="a Bell measurement needs two different qubits")
        qa, qb = self._held(op.handle_a), self._held(op.handle_b)
        if isinstance(qa, DeviceError):
            return qa
        if isinstance(qb, DeviceError):
            return qb
        now, rng = self._ctx.now_ns, self._ctx.rng
        self._world.apply_unitary([qa, qb], _BELL_ROTATION, now)
        m_a = self._world.measure(qa, Basis.Z, rng, now)
        m_b = self._world.measure(qb, Basis.Z, rng, now)
        self._slots[op.handle_a] = self._slots[op.handle_b] = None
        # the parity (m_b) reveals the X frame, the sign (m_a, after H) the Z frame
        return BellMeasureResult(bell_state=BellState.from_bits(x=m_b, z=m_a))

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
