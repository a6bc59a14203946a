"""Harness for the network service: any network implementation, alone, on a chain.

Theory of operation
-------------------
The harness builds the implementation under test on every node of a small
topology: a chain ``alice - bob - carol [- dave]`` of two to four nodes (closed
into a ring with ``ring``, so any two nodes have two paths), plus
``island``, a node with no link, so no path leads to it. There is one instance
per node, built as ``Impl(ctx, topology)`` as the assembler does, so the
implementation's own peer protocol runs between them. The harness plays the
rest:

* **the layer above** sends the scripted ``NetRequest`` s at their times and
  records every message the implementation sends up, with the time, the input
  that caused it (``cause``, as in the link harness) and a global sequence
  number that orders it against device operations. It owns the qubit of a
  type-K ``PairDelivered`` from then on and frees it ``upper_hold_ns`` later.
* **the layer below** is :class:`FakeBelow`. Its link service serves every
  ``LinkCreate`` to a neighbour: it answers at once with ``LinkAck`` (or
  ``LinkError`` CREATE for a non-neighbour, UNSUPP for type M or a fidelity
  above ``link_fidelity``), then makes the pairs one after the other. Each pair
  takes a geometric number of attempt periods (one period = one hop delay) and
  needs a free memory qubit at both ends (else it waits a period). It is
  reported with ``LinkOkKeep`` at **both** ends, each up to one hop delay after
  the pair was made. A link request may instead fail: ``LinkError`` TIMEOUT at
  both ends (``failure_probability`` per CREATE, after some of its pairs), or
  when its own ``max_time_ns`` runs out. A link may be cut (``cut``): at that
  instant every open link request on it ends with ``LinkError`` DOWN at both
  ends, both ends get ``LinkState(up=False)``, and every later ``LinkCreate``
  on it is answered ERR DOWN at once, as the reference link layer does when
  the physical layer reports the fibre cut (specs/link.md §3). A node's network
  layer may crash (``silent``): from then on it gets nothing at all. With
  ``link_cancel`` its ACKs say ``cancellable`` and it serves ``LinkCancel``
  from a request's origin: it makes no more pairs for the request and ends it
  one hop delay later with ``LinkError`` CANCELLED at both ends (after any OK
  still on its way); a cancel naming no open request of that node changes
  nothing. Without ``link_cancel`` (the default) a ``LinkCancel`` is misuse, as
  it would be refused by a link layer that does not serve it. Its device service lets the network
  layer ``BellMeasure``, ``Measure``, ``FreeQubit``, ``InitQubit`` and apply
  Pauli gates to qubits it holds, with scripted or random outcomes. A Bell
  measurement may take time (``bell_measure_ns``): then the implementation
  must ask for it with ``request_device`` and gets the result that much later.
* **the classical channel** delivers a peer message after ``hop_delay_ns``
  times the number of hops between the two nodes (the stack uses the fibre
  delay of the shortest path, which is the same thing on equal links).

The harness knows the truth. Every link pair is a Werner state of fidelity
``F`` around its Bell state, or, with ``pair_diagonals``, a Bell-diagonal state
whose weights the link's OK tells (no memory decay), every Bell measurement and Pauli
gate is recorded, so :meth:`NetRun.chain` can follow a delivered qubit through
the swaps to the qubit at the other end and compute the pair's true Bell state
and fidelity:

* Pauli frame: writing ``|B(x, z)> = (I ⊗ X^x Z^z)|Φ+>``, swapping ``B(a)`` and
  ``B(c)`` with a Bell-measurement outcome ``B(m)`` leaves ``B(a ⊕ m ⊕ c)`` up
  to a global phase (Żukowski, Zeilinger, Horne & Ekert, PRL 71, 4287, 1993;
  the XOR bookkeeping of QNP's TRACK, Kozlowski et al. 2020). A Pauli gate on
  either qubit XORs its own bits into the frame.
* Fidelity: a Werner state of fidelity ``F`` has Werner parameter
  ``w = (4F - 1) / 3``; perfect swaps multiply the parameters, so the chain has
  ``F = 1/4 + 3/4 · Π w_i`` (Dür, Briegel, Cirac & Zoller, PRA 59, 169, 1999).
  In general the errors relative to the frames compose by XOR, so the
  correlations ``<X⊗X>``, ``-<Y⊗Y>``, ``<Z⊗Z>`` in the frame multiply
  (:func:`bell_diagonal_chain_fidelity`; Werner states have all three ``w``).

The device refuses operations on qubits the network layer does not hold (not
yet reported by the link layer, already handed up, measured or freed) and
records each such misuse, as it records oracle reads, messages sent down that
are not ``LinkCreate`` s to a neighbour (or ``LinkCancel`` s it serves), and peer messages to nodes with no
path. What a run produced is a :class:`NetRun` for the checks in
:mod:`qnetstack.network.conformance.suite` to judge.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from qnetstack.entity.devices import FakeDevices, heralding_link
from qnetstack.entity.harness import Driver, Sent
from qnetstack.entity.kernel import Kernel
from qnetstack.link.service import (
    EntanglementId,
    LinkAck,
    LinkCancel,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    LinkState,
    RequestType,
)
from qnetstack.network.service import NetAccepted, NetError, NetRequest, PairDelivered
from qnetstack.physical import service as physical_service
from qnetstack.physical.service import (
    ApplyGate,
    Basis,
    BellMeasure,
    BellMeasureResult,
    BellState,
    FreeQubit,
    Gate,
    GateApplied,
    InitQubit,
    Measure,
    MeasureResult,
    OracleFidelity,
    QubitAllocated,
    QubitFreed,
)

__all__ = [
    "CHAIN",
    "ISLAND",
    "UNKNOWN",
    "NetConditions",
    "ScriptedRequest",
    "SentUp",
    "Qubit",
    "LinkPair",
    "Swap",
    "LinkFailure",
    "Chain",
    "Accepted",
    "NetRun",
    "FakeBelow",
    "NetHarness",
    "make_topology",
    "run_network",
    "werner_chain_fidelity",
    "bell_diagonal_chain_fidelity",
]

CHAIN = ("alice", "bob", "carol", "dave")
ISLAND = "island"  # in the topology, but without a link: no path leads to it
UNKNOWN = "nowhere"  # not in the topology at all

# Pauli gates and their (x, z) frame bits; Y = iXZ flips both.
_PAULI_BITS = {Gate.I: (0, 0), Gate.X: (1, 0), Gate.Z: (0, 1), Gate.Y: (1, 1)}


@dataclass(frozen=True)
class NetConditions:
    """What the world around the network layer does. Times in ns, probabilities in [0, 1]."""

    size: int = 3  # chain nodes: CHAIN[:size]
    hop_delay_ns: int = 10_000  # one-way classical delay per hop; also the link's attempt period
    success_probability: float = 0.3  # per attempt period, for every link pair
    link_fidelity: float = 0.97  # the best a link can make; a CREATE asking more gets ERR UNSUPP
    pair_fidelities: tuple[float, ...] = (0.9,)  # true fidelity of link pairs, in turn (raised to min_fidelity)
    failure_probability: float = 0.0  # per link CREATE: it ends with ERR TIMEOUT instead of all its pairs
    num_qubits: int = 8  # memory qubits per node
    upper_hold_ns: int = 0  # how long the layer above keeps a delivered qubit before freeing it
    bell_states: tuple[BellState, ...] | None = None  # link-pair states in turn; None: uniformly random
    # Bell-diagonal link pairs in turn, as weights relative to their bell_state (BellState order), told
    # to the layer in LinkOkKeep.bell_diagonal; None: Werner pairs of pair_fidelities, told no diagonal
    pair_diagonals: tuple[tuple[float, float, float, float], ...] | None = None
    swap_outcomes: tuple[BellState, ...] | None = None  # BellMeasure outcomes in turn; None: random
    # how long a Bell measurement takes on the device: with a duration it must be asked for with
    # ``request_device``, and one executed at once is noted as misuse
    bell_measure_ns: int = 0
    cut: tuple[str, str, int] | None = None  # (a, b, time): the link a-b goes down then, for good
    # (node, time): the node's network layer crashes then: from then on it gets nothing (no message
    # from below or from a peer, no timer, no device answer) and so sends nothing more
    silent: tuple[str, int] | None = None
    ring: bool = False  # a link from the last node of the chain back to the first: two paths between any two
    # the topology's links announce their figures (specs/network.md §1): fidelity link_fidelity,
    # success_probability, attempt period and classical delay hop_delay_ns; False: length only
    announce_links: bool = False
    link_cancel: bool = False  # the link layer serves LinkCancel (and says so in its ACKs)

    def __post_init__(self) -> None:
        if not 2 <= self.size <= len(CHAIN):
            raise ValueError(f"size must be in [2, {len(CHAIN)}]")
        if self.ring and self.size < 3:
            raise ValueError("a ring needs at least 3 nodes")
        if self.hop_delay_ns < 1:
            raise ValueError("hop_delay_ns must be at least 1 ns")
        if not 0.0 < self.success_probability <= 1.0:
            raise ValueError("success_probability must be in (0, 1]")
        if not all(0.25 <= f <= 1.0 for f in self.pair_fidelities) or not self.pair_fidelities:
            raise ValueError("pair_fidelities must be in [1/4, 1]")
        for w in self.pair_diagonals or ():
            if min(w) < 0 or abs(sum(w) - 1) > 1e-9:
                raise ValueError(f"pair_diagonals must be probability vectors, got {w}")

    @property
    def chain(self) -> tuple[str, ...]:
        return CHAIN[: self.size]


def make_topology(conditions: NetConditions) -> nx.Graph:
    """The graph every instance is built with: the chain, and the island; each node says how
    many memory qubits it has (``num_qubits``), as the topology may (specs/network.md §1)."""
    graph = nx.Graph()
    graph.add_nodes_from([*conditions.chain, ISLAND], num_qubits=conditions.num_qubits)
    km = conditions.hop_delay_ns / 5_000  # fibre: about 5 µs per km
    figures: dict[str, float] = {}
    if conditions.announce_links:
        figures = {
            "fidelity": conditions.link_fidelity,
            "success_probability": conditions.success_probability,
            "attempt_period_ns": conditions.hop_delay_ns,
            "classical_delay_ns": conditions.hop_delay_ns,
        }
    for a, b in itertools.pairwise(conditions.chain):
        graph.add_edge(a, b, length_km=km, **figures)
    if conditions.ring:
        graph.add_edge(conditions.chain[-1], conditions.chain[0], length_km=km, **figures)
    return graph


@dataclass(frozen=True)
class ScriptedRequest:
    """The layer above sends ``request`` on ``node`` at ``at_ns``."""

    at_ns: int
    node: str
    request: NetRequest


@dataclass(frozen=True)
class SentUp(Sent):
    """A message the implementation sent up (its cause is ``("request", i)`` while
    it handled the i-th scripted request).

    ``seq`` orders it against device operations. ``qubit`` is the serial of the
    qubit a type-K delivery handed up (``None`` if the handle named no qubit the
    network layer held).
    """

    seq: int
    qubit: int | None = None


@dataclass
class Qubit:
    """One memory qubit, from allocation to its end (handles are reused; serials are not)."""

    uid: int
    node: str
    handle: int
    pair: int | None  # the link pair it is half of; None for InitQubit
    owner: str  # "link" until its OK is delivered, "network", "upper" once handed up, "gone"
    frame: tuple[int, int] = (0, 0)  # Pauli gates applied to it, as (x, z)
    bsm: int | None = None  # index in NetRun.swaps of the Bell measurement that consumed it
    measured: tuple[Basis, int, int] | None = None  # (basis, outcome, seq) of the Measure that consumed it


@dataclass
class LinkPair:
    """A pair the fake link layer made: a Bell-diagonal state around ``bell_state``, of
    ``fidelity``, with weights ``diagonal`` relative to ``bell_state`` (Werner unless the
    conditions give ``pair_diagonals``)."""

    sequence: int
    origin: str
    responder: str
    qubits: dict[str, int]  # node -> qubit serial
    bell_state: BellState
    fidelity: float
    time_ns: int
    diagonal: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Swap:
    """A Bell measurement the network layer made."""

    node: str
    qubits: tuple[int, int]
    outcome: BellState
    time_ns: int


@dataclass(frozen=True)
class LinkFailure:
    """A LinkError the fake link layer delivered (to ``node``)."""

    time_ns: int
    node: str
    link: frozenset[str]
    code: LinkErrorCode


@dataclass(frozen=True)
class Chain:
    """Link pairs joined by swaps, from one qubit to the qubit at the far end."""

    nodes: tuple[str, ...]  # the node of the start qubit, then the far node of each link pair
    pairs: tuple[int, ...]  # link pair sequences, in order
    start: int  # qubit serials
    end: int
    bell_state: BellState  # the true Pauli frame of (start, end)
    fidelity: float  # the true fidelity to bell_state


def bell_diagonal_chain_fidelity(diagonals: list[tuple[float, float, float, float]]) -> float:
    """Fidelity to its frame of a chain of perfectly swapped Bell-diagonal pairs (weights relative
    to each pair's frame): the errors relative to the frames compose by XOR, so the Walsh transforms
    of the weights, the correlations <XX>, -<YY>, <ZZ> in the frame, multiply (Dür, Briegel, Cirac &
    Zoller, PRA 59, 169, 1999). For Werner pairs this is :func:`werner_chain_fidelity`."""
    cx = cy = cz = 1.0
    for w0, w1, w2, w3 in diagonals:  # Pauli bits (x, z) = 00, 01, 10, 11
        cx *= w0 - w1 + w2 - w3
        cy *= w0 - w1 - w2 + w3
        cz *= w0 + w1 - w2 - w3
    return (1.0 + cx + cy + cz) / 4.0


def werner_chain_fidelity(fidelities: list[float]) -> float:
    """Fidelity of a chain of perfectly swapped Werner pairs (Dür et al. 1999)."""
    w = 1.0
    for f in fidelities:
        w *= (4.0 * f - 1.0) / 3.0
    return 0.25 + 0.75 * w


@dataclass(frozen=True)
class Accepted:
    """A request the implementation accepted."""

    index: int  # in NetRun.requests
    head: str
    tail: str
    request: NetRequest
    path: tuple[str, ...]
    time_ns: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.head, self.request.request_id)


@dataclass
class NetRun:
    """Everything a run produced, for the checks to judge."""

    conditions: NetConditions
    topology: nx.Graph
    requests: list[ScriptedRequest]
    up: list[SentUp]
    creates: list[tuple[int, str, Any]]  # (time, node, message) of everything sent down
    qubits: dict[int, Qubit]
    pairs: dict[int, LinkPair]
    swaps: list[Swap]
    failures: list[LinkFailure]
    misuse: list[str]
    end_ns: int
    crashed: BaseException | None = None
    cancels: list[tuple[int, str, int]] = field(default_factory=list)  # (time, origin, create id) of link requests withdrawn
    settled: bool = False  # nothing was left to happen at the end (every link request had ended)
    _cache: dict[str, Any] = field(default_factory=dict)

    # -------------------------------------------------------- what was said

    def answers(self, index: int) -> list[SentUp]:
        """What was sent up while the ``index``-th scripted request was handled."""
        return [u for u in self.up if u.cause == ("request", index)]

    def accepted(self) -> dict[tuple[str, int], Accepted]:
        """Accepted requests by (head, request_id); the first acceptance of a key counts."""
        if "accepted" not in self._cache:
            out: dict[tuple[str, int], Accepted] = {}
            for index, scripted in enumerate(self.requests):
                for u in self.answers(index):
                    if isinstance(u.msg, NetAccepted):
                        acc = Accepted(index, scripted.node, scripted.request.remote_node, scripted.request, tuple(u.msg.path), u.time_ns)
                        out.setdefault(acc.key, acc)
            self._cache["accepted"] = out
        return self._cache["accepted"]

    def deliveries(self, key: tuple[str, int], node: str | None = None) -> list[SentUp]:
        return [
            u
            for u in self.up
            if isinstance(u.msg, PairDelivered) and (u.msg.pair_id.head, u.msg.pair_id.request_id) == key and node in (None, u.node)
        ]

    def errors(self, key: tuple[str, int], node: str | None = None) -> list[SentUp]:
        return [u for u in self.up if isinstance(u.msg, NetError) and (u.msg.head, u.msg.request_id) == key and node in (None, u.node)]

    def path_delay_ns(self, path: tuple[str, ...] | list[str]) -> int:
        """One-way classical delay between the ends of ``path``."""
        return self.conditions.hop_delay_ns * (len(path) - 1)

    # --------------------------------------------------------- the truth

    def chain(self, uid: int) -> Chain | None:
        """Follow qubit ``uid`` through its link pair and the swaps to the far end.

        ``None`` if the qubit is not half of a link pair (or a swap joined it to
        a qubit that is not)."""
        q = self.qubits[uid]
        if q.pair is None:
            return None
        nodes, pairs, diagonals = [q.node], [], []
        x, z = q.frame
        while True:
            pair = self.pairs[q.pair]  # type: ignore[index]
            if pair.sequence in pairs:
                return None
            pairs.append(pair.sequence)
            diagonals.append(pair.diagonal)
            bx, bz = pair.bell_state.pauli_bits
            other = self.qubits[next(u for n, u in pair.qubits.items() if n != q.node)]
            nodes.append(other.node)
            x, z = x ^ bx ^ other.frame[0], z ^ bz ^ other.frame[1]
            if other.bsm is None:
                state = BellState.from_bits(x, z)
                return Chain(tuple(nodes), tuple(pairs), uid, other.uid, state, bell_diagonal_chain_fidelity(diagonals))
            swap = self.swaps[other.bsm]
            sx, sz = swap.outcome.pauli_bits
            q = self.qubits[swap.qubits[0] if swap.qubits[1] == other.uid else swap.qubits[1]]
            if q.pair is None:
                return None
            x, z = x ^ sx ^ q.frame[0], z ^ sz ^ q.frame[1]

    def measured_qubit(self, delivery: SentUp) -> int | None:
        """The qubit a type-M delivery reports on: of the qubits its node
        measured before it, in its basis, and not claimed by an earlier
        delivery there, the one measured last."""
        if "m_attribution" not in self._cache:
            attribution: dict[int, int | None] = {}
            claimed: set[int] = set()
            for u in self.up:
                if not isinstance(u.msg, PairDelivered) or u.msg.outcome is None:
                    continue
                best = None
                for q in self.qubits.values():
                    if q.node != u.node or q.measured is None or q.uid in claimed:
                        continue
                    basis, _, seq = q.measured
                    if seq < u.seq and basis is u.msg.basis and (best is None or seq > best.measured[2]):  # type: ignore[index]
                        best = q
                if best is not None:
                    claimed.add(best.uid)
                attribution[u.seq] = None if best is None else best.uid
            self._cache["m_attribution"] = attribution
        return self._cache["m_attribution"].get(delivery.seq)

    def held_by_network(self) -> dict[str, list[int]]:
        """Node -> handles of the qubits the network layer holds at the end."""
        out: dict[str, list[int]] = {}
        for q in self.qubits.values():
            if q.owner == "network":
                out.setdefault(q.node, []).append(q.handle)
        return out


class FakeBelow(FakeDevices):
    """The link service and the device service of every node, with the truth."""

    def __init__(self, kernel: Kernel, conditions: NetConditions, topology: nx.Graph, rng: np.random.Generator) -> None:
        # the book: node -> handle -> Qubit
        super().__init__(physical_service, {n: conditions.num_qubits for n in topology.nodes}, clock=lambda: kernel.now_ns)
        self.kernel = kernel
        self.conditions = conditions
        self.topology = topology
        self.rng = rng
        self.qubits: dict[int, Qubit] = {}
        self.pairs: dict[int, LinkPair] = {}
        self.swaps: list[Swap] = []
        self.failures: list[LinkFailure] = []
        self.creates: list[tuple[int, str, Any]] = []
        self._uids = itertools.count()
        self._pair_sequence = itertools.count()
        self._create_ids: dict[str, Iterator[int]] = {n: itertools.count() for n in topology.nodes}
        self._bell_states: Iterator[BellState] = itertools.cycle(conditions.bell_states) if conditions.bell_states else iter(())
        self._swap_outcomes: Iterator[BellState] = iter(conditions.swap_outcomes or ())
        self._fidelities = itertools.cycle(conditions.pair_fidelities)
        self._diagonals = itertools.cycle(conditions.pair_diagonals) if conditions.pair_diagonals else None
        self.seq: Iterator[int] = itertools.count()  # shared with the harness: orders ops and messages
        self.deliver: Any = None  # set by the harness: (node, message) -> None, calls handle_below
        self._open: list[_LinkRequest] = []  # link requests still making pairs
        self.cancels: list[tuple[int, str, int]] = []  # (time, origin, create id) of each request withdrawn
        self.down: frozenset[str] | None = None  # the link that is cut, once it is
        if conditions.cut is not None:
            a, b, at_ns = conditions.cut
            kernel.schedule(at_ns, self._cut, frozenset((a, b)))

    # ------------------------------------------------------------- memory

    def _allocate(self, node: str, pair: int | None, owner: str) -> Qubit | None:
        handle = self.allocate(node, None)
        if handle is None:
            return None
        q = Qubit(next(self._uids), node, handle, pair, owner)
        self.book[node][handle] = self.qubits[q.uid] = q
        return q

    def _drop(self, q: Qubit) -> None:
        q.owner = "gone"
        if self.book[q.node].get(q.handle) is q:
            del self.book[q.node][q.handle]

    def _own(self, node: str, handle: int, op: str) -> Qubit | None:
        """The network layer's qubit ``handle`` at ``node``, or None (and a misuse noted)."""
        q = self.book[node].get(handle)
        if q is not None and q.owner == "network":
            return q
        state = {
            None: "not held",
            "link": "not yet reported by the link layer",
            "upper": "handed up to the layer above",
        }[None if q is None else q.owner]
        self.note(node, f"{op} on qubit {handle}, which is {state}")
        return None

    def hand_up(self, node: str, handle: int) -> int | None:
        """The network layer handed ``handle`` up in a PairDelivered: returns its serial."""
        q = self.book[node].get(handle)
        if q is None or q.owner != "network":
            return None
        q.owner = "upper"
        self.kernel.schedule(self.conditions.upper_hold_ns, self._upper_free, q)
        return q.uid

    def _upper_free(self, q: Qubit) -> None:
        if q.owner == "upper":
            self._drop(q)

    # ------------------------------------------------------------- device

    def links(self, node: str) -> dict[str, Any]:
        h = self.conditions.hop_delay_ns
        return {
            other: heralding_link(physical_service, other, h, self.conditions.success_probability, self.conditions.link_fidelity)
            for other in self.topology.neighbors(node)
        }

    def execute(self, node: str, op: Any) -> Any:
        self._op_seq = next(self.seq)  # every operation, even a refused one, takes its place in the order
        return super().execute(node, op)

    def duration_ns(self, node: str, op: Any) -> int:
        return self.conditions.bell_measure_ns if isinstance(op, BellMeasure) else 0

    def init_qubit(self, node: str, op: InitQubit) -> Any:
        q = self._allocate(node, None, "network")
        return self.no_resources() if q is None else QubitAllocated(handle=q.handle)

    def free_qubit(self, node: str, op: FreeQubit) -> Any:
        q = self._own(node, op.handle, "FreeQubit")
        if q is None:
            return self.unknown_handle()
        self._drop(q)
        return QubitFreed(handle=op.handle)

    def measure(self, node: str, op: Measure) -> Any:
        q = self._own(node, op.handle, "Measure")
        if q is None:
            return self.unknown_handle()
        outcome = int(self.rng.integers(2))
        q.measured = (op.basis, outcome, self._op_seq)
        self._drop(q)
        return MeasureResult(outcome=outcome, basis=op.basis)

    def bell_measure(self, node: str, op: BellMeasure) -> Any:
        if op.handle_a == op.handle_b:
            self.note(node, f"BellMeasure of qubit {op.handle_a} with itself")
            return self.unknown_handle()
        a = self._own(node, op.handle_a, "BellMeasure")
        b = self._own(node, op.handle_b, "BellMeasure")
        if a is None or b is None:
            return self.unknown_handle()
        outcome = next(self._swap_outcomes, None) or BellState.from_bits(*map(int, self.rng.integers(2, size=2)))
        a.bsm = b.bsm = len(self.swaps)
        self.swaps.append(Swap(node, (a.uid, b.uid), outcome, self.kernel.now_ns))
        self._drop(a)
        self._drop(b)
        return BellMeasureResult(bell_state=outcome)

    def apply_gate(self, node: str, op: ApplyGate) -> Any:
        q = self._own(node, op.handle, "ApplyGate")
        if q is None:
            return self.unknown_handle()
        bits = _PAULI_BITS.get(op.gate)
        if bits is None:  # H or S would take the pair out of the Bell basis; this device has Paulis only
            return self.unsupported(f"gate {op.gate.value} is not offered here")
        q.frame = (q.frame[0] ^ bits[0], q.frame[1] ^ bits[1])
        return GateApplied(handle=op.handle)

    def oracle_fidelity(self, node: str, op: OracleFidelity) -> Any:
        self.note(node, "oracle read (OracleFidelity); oracles are for metrics and tests, not protocols")
        return self.unsupported("no oracle reads for protocols")

    # -------------------------------------------------------- link service

    def link_down(self, node: str, msg: Any) -> None:
        """The network layer on ``node`` sent ``msg`` down to its link layer."""
        now = self.kernel.now_ns
        self.creates.append((now, node, msg))
        if isinstance(msg, LinkCancel) and self.conditions.link_cancel:
            self._cancel(node, msg)
            return
        if not isinstance(msg, LinkCreate):
            self.note(node, f"sent down {type(msg).__name__}, not a LinkCreate")
            return
        create_id = next(self._create_ids[node])
        remote = msg.remote_node
        if remote == node or not self.topology.has_edge(node, remote):
            self.note(node, f"LinkCreate to {remote!r}, which is not a neighbour")
            self._error_now(node, remote, create_id, LinkErrorCode.CREATE, f"{remote!r} is not a neighbour", msg.tag)
        elif msg.type is not RequestType.K:
            self._error_now(node, remote, create_id, LinkErrorCode.UNSUPP, "this link layer offers type K only", msg.tag)
        elif self.down == frozenset((node, remote)):
            self._error_now(node, remote, create_id, LinkErrorCode.DOWN, "the link is cut", msg.tag)
        elif msg.min_fidelity > self.conditions.link_fidelity:
            self._error_now(
                node, remote, create_id, LinkErrorCode.UNSUPP, f"the link gives at most {self.conditions.link_fidelity}", msg.tag
            )
        else:
            ack = LinkAck(
                create_id=create_id, remote_node=remote, purpose_id=msg.purpose_id, tag=msg.tag, cancellable=self.conditions.link_cancel
            )
            self.kernel.schedule(0, self.deliver, node, ack)
            request = _LinkRequest(node, remote, create_id, msg, now)
            if self.rng.random() < self.conditions.failure_probability:
                request.fails_after = int(self.rng.integers(msg.number))
            self._open.append(request)
            self._next(request)

    def _cancel(self, node: str, msg: LinkCancel) -> None:
        """The origin withdraws a request: no pair from now on, ERR CANCELLED one hop delay later."""
        for request in self._open:
            if (
                request.origin == node
                and not request.cancelled
                and msg.create_id in (None, request.create_id)
                and msg.tag in (None, request.msg.tag)
            ):
                request.cancelled = True
                self.cancels.append((self.kernel.now_ns, node, request.create_id))
                # the OKs of pairs made before now arrive within a hop delay, before the ERR
                self.kernel.schedule(self.conditions.hop_delay_ns, self._withdrawn, request)

    def _withdrawn(self, request: _LinkRequest) -> None:
        if not request.ended:
            self._end(request, LinkErrorCode.CANCELLED, "withdrawn by its origin")

    def _cut(self, link: frozenset[str]) -> None:
        """The link goes down: its open requests end with ERR DOWN at both ends, both ends are told."""
        self.down = link
        for request in [r for r in self._open if frozenset((r.origin, r.remote)) == link]:
            self._end(request, LinkErrorCode.DOWN, "the link is cut")
        for node in sorted(link):
            (other,) = link - {node}
            self.failures.append(LinkFailure(self.kernel.now_ns, node, link, LinkErrorCode.DOWN))
            self.kernel.schedule(0, self.deliver, node, LinkState(remote_node=other, up=False))

    def _error_now(self, node: str, remote: str, create_id: int, code: LinkErrorCode, detail: str, tag: int | None) -> None:
        err = LinkError(create_id=create_id, origin_node=node, code=code, detail=detail, tag=tag)
        self.kernel.schedule(0, self._deliver_error, node, frozenset((node, remote)), err)

    def _deliver_error(self, node: str, link: frozenset[str], err: LinkError) -> None:
        self.failures.append(LinkFailure(self.kernel.now_ns, node, link, err.code))
        self.deliver(node, err)

    def _next(self, request: _LinkRequest) -> None:
        """Schedule the request's next pair, or its failure."""
        h = self.conditions.hop_delay_ns
        wait = h * int(self.rng.geometric(self.conditions.success_probability))
        deadline = None if request.msg.max_time_ns is None else request.created_ns + request.msg.max_time_ns
        now = self.kernel.now_ns
        if deadline is not None and now + wait > deadline:
            # not before the OKs of the pair just made (each at most a hop delay away): no OK after its ERR
            self.kernel.schedule(max(deadline - now, h), self._fail, request, "max_time_ns ran out")
        elif request.fails_after == request.made:
            self.kernel.schedule(wait, self._fail, request, "scripted link failure")
        else:
            self.kernel.schedule(wait, self._make_pair, request)

    def _fail(self, request: _LinkRequest, detail: str) -> None:
        if request.ended or request.cancelled:
            return  # the link was cut first, or the request was withdrawn
        self._end(request, LinkErrorCode.TIMEOUT, detail)

    def _end(self, request: _LinkRequest, code: LinkErrorCode, detail: str) -> None:
        request.ended = True
        self._open.remove(request)
        err = LinkError(create_id=request.create_id, origin_node=request.origin, code=code, detail=detail)
        link = frozenset((request.origin, request.remote))
        # both ends at once, as LINK-TIMEOUT-1 allows; the tag only at the origin (LinkCreate.tag)
        self._deliver_error(request.origin, link, err.model_copy(update={"tag": request.msg.tag}))
        self._deliver_error(request.remote, link, err)

    def _make_pair(self, request: _LinkRequest) -> None:
        if request.ended or request.cancelled:
            return  # the link was cut first, or the request was withdrawn
        ends = (request.origin, request.remote)
        free = [len(self.book[n]) < self.capacity[n] for n in ends]
        if not all(free):  # no memory at one end: the link waits one attempt period
            h = self.conditions.hop_delay_ns
            max_time = request.msg.max_time_ns
            if max_time is not None and self.kernel.now_ns + h > request.created_ns + max_time:
                self.kernel.schedule(request.created_ns + max_time - self.kernel.now_ns, self._fail, request, "max_time_ns ran out")
            else:
                self.kernel.schedule(h, self._make_pair, request)
            return
        sequence = next(self._pair_sequence)
        qubits: dict[str, Qubit] = {}
        for n in ends:
            qubit = self._allocate(n, sequence, "link")
            assert qubit is not None  # both ends were checked to have free memory above
            qubits[n] = qubit
        bell = next(self._bell_states, None) or BellState.from_bits(*map(int, self.rng.integers(2, size=2)))
        told: tuple[float, float, float, float] | None = None
        if self._diagonals is not None:
            told = diagonal = next(self._diagonals)
            fidelity = diagonal[0]
        else:
            fidelity = max(next(self._fidelities), request.msg.min_fidelity)  # the link keeps only good-enough pairs
            other_weight = (1.0 - fidelity) / 3.0
            diagonal = (fidelity, other_weight, other_weight, other_weight)
        now = self.kernel.now_ns
        self.pairs[sequence] = LinkPair(
            sequence, request.origin, request.remote, {n: q.uid for n, q in qubits.items()}, bell, fidelity, now, diagonal
        )
        ent_id = EntanglementId(creator=request.origin, peer=request.remote, sequence=sequence)
        for node, other in ((request.origin, request.remote), (request.remote, request.origin)):
            q = qubits[node]
            assert q is not None
            ok = LinkOkKeep(
                create_id=request.create_id,
                origin_node=request.origin,
                ent_id=ent_id,
                purpose_id=request.msg.purpose_id,
                remote_node=other,
                bell_state=bell,
                goodness=fidelity,
                goodness_time_ns=now,
                handle=q.handle,
                bell_diagonal=told,
            )
            # each end hears of the pair up to one hop delay after it was made
            self.kernel.schedule(int(self.rng.integers(self.conditions.hop_delay_ns + 1)), self._deliver_ok, q, ok)
        request.made += 1
        if request.made < request.msg.number:
            self._next(request)
        else:
            request.ended = True
            self._open.remove(request)

    def _deliver_ok(self, q: Qubit, ok: LinkOkKeep) -> None:
        q.owner = "network"
        self.deliver(q.node, ok)


@dataclass(eq=False)  # one request is one object: removed from the open list by identity
class _LinkRequest:
    origin: str
    remote: str
    create_id: int
    msg: LinkCreate
    created_ns: int
    made: int = 0
    fails_after: int | None = None  # pairs made before the scripted failure
    ended: bool = False  # all its pairs made, or an ERR sent
    cancelled: bool = False  # withdrawn by its origin: no more pairs, its ERR CANCELLED on its way


class NetHarness(Driver):
    """Runs one scripted scenario against a network implementation class."""

    def __init__(self, impl: Any, conditions: NetConditions, requests: list[ScriptedRequest], seed: int = 0) -> None:
        self.topology = make_topology(conditions)
        nodes = list(self.topology.nodes)
        super().__init__(seed, streams=len(nodes) + 1)  # one per node, the last for the layer below
        self.impl = impl
        self.conditions = conditions
        self.requests = sorted(requests, key=lambda r: r.at_ns)
        self.below = FakeBelow(self.kernel, conditions, self.topology, self.streams[-1])
        self.below.deliver = self.deliver_below
        self._hops = dict(nx.all_pairs_shortest_path_length(self.topology))
        self.up: list[SentUp] = []
        for node, rng in zip(nodes, self.streams):
            ctx = self.context(node, rng, self.below.device(node), on_up=self._on_up, on_down=self.below.link_down)
            self.add(node, self.build(node, impl, ctx, self.topology.copy()))

    def _silent(self, node: str) -> bool:
        silent = self.conditions.silent
        return silent is not None and silent[0] == node and self.kernel.now_ns >= silent[1]

    def deliver_below(self, node: str, msg: Any) -> None:
        if not self._silent(node):
            super().deliver_below(node, msg)

    def deliver_peer(self, sender: str, node: str, msg: Any) -> None:
        if not self._silent(node):
            super().deliver_peer(sender, node, msg)

    def deliver_timer(self, node: str, tag: Hashable) -> None:
        if not self._silent(node):
            super().deliver_timer(node, tag)

    def deliver_device(self, node: str, tag: Hashable, result: Any) -> None:
        if not self._silent(node):
            super().deliver_device(node, tag, result)

    def peer_delay_ns(self, sender: str, node: str) -> int:
        hops = self._hops.get(sender, {}).get(node)
        return 0 if hops is None else hops * self.conditions.hop_delay_ns  # no path: refused on arrival

    def refuse_peer(self, sender: str, node: str, msg: Any) -> bool:
        if node == sender or self._hops.get(sender, {}).get(node) is None:
            self.below.note(sender, f"peer message to {node!r}, which it has no path to")
            return True
        return False

    def _on_up(self, node: str, msg: Any) -> None:
        qubit = None
        if isinstance(msg, PairDelivered) and msg.handle is not None:
            qubit = self.below.hand_up(node, msg.handle)
        self.up.append(SentUp(self.kernel.now_ns, node, msg, self.cause, next(self.below.seq), qubit))

    def run(self, until_ns: int, max_events: int = 200_000) -> NetRun:
        """Start every entity, play the script, run to ``until_ns``; never raises
        for the implementation's exceptions (they are returned in ``crashed``)."""
        crashed = self.play(self.requests, "request", until_ns, max_events)
        below = self.below
        # A run with nothing left to happen is final: it is as if it ran to until_ns.
        idle = crashed is None and self.kernel.pending == 0
        return NetRun(
            conditions=self.conditions,
            topology=self.topology,
            requests=self.requests,
            up=self.up,
            creates=below.creates,
            qubits=below.qubits,
            pairs=below.pairs,
            swaps=below.swaps,
            failures=below.failures,
            misuse=below.misuse,
            cancels=below.cancels,
            end_ns=until_ns if idle else self.kernel.now_ns,
            crashed=crashed,
            settled=idle,
        )


def run_network(impl: Any, conditions: NetConditions, requests: list[ScriptedRequest], until_ns: int, seed: int = 0) -> NetRun:
    """Convenience: build a :class:`NetHarness` and run it."""
    return NetHarness(impl, conditions, requests, seed).run(until_ns)
