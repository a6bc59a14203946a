"""Harness for the link service: any link implementation, alone, on two nodes.

Theory of operation
-------------------
The harness builds the implementation under test on two neighbouring nodes,
``alice`` and ``bob`` (one instance each, so its own peer protocol runs
between them over a classical channel with a fixed delay), and plays the rest:

* **the layer above** sends the scripted ``LinkCreate`` s at their times and
  records every message the implementation sends up, with the time and the
  input that caused it. It frees a delivered type-K qubit a little later, the
  way a network layer consumes pairs.
* **the layer below** is :class:`FakePhysical`: a device service with a few
  memory qubits per node, and a heralding station at the midpoint of the link.
  A ``HeraldAttempt`` emits a photon that reaches the station half an attempt
  period later; when both ends' photons with the same ``attempt_id`` arrive at
  the same instant the station draws success (from the scripted loss pattern
  or with the given probability), allocates one qubit at each end and sends
  both ends a ``HeraldResult`` that arrives half a period after that. Each
  attempt in flight reserves one memory qubit at its end from the attempt to
  its result (a success turns it into the pair's qubit), so an end whose
  memory is held or reserved attempts without memory and the attempt fails
  (``no_memory``), as in ``specs/physical.md``. A
  ``HeraldAttempt`` with ``max_attempts`` N > 1 is a run of up to N such
  draws, one period apart, ending at the first success. The
  station keeps the *truth* of every pair it heralds: which two qubits, which
  Bell state, and its fidelity, which then decays towards 1/4 with the
  memory lifetime (depolarising memory, F(t) = 1/4 + (F0 - 1/4) exp(-t/T),
  e.g. Nielsen & Chuang 2000, §8.3.4).

The device refuses operations on qubits the link layer does not hold and
records each such misuse, so checks can tell "used a qubit it did not own"
from ordinary behaviour. What a run produced is returned as a :class:`LinkRun`
for the checks in :mod:`qnetstack.link.conformance.suite` to judge.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qnetstack.entity.devices import FakeDevices, heralding_link
from qnetstack.entity.harness import Driver, Sent
from qnetstack.entity.kernel import Kernel
from qnetstack.link.service import LinkError, LinkOkKeep, LinkOkMeasure
from qnetstack.physical import service as physical_service
from qnetstack.physical.service import (
    ApplyGate,
    BellMeasure,
    BellMeasureResult,
    BellState,
    FreeQubit,
    GateApplied,
    HeraldAttempt,
    HeraldResult,
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
    "LinkConditions",
    "ScriptedCreate",
    "SentUp",
    "PairTruth",
    "LinkRun",
    "FakePhysical",
    "LinkHarness",
    "run_link",
]

NODES = ("alice", "bob")


@dataclass(frozen=True)
class LinkConditions:
    """What the fake physical layer does. Times in ns, probabilities in [0, 1]."""

    delay_ns: int = 10_000  # one-way classical delay alice <-> bob; also the attempt period
    success_probability: float = 0.3  # per attempt, used when no loss pattern is given
    loss_pattern: tuple[bool, ...] | None = None  # scripted outcomes (True = success), then success_probability
    capability_fidelity: float = 0.9  # the fidelity capabilities() announces
    herald_fidelities: tuple[float, ...] = (0.9,)  # fresh-pair fidelities, used in turn
    memory_lifetime_ns: int | None = None  # depolarising time constant; None: no decay
    num_qubits: tuple[int, int] = (4, 4)  # alice, bob
    upper_hold_ns: int = 0  # how long the layer above keeps a delivered qubit before freeing it
    # single-click operating points (α, success probability, fidelity) announced in
    # HeraldingLink.alpha_settings; an attempt at one of them draws with its p and F
    alpha_settings: tuple[tuple[float, float, float], ...] | None = None
    # each message between the two link entities is lost with this probability (a lossy
    # classical network, scenario faults.classical), drawn from a stream of its own
    peer_loss_probability: float = 0.0

    def __post_init__(self) -> None:
        if self.delay_ns < 2:
            raise ValueError("delay_ns must be at least 2 ns")
        if not 0.0 <= self.success_probability <= 1.0:
            raise ValueError("success_probability must be in [0, 1]")
        if not 0.0 <= self.peer_loss_probability <= 1.0:
            raise ValueError("peer_loss_probability must be in [0, 1]")


@dataclass(frozen=True)
class ScriptedCreate:
    """The layer above sends ``request`` (a ``LinkCreate``, ``LinkRecv`` or
    ``LinkStopRecv``) on ``node`` at ``at_ns``."""

    at_ns: int
    node: str
    request: Any


# A message the implementation sent up; its cause is ("create", i) while it
# handled the i-th scripted CREATE.
SentUp = Sent


@dataclass
class PairTruth:
    """A pair the fake station heralded."""

    sequence: int
    handles: dict[str, int]  # node -> qubit handle
    bell_state: BellState
    fidelity_at_herald: float
    herald_time_ns: int
    lifetime_ns: int | None
    measured: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # node -> (basis, outcome, time)

    def fidelity_at(self, time_ns: int) -> float:
        """True fidelity to ``bell_state`` at ``time_ns`` (depolarising decay)."""
        if self.lifetime_ns is None:
            return self.fidelity_at_herald
        waited = max(0, time_ns - self.herald_time_ns)
        return 0.25 + (self.fidelity_at_herald - 0.25) * math.exp(-waited / self.lifetime_ns)


@dataclass
class LinkRun:
    """Everything a run produced, for the checks to judge."""

    conditions: LinkConditions
    creates: list[ScriptedCreate]
    up: list[SentUp]
    pairs: dict[int, PairTruth]  # by herald sequence
    misuse: list[str]  # device or heralding misuse seen by the fake physical layer
    attempts: list[tuple[int, str, HeraldAttempt]]  # (time, node, attempt) as sent down
    held_at_end: dict[str, dict[int, str]]  # node -> handle -> owner ("link" or "upper")
    end_ns: int
    crashed: BaseException | None = None
    results: list[tuple[int, str, HeraldResult]] = field(default_factory=list)  # (time, node, result) as sent up
    # measurements of heralded qubits in the order made: (node, pair sequence); and for
    # the index in ``up`` of each LinkOkMeasure, how many measurements preceded it
    measure_log: list[tuple[str, int]] = field(default_factory=list)
    measures_before_up: dict[int, int] = field(default_factory=dict)
    peer_lost: int = 0  # messages between the link entities the harness lost (peer_loss_probability)

    def oks(self, node: str | None = None) -> list[SentUp]:
        return [u for u in self.up if isinstance(u.msg, (LinkOkKeep, LinkOkMeasure)) and node in (None, u.node)]

    def errors(self, node: str | None = None) -> list[SentUp]:
        return [u for u in self.up if isinstance(u.msg, LinkError) and node in (None, u.node)]

    def pair_of(self, node: str, handle: int, at_ns: int) -> PairTruth | None:
        """The pair whose qubit sat at ``node``'s ``handle`` at ``at_ns`` (handles are reused)."""
        found = None
        for pair in self.pairs.values():  # in herald order
            if pair.herald_time_ns > at_ns:
                break
            if pair.handles.get(node) == handle:
                found = pair
        return found


