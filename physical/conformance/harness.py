"""Harness for the physical services: any physical backend, alone, on one link.

Theory of operation
-------------------
The harness builds what the assembler (``qnetstack.stack.assembler``) builds for one
link ``alice - bob`` of length L, from the backend under test only:

* one backend object (``Backend()``) for the whole network;
* the heralding station, a node of its own named ``"alice~bob"`` at the
  midpoint: ``backend.station_entity(ctx, ("alice", "bob"), params, hardware)``;
* the two end nodes: ``backend.node_entity(ctx, hardware, {other: LinkSide})``.

Every entity gets an :class:`qnetstack.entity.harness.HarnessContext` on one
:class:`qnetstack.entity.kernel.Kernel`, with the stack's timing: a peer message takes
the fibre delay of the shortest path, ``delay(L/2) = round(L/2 · n / c)`` from
a node to the station (``qnetstack.physical.params.fibre_delay_ns``) and twice that
between the two nodes, as the assembler computes it. A context's ``device`` is
the node's own physical entity, as in the stack.

The harness then plays **the layer above** at both nodes, the way a link layer
and the layers over it use the two services:

* it sends ``HeraldAttempt`` s down in scripted *slots* (:class:`Slot`): at both
  ends in the same instant with the same ``attempt_id``, at one end only, at
  both with different ids, or with one end's memory filled first. Slots are
  one attempt period plus 2 ns apart, so no attempt is in flight when the
  next slot starts;
* it uses the device service (``InitQubit`` until ``NORES``, ``ApplyGate``,
  ``Measure``, ``BellMeasure``, ``FreeQubit``, ``OracleFidelity``) and keeps
  its own book of the handles it holds (from ``QubitAllocated`` and from
  successful heralds, until it measures or frees them);
* at the start of each slot it reads the oracle fidelity of every pair
  heralded in the previous one, and *probes* each node's free memory: how
  many ``InitQubit`` s succeed before ``NORES`` (then frees them again).

Everything is recorded with its simulated time: attempts, everything the
entities send up (and anything they wrongly send down or to unknown nodes),
device calls with the handles held before them, oracle reads of pairs and
memory probes. :class:`PhysicalRun` returns the record for the checks of
:mod:`qnetstack.physical.conformance.suite` to judge. The implementation's exceptions
never escape a run: they are returned in ``PhysicalRun.crashed``.

This module imports only ``entity``, ``qnetstack.physical.service`` and
``qnetstack.physical.params``: the backend under test is the only physical code it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from qnetstack.entity.harness import Driver
from qnetstack.entity.qubits import BASIS_VECTORS, GATE_MATRICES, bell_vector, bloch_angles, bloch_vector, overlap
from qnetstack.physical.params import (
    DetectorParams,
    FibreParams,
    LinkSide,
    MemoryParams,
    NodeHardware,
    SingleClickLinkParams,
    fibre_delay_ns,
)
from qnetstack.physical.service import (
    ApplyGate,
    BellMeasure,
    BellMeasureResult,
    BellState,
    DeviceError,
    DeviceRequest,
    DeviceResponse,
    FreeQubit,
    Gate,
    HeraldAttempt,
    HeraldResult,
    InitQubit,
    Measure,
    MeasureResult,
    OracleFidelity,
    OracleFidelityResult,
    PhysicalCapabilities,
    QubitAllocated,
    QubitFreed,
    QubitRef,
)

__all__ = [
    "NODES",
    "STATION",
    "LinkSetup",
    "Slot",
    "AttemptMade",
    "SentUp",
    "DeviceCall",
    "PairRead",
    "MemoryProbe",
    "PhysicalRun",
    "PhysicalHarness",
    "run_slots",
    "other",
    "bloch_angles",
    "bloch_vector",
    "bell_vector",
    "overlap",
    "GATE_MATRICES",
    "BASIS_VECTORS",
    "StateProbe",
    "DeviceStep",
    "DeviceRun",
    "run_device_script",
]

NODES = ("alice", "bob")
STATION = "alice~bob"  # the assembler's station name for link alice - bob


def other(node: str) -> str:
    return NODES[1] if node == NODES[0] else NODES[0]


@dataclass(frozen=True)
class LinkSetup:
    """The hardware of the harness's link. Lengths in km, times in ns, the rest in [0, 1].

    ``t1_ns`` / ``t2_ns`` are the memory noise of both nodes (``None``: none).
    """

    length_km: float = 2.0
    db_per_km: float = 0.2
    bright_state_population: float = 0.3
    detector_efficiency: float = 0.8
    dark_count_probability: float = 0.0
    emission_efficiency: tuple[float, float] = (0.75, 0.75)  # alice, bob
    num_qubits: tuple[int, int] = (4, 4)  # alice, bob
    t1_ns: int | None = None
    t2_ns: int | None = None
    # operation errors of both nodes (qnetstack.physical.params.MemoryParams): 1 perfect, None unsupported
    single_qubit_gate_fidelity: float | None = 1.0
    two_qubit_gate_fidelity: float | None = 1.0
    measurement_fidelity: float | None = 1.0
    # operation durations of both nodes, ns (0: instantaneous)
    single_qubit_gate_duration_ns: int = 0
    two_qubit_gate_duration_ns: int = 0
    measurement_duration_ns: int = 0
    # station options (specs/physical.md §3.3): the defaults are the plain station
    detector_kind: Literal["threshold", "pnr"] = "threshold"
    two_photon_visibility: float = 1.0
    phase_noise_rad: float = 0.0

    @cached_property
    def params(self) -> SingleClickLinkParams:
        return SingleClickLinkParams(
            length_km=self.length_km,
            fibre=FibreParams(db_per_km=self.db_per_km),
            detector=DetectorParams(
                efficiency=self.detector_efficiency, dark_count_probability=self.dark_count_probability, kind=self.detector_kind
            ),
            bright_state_population=self.bright_state_population,
            two_photon_visibility=self.two_photon_visibility,
            phase_noise_rad=self.phase_noise_rad,
        )

    def hardware(self, node: str) -> NodeHardware:
        i = NODES.index(node)
        memory = MemoryParams(
            num_qubits=self.num_qubits[i],
            t1_ns=self.t1_ns,
            t2_ns=self.t2_ns,
            single_qubit_gate_fidelity=self.single_qubit_gate_fidelity,
            two_qubit_gate_fidelity=self.two_qubit_gate_fidelity,
            measurement_fidelity=self.measurement_fidelity,
            single_qubit_gate_duration_ns=self.single_qubit_gate_duration_ns,
            two_qubit_gate_duration_ns=self.two_qubit_gate_duration_ns,
            measurement_duration_ns=self.measurement_duration_ns,
        )
        return NodeHardware(memory=memory, emission_efficiency=self.emission_efficiency[i])

    @property
    def noiseless_memory(self) -> bool:
        return self.t1_ns is None and self.t2_ns is None

    @cached_property
    def half_delay_ns(self) -> int:
        """One-way delay node <-> station, as the assembler computes it."""
        return fibre_delay_ns(self.length_km / 2, self.params.fibre.refractive_index)

    def delay_ns(self, a: str, b: str) -> int:
        """Classical delay between two nodes of the harness: the shortest fibre path."""
        if a == b:
            return 0
        if STATION in (a, b):
            return self.half_delay_ns
        return 2 * self.half_delay_ns


@dataclass(frozen=True)
class Slot:
    """What the layer above does in one attempt slot.

    ``who``: ``"both"`` attempt with the same attempt id in the same instant;
    ``"alice"`` / ``"bob"`` only that end attempts; ``"mismatch"`` both attempt
    in the same instant with different ids; ``"none"`` nobody attempts.
    Before attempting, the nodes in ``release`` free (or measure, alternately)
    every qubit the layer above holds, and the nodes in ``fill`` call
    ``InitQubit`` until ``NORES``. ``alpha`` is sent as the attempts'
    ``bright_state_population`` (``None``: the link's own).
    """

    who: Literal["both", "alice", "bob", "mismatch", "none"] = "both"
    fill: tuple[str, ...] = ()
    release: tuple[str, ...] = ()
    alpha: float | None = None


@dataclass(frozen=True)
class AttemptMade:
    """The layer above sent ``msg`` down at ``node`` in slot ``slot``.

    ``free`` is the number of free memory qubits by the layer above's book
    (capacity minus what it holds); ``matched`` says whether the other end
    attempted with the same id in the same instant.
    """

    time_ns: int
    node: str
    slot: int
    msg: HeraldAttempt
    free: int
    matched: bool


@dataclass(frozen=True)
class SentUp:
    """A message an end node's physical entity sent up; ``held_before``: the
    handles the layer above held at that node just before it arrived."""

    time_ns: int
    node: str
    msg: Any
    held_before: frozenset[int] = frozenset()


@dataclass(frozen=True)
class DeviceCall:
    """One device call of the layer above and its result.

    ``held_before`` is the set of handles the layer above held at ``node``
    just before; ``purpose`` says why the harness made the call ("script",
    "probe", "release", "fill", "pair", "check").
    """

    time_ns: int
    node: str
    op: Any
    result: Any
    held_before: frozenset[int]
    purpose: str = "script"


@dataclass(frozen=True)
class PairRead:
    """Oracle fidelity of a heralded pair to its announced Bell state, read at ``time_ns``."""

    time_ns: int
    sequence: int | None
    results: tuple[HeraldResult, HeraldResult]  # alice's, bob's
    fidelity: float | None  # None when the read returned an error
    answer: Any


@dataclass(frozen=True)
class MemoryProbe:
    """How many ``InitQubit`` s succeeded at ``node`` before ``NORES``, against the
    number the layer above's book says are free."""

    time_ns: int
    node: str
    expected_free: int
    got: int


@dataclass
class PhysicalRun:
    """Everything a run produced, for the checks to judge."""

    setup: LinkSetup
    slots: list[Slot]
    period_ns: int
    capabilities: dict[str, PhysicalCapabilities]
    attempts: list[AttemptMade] = field(default_factory=list)
    up: list[SentUp] = field(default_factory=list)
    calls: list[DeviceCall] = field(default_factory=list)
    pair_reads: list[PairRead] = field(default_factory=list)
    probes: list[MemoryProbe] = field(default_factory=list)
    misuse: list[str] = field(default_factory=list)
    end_ns: int = 0
    crashed: BaseException | None = None

    def results(self, node: str | None = None) -> list[SentUp]:
        return [u for u in self.up if isinstance(u.msg, HeraldResult) and node in (None, u.node)]


class _OwnDevice:
    """``ctx.device`` of a physical entity: the entity itself, as in the stack."""

    def __init__(self, harness: PhysicalHarness, node: str) -> None:
        self._harness = harness
        self._node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._harness.entities[self._node], name)


