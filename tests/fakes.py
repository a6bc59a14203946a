"""Fake neighbours for driving one entity alone: no kernel, no other layer.

``FakeContext`` records what the entity sends and lets the test move time and
fire timers by hand. ``FakeDevice`` stands in for the physical device service
with scripted results.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Any

import numpy as np

from qnetstack.entity.devices import FakeDevices
from qnetstack.entity.devices import heralding_link as kit_heralding_link
from qnetstack.physical import service as physical_service
from qnetstack.physical.service import (
    ApplyGate,
    BellMeasure,
    BellMeasureResult,
    BellState,
    FreeQubit,
    GateApplied,
    HeraldingLink,
    InitQubit,
    Measure,
    MeasureResult,
    OracleFidelity,
    OracleFidelityResult,
    PhysicalCapabilities,
    QubitAllocated,
    QubitFreed,
)


class FakeContext:
    def __init__(self, node: str, device: Any = None, seed: int = 0) -> None:
        self.node = node
        self.now_ns = 0
        self.rng = np.random.default_rng(seed)
        self.device = device
        self.up: list[Any] = []
        self.down: list[Any] = []
        self.peer: list[tuple[str, Any]] = []
        self.timers: dict[int, tuple[int, Hashable]] = {}
        self.traces: list[tuple[str, dict[str, Any]]] = []
        self._next_timer = 0

    def send_up(self, msg: Any) -> None:
        self.up.append(msg)

    def send_down(self, msg: Any) -> None:
        self.down.append(msg)

    def send_peer(self, node: str, msg: Any) -> None:
        self.peer.append((node, msg))

    def set_timer(self, delay_ns: int, tag: Hashable) -> int:
        assert delay_ns >= 0
        timer_id = self._next_timer
        self._next_timer += 1
        self.timers[timer_id] = (self.now_ns + delay_ns, tag)
        return timer_id

    def cancel_timer(self, timer_id: int) -> None:
        self.timers.pop(timer_id, None)

    def trace(self, event: str, **fields: Any) -> None:
        self.traces.append((event, fields))

    def advance(self, entity: Any, to_ns: int) -> None:
        """Move time to ``to_ns``, firing due timers in order on ``entity``."""
        while True:
            due = sorted((t, tid) for tid, (t, _) in self.timers.items() if t <= to_ns)
            if not due:
                break
            time_ns, timer_id = due[0]
            _, tag = self.timers.pop(timer_id)
            self.now_ns = time_ns
            entity.handle_timer(tag)
        self.now_ns = to_ns

    def take(self, kind: type) -> list[Any]:
        """All messages of ``kind`` sent up, down or to peers so far."""
        found = [m for m in self.up + self.down if isinstance(m, kind)]
        found += [m for _, m in self.peer if isinstance(m, kind)]
        return found


class FakeDevice(FakeDevices):
    """Scripted device service of one node: records every operation it is asked for.

    The kit's fake (``qnetstack.entity.devices``) for a single node, called
    without the node's name, as an entity's ``ctx.device``. ``held`` is the set
    of handles taken (a test may take one by hand, as the layer below would).
    """

    def __init__(self, node: str, links: dict[str, HeraldingLink] | None = None, num_qubits: int = 4) -> None:
        super().__init__(physical_service, {node: num_qubits})
        self.node = node
        self.num_qubits = num_qubits
        self._links = links or {}
        self.ops: list[Any] = []
        self.held: set[int] = set()
        self.bell_outcomes: deque[BellState] = deque()
        self.measure_outcomes: deque[int] = deque()
        self.fidelity = 1.0

    def capabilities(self, node: str | None = None) -> PhysicalCapabilities:  # type: ignore[override]
        return super().capabilities(self.node)

    def links(self, node: str) -> dict[str, Any]:
        return self._links

    def duration_ns(self, *node_and_op: Any) -> int:  # type: ignore[override]
        """Every operation at once. Called with ``(op)`` as the node's ``ctx.device`` and with
        ``(node, op)`` by the kit's ``execute``."""
        return 0

    def execute(self, op: Any) -> Any:  # type: ignore[override]
        self.ops.append(op)
        return super().execute(self.node, op)

    def unknown_operation(self, node: str, op: Any) -> Any:
        raise AssertionError(f"unexpected device op {op}")

    def init_qubit(self, node: str, op: InitQubit) -> Any:
        free = [h for h in range(self.num_qubits) if h not in self.held]
        if not free:
            return self.no_resources()
        self.held.add(free[0])
        return QubitAllocated(handle=free[0])

    def apply_gate(self, node: str, op: ApplyGate) -> Any:
        return GateApplied(handle=op.handle)

    def measure(self, node: str, op: Measure) -> Any:
        self.held.discard(op.handle)
        outcome = self.measure_outcomes.popleft() if self.measure_outcomes else 0
        return MeasureResult(outcome=outcome, basis=op.basis)

    def bell_measure(self, node: str, op: BellMeasure) -> Any:
        self.held.discard(op.handle_a)
        self.held.discard(op.handle_b)
        state = self.bell_outcomes.popleft() if self.bell_outcomes else BellState.PHI_PLUS
        return BellMeasureResult(bell_state=state)

    def free_qubit(self, node: str, op: FreeQubit) -> Any:
        self.held.discard(op.handle)
        return QubitFreed(handle=op.handle)

    def oracle_fidelity(self, node: str, op: OracleFidelity) -> Any:
        return OracleFidelityResult(fidelity=self.fidelity)


def heralding_link(neighbour: str, fidelity: float = 0.9, delay_ns: int = 50_000) -> HeraldingLink:
    """A single-click link to ``neighbour`` with success probability 0.1."""
    return kit_heralding_link(physical_service, neighbour, delay_ns, success_probability=0.1, fidelity=fidelity)  # type: ignore[no-any-return]
