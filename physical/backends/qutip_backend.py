"""Reference physical layer: QuTiP density matrices and single-click heralding.

Theory of operation
-------------------
One :class:`QutipSingleClickBackend` serves a whole network. It owns the
shared :class:`~qnetstack.physical.engines.world.QuantumWorld` and builds two kinds of entity:

* a :class:`PhysicalNode` per node. It is the node's *device*
  (:class:`~qnetstack.physical.backends.device.MemoryDevice`: memory slots
  ``0 .. num_qubits-1``, the handles upper layers see, mapped to world qubit
  ids, with synchronous, instantaneous operations, ``execute``). It is also the
  node's end of every heralded link (``handle_above(HeraldAttempt)``);
* a :class:`MidpointStation` per link, on its own node half-way along the
  fibre, holding the beam splitter and the two detectors.

What is not single-click optics — the checks on a request, the attempts in
flight, the station's collection of reports, the entity factory — is shared
with the model backend (:mod:`qnetstack.physical.backends.midpoint`).

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
thus always simulates attempt by attempt; ``qnetstack.physical.backends.heralding_backend``
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
MidpointStation  PhotonReport (first)  store, set_timer(0, ("resolve", id))
MidpointStation  PhotonReport (2nd)    store
MidpointStation  timer("resolve", id)  resolve, trace, StationHerald to ends
===============  ====================  =====================================

Oracle reads (``OracleFidelity``) may name qubits on any node: the backend's
registry maps node names to their :class:`PhysicalNode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import Field

from qnetstack.entity.message import Message as _Internal
from qnetstack.physical.backends.midpoint import (
    LinkEndNode,
    MidpointBackend,
    MidpointStationBase,
    alpha_settings,
    attempt_period_ns,
    ends_in_order,
    half_delay_ns,
    memory_decoherence,
)
from qnetstack.physical.params import LinkSide, NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.single_click import (
    HERALD_BELL_STATES,
    arrival_efficiency,
    decohere_pair,
    emission_state,
    fidelity_at_detection,
    herald_povm,
    post_herald_state,
    stored_pair_fidelity,
    success_probability,
)
from qnetstack.physical.service import (
    BellState,
    HeraldAttempt,
    HeraldingLink,
    PhysicalCapabilities,
)

__all__ = [
    "QutipSingleClickBackend",
    "LinkSide",  # re-exported from qnetstack.physical.params
    "PhysicalNode",
    "MidpointStation",
    "PhotonReport",
    "StationHerald",
]


class PhotonReport(_Internal):
    """Node -> station: "my photon for this attempt" (``photon`` None: none sent)."""

    kind: Literal["photon_report"] = "photon_report"
    attempt_id: int = Field(ge=0)
    node: str
    photon: int | None
    bright_state_population: float = Field(ge=0.0, le=1.0)
    emitted_ns: int = Field(ge=0)
    max_attempts: int = Field(1, ge=1)

    @property
    def has_memory(self) -> bool:
        """A node with no free slot emits nothing: its report carries no photon."""
        return self.photon is not None


class StationHerald(_Internal):
    """Station -> node: the outcome of one attempt."""

    kind: Literal["station_herald"] = "station_herald"
    attempt_id: int = Field(ge=0)
    success: bool
    bell_state: BellState | None = None
    herald_sequence: int | None = None
    fidelity_estimate: float | None = None
    herald_time_ns: int
    bell_diagonal: tuple[float, float, float, float] | None = None
    # both ends sent a photon for the same run (same max_attempts): a failed run may go on
    in_step: bool = False


# ------------------------------------------------------------------ helpers


def _detection(params: SingleClickLinkParams, hw_a: NodeHardware, hw_b: NodeHardware) -> tuple[float, float, float]:
    """Each end's photon detection efficiency at the station, and the dark-count probability:
    the inputs of the single-click closed forms."""
    eff = params.detector.efficiency
    return arrival_efficiency(params, hw_a) * eff, arrival_efficiency(params, hw_b) * eff, params.detector.dark_count_probability


def _waits(
    hw_a: NodeHardware, hw_b: NodeHardware, wait_a_ns: float, wait_b_ns: float
) -> tuple[tuple[float, float | None, float | None], tuple[float, float | None, float | None]]:
    """Each end's (time waited, T1, T2): how long and how its memory decayed until the herald."""
    return (wait_a_ns, hw_a.memory.t1_ns, hw_a.memory.t2_ns), (wait_b_ns, hw_b.memory.t1_ns, hw_b.memory.t2_ns)


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
    eta_a, eta_b, p_dc = _detection(params, hw_a, hw_b)
    return fidelity_at_detection(alpha_a, alpha_b, eta_a, eta_b, p_dc, bell_state, *_waits(hw_a, hw_b, wait_a_ns, wait_b_ns))


