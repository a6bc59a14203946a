"""Reference physical layer: QuTiP density matrices and single-click heralding.

Theory of operation
-------------------
One :class:`QutipSingleClickBackend` serves a whole network. It owns the
shared :class:`~physical.engine.QuantumWorld` and builds two kinds of entity:

* a :class:`PhysicalNode` per node. It is the node's *device*: memory slots
  ``0 .. num_qubits-1`` (the handles upper layers see) mapped to world qubit
  ids, with synchronous, instantaneous operations (``execute``). It is also the
  node's end of every heralded link (``handle_above(HeraldAttempt)``);
* a :class:`MidpointStation` per link, on its own node half-way along the
  fibre, holding the beam splitter and the two detectors.

One attempt, as messages (times for a link of length L, one-way fibre delay
τ = delay(L/2) between a node and the station)::

    t        node A, node B: HeraldAttempt -> take a free slot, emit
             (spin, photon) in the world, photon already attenuated by
             emission efficiency × fibre transmittance(L/2);
             send PhotonReport(attempt, photon id | None) to the station
    t+τ      station: first report of the attempt -> set_timer(0); the other
             end's report, scheduled earlier for the same instant, arrives
             before the timer fires
    t+τ      station timer: both photons -> sample the herald POVM on them;
             otherwise drop what came. On success the link's herald
             sequence counts up. Send StationHerald to each end that reported
    t+2τ     node: success -> HeraldResult(handle, Bell state, sequence, ...)
             up; failure -> free the slot, failed HeraldResult up

The photon and its report travel the same fibre for the same time, so one
peer message stands for both: it carries the photon's world id.

A node with no free slot still reports (photon None), so the station fails
the attempt and both ends stay in step; its HeraldResult says ``no_memory``.

A ``HeraldAttempt`` with ``max_attempts`` N > 1 is a *run*: on a failed herald
that the station marks ``in_step`` (both photons came, for runs of the same
length) each end frees its qubit and emits again at once — the herald arrives
exactly one attempt period (2τ) after the emission — until a success or N
attempts; only the run's last herald goes up, with ``attempts``. This backend
thus always simulates attempt by attempt; ``qnetstack.physical.heralding_backend``
fast-forwards instead.

The state machines are small enough to read as tables:

===============  ====================  =====================================
entity           input                 action
===============  ====================  =====================================
PhysicalNode     HeraldAttempt         emit, remember (station, attempt) ->
                                       (slot, qubit), PhotonReport to station
PhysicalNode     StationHerald ok      HeraldResult(success) if the slot still
                                       holds that qubit, else failure (+trace)
PhysicalNode     StationHerald fail    free the slot if still ours; emit again
                                       if the run goes on, else failure up
MidpointStation  PhotonReport (first)  store, set_timer(0, attempt_id)
MidpointStation  PhotonReport (2nd)    store
MidpointStation  timer(attempt_id)     resolve, trace, StationHerald to ends
===============  ====================  =====================================

Oracle reads (``OracleFidelity``) may name qubits on any node: the backend's
registry maps node names to their :class:`PhysicalNode`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from qutip import Qobj

from qnetstack.entity import Context, EntityError
from qnetstack.physical.engine import QuantumWorld, bell_ket, bloch_ket
from qnetstack.physical.params import LinkSide, NodeHardware, SingleClickLinkParams
from qnetstack.physical.service import (
    AlphaSetting,
    CAP_DEVICE,
    CAP_HERALDING,
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
    HeraldAttempt,
    HeraldingLink,
    HeraldResult,
    InitQubit,
    Measure,
    MeasureResult,
    OracleFidelity,
    OracleFidelityResult,
    PhysicalCapabilities,
    QubitAllocated,
    QubitFreed,
)
from qnetstack.physical.single_click import (
    HERALD_BELL_STATES,
    arrival_efficiency,
    emission_state,
    fidelity_at_detection,
    herald_povm,
    operating_points,
    success_probability,
)

__all__ = [
    "QutipSingleClickBackend",
    "LinkSide",  # re-exported from qnetstack.physical.params
    "MemoryDevice",
    "RESERVED_SLOT",
    "PhysicalNode",
    "MidpointStation",
    "PhotonReport",
    "StationHerald",
]


class _Internal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhotonReport(_Internal):
    """Node -> station: "my photon for this attempt" (``photon`` None: none sent)."""

    kind: Literal["photon_report"] = "photon_report"
    attempt_id: int = Field(ge=0)
    node: str
    photon: int | None
    bright_state_population: float = Field(ge=0.0, le=1.0)
    emitted_ns: int = Field(ge=0)
    max_attempts: int = Field(1, ge=1)


class StationHerald(_Internal):
    """Station -> node: the outcome of one attempt."""

    kind: Literal["station_herald"] = "station_herald"
    attempt_id: int = Field(ge=0)
    success: bool
    bell_state: BellState | None = None
    herald_sequence: int | None = None
    fidelity_estimate: float | None = None
    herald_time_ns: int
    # both ends sent a photon for the same run (same max_attempts): a failed run may go on
    in_step: bool = False


# ------------------------------------------------------------------ constant operators


def _gate_unitaries() -> dict[Gate, Qobj]:
    s = 1 / math.sqrt(2)
    mats = {
        Gate.I: [[1, 0], [0, 1]],
        Gate.X: [[0, 1], [1, 0]],
        Gate.Y: [[0, -1j], [1j, 0]],
        Gate.Z: [[1, 0], [0, -1]],
        Gate.H: [[s, s], [s, -s]],
        Gate.S: [[1, 0], [0, 1j]],
    }
    return {g: Qobj(np.array(m, dtype=complex), dims=[[2], [2]]).to("dense") for g, m in mats.items()}


_GATES = _gate_unitaries()
# CNOT(a -> b) then H on a: maps the Bell basis onto the computational basis
_BELL_ROTATION = Qobj(
    np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 0, 0, -1], [0, 1, -1, 0]], dtype=complex) / math.sqrt(2),
    dims=[[2, 2], [2, 2]],
).to("dense")


def _bloch_unitary(theta: float, phi: float) -> Qobj:
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    e = complex(math.cos(phi), math.sin(phi))
    return Qobj(np.array([[c, -s * e.conjugate()], [s * e, c]]), dims=[[2], [2]]).to("dense")


def _expected_fidelity(
    params: SingleClickLinkParams,
    alpha_a: float,
    alpha_b: float,
    hw_a: NodeHardware,
    hw_b: NodeHardware,
    wait_a_ns: float,
    wait_b_ns: float,
    bell_state: BellState = BellState.PSI_PLUS,
) -> float:
    eff = params.detector.efficiency
    return fidelity_at_detection(
        alpha_a,
        alpha_b,
        arrival_efficiency(params, hw_a) * eff,
        arrival_efficiency(params, hw_b) * eff,
        params.detector.dark_count_probability,
        bell_state,
        (wait_a_ns, hw_a.memory.t1_ns, hw_a.memory.t2_ns),
        (wait_b_ns, hw_b.memory.t1_ns, hw_b.memory.t2_ns),
    )


def _require_single_click(params: Any, where: str) -> None:
    if not isinstance(params, SingleClickLinkParams):
        raise ValueError(
            f"{where}: the QuTiP backend runs the single-click scheme only (SingleClickLinkParams), "
            f"got {type(params).__name__}; use the 'model-heralding' backend for other schemes"
        )


# ------------------------------------------------------------------ node


@dataclass(slots=True)
class _Pending:
    neighbour: str
    slot: int | None
    qubit: int | None
    alpha: float = 0.0
    max_attempts: int = 1
    attempts: int = 1  # made so far, this one included


# A memory slot taken by an attempt in flight in a backend that creates the
# spin's state only at the herald (physical.heralding_backend): not free, not
# held by the layer above.
RESERVED_SLOT = -1


class MemoryDevice:
    """A node's device service: memory slots over the shared quantum world.

    Slots ``0 .. num_qubits-1`` are the handles the layers above see; each
    holds a world qubit id, ``None`` (free) or :data:`RESERVED_SLOT`. Node
    entities of the backends subclass it and add their ends of the links.
    """

    def __init__(
        self,
        ctx: Context,
        hardware: NodeHardware,
        world: QuantumWorld,
        registry: Mapping[str, MemoryDevice],
    ) -> None:
        self._ctx = ctx
        self.hardware = hardware
        self._world = world
        self._registry = registry
        self._slots: list[int | None] = [None] * hardware.memory.num_qubits
        self._noise = (hardware.memory.t1_ns, hardware.memory.t2_ns)
        self._ops = {
            InitQubit: self._init,
            ApplyGate: self._gate,
            Measure: self._measure,
            BellMeasure: self._bell_measure,
            FreeQubit: self._free,
            OracleFidelity: self._oracle,
        }

    @property
    def name(self) -> str:
        return self._ctx.node

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
        for q in (qa, qb):
            if isinstance(q, DeviceError):
                return q
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
        return QubitFreed(handle=op.handle)

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
            target = bell_ket(op.bell_state)
        elif len(qids) == 1 and op.bell_state is None:
            target = bloch_ket(op.theta_rad, op.phi_rad)
        else:
            return DeviceError(
                code=DeviceErrorCode.UNSUPPORTED,
                detail="give bell_state for two qubits, or a Bloch state (theta, phi) for one",
            )
        return OracleFidelityResult(fidelity=self._world.fidelity_to_pure(qids, target, self._ctx.now_ns))

    # ---------------------------------------------------------- entity

    def start(self) -> None:
        pass

    def handle_below(self, msg: Any) -> None:
        raise EntityError(f"{self.name}/physical: the physical layer has no layer below it")

    def handle_timer(self, tag: Hashable) -> None:
        raise EntityError(f"{self.name}/physical: no timer was set, got {tag!r}")


class PhysicalNode(MemoryDevice):
    """A node's device and its ends of the single-click links, attempt by attempt."""

    def __init__(
        self,
        ctx: Context,
        hardware: NodeHardware,
        links: Mapping[str, LinkSide],
        world: QuantumWorld,
        registry: Mapping[str, MemoryDevice],
    ) -> None:
        super().__init__(ctx, hardware, world, registry)
        for nb, side in links.items():
            _require_single_click(side.params, f"link {ctx.node}-{nb}")
        self.links: dict[str, LinkSide] = dict(links)
        self._station_of = {nb: side.station for nb, side in self.links.items()}
        self._arrival = {nb: arrival_efficiency(side.params, hardware) for nb, side in self.links.items()}
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._capabilities: PhysicalCapabilities | None = None

    def _ends_in_order(self, nb: str, side: LinkSide) -> tuple[NodeHardware, NodeHardware]:
        """This node's and the neighbour's hardware, alphabetical order of names,
        so both ends announce the very same numbers."""
        if self.name <= nb:
            return self.hardware, side.neighbour_hardware
        return side.neighbour_hardware, self.hardware

    def capabilities(self) -> PhysicalCapabilities:
        if self._capabilities is None:
            links = {}
            for nb, side in self.links.items():
                p = side.params
                half_ns = p.fibre.delay_ns(p.length_km / 2)
                alpha = p.bright_state_population
                eff = p.detector.efficiency
                eta_a = self._arrival[nb] * eff
                eta_b = arrival_efficiency(p, side.neighbour_hardware) * eff
                links[nb] = HeraldingLink(
                    neighbour=nb,
                    scheme="single-click",
                    attempt_period_ns=max(1, 2 * half_ns),
                    classical_delay_ns=p.fibre.delay_ns(p.length_km),
                    bright_state_population=alpha,
                    success_probability=min(
                        1.0, success_probability(alpha, eta_a, eta_b, p.detector.dark_count_probability)
                    ),
                    fidelity=_expected_fidelity(
                        p, alpha, alpha, self.hardware, side.neighbour_hardware, half_ns, half_ns
                    ),
                    alpha_settings=[
                        AlphaSetting(bright_state_population=a, success_probability=ps, fidelity=f)
                        for a, ps, f in operating_points(p, *self._ends_in_order(nb, side), half_ns)
                    ],
                )
            self._capabilities = PhysicalCapabilities(
                node=self.name, num_qubits=self.hardware.memory.num_qubits, links=links
            )
        return self._capabilities

    def handle_above(self, msg: Any) -> None:
        if isinstance(msg, HeraldAttempt):
            self._attempt(msg)
            return
        raise EntityError(f"{self.name}/physical: unexpected request from above: {type(msg).__name__}")

    def handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, StationHerald):
            self._herald(sender, msg)
            return
        raise EntityError(f"{self.name}/physical: unexpected message from {sender}: {type(msg).__name__}")

    def _attempt(self, msg: HeraldAttempt) -> None:
        side = self.links.get(msg.neighbour)
        if side is None:
            raise EntityError(
                f"{self.name}/physical: HeraldAttempt for {msg.neighbour!r}, which is not a neighbour "
                f"(neighbours: {', '.join(sorted(self.links)) or 'none'})"
            )
        if (side.station, msg.attempt_id) in self._pending:
            raise EntityError(f"{self.name}/physical: attempt {msg.attempt_id} with {msg.neighbour} is still in flight")
        alpha = msg.bright_state_population
        if alpha is None:
            alpha = side.params.bright_state_population
        self._emit(msg.neighbour, msg.attempt_id, alpha, msg.max_attempts, 1)

    def _emit(self, neighbour: str, attempt_id: int, alpha: float, max_attempts: int, attempts: int) -> None:
        """One attempt of a run of ``max_attempts`` (this is number ``attempts``)."""
        station = self._station_of[neighbour]
        now = self._ctx.now_ns
        slot = self._free_slot()
        photon = spin = None
        if slot is not None:
            spin, photon = self._world.new_qubits(
                emission_state(alpha, self._arrival[neighbour]), now, (self._noise, (None, None))
            )
            self._slots[slot] = spin
        self._pending[(station, attempt_id)] = _Pending(neighbour, slot, spin, alpha, max_attempts, attempts)
        self._ctx.send_peer(
            station,
            PhotonReport(
                attempt_id=attempt_id,
                node=self.name,
                photon=photon,
                bright_state_population=alpha,
                emitted_ns=now,
                max_attempts=max_attempts,
            ),
        )

    def _herald(self, station: str, msg: StationHerald) -> None:
        pending = self._pending.pop((station, msg.attempt_id), None)
        if pending is None:
            raise EntityError(f"{self.name}/physical: herald from {station} for unknown attempt {msg.attempt_id}")
        nb = pending.neighbour
        done = pending.attempts
        if pending.slot is None:
            self._ctx.send_up(
                HeraldResult(neighbour=nb, attempt_id=msg.attempt_id, success=False, no_memory=True, attempts=done)
            )
            return
        # the slot may have been freed (and even reused) while the herald was on its way
        still_held = self._slots[pending.slot] == pending.qubit
        if msg.success and still_held:
            self._ctx.send_up(
                HeraldResult(
                    neighbour=nb,
                    attempt_id=msg.attempt_id,
                    success=True,
                    handle=pending.slot,
                    bell_state=msg.bell_state,
                    herald_sequence=msg.herald_sequence,
                    fidelity_estimate=msg.fidelity_estimate,
                    herald_time_ns=msg.herald_time_ns,
                    attempts=done,
                )
            )
            return
        if still_held:
            self._world.discard(pending.qubit, self._ctx.now_ns)
            self._slots[pending.slot] = None
        elif msg.success:
            self._ctx.trace("physical.herald_orphaned", neighbour=nb, attempt_id=msg.attempt_id)
        if msg.in_step and not msg.success and done < pending.max_attempts:
            # the herald arrives one attempt period after the emission: the next attempt of the run starts now
            self._emit(nb, msg.attempt_id, pending.alpha, pending.max_attempts, done + 1)
            return
        self._ctx.send_up(HeraldResult(neighbour=nb, attempt_id=msg.attempt_id, success=False, attempts=done))