class PhysicalHarness(Driver):
    """One link built from the backend under test, with a scripted layer above."""

    def __init__(self, impl: Any, setup: LinkSetup, seed: int = 0) -> None:
        super().__init__(seed, streams=3)
        self.impl = impl
        self.setup = setup
        self.backend = self.build(None, impl)
        rngs = dict(zip((STATION, *NODES), self.streams))
        self.up: list[SentUp] = []
        self.misuse: list[str] = []
        self.held: dict[str, set[int]] = {n: set() for n in NODES}  # the layer above's book
        self.requests: dict[tuple[str, int], Any] = {}  # device requests under way, by (node, request id)
        self.calls: list[DeviceCall] = []
        self._in_device: str | None = None
        params = setup.params
        hardware = {n: setup.hardware(n) for n in NODES}
        for name in (STATION, *NODES):
            self.context(name, rngs[name], _OwnDevice(self, name), on_up=self._on_up, on_down=self._on_down)
        # bottom-up in the assembler's order: the station, then the end nodes
        station = self.build(STATION, self.backend.station_entity, self.contexts[STATION], NODES, params, hardware)
        self._add(STATION, station)
        for node in NODES:
            links = {other(node): LinkSide(station=STATION, params=params, neighbour_hardware=hardware[other(node)])}
            self._add(node, self.build(node, self.backend.node_entity, self.contexts[node], hardware[node], links))
        self._started = False

    def _add(self, name: str, entity: Any) -> None:
        self.add(name, entity)

    # ------------------------------------------------------------ wiring

    def peer_delay_ns(self, sender: str, node: str) -> int:
        if node not in self.entities:
            return 0  # refuse_peer records the misuse
        return self.setup.delay_ns(sender, node)

    def _on_up(self, node: str, msg: Any) -> None:
        now = self.kernel.now_ns
        if self._in_device is not None:
            self.misuse.append(f"t={now} {node}: sent up {type(msg).__name__} while executing {self._in_device}")
        if node == STATION:
            self.misuse.append(f"t={now} the station sent up {type(msg).__name__}; a station has no layer above")
            return
        self.up.append(SentUp(now, node, msg, frozenset(self.held.get(node, ()))))
        if isinstance(msg, HeraldResult) and msg.success and msg.handle is not None:
            self.held[node].add(msg.handle)
        elif isinstance(msg, DeviceResponse):
            op = self.requests.pop((node, msg.request_id), None)
            if op is None:
                self.misuse.append(f"t={now} {node}: sent up a DeviceResponse to request {msg.request_id}, which is not under way")
            else:
                self._keep_book(node, op, msg.result)

    def _on_down(self, node: str, msg: Any) -> None:
        self.misuse.append(f"t={self.kernel.now_ns} {node}: sent {type(msg).__name__} down; the physical layer has no layer below")

    def refuse_peer(self, sender: str, node: str, msg: Any) -> bool:
        if node not in self.entities:
            self.misuse.append(f"t={self.kernel.now_ns} {sender}: sent {type(msg).__name__} to {node!r}, not a node of the network")
            return True
        return False

    # ------------------------------------------------------ the layer above

    def start(self) -> None:
        if not self._started:
            self._started = True
            for node, entity in self.entities.items():
                self.enter(node, entity.start)

    def capabilities(self, node: str) -> PhysicalCapabilities:
        return self.enter(node, self.entities[node].capabilities)

    def execute(self, node: str, op: Any, purpose: str = "script") -> Any:
        """Call the device service of ``node`` as the layer above, keep the book, record."""
        before = frozenset(self.held[node])
        self._in_device = type(op).__name__
        try:
            result = self.enter(node, self.entities[node].execute, op)
        finally:
            self._in_device = None
        self.calls.append(DeviceCall(self.kernel.now_ns, node, op, result, before, purpose))
        self._keep_book(node, op, result)
        return result

    def request(self, node: str, request_id: int, op: Any) -> DeviceRequest:
        """Send ``op`` down to ``node`` as a ``DeviceRequest``; its response keeps the book."""
        msg = DeviceRequest(request_id=request_id, operation=op)
        self.requests[(node, request_id)] = op
        self.enter(node, self.entities[node].handle_above, msg)
        return msg

    def _keep_book(self, node: str, op: Any, result: Any) -> None:
        held = self.held[node]
        if isinstance(result, QubitAllocated) and isinstance(op, InitQubit):
            held.add(result.handle)
        elif isinstance(result, (QubitFreed, MeasureResult)) and isinstance(op, (FreeQubit, Measure)):
            held.discard(op.handle)
        elif isinstance(result, BellMeasureResult) and isinstance(op, BellMeasure):
            held.discard(op.handle_a)
            held.discard(op.handle_b)

    def attempt(self, node: str, attempt_id: int, alpha: float | None = None) -> HeraldAttempt:
        msg = HeraldAttempt(neighbour=other(node), attempt_id=attempt_id, bright_state_population=alpha)
        self.enter(node, self.entities[node].handle_above, msg)
        return msg

    def fill(self, node: str, purpose: str = "fill") -> int:
        """``InitQubit`` until ``NORES`` (at most capacity + 1 calls); how many succeeded."""
        got = 0
        for _ in range(self.setup.num_qubits[NODES.index(node)] + 1):
            result = self.execute(node, InitQubit(), purpose)
            if not isinstance(result, QubitAllocated):
                break
            got += 1
        return got

    def release(self, node: str, purpose: str = "release") -> None:
        """Free or measure (alternately) every qubit the layer above holds at ``node``."""
        for i, handle in enumerate(sorted(self.held[node])):
            self.execute(node, FreeQubit(handle=handle) if i % 2 == 0 else Measure(handle=handle), purpose)

    def probe(self, node: str) -> MemoryProbe:
        """Count the free memory qubits with ``InitQubit`` s, then free what they gave."""
        expected = self.setup.num_qubits[NODES.index(node)] - len(self.held[node])
        before = set(self.held[node])
        got = self.fill(node, "probe")
        for handle in sorted(self.held[node] - before):
            self.execute(node, FreeQubit(handle=handle), "probe")
        return MemoryProbe(self.kernel.now_ns, node, expected, got)

    def run(self, until_ns: int | None = None, max_events: int | None = 2_000_000) -> BaseException | None:
        """Start the entities (once) and run the kernel; the implementation's exception, if any."""
        try:
            self.start()
            self.kernel.run(until_ns=until_ns, max_events=max_events)
            self.check_unchanged()
        except Exception as exc:  # the implementation crashed: a finding, not a harness error
            return exc
        return None


