"""Pulse links in an assembled network: the port through which an application sends pulse trains.

A prepare-and-measure QKD session needs an optical link, not entanglement, so
the link and network layers have nothing to add to it: as a QKD layer sits on
its QKD link in ITU-T Y.3800 (2019), the assembler hands the application
entity of a pulse link's sender a :class:`PulsePort` onto the node's physical
pulse-train service (``SendPulses`` / ``PulseRecords`` / ``PulseError``,
specs/physical.md §8). The port draws one block at a time from the physical
backend (``pulse_trains``) with the sender's own random stream, and hands the
block to the sender's application (``handle_below``) and to the receiver's
(``handle_received(sender, block)``) when its last detection is known
(``PulseRecords.delivered_ns``); only then is the next block drawn, so a train
holds one block in memory however long it is. A refusal (``PulseError``) goes to
the sender at once.

Random stream: per sender node, a child of the run's seed keyed by (node name
checksum, 4), next to the four layers' keys (``runtime.entity_rng``), so the
pulses change no layer's draws and adding a pulse link leaves the rest of a
run as it was.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from qnetstack.physical.service import PulseError, PulseRecords, SendPulses
from qnetstack.stack.runtime import LAYERS, Network

__all__ = ["PulsePort", "NoPulses", "pulse_rng"]


def pulse_rng(seed: int, node: str) -> np.random.Generator:
    """The pulse trains' random stream of ``node`` (module docstring)."""
    key = (zlib.crc32(node.encode("utf-8")), len(LAYERS))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


class PulsePort:
    """The pulse-train service of one sender node, wired to the kernel (module docstring)."""

    def __init__(self, network: Network, node: str, trains: Any) -> None:
        self._network = network
        self._node = node
        self._trains = trains  # answers send(request, rng, start_ns) with an iterator of blocks
        self._rng: np.random.Generator | None = None
        self.blocks_delivered = 0

    def neighbours(self) -> frozenset[str]:
        return frozenset(self._trains.links)

    def send(self, request: SendPulses) -> None:
        if self._rng is None:
            self._rng = pulse_rng(self._network.seed, self._node)
        blocks = self._trains.send(request, self._rng, self._network.kernel.now_ns)
        self._draw_next(blocks, request.neighbour)

    def _draw_next(self, blocks: Iterator[PulseRecords | PulseError], receiver: str) -> None:
        kernel = self._network.kernel
        block = next(blocks, None)
        if block is None:
            return
        if isinstance(block, PulseError):
            kernel.schedule(0, self._app(self._node).handle_below, block)
            return
        kernel.schedule(max(0, block.delivered_ns - kernel.now_ns), self._deliver, blocks, receiver, block)

    def _deliver(self, blocks: Iterator[PulseRecords | PulseError], receiver: str, block: PulseRecords) -> None:
        self.blocks_delivered += 1
        self._app(self._node).handle_below(block)
        self._app(receiver).handle_received(self._node, block)
        for progressed in self._network.progress_callbacks:
            progressed(self._network.kernel.now_ns)
        if not block.last:
            self._draw_next(blocks, receiver)

    def _app(self, node: str) -> Any:
        return self._network.entities[node]["application"]


class NoPulses:
    """The port of a node that receives pulses but sends none."""

    def neighbours(self) -> frozenset[str]:
        return frozenset()

    def send(self, request: SendPulses) -> None:
        raise RuntimeError(f"no pulse link from this node to {request.neighbour!r}")
