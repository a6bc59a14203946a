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

An eavesdropper (a pulse link's ``adversary``, specs/physical.md §8.4) is
passed to the backend for the link's receiver. What she holds of each block
(the backend's ``eavesdropper_oracle``) is tallied here, never handed to the
application: per train, the pulses that clicked with the two ends' bases
agreeing (sifted), by intensity class and basis, and how many of those Eve
knows the sender's bit of exactly. It is an oracle figure for the report.

A request that ends early stops its train (``stop``): no further block is
drawn.

Random stream: per sender node, a child of the run's seed keyed by (node name
checksum, 4), next to the four layers' keys (``runtime.entity_rng``), so the
pulses change no layer's draws and adding a pulse link leaves the rest of a
run as it was.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from qnetstack.physical.service import ClickRecords, PulseError, PulseRecords, SendPulses
from qnetstack.stack.runtime import LAYERS, Network

__all__ = ["PulsePort", "NoPulses", "EveTally", "pulse_rng", "remember_ports", "ports_of"]


_PORTS: weakref.WeakKeyDictionary[Network, dict[str, Any]] = weakref.WeakKeyDictionary()


def remember_ports(network: Network, ports: dict[str, Any]) -> None:
    """Keep the pulse ports the assembler built for ``network`` (the report reads their oracle tallies)."""
    _PORTS[network] = ports


def ports_of(network: Network) -> dict[str, Any]:
    """The pulse ports of ``network`` by node (empty for a network without pulse links)."""
    return _PORTS.get(network, {})


_CLASSES = 4  # a record's intensity class has two bits (specs/physical.md §8)


def pulse_rng(seed: int, node: str) -> np.random.Generator:
    """The pulse trains' random stream of ``node`` (module docstring)."""
    key = (zlib.crc32(node.encode("utf-8")), len(LAYERS))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


class EveTally:
    """One train's sifted pulses and those whose bit Eve knows exactly (oracle), by class and basis."""

    def __init__(self, receiver: str, classes: int) -> None:
        self.receiver = receiver
        self.sifted = np.zeros((classes, 2), dtype=np.int64)  # [intensity class, basis]
        self.eve_knows = np.zeros((classes, 2), dtype=np.int64)

    def add(self, block: PulseRecords | ClickRecords, knows_bit: np.ndarray) -> None:
        basis = block.alice_basis
        if isinstance(block, ClickRecords):  # its fields are the clicked pulses' only
            knows_bit = knows_bit[block.clicked]
            sifted = basis == block.bob_basis
        else:
            sifted = block.detected & (basis == block.bob_basis)
        classes = block.intensity_class
        width = self.sifted.shape[0]
        self.sifted += np.bincount(classes[sifted] * 2 + basis[sifted], minlength=2 * width).reshape(width, 2)
        known = sifted & knows_bit
        self.eve_knows += np.bincount(classes[known] * 2 + basis[known], minlength=2 * width).reshape(width, 2)


class PulsePort:
    """The pulse-train service of one sender node, wired to the kernel (module docstring)."""

    def __init__(self, network: Network, node: str, trains: Any) -> None:
        self._network = network
        self._node = node
        self._trains = trains  # answers send(request, rng, start_ns) with an iterator of blocks
        self._rng: np.random.Generator | None = None
        self._stopped: set[int] = set()  # request ids whose trains were stopped
        self._held: Any = None  # what Eve holds of the block being drawn (oracle)
        self.eve: dict[int, EveTally] = {}  # per request id of a train on a link with an adversary
        self.blocks_delivered = 0

    def attach(self, trains: Any) -> None:
        """Use ``trains`` (built after the port, as its eavesdropper oracle is the port's ``hold``)."""
        self._trains = trains

    def hold(self, records: Any) -> None:
        """The backend's eavesdropper oracle: what Eve holds of the block about to be yielded."""
        self._held = records

    def stop(self, request_id: int) -> None:
        """Draw no further block of train ``request_id`` (its request ended early)."""
        self._stopped.add(request_id)

    def neighbours(self) -> frozenset[str]:
        return frozenset(self._trains.links)

    def send(self, request: SendPulses) -> None:
        if self._rng is None:
            self._rng = pulse_rng(self._network.seed, self._node)
        self._stopped.discard(request.request_id)
        blocks = self._trains.send(request, self._rng, self._network.kernel.now_ns)
        self._draw_next(blocks, request.neighbour)

    def _draw_next(self, blocks: Iterator[PulseRecords | ClickRecords | PulseError], receiver: str) -> None:
        kernel = self._network.kernel
        self._held = None
        block = next(blocks, None)
        if block is None:
            return
        if isinstance(block, PulseError):
            kernel.schedule(0, self._app(self._node).handle_below, block)
            return
        if self._held is not None:
            tally = self.eve.get(block.request_id)
            if tally is None:
                tally = self.eve[block.request_id] = EveTally(receiver, _CLASSES)
            tally.add(block, self._held.knows_bit)
            self._held = None
        kernel.schedule(max(0, block.delivered_ns - kernel.now_ns), self._deliver, blocks, receiver, block)

    def _deliver(
        self, blocks: Iterator[PulseRecords | ClickRecords | PulseError], receiver: str, block: PulseRecords | ClickRecords
    ) -> None:
        if block.request_id in self._stopped:
            return  # its request ended while the block was under way: neither end waits for it
        self.blocks_delivered += 1
        self._app(self._node).handle_below(block)
        self._app(receiver).handle_received(self._node, block)
        for progressed in self._network.progress_callbacks:
            progressed(self._network.kernel.now_ns)
        if not block.last and block.request_id not in self._stopped:
            self._draw_next(blocks, receiver)

    def _app(self, node: str) -> Any:
        return self._network.entities[node]["application"]


class NoPulses:
    """The port of a node that receives pulses but sends none."""

    def neighbours(self) -> frozenset[str]:
        return frozenset()

    def send(self, request: SendPulses) -> None:
        raise RuntimeError(f"no pulse link from this node to {request.neighbour!r}")

    def stop(self, request_id: int) -> None:
        """Nothing to stop: this node sends no train."""