def run_slots(
    impl: Any,
    setup: LinkSetup,
    slots: list[Slot],
    seed: int = 0,
    *,
    probe: bool = True,
    read_pairs: bool = True,
    consume: bool = False,
    ids: Callable[[int], int] | None = None,
) -> PhysicalRun:
    """Play ``slots`` on a fresh link built from ``impl`` and return the record.

    At the start of slot k (and once more after the last slot) the layer above
    first reads the oracle fidelity of the pairs heralded in slot k-1
    (``read_pairs``), frees them (``consume``), probes both nodes' free memory
    (``probe``), then does the slot's release/fill and attempts. ``ids(k)``
    gives slot k's attempt id (default: k).
    """
    harness = PhysicalHarness(impl, setup, seed)
    ids = ids or (lambda k: k)
    run = PhysicalRun(setup=setup, slots=list(slots), period_ns=0, capabilities={})
    try:
        run.capabilities = {n: harness.capabilities(n) for n in NODES}
        link = run.capabilities[NODES[0]].links.get(NODES[1])
        period = link.attempt_period_ns if link is not None else 2 * setup.half_delay_ns
    except Exception as exc:
        run.crashed = exc
        return run
    run.period_ns = period
    spacing = period + 2
    pending_pairs: list[int] = []  # attempt id of the matched attempt of the previous slot
    mark = [0]  # index into harness.up where the previous slot's messages start

    def read_and_probe() -> None:
        now = harness.kernel.now_ns
        recent = harness.up[mark[0] :]
        mark[0] = len(harness.up)
        if read_pairs or consume:
            for attempt_id in pending_pairs:
                got = {}
                for u in recent:
                    if isinstance(u.msg, HeraldResult) and u.msg.attempt_id == attempt_id and u.msg.success:
                        got[u.node] = u.msg
                if set(got) != set(NODES):
                    continue
                ra, rb = got[NODES[0]], got[NODES[1]]
                if read_pairs and ra.bell_state is not None and ra.handle is not None and rb.handle is not None:
                    op = OracleFidelity(
                        qubits=[QubitRef(node=NODES[0], handle=ra.handle), QubitRef(node=NODES[1], handle=rb.handle)],
                        bell_state=ra.bell_state,
                    )
                    answer = harness.execute(NODES[0], op, "pair")
                    fidelity = answer.fidelity if isinstance(answer, OracleFidelityResult) else None
                    run.pair_reads.append(PairRead(now, ra.herald_sequence, (ra, rb), fidelity, answer))
                if consume:
                    for node, r in ((NODES[0], ra), (NODES[1], rb)):
                        if r.handle is not None and r.handle in harness.held[node]:
                            harness.execute(node, FreeQubit(handle=r.handle), "release")
        pending_pairs.clear()
        if probe:
            for node in NODES:
                run.probes.append(harness.probe(node))

    def play(k: int) -> None:
        read_and_probe()
        slot = slots[k]
        now = harness.kernel.now_ns
        for node in slot.release:
            harness.release(node)
        for node in slot.fill:
            harness.fill(node)
        attempt_id = ids(k)
        plan: list[tuple[str, int]] = []
        if slot.who == "both":
            plan = [(NODES[0], attempt_id), (NODES[1], attempt_id)]
        elif slot.who == "mismatch":
            plan = [(NODES[0], attempt_id), (NODES[1], attempt_id + 100_000)]
        elif slot.who in NODES:
            plan = [(slot.who, attempt_id)]
        matched = slot.who == "both"
        for node, aid in plan:
            free = setup.num_qubits[NODES.index(node)] - len(harness.held[node])
            msg = HeraldAttempt(neighbour=other(node), attempt_id=aid, bright_state_population=slot.alpha)
            run.attempts.append(AttemptMade(now, node, k, msg, free, matched))
        for node, aid in plan:
            harness.attempt(node, aid, slot.alpha)
        if matched:
            pending_pairs.append(attempt_id)

    for k in range(len(slots)):
        harness.kernel.schedule(k * spacing, play, k)
    end = len(slots) * spacing
    harness.kernel.schedule(end, read_and_probe)
    run.crashed = harness.run(until_ns=end)
    run.up = harness.up
    run.calls = harness.calls
    run.misuse = harness.misuse
    run.end_ns = harness.kernel.now_ns
    return run