# ------------------------------------------------------------------ station


class MidpointStation:
    """The heralding station of one link: beam splitter and two detectors."""

    def __init__(
        self,
        ctx: Context,
        ends: tuple[str, str],
        params: SingleClickLinkParams,
        hardware: Mapping[str, NodeHardware],
        world: QuantumWorld,
    ) -> None:
        if len(ends) != 2 or ends[0] == ends[1]:
            raise ValueError(f"a station needs two different ends, got {ends!r}")
        _require_single_click(params, f"station of link {ends[0]}-{ends[1]}")
        self._ctx = ctx
        self.ends = (ends[0], ends[1])
        self.link = f"{ends[0]}-{ends[1]}"
        self.params = params
        self._hardware = {end: hardware[end] for end in self.ends}
        self._world = world
        self._povm = herald_povm(params.detector)
        self._reports: dict[int, dict[str, PhotonReport]] = {}
        self._fidelity_cache: dict[tuple, float] = {}
        self.herald_sequence = 0  # successes so far on this link
        self.attempts = 0  # resolved attempts with both photons
        self.incomplete_attempts = 0

    def start(self) -> None:
        pass

    def handle_above(self, msg: Any) -> None:
        raise EntityError(f"station {self._ctx.node}: takes no requests from above, got {type(msg).__name__}")

    def handle_below(self, msg: Any) -> None:
        raise EntityError(f"station {self._ctx.node}: has no layer below")

    def handle_peer(self, sender: str, msg: Any) -> None:
        if not isinstance(msg, PhotonReport):
            raise EntityError(f"station {self._ctx.node}: unexpected message from {sender}: {type(msg).__name__}")
        if sender not in self.ends or msg.node != sender:
            raise EntityError(
                f"station {self._ctx.node} of link {self.link}: report from {sender!r} (claims to be {msg.node!r})"
            )
        reports = self._reports.get(msg.attempt_id)
        if reports is None:
            reports = self._reports[msg.attempt_id] = {}
            # the other end's report for the same instant is already queued ahead of this timer
            self._ctx.set_timer(0, msg.attempt_id)
        elif sender in reports:
            raise EntityError(f"station {self._ctx.node}: {sender} reported attempt {msg.attempt_id} twice")
        reports[sender] = msg

    def handle_timer(self, tag: Hashable) -> None:
        reports = self._reports.pop(tag, None)  # type: ignore[arg-type]
        if reports is None:
            return
        now = self._ctx.now_ns
        ra, rb = reports.get(self.ends[0]), reports.get(self.ends[1])
        bell = None
        fidelity = None
        sequence = None
        complete = (
            ra is not None
            and rb is not None
            and ra.photon is not None
            and rb.photon is not None
            and ra.max_attempts == rb.max_attempts  # runs of different lengths are not in step
        )
        if complete:
            outcome = self._world.measure_povm([ra.photon, rb.photon], self._povm, self._ctx.rng, now)
            bell = HERALD_BELL_STATES.get(outcome)
        else:
            for r in (ra, rb):
                if r is not None and r.photon is not None:
                    self._world.discard(r.photon, now)
        success = bell is not None
        if success:
            self.herald_sequence += 1
            sequence = self.herald_sequence
            fidelity = self._fidelity(ra, rb, bell, now)
        if complete:
            self.attempts += 1
            self._ctx.trace("station.attempt", link=self.link, success=success, attempt_id=tag)
        else:
            self.incomplete_attempts += 1
            self._ctx.trace("station.attempt_incomplete", link=self.link, attempt_id=tag)
        herald = StationHerald(
            attempt_id=tag,
            success=success,
            bell_state=bell,
            herald_sequence=sequence,
            fidelity_estimate=fidelity,
            herald_time_ns=now,
            in_step=complete,
        )
        for end in self.ends:
            if end in reports:
                self._ctx.send_peer(end, herald)

    def _fidelity(self, ra: PhotonReport, rb: PhotonReport, bell: BellState, now: int) -> float:
        key = (ra.bright_state_population, rb.bright_state_population, now - ra.emitted_ns, now - rb.emitted_ns, bell)
        value = self._fidelity_cache.get(key)
        if value is None:
            a, b = self.ends
            value = _expected_fidelity(
                self.params, key[0], key[1], self._hardware[a], self._hardware[b], key[2], key[3], bell
            )
            if len(self._fidelity_cache) > 1024:
                self._fidelity_cache.clear()
            self._fidelity_cache[key] = value
        return value