class FakePhysical(FakeDevices):
    """Device and heralding services of both nodes, with the truth of every pair."""

    def __init__(self, kernel: Kernel, conditions: LinkConditions, rng: np.random.Generator) -> None:
        # the book: node -> handle -> owner ("link" until handed up in an OK-K, then "upper")
        super().__init__(physical_service, dict(zip(NODES, conditions.num_qubits)), clock=lambda: kernel.now_ns)
        self.kernel = kernel
        self.conditions = conditions
        self.rng = rng
        self.pairs: dict[int, PairTruth] = {}
        self.attempts: list[tuple[int, str, HeraldAttempt]] = []
        self.results: list[tuple[int, str, HeraldResult]] = []
        self.measure_log: list[tuple[str, int]] = []
        self.reserved: dict[str, int] = {n: 0 for n in NODES}  # memory qubits reserved by attempts in flight
        self.sequence = 0
        self._loss: Iterator[bool] = iter(conditions.loss_pattern or ())
        self._fidelities = conditions.herald_fidelities
        # (attempt_id, emit time) -> node -> (has memory, max_attempts, α)
        self._pending: dict[tuple[int, int], dict[str, tuple[bool, int, float | None]]] = {}
        self._settings = {a: (p, f) for a, p, f in conditions.alpha_settings or ()}
        self.deliver: Any = None  # set by the harness: (node, HeraldResult) -> None

    # -------------------------------------------------------------- device

    def links(self, node: str) -> dict[str, Any]:
        c = self.conditions
        other = _other(node)
        return {other: heralding_link(physical_service, other, c.delay_ns, c.success_probability, c.capability_fidelity, c.alpha_settings)}

    def _release(self, node: str, handle: int, op: str) -> bool:
        if self.book[node].get(handle) != "link":
            state = "not held" if handle not in self.book[node] else "handed up to the layer above"
            self.note(node, f"{op} on qubit {handle}, which is {state}")
            return False
        del self.book[node][handle]
        return True

    def init_qubit(self, node: str, op: InitQubit) -> Any:
        handle = self.allocate(node, "link")
        return self.no_resources() if handle is None else QubitAllocated(handle=handle)

    def free_qubit(self, node: str, op: FreeQubit) -> Any:
        if not self._release(node, op.handle, "FreeQubit"):
            return self.unknown_handle()
        return QubitFreed(handle=op.handle)

    def measure(self, node: str, op: Measure) -> Any:
        if not self._release(node, op.handle, "Measure"):
            return self.unknown_handle()
        outcome = int(self.rng.integers(2))
        for pair in self.pairs.values():
            if pair.handles.get(node) == op.handle and node not in pair.measured:
                pair.measured[node] = (op.basis.value, outcome, self.kernel.now_ns)
                self.measure_log.append((node, pair.sequence))
        return MeasureResult(outcome=outcome, basis=op.basis)

    def apply_gate(self, node: str, op: ApplyGate) -> Any:
        if self.book[node].get(op.handle) != "link":
            self.note(node, f"ApplyGate on qubit {op.handle}, which it does not hold")
            return self.unknown_handle()
        return GateApplied(handle=op.handle)

    def bell_measure(self, node: str, op: BellMeasure) -> Any:
        if not (self._release(node, op.handle_a, "BellMeasure") and self._release(node, op.handle_b, "BellMeasure")):
            return self.unknown_handle()
        return BellMeasureResult(bell_state=BellState.from_bits(*map(int, self.rng.integers(2, size=2))))

    def oracle_fidelity(self, node: str, op: OracleFidelity) -> Any:
        if len(op.qubits) == 2 and op.bell_state is not None:
            a, b = op.qubits
            pair = self._pair_with(a.node, a.handle)
            if pair is not None and pair.handles.get(b.node) == b.handle and pair.bell_state is op.bell_state:
                return OracleFidelityResult(fidelity=pair.fidelity_at(self.kernel.now_ns))
        return OracleFidelityResult(fidelity=0.25)

    def _pair_with(self, node: str, handle: int) -> PairTruth | None:
        for pair in reversed(list(self.pairs.values())):
            if pair.handles.get(node) == handle:
                return pair
        return None

    def hand_up(self, node: str, handle: int) -> None:
        """The link layer gave ``handle`` to the layer above in an OK (type K)."""
        if self.book[node].get(handle) == "link":
            self.book[node][handle] = "upper"

    def upper_free(self, node: str, handle: int) -> None:
        if self.book[node].get(handle) == "upper":
            del self.book[node][handle]

    # ---------------------------------------------------------- heralding

    def attempt(self, node: str, msg: Any) -> None:
        now = self.kernel.now_ns
        if not isinstance(msg, HeraldAttempt):
            self.note(node, f"sent down {type(msg).__name__}, not a HeraldAttempt")
            return
        other = NODES[1] if node == NODES[0] else NODES[0]
        if msg.neighbour != other:
            self.note(node, f"HeraldAttempt to {msg.neighbour!r}, which is not a neighbour")
            return
        self.attempts.append((now, node, msg))
        alpha = msg.bright_state_population
        if alpha is not None and alpha not in self._settings:
            self.note(node, f"HeraldAttempt at bright_state_population {alpha}, which the link does not offer")
            alpha = None
        key = (msg.attempt_id, now)
        has_memory = len(self.book[node]) + self.reserved[node] < self.capacity[node]
        reports = self._pending.get(key)
        if reports is None:
            reports = self._pending[key] = {}
            self.kernel.schedule(self.conditions.delay_ns // 2, self._resolve, key)
        if node in reports:
            self.note(node, f"two HeraldAttempts with attempt_id {msg.attempt_id} at once")
            return
        if has_memory:
            self.reserved[node] += 1
        reports[node] = (has_memory, msg.max_attempts, alpha)

    def _resolve(self, key: tuple[int, int]) -> None:
        """A run of ``max_attempts`` attempts (1 unless the link layer fast-forwards),
        one attempt period (``delay_ns``) apart, each drawn as a single attempt is."""
        reports = self._pending.pop(key)
        attempt_id = key[0]
        back = self.conditions.delay_ns - self.conditions.delay_ns // 2
        runs = {n for _, n, _ in reports.values()}
        alphas = {a for _, _, a in reports.values()}
        both = len(reports) == 2 and all(m for m, _, _ in reports.values()) and len(runs) == 1 and len(alphas) == 1
        if len(reports) == 2 and len(runs) > 1:
            self.misuse.append(f"t={self.kernel.now_ns}: the two ends asked for different max_attempts {sorted(runs)}")
        if len(reports) == 2 and len(alphas) > 1:
            self.misuse.append(f"t={self.kernel.now_ns}: the two ends asked for different bright-state populations {alphas}")
        alpha = next(iter(alphas)) if len(alphas) == 1 else None
        probability, setting_fidelity = self._settings.get(alpha, (self.conditions.success_probability, None))  # type: ignore[arg-type]
        success = False
        attempts = 1
        if both:
            max_attempts = runs.pop()
            while True:
                scripted = next(self._loss, None)
                success = bool(scripted) if scripted is not None else bool(self.rng.random() < probability)
                if success or attempts == max_attempts:
                    break
                attempts += 1
        wait = (attempts - 1) * self.conditions.delay_ns
        if not success:
            for node, (has_memory, _, _) in reports.items():
                result = HeraldResult(
                    neighbour=_other(node), attempt_id=attempt_id, success=False, no_memory=not has_memory, attempts=attempts
                )
                self.kernel.schedule(wait + back, self._fail, node, has_memory, result)
            return
        self.kernel.schedule(wait, self._herald, attempt_id, attempts, setting_fidelity)

    def _fail(self, node: str, had_memory: bool, result: HeraldResult) -> None:
        """A failed attempt gives back its reserved qubit as its result goes up."""
        if had_memory:
            self.reserved[node] -= 1
        self.deliver(node, result)

    def _herald(self, attempt_id: int, attempts: int, setting_fidelity: float | None = None) -> None:
        now = self.kernel.now_ns
        back = self.conditions.delay_ns - self.conditions.delay_ns // 2
        for node in NODES:
            self.reserved[node] -= 1  # the reserved qubit becomes the pair's
        handles: dict[str, int] = {}
        for node in NODES:
            handle = self.allocate(node, "link")
            if handle is None:  # the link layer took the memory while the run was on: the attempt fails
                self.note(node, "no memory left for the qubit of a run it started with memory")
                for held_node, held in handles.items():
                    del self.book[held_node][held]
                for end in NODES:
                    result = HeraldResult(neighbour=_other(end), attempt_id=attempt_id, success=False, attempts=attempts)
                    self.kernel.schedule(back, self.deliver, end, result)
                return
            handles[node] = handle
        self.sequence += 1
        bell = BellState.PSI_PLUS if self.rng.random() < 0.5 else BellState.PSI_MINUS
        fidelity = self._fidelities[(self.sequence - 1) % len(self._fidelities)] if setting_fidelity is None else setting_fidelity
        pair = PairTruth(self.sequence, handles, bell, fidelity, now, self.conditions.memory_lifetime_ns)
        self.pairs[self.sequence] = pair
        for node in NODES:
            result = HeraldResult(
                neighbour=_other(node),
                attempt_id=attempt_id,
                success=True,
                handle=handles[node],
                bell_state=bell,
                herald_sequence=self.sequence,
                fidelity_estimate=fidelity,
                herald_time_ns=now,
                attempts=attempts,
            )
            self.kernel.schedule(back, self.deliver, node, result)


def _other(node: str) -> str:
    return NODES[1] if node == NODES[0] else NODES[0]


class LinkHarness(Driver):
    """Runs one scripted scenario against a link implementation class."""

    def __init__(self, impl: Any, conditions: LinkConditions, creates: list[ScriptedCreate], seed: int = 0) -> None:
        super().__init__(seed, streams=3)  # alice, bob, the fake physical layer
        self.impl = impl
        self.conditions = conditions
        self.creates = sorted(creates, key=lambda c: c.at_ns)
        self.physical = FakePhysical(self.kernel, conditions, self.streams[2])
        self.physical.deliver = self._deliver_below
        self.up: list[SentUp] = []
        self.measures_before_up: dict[int, int] = {}
        # a stream apart from the entities' and the fake physical layer's, so a run without
        # losses draws exactly what it drew before losses existed
        self._peer_loss = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
        self.peer_lost = 0
        for node, rng in zip(NODES, self.streams):
            ctx = self.context(node, rng, self.physical.device(node), on_up=self._on_up, on_down=self.physical.attempt)
            self.add(node, self.build(node, impl, ctx))

    def peer_delay_ns(self, sender: str, node: str) -> int:
        return self.conditions.delay_ns

    def refuse_peer(self, sender: str, node: str, msg: Any) -> bool:
        if node not in self.entities or node == sender:
            self.physical.note(sender, f"peer message to {node!r}, not its neighbour")
            return True
        loss = self.conditions.peer_loss_probability
        if loss and self._peer_loss.random() < loss:
            self.peer_lost += 1
            return True
        return False

    def _on_up(self, node: str, msg: Any) -> None:
        if isinstance(msg, LinkOkMeasure):
            self.measures_before_up[len(self.up)] = len(self.physical.measure_log)
        self.up.append(SentUp(self.kernel.now_ns, node, msg, self.cause))
        if isinstance(msg, LinkOkKeep):
            self.physical.hand_up(node, msg.handle)
            self.kernel.schedule(self.conditions.upper_hold_ns, self.physical.upper_free, node, msg.handle)

    def _deliver_below(self, node: str, msg: Any) -> None:
        self.physical.results.append((self.kernel.now_ns, node, msg))
        self.deliver_below(node, msg)

    def run(self, until_ns: int, max_events: int = 200_000) -> LinkRun:
        """Start both entities, play the script, run to ``until_ns``; never raises
        for the implementation's exceptions (they are returned in ``crashed``)."""
        crashed = self.play(self.creates, "create", until_ns, max_events)
        return LinkRun(
            conditions=self.conditions,
            creates=self.creates,
            up=self.up,
            pairs=self.physical.pairs,
            misuse=self.physical.misuse,
            attempts=self.physical.attempts,
            held_at_end={n: dict(h) for n, h in self.physical.book.items()},
            end_ns=self.kernel.now_ns,
            crashed=crashed,
            results=self.physical.results,
            measure_log=self.physical.measure_log,
            measures_before_up=self.measures_before_up,
            peer_lost=self.peer_lost,
        )


def run_link(impl: Any, conditions: LinkConditions, creates: list[ScriptedCreate], until_ns: int, seed: int = 0) -> LinkRun:
    """Convenience: build a :class:`LinkHarness` and run it."""
    return LinkHarness(impl, conditions, creates, seed).run(until_ns)