def _expected_diagonal(
    params: SingleClickLinkParams,
    alpha_a: float,
    alpha_b: float,
    hw_a: NodeHardware,
    hw_b: NodeHardware,
    wait_a_ns: float,
    wait_b_ns: float,
    bell_state: BellState,
) -> tuple[float, float, float, float] | None:
    """The Bell-basis diagonal, relative to ``bell_state``, of the state whose fidelity
    :func:`_expected_fidelity` gives (``HeraldResult.bell_diagonal``); None if no herald can be."""
    eta_a, eta_b, p_dc = _detection(params, hw_a, hw_b)
    if success_probability(alpha_a, eta_a, eta_b, p_dc, alpha_b) <= 0.0:
        return None
    rho = decohere_pair(post_herald_state(alpha_a, eta_a, eta_b, p_dc, bell_state, alpha_b), *_waits(hw_a, hw_b, wait_a_ns, wait_b_ns))
    w = [stored_pair_fidelity(rho, bell_state.compose(b)) for b in BellState]
    return (w[0], w[1], w[2], w[3])


def _require_single_click(params: Any, where: str) -> SingleClickLinkParams:
    if not isinstance(params, SingleClickLinkParams):
        raise ValueError(
            f"{where}: the QuTiP backend runs the single-click scheme only (SingleClickLinkParams), "
            f"got {type(params).__name__}; use the 'model-heralding' backend for other schemes"
        )
    # station options its operator model and announced figures do not include
    detector = params.detector
    for option, is_set in (
        ("detector.kind", detector.kind != "threshold"),
        ("detector.jitter_fwhm_ps", detector.windowed_efficiency() != detector.efficiency),
        ("two_photon_visibility", params.two_photon_visibility != 1.0),
        ("phase_noise_rad", params.phase_noise_rad != 0.0),
    ):
        if is_set:
            raise ValueError(f"{where}: {option} is not run by the QuTiP backend (ideal stations); use the 'model-heralding' backend")
    return params


# ------------------------------------------------------------------ node


@dataclass(slots=True)
class _Pending:
    neighbour: str
    slot: int | None
    qubit: int | None
    alpha: float = 0.0
    max_attempts: int = 1
    attempts: int = 1  # made so far, this one included


class PhysicalNode(LinkEndNode):
    """A node's device and its ends of the single-click links, attempt by attempt."""

    STATION_MESSAGE = StationHerald
    _in_flight: dict[tuple[str, int], _Pending]

    def _setup(self) -> None:
        single_click = {nb: _require_single_click(side.params, f"link {self.name}-{nb}") for nb, side in self.links.items()}
        self._station_of = {nb: side.station for nb, side in self.links.items()}
        self._arrival = {nb: arrival_efficiency(single_click[nb], self.hardware) for nb in self.links}
        self._capabilities: PhysicalCapabilities | None = None

    def capabilities(self) -> PhysicalCapabilities:
        if self._capabilities is None:
            links = {}
            for nb, side in self.links.items():
                p = cast(SingleClickLinkParams, side.params)  # checked in _setup
                half_ns = half_delay_ns(p)
                alpha = p.bright_state_population
                eff = p.detector.efficiency
                eta_a = self._arrival[nb] * eff
                eta_b = arrival_efficiency(p, side.neighbour_hardware) * eff
                links[nb] = HeraldingLink(
                    neighbour=nb,
                    scheme="single-click",
                    attempt_period_ns=attempt_period_ns(p),
                    classical_delay_ns=p.fibre.delay_ns(p.length_km),
                    bright_state_population=alpha,
                    success_probability=min(1.0, success_probability(alpha, eta_a, eta_b, p.detector.dark_count_probability)),
                    fidelity=_expected_fidelity(p, alpha, alpha, self.hardware, side.neighbour_hardware, half_ns, half_ns),
                    alpha_settings=alpha_settings(p, *ends_in_order(self.name, self.hardware, nb, side.neighbour_hardware), half_ns),
                    neighbour_memory=memory_decoherence(side.neighbour_hardware),
                )
            self._capabilities = PhysicalCapabilities(
                node=self.name, num_qubits=self.hardware.memory.num_qubits, links=links, memory=memory_decoherence(self.hardware)
            )
        return self._capabilities

    def _attempt(self, msg: HeraldAttempt, side: LinkSide) -> None:
        alpha = msg.bright_state_population
        if alpha is None:
            alpha = cast(SingleClickLinkParams, side.params).bright_state_population  # checked in _setup
        self._emit(msg.neighbour, msg.attempt_id, alpha, msg.max_attempts, 1)

    def _emit(self, neighbour: str, attempt_id: int, alpha: float, max_attempts: int, attempts: int) -> None:
        """One attempt of a run of ``max_attempts`` (this is number ``attempts``)."""
        if attempts > 1 and self._orphaned(neighbour, attempt_id):
            return  # the node crashed during the run: it ends here, unreported
        station = self._station_of[neighbour]
        now = self._ctx.now_ns
        slot = self._free_slot()
        photon = spin = None
        if slot is not None:
            spin, photon = self._world.new_qubits(emission_state(alpha, self._arrival[neighbour]), now, (self._noise, (None, None)))
            self._slots[slot] = spin
        self._in_flight[(station, attempt_id)] = _Pending(neighbour, slot, spin, alpha, max_attempts, attempts)
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

    def _from_station(self, station: str, msg: StationHerald) -> None:
        pending: _Pending = self._landed(station, msg.attempt_id)
        nb = pending.neighbour
        done = pending.attempts
        if pending.slot is None:
            self._send_failure(nb, msg.attempt_id, done, no_memory=True)
            return
        assert pending.qubit is not None  # _emit takes a slot only with a qubit in it
        # the slot may have been freed (and even reused) while the herald was on its way
        still_held = self._slots[pending.slot] == pending.qubit
        if msg.success and still_held:
            self._send_success(nb, msg.attempt_id, pending.slot, msg, done)
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
        self._send_failure(nb, msg.attempt_id, done)