# ------------------------------------------------------------ device scripts
#
# A device script is a list of steps the layer above takes with the device
# service alone (no attempt in flight, memories without noise, time 0). The
# harness keeps the *expected* state of every qubit it holds: InitQubit and the
# single-qubit gates only ever make product states, so one 2-vector per qubit
# is the whole truth, and every expectation below is exact.
# The states, gates and bases are the kit's (qnetstack.entity.qubits).


@dataclass(frozen=True)
class StateProbe:
    """Oracle fidelity of a held qubit to the state the layer above expects it in."""

    node: str
    handle: int
    fidelity: float | None
    answer: Any


@dataclass(frozen=True)
class DeviceStep:
    """One scripted step: what kind (``tag``), the call, what the model expects,
    and the state probes of every held qubit right after."""

    tag: str
    call: DeviceCall
    expect: dict[str, Any]
    after: tuple[StateProbe, ...]


@dataclass
class DeviceRun:
    setup: LinkSetup
    steps: list[DeviceStep]
    misuse: list[str]
    crashed: BaseException | None = None


def run_device_script(impl: Any, setup: LinkSetup, script: list[tuple[Any, ...]], seed: int = 0) -> DeviceRun:
    """Play a device script on a fresh link built from ``impl`` (see :func:`_step`)."""
    harness = PhysicalHarness(impl, setup, seed)
    run = DeviceRun(setup, [], harness.misuse)
    model: dict[str, dict[int, np.ndarray]] = {n: {} for n in NODES}
    released: dict[str, set[int]] = {n: set() for n in NODES}
    try:
        harness.start()
        for step in script:
            tag, call, expect = _step(harness, model, released, step)
            after = []
            for node in NODES:
                for handle in sorted(model[node]):
                    theta, phi = bloch_angles(model[node][handle])
                    op = OracleFidelity(qubits=[QubitRef(node=node, handle=handle)], theta_rad=theta, phi_rad=phi)
                    answer = harness.execute(node, op, "check")
                    f = answer.fidelity if isinstance(answer, OracleFidelityResult) else None
                    after.append(StateProbe(node, handle, f, answer))
            run.steps.append(DeviceStep(tag, call, expect, tuple(after)))
        harness.check_unchanged()
    except Exception as exc:  # the implementation crashed
        run.crashed = exc
    return run