# ------------------------------------------------------------------ backend


class QutipSingleClickBackend:
    """Factory of the physical entities of one network, sharing one quantum world."""

    name = "qutip-single-click"
    SCHEMES = frozenset({"single-click"})  # heralding schemes this backend runs
    PROVIDES = frozenset({CAP_DEVICE, CAP_HERALDING})
    REQUIRES: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.world = QuantumWorld()
        self.nodes: dict[str, PhysicalNode] = {}
        self.stations: dict[str, MidpointStation] = {}

    def _check_new_node(self, node: str) -> None:
        if node in self.nodes or node in self.stations:
            raise ValueError(f"node {node!r} already has a physical entity")

    def node_entity(self, ctx: Context, hardware: NodeHardware, links: Mapping[str, LinkSide]) -> PhysicalNode:
        self._check_new_node(ctx.node)
        node = PhysicalNode(ctx, hardware, links, self.world, self.nodes)
        self.nodes[ctx.node] = node
        return node

    def station_entity(
        self,
        ctx: Context,
        ends: tuple[str, str],
        params: SingleClickLinkParams,
        hardware: Mapping[str, NodeHardware],
    ) -> MidpointStation:
        self._check_new_node(ctx.node)
        station = MidpointStation(ctx, ends, params, hardware, self.world)
        self.stations[ctx.node] = station
        return station