# ------------------------------------------------------------------ station


class MidpointStation(MidpointStationBase):
    """The heralding station of one link: beam splitter and two detectors."""

    REPORT = PhotonReport
    params: SingleClickLinkParams

    def _setup(self) -> None:
        _require_single_click(self.params, f"station of link {self.link}")
        self._povm = herald_povm(self.params.detector)
        self._fidelity_cache: dict[tuple, float] = {}
        self._diagonal_cache: dict[tuple, tuple[float, float, float, float] | None] = {}

    def _resolve(self, attempt_id: int, reports: dict[str, PhotonReport]) -> None:
        now = self._ctx.now_ns
        ra, rb, complete = self._in_step(reports)
        bell = None
        fidelity = None
        sequence = None
        diagonal = None
        if complete:
            outcome = self._world.measure_povm([ra.photon, rb.photon], self._povm, self._ctx.rng, now)
            bell = HERALD_BELL_STATES.get(outcome)
        else:
            for r in (ra, rb):
                if r is not None and r.photon is not None:
                    self._world.discard(r.photon, now)
        success = bell is not None
        if bell is not None:
            self.herald_sequence += 1
            sequence = self.herald_sequence
            fidelity = self._fidelity(ra, rb, bell, now)
            diagonal = self._diagonal(ra, rb, bell, now)
        if complete:
            self.attempts += 1
            self._ctx.trace("station.attempt", link=self.link, success=success, attempt_id=attempt_id)
        else:
            self._count_incomplete(attempt_id)
        herald = StationHerald(
            attempt_id=attempt_id,
            success=success,
            bell_state=bell,
            herald_sequence=sequence,
            fidelity_estimate=fidelity,
            herald_time_ns=now,
            in_step=complete,
            bell_diagonal=diagonal,
        )
        self._tell_reporters(reports, herald)

    def _fidelity(self, ra: PhotonReport, rb: PhotonReport, bell: BellState, now: int) -> float:
        key = (ra.bright_state_population, rb.bright_state_population, now - ra.emitted_ns, now - rb.emitted_ns, bell)
        value = self._fidelity_cache.get(key)
        if value is None:
            a, b = self.ends
            value = _expected_fidelity(self.params, key[0], key[1], self._hardware[a], self._hardware[b], key[2], key[3], bell)
            if len(self._fidelity_cache) > 1024:
                self._fidelity_cache.clear()
            self._fidelity_cache[key] = value
        return value

    def _diagonal(self, ra: PhotonReport, rb: PhotonReport, bell: BellState, now: int) -> tuple[float, float, float, float] | None:
        key = (ra.bright_state_population, rb.bright_state_population, now - ra.emitted_ns, now - rb.emitted_ns, bell)
        if key not in self._diagonal_cache:
            a, b = self.ends
            if len(self._diagonal_cache) > 1024:
                self._diagonal_cache.clear()
            self._diagonal_cache[key] = _expected_diagonal(
                self.params, key[0], key[1], self._hardware[a], self._hardware[b], key[2], key[3], bell
            )
        return self._diagonal_cache[key]


# ------------------------------------------------------------------ backend


class QutipSingleClickBackend(MidpointBackend):
    """Factory of the physical entities of one network, sharing one quantum world."""

    name = "qutip-single-click"
    SCHEMES = frozenset({"single-click"})  # heralding schemes this backend runs
    NODE = PhysicalNode
    STATION = MidpointStation

    nodes: dict[str, PhysicalNode]
    stations: dict[str, MidpointStation]