def _pick(held: dict[int, np.ndarray], index: int) -> int | None:
    handles = sorted(held)
    return handles[index % len(handles)] if handles else None


def _step(
    harness: PhysicalHarness,
    model: dict[str, dict[int, np.ndarray]],
    released: dict[str, set[int]],
    step: tuple[Any, ...],
) -> tuple[str, DeviceCall, dict[str, Any]]:
    """Run one step, update the model from the result, say what was expected.

    Steps (``node`` is ``"alice"`` or ``"bob"``, ``pick`` an index into the
    sorted handles the layer above holds there):

    * ``("init", node, theta, phi)``
    * ``("gate", node, pick, gate_name)``
    * ``("measure", node, pick, basis_name)``
    * ``("bell", node, pick, pick)``: BellMeasure of two different held qubits
    * ``("same", node, pick)``: BellMeasure of a qubit with itself
    * ``("free", node, pick)``
    * ``("stale", node, pick, op_name)``: an op on a handle released earlier
    * ``("bogus", node, number, op_name)``: an op on a handle never held
    * ``("oracle1", asker, node, pick, theta, phi)``, ``("oracle2", asker, pick, pick, bell_name)``
    * ``("foreign", node)``: something that is not a device operation

    A step that needs held qubits that are not there becomes an ``init``.
    """
    kind = step[0]
    node = step[1]
    held = model.get(node, {})
    expect: dict[str, Any] = {}

    def call(op: Any, at: str = node) -> DeviceCall:
        harness.execute(at, op)
        return harness.calls[-1]

    def init(theta: float, phi: float) -> tuple[str, DeviceCall, dict[str, Any]]:
        c = call(InitQubit(theta_rad=theta, phi_rad=phi))
        if isinstance(c.result, QubitAllocated):
            model[node][c.result.handle] = bloch_vector(theta, phi)
            released[node].discard(c.result.handle)
        return "init", c, {"capacity": harness.setup.num_qubits[NODES.index(node)]}

    if kind == "init":
        return init(step[2], step[3])
    if kind == "gate":
        h = _pick(held, step[2])
        if h is None:
            return init(0.0, 0.0)
        c = call(_gate_op(step[3], h))
        if not isinstance(c.result, DeviceError):
            held[h] = GATE_MATRICES[step[3]] @ held[h]
        return "gate", c, expect
    if kind == "measure":
        h = _pick(held, step[2])
        if h is None:
            return init(0.0, 0.0)
        e0, _ = BASIS_VECTORS[step[3]]
        p0 = overlap(e0, held[h])
        expect["p0"] = p0
        expect["outcome"] = 0 if p0 > 1 - 1e-9 else 1 if p0 < 1e-9 else None
        c = call(Measure(handle=h, basis=step[3]))
        if isinstance(c.result, MeasureResult):
            del held[h]
            released[node].add(h)
        return "measure", c, expect
    if kind == "bell":
        ha, hb = _pick(held, step[2]), _pick(held, step[3])
        if ha is None or len(held) < 2:
            return init(0.0, 0.0)
        if ha == hb:
            hb = _pick(held, step[3] + 1)
        assert hb is not None  # held has two qubits or more, so _pick finds one
        joint = np.kron(held[ha], held[hb])
        expect["possible"] = {b for b in BellState if overlap(bell_vector(b), joint) > 1e-9}
        c = call(BellMeasure(handle_a=ha, handle_b=hb))
        if isinstance(c.result, BellMeasureResult):
            for h in (ha, hb):
                del held[h]
                released[node].add(h)
        return "bell", c, expect
    if kind == "same":
        h = _pick(held, step[2])
        if h is None:
            return init(0.0, 0.0)
        return "same", call(BellMeasure(handle_a=h, handle_b=h)), expect
    if kind == "free":
        h = _pick(held, step[2])
        if h is None:
            return init(0.0, 0.0)
        c = call(FreeQubit(handle=h))
        if isinstance(c.result, QubitFreed):
            del held[h]
            released[node].add(h)
        return "free", c, expect
    if kind in ("stale", "bogus"):
        if kind == "stale":
            gone = sorted(released[node] - set(held))
            if not gone:
                return init(0.0, 0.0)
            h = gone[step[2] % len(gone)]
        else:
            h = step[2]
            while h in held or h in released[node]:
                h += 1
        name = step[3]
        if name == "bell":
            partner = _pick(held, 0)
            op: Any = BellMeasure(handle_a=h, handle_b=partner if partner is not None else h + 1)
        elif name == "oracle":
            op = OracleFidelity(qubits=[QubitRef(node=node, handle=h)])
        else:
            op = {"gate": _gate_op("X", h), "measure": Measure(handle=h), "free": FreeQubit(handle=h)}[name]
        return kind, call(op), expect
    if kind == "oracle1":
        target_node, index, theta, phi = step[2], step[3], step[4], step[5]
        h = _pick(model[target_node], index)
        if h is None:
            return init(0.0, 0.0)
        expect["fidelity"] = overlap(bloch_vector(theta, phi), model[target_node][h])
        op = OracleFidelity(qubits=[QubitRef(node=target_node, handle=h)], theta_rad=theta, phi_rad=phi)
        first = call(op)
        expect["again"] = call(op).result
        return "oracle1", first, expect
    if kind == "oracle2":
        ha, hb = _pick(model[NODES[0]], step[2]), _pick(model[NODES[1]], step[3])
        if ha is None or hb is None:
            return init(0.0, 0.0)
        bell = BellState(step[4])
        joint = np.kron(model[NODES[0]][ha], model[NODES[1]][hb])
        expect["fidelity"] = overlap(bell_vector(bell), joint)
        op = OracleFidelity(qubits=[QubitRef(node=NODES[0], handle=ha), QubitRef(node=NODES[1], handle=hb)], bell_state=bell)
        first = call(op)
        expect["again"] = call(op).result
        return "oracle2", first, expect
    if kind == "foreign":
        return "foreign", call(HeraldAttempt(neighbour=other(node), attempt_id=0)), expect
    raise ValueError(f"unknown script step {step!r}")


def _gate_op(name: str, handle: int) -> Any:
    return ApplyGate(gate=Gate(name), handle=handle)
