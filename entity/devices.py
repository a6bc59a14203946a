"""Fake device services for harnesses and unit tests: one book, one dispatch.

A harness that runs a layer above the physical one replaces the physical
layer's device service (``specs/physical.md``) by a fake that keeps the truth
the checks need. The fakes differ in that truth (pairs with a decaying
fidelity, Pauli frames along a chain of swaps, exact density matrices, scripted
outcomes), not in what they share, which lives here:

* the **book** of who holds each memory qubit of each node (``book``: node ->
  handle -> whatever the fake keeps for it), handles given lowest first;
* the **dispatch** of a device operation to the fake's method for it
  (``init_qubit``, ``apply_gate``, ``measure``, ``bell_measure``,
  ``free_qubit``, ``oracle_fidelity``), and the answer to anything else: the
  misuse is noted and the answer is ``DeviceError`` ``UNSUPPORTED``;
* the **misuse** log (``t=<now> <node>: what it did``) the checks read;
* the node's **capabilities**, with single-click heralding links
  (:func:`heralding_link`).

This module sits below every layer, so it does not import the physical
service's message classes: the fake is handed the module that defines them
(``qnetstack.physical.service``) as ``service``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qnetstack.entity.harness import NodeDevice

__all__ = ["FakeDevices", "heralding_link"]

# device operation class name -> the fake's method for it
_OPERATIONS = {
    "InitQubit": "init_qubit",
    "ApplyGate": "apply_gate",
    "Measure": "measure",
    "BellMeasure": "bell_measure",
    "FreeQubit": "free_qubit",
    "OracleFidelity": "oracle_fidelity",
}


class FakeDevices:
    """The device services of a harness's nodes (``capacity``: node -> memory qubits)."""

    def __init__(self, service: Any, capacity: dict[str, int], clock: Callable[[], int] = lambda: 0) -> None:
        self.service = service
        self.capacity = dict(capacity)
        self.clock = clock
        self.book: dict[str, dict[int, Any]] = {n: {} for n in capacity}
        self.misuse: list[str] = []
        self._dispatch = {getattr(service, name): method for name, method in _OPERATIONS.items()}
        self._performing = False  # while an operation asked for with request_device is carried out

    # ---------------------------------------------------------------- book

    def allocate(self, node: str, value: Any) -> int | None:
        """Give ``node``'s lowest free handle to ``value``; None when all are held."""
        held = self.book[node]
        for handle in range(self.capacity[node]):
            if handle not in held:
                held[handle] = value
                return handle
        return None

    def note(self, node: str, what: str) -> None:
        """Record a misuse by ``node`` at the current time."""
        self.misuse.append(f"t={self.clock()} {node}: {what}")

    # ------------------------------------------------------ device service

    def device(self, node: str) -> NodeDevice:
        """The device service as ``node``'s entities see it."""
        return NodeDevice(self, node)

    def duration_ns(self, node: str, op: Any) -> int:
        """How long ``op`` takes on ``node``'s device; a fake whose operations take time says so."""
        return 0

    def perform(self, node: str, op: Any) -> Any:
        """``op`` asked for with ``request_device``, now that its duration has passed."""
        self._performing = True
        try:
            return self.execute(node, op)
        finally:
            self._performing = False

    def execute(self, node: str, op: Any) -> Any:
        if not self._performing:
            duration = self.duration_ns(node, op)
            if duration:
                self.note(
                    node,
                    f"{type(op).__name__} executed at once, yet it takes {duration} ns on this device (ask for it with request_device)",
                )
        method = self._dispatch.get(type(op))
        if method is None:
            return self.unknown_operation(node, op)
        return getattr(self, method)(node, op)

    def unknown_operation(self, node: str, op: Any) -> Any:
        self.note(node, f"unknown device operation {type(op).__name__}")
        return self.unsupported(f"unknown operation {type(op).__name__}")

    def capabilities(self, node: str) -> Any:
        return self.service.PhysicalCapabilities(node=node, num_qubits=self.capacity[node], links=self.links(node))

    def links(self, node: str) -> dict[str, Any]:
        """The heralding links of ``node`` by neighbour (none unless the fake says)."""
        return {}

    # ------------------------------------------------------------ answers

    def unknown_handle(self) -> Any:
        return self.service.DeviceError(code=self.service.DeviceErrorCode.UNKNOWN_HANDLE)

    def no_resources(self) -> Any:
        return self.service.DeviceError(code=self.service.DeviceErrorCode.NORES)

    def unsupported(self, detail: str) -> Any:
        return self.service.DeviceError(code=self.service.DeviceErrorCode.UNSUPPORTED, detail=detail)


def heralding_link(
    service: Any,
    neighbour: str,
    delay_ns: int,
    success_probability: float,
    fidelity: float,
    alpha_settings: tuple[tuple[float, float, float], ...] | None = None,
) -> Any:
    """``service.HeraldingLink`` of a single-click link with α = 0.1 whose attempt
    period equals its classical delay (what every fake announces)."""
    settings = None
    if alpha_settings is not None:
        settings = [service.AlphaSetting(bright_state_population=a, success_probability=p, fidelity=f) for a, p, f in alpha_settings]
    return service.HeraldingLink(
        neighbour=neighbour,
        scheme="single-click",
        attempt_period_ns=delay_ns,
        classical_delay_ns=delay_ns,
        bright_state_population=0.1,
        success_probability=success_probability,
        fidelity=fidelity,
        alpha_settings=settings,
    )
