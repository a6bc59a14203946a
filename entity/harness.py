"""A context for driving entities in a test harness instead of the full stack.

The conformance harness of each layer runs the implementation under test on a
few nodes and plays everything around it: the layer above (scripted requests,
recorded responses), the layer below (scripted or random outcomes) and the
classical channel between the nodes. :class:`HarnessContext` is the
:class:`entity.Context` the implementation sees there. It keeps the stack's
timing rules, so an implementation that passes in the harness behaves the same
way when assembled:

* ``send_peer`` delivers after the harness's channel delay for that pair of
  nodes, as a kernel event;
* timers are kernel events;
* ``send_up`` / ``send_down`` hand the message to the harness's callback at
  the moment it is sent, so the harness can tell which input caused it. The
  harness must not call back into the entity from inside such a callback: it
  schedules whatever it does in reply as a kernel event (at the same instant
  or later), which keeps the stack's rule that no entity is called
  re-entrantly.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from qnetstack.entity.kernel import Kernel

__all__ = ["HarnessContext", "Delivery", "NodeDevice"]

Delivery = Callable[[Any], None]


class HarnessContext:
    """One entity's view of a harness: its node, the kernel's clock, its callbacks."""

    def __init__(
        self,
        kernel: Kernel,
        node: str,
        rng: np.random.Generator,
        device: Any,
        on_up: Callable[[str, Any], None],
        on_down: Callable[[str, Any], None],
        on_peer: Callable[[str, str, Any], None],
        peer_delay_ns: Callable[[str, str], int],
    ) -> None:
        self._kernel = kernel
        self._node = node
        self._rng = rng
        self._device = device
        self._on_up = on_up
        self._on_down = on_down
        self._on_peer = on_peer
        self._peer_delay_ns = peer_delay_ns
        self.entity: Any = None  # set by the harness once the entity exists
        self.traces: list[tuple[int, str, dict[str, Any]]] = []

    @property
    def node(self) -> str:
        return self._node

    @property
    def now_ns(self) -> int:
        return self._kernel.now_ns

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    @property
    def device(self) -> Any:
        return self._device

    def send_up(self, msg: Any) -> None:
        self._on_up(self._node, msg)

    def send_down(self, msg: Any) -> None:
        self._on_down(self._node, msg)

    def send_peer(self, node: str, msg: Any) -> None:
        delay = self._peer_delay_ns(self._node, node)
        self._kernel.schedule(delay, self._on_peer, self._node, node, msg)

    def set_timer(self, delay_ns: int, tag: Hashable) -> int:
        if delay_ns < 0:
            raise ValueError(f"set_timer: delay_ns must be >= 0, got {delay_ns}")
        return self._kernel.schedule(delay_ns, self._fire, tag)

    def cancel_timer(self, timer_id: int) -> None:
        self._kernel.cancel(timer_id)

    def trace(self, event: str, **fields: Any) -> None:
        self.traces.append((self._kernel.now_ns, event, fields))

    def _fire(self, tag: Hashable) -> None:
        self.entity.handle_timer(tag)


class NodeDevice:
    """The device service as one node sees it, over a harness's fake of every
    node's devices (an object with ``execute(node, op)`` and
    ``capabilities(node)``)."""

    def __init__(self, devices: Any, node: str) -> None:
        self._devices = devices
        self._node = node

    def execute(self, op: Any) -> Any:
        return self._devices.execute(self._node, op)

    def capabilities(self) -> Any:
        return self._devices.capabilities(self._node)
