"""Physical backend driven by a heralding scheme's analytic model: attempt by attempt or fast-forward.

Theory of operation
-------------------
:class:`HeraldingModelBackend` (registry name ``model-heralding``) builds the
same entities as :class:`qnetstack.physical.backends.qutip_backend.QutipSingleClickBackend` — a
:class:`ModelNode` per node (its device, on the shared
:class:`~qnetstack.physical.engines.world.QuantumWorld`, and its ends of the links) and a
:class:`ModelStation` per link at the midpoint, on the same shared bookkeeping
(:mod:`qnetstack.physical.backends.midpoint`) — but the station does not
interfere photons. It draws each outcome from the link's
:class:`~qnetstack.physical.schemes.model.HeraldingModel`: the successful branches, each with
its probability per attempt and its normalised post-herald state of the two
memories (:mod:`qnetstack.physical.schemes.model`). The model comes from the link's parameter
object through :data:`qnetstack.physical.schemes.registry.HERALDING_SCHEMES`
(parameter type -> scheme name and model factory), so the heralding scheme is
a parameter of the link.

Attempts are independent and identically distributed, so (Rozpędek et al.,
PRA 99, 052330 (2019), Sec. III, for single-click; :mod:`qnetstack.physical.schemes.model`):

* **per attempt** (``max_attempts`` = 1): one uniform draw u picks branch i
  when ``Σ_{j<i} p_j <= u < Σ_{j<=i} p_j``, failure when ``u >= p = Σ p_j``;
* **fast-forward** (``max_attempts`` = N > 1): the attempt of the first
  success is K ~ Geometric(p); K > N means N failures. On success the branch
  is drawn with probability ``p_i / p``. The herald is then at
  ``t + (K-1)·P + τ`` (P the attempt period, τ the node-to-station delay),
  exactly when the K-th attempt of an attempt-by-attempt run would herald,
  so the two modes agree in distribution, timing included.

On success the station puts the branch's state into the world for the two
memory qubits at the herald time, after memory noise (T1/T2 of each node,
:func:`qnetstack.physical.schemes.single_click.decohere_pair`, the world's own channel) for the
time each spin waited since its emission (τ: the photon's flight). From then
on the world applies T1/T2 itself. ``fidelity_estimate`` is the fidelity of
exactly that state to the announced Bell state, so goodness is honest.
States, fidelities and cumulative probabilities are computed once per link
and cached (per α pair for single-click α overrides), so an attempt costs a
random draw and a few messages.

Messages (τ = delay(L/2))::

    t              node: HeraldAttempt -> reserve a free memory slot (or none),
                   AttemptReport(attempt, has memory, α, max_attempts) to the station
    t+τ            station: both reports in step -> draw K and the branch;
                   otherwise fail at once (attempts = 1)
    t+τ+(K-1)P     station: success -> state into the world, sequence + 1;
                   StationOutcome to both ends
    t+2τ+(K-1)P    node: HeraldResult up (success: the slot now holds the qubit;
                   failure: the slot is free again)

A reserved slot is neither free (``InitQubit`` cannot take it) nor held by
the layer above (operations on it are ``UNKNOWN_HANDLE``).

A link fed from a satellite (its ``fibre`` a
:class:`~qnetstack.physical.components.channels.SatellitePassArm`) is not
identically distributed in time: :class:`PassLink` draws its attempts block by
block of the pass (see there), and both ends take the link down when the pass
ends (``HeraldingLinkState``, as for a cut fibre). Its capabilities announce
the link at closest approach.

Adding a scheme needs nothing here: register it in
:mod:`qnetstack.physical.schemes.registry` and this backend runs it.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from qnetstack.entity import EntityError
from qnetstack.physical.backends.device import RESERVED_SLOT
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
from qnetstack.physical.backends.photon_counts import pattern_counter
from qnetstack.physical.backends.pulses import PulseLink, PulseTrainBackend
from qnetstack.physical.components.channels import SatellitePassArm
from qnetstack.physical.engines.world import QuantumWorld
from qnetstack.physical.params import LinkSide, NodeHardware
from qnetstack.physical.schemes.model import HeraldingModel, branch_fidelity
from qnetstack.physical.schemes.registry import HERALDING_SCHEMES, HeraldingSchemeEntry, scheme_of
from qnetstack.physical.schemes.single_click import decohere_pair
from qnetstack.physical.service import (
    CAP_PULSES,
    BellState,
    HeraldAttempt,
    HeraldingLink,
    HeraldingLinkState,
    PhysicalCapabilities,
)

__all__ = [
    "HeraldingModelBackend",
    "PassLink",
    "ModelNode",
    "ModelStation",
    "AttemptReport",
    "StationOutcome",
]


# ------------------------------------------------------------------ prepared outcomes


class _PreparedLink:
    """One link's branches for one α pair: cumulative probabilities, and the
    post-herald states after given waits, as world-ready read-only arrays with their fidelities."""

    def __init__(self, model: HeraldingModel, noise_a: tuple, noise_b: tuple) -> None:
        self.branches = model.branches()
        weights = np.array([b.probability for b in self.branches], dtype=float)
        self.cumulative = np.cumsum(weights)
        self.p = float(min(1.0, weights.sum()))
        # the same numbers as Python floats: a scan over a few of them beats
        # numpy's searchsorted call overhead by ~5 µs an attempt
        self._cumulative = [float(c) for c in self.cumulative]
        self._noise = (noise_a, noise_b)
        self._states: dict[tuple[int, int, int], tuple[np.ndarray, float, tuple[float, float, float, float]]] = {}

    def draw(self, rng: np.random.Generator, max_attempts: int) -> tuple[int, int | None]:
        """(attempts made, branch index or None on failure).

        The branch is the first i with ``u < Σ_{j<=i} p_j`` (``searchsorted``
        with ``side="right"``, written as a scan)."""
        cumulative = self._cumulative
        if max_attempts == 1:
            u = rng.random()
            for index, bound in enumerate(cumulative):
                if u < bound:
                    return 1, index
            return 1, None
        if self.p <= 0.0:
            return max_attempts, None
        attempts = int(rng.geometric(self.p))
        if attempts > max_attempts:
            return max_attempts, None
        u = rng.random() * cumulative[-1]
        for index, bound in enumerate(cumulative):
            if u < bound:
                return attempts, index
        return attempts, len(cumulative) - 1

    def state(self, index: int, wait_a_ns: int, wait_b_ns: int) -> tuple[np.ndarray, float, tuple[float, float, float, float]]:
        """The branch's state after each spin's memory noise for its wait, its fidelity, and its
        Bell-basis diagonal relative to the branch's Bell state (``HeraldResult.bell_diagonal``)."""
        key = (index, wait_a_ns, wait_b_ns)
        found = self._states.get(key)
        if found is None:
            branch = self.branches[index]
            (t1a, t2a), (t1b, t2b) = self._noise
            rho = decohere_pair(branch.state, (wait_a_ns, t1a, t2a), (wait_b_ns, t1b, t2b))
            rho = (rho + rho.conj().T) / 2
            rho = rho / np.real(np.trace(rho))
            rho.setflags(write=False)  # the world keeps it as the pair's state and caches it by object
            diagonal = tuple(branch_fidelity(rho, branch.bell_state.compose(b)) for b in BellState)
            found = (rho, diagonal[0], (diagonal[0], diagonal[1], diagonal[2], diagonal[3]))
            if len(self._states) > 256:
                self._states.clear()
            self._states[key] = found
        return found

    def mean_fidelity(self, wait_a_ns: int, wait_b_ns: int) -> float:
        """Σ p_i F_i / p: the expected fidelity of a heralded pair (0 if none can be)."""
        if not self.cumulative[-1] > 0.0:
            return 0.0
        total = sum(b.probability * self.state(i, wait_a_ns, wait_b_ns)[1] for i, b in enumerate(self.branches) if b.probability > 0)
        return min(1.0, max(0.0, total / float(self.cumulative[-1])))


def _memory_noise(hardware: NodeHardware) -> tuple[int | None, int | None]:
    return hardware.memory.t1_ns, hardware.memory.t2_ns


# Per world (one network), the prepared links by what they are computed from. A network's
# links mostly share their parameters and hardware, so its nodes and stations share one
# prepared link each: its model, mean fidelity and decohered states are computed once, not
# once per entity (which made assembly cost seconds at 1000 nodes), and the world meets the
# same state arrays again, so it checks each once. The cache dies with its world.
_SHARED: weakref.WeakKeyDictionary[QuantumWorld, dict[tuple, _PreparedLink]] = weakref.WeakKeyDictionary()


def prepared_link(
    world: QuantumWorld,
    entry: HeraldingSchemeEntry,
    params: Any,
    hw_a: NodeHardware,
    hw_b: NodeHardware,
    alpha_a: float | None,
    alpha_b: float | None,
) -> _PreparedLink:
    """The link's outcomes for this scheme, parameters, end hardware (node A first) and α pair,
    shared on ``world`` by every entity that asks with equal inputs (parameters are frozen
    models, compared by value; unhashable ones get a link of their own)."""
    key = (entry, params, hw_a, hw_b, alpha_a, alpha_b)
    try:
        hash(key)
    except TypeError:
        return _PreparedLink(entry.model(params, hw_a, hw_b, alpha_a, alpha_b), _memory_noise(hw_a), _memory_noise(hw_b))
    shared = _SHARED.setdefault(world, {})
    found = shared.get(key)
    if found is None:
        found = shared[key] = _PreparedLink(entry.model(params, hw_a, hw_b, alpha_a, alpha_b), _memory_noise(hw_a), _memory_noise(hw_b))
    return found


# ------------------------------------------------------------------ time-varying links


class PassLink:
    """Outcomes of a link whose arms follow a satellite pass (:class:`SatellitePassArm`).

    The pass is cut into blocks of at most ``step_ns`` (``SatellitePassArm.blocks``);
    in each block the link is the scheme's model with the arms' transmittance at
    the block's middle, prepared once per block and α pair. Attempt k of a run
    that starts at ``t0`` belongs to the block holding ``t0 + (k-1)·P``.
    Attempts are independent, so within a block of constant p the number of
    attempts to the first success is geometric, and a geometric count that
    runs past the block's last attempt only says that all of them failed; by
    memorylessness the draw starts afresh in the next block. This is exact for
    the piecewise-constant p (thinning, Lewis & Shedler, Naval Res. Logist. Q.
    26, 403 (1979), would be the alternative for a p given at every instant);
    the error against the continuous loss curve is the change of p within half
    a block, bounded in docs/physical.md. Outside the pass p = 0: those attempts
    fail, without a draw.
    """

    def __init__(
        self, world: QuantumWorld, entry: HeraldingSchemeEntry, params: Any, hardware_a: NodeHardware, hardware_b: NodeHardware
    ) -> None:
        arm = params.fibre
        if not isinstance(arm, SatellitePassArm):
            raise TypeError(f"a pass link needs a SatellitePassArm as its fibre, got {type(arm).__name__}")
        self.arm: SatellitePassArm = arm
        self._world = world
        self._entry = entry
        self._params = params
        self._hardware = (hardware_a, hardware_b)
        self._blocks: dict[tuple[int, float | None, float | None], _PreparedLink | None] = {}
        self._grid = arm.blocks()  # (n, start_ns, width_ns): computed once, read every attempt

    def block_link(self, index: int, alpha_a: float | None, alpha_b: float | None) -> _PreparedLink | None:
        """Block ``index``'s outcomes (``None``: nothing arrives, p = 0), cached."""
        key = (index, alpha_a, alpha_b)
        if key not in self._blocks:
            fibre = self.arm.block_fibre(index)
            found = None
            if fibre is not None:
                params = self._params.replace(fibre=fibre)
                link_alpha = self._entry.link_alpha(params)
                found = prepared_link(
                    self._world,
                    self._entry,
                    params,
                    *self._hardware,
                    link_alpha if alpha_a is None else alpha_a,
                    link_alpha if alpha_b is None else alpha_b,
                )
            if len(self._blocks) > 4096:
                self._blocks.clear()
            self._blocks[key] = found
        return self._blocks[key]

    def draw(
        self, rng: np.random.Generator, start_ns: int, period_ns: int, max_attempts: int, alpha_a: float | None, alpha_b: float | None
    ) -> tuple[int, int | None, _PreparedLink | None]:
        """(attempts made, branch index or None, the outcomes of the block of the success)."""
        n_blocks, first_ns, width_ns = self._grid
        made = 0
        while made < max_attempts:
            t = start_ns + made * period_ns
            index = math.floor((t - first_ns) / width_ns)
            if index >= n_blocks:
                return max_attempts, None, None  # the pass is over: every attempt left fails
            if index < 0:  # before the pass: nothing up to its start
                in_block, link = math.ceil((first_ns - t) / period_ns), None
            else:
                in_block = math.ceil((first_ns + (index + 1) * width_ns - t) / period_ns)
                link = self.block_link(index, alpha_a, alpha_b)
            in_block = max(1, min(in_block, max_attempts - made))
            if link is not None and link.p > 0.0:
                attempts, branch = link.draw(rng, in_block)
                if branch is not None:
                    return made + attempts, branch, link
            made += in_block
        return max_attempts, None, None


# ------------------------------------------------------------------ messages


# The station and its nodes talk in these two messages. They are private to
# this backend and built only by its own code, so they are named tuples, not
# validated models: immutable like every message, and cheap to build (a frozen
# dataclass sets each field through object.__setattr__, which made building
# one cost about as much as a pydantic validation; a few are built per attempt).


class AttemptReport(NamedTuple):
    """Node -> station: "I attempt" (``has_memory`` False: no free slot, nothing emitted)."""

    attempt_id: int
    node: str
    has_memory: bool
    bright_state_population: float | None
    max_attempts: int
    emitted_ns: int
    kind: Literal["attempt_report"] = "attempt_report"


class StationOutcome(NamedTuple):
    """Station -> node: the outcome of a run of attempts (``qubit``: this end's world id)."""

    attempt_id: int
    success: bool
    herald_time_ns: int
    attempts: int = 1
    qubit: int | None = None
    bell_state: BellState | None = None
    herald_sequence: int | None = None
    fidelity_estimate: float | None = None
    kind: Literal["station_outcome"] = "station_outcome"
    bell_diagonal: tuple[float, float, float, float] | None = None


# ------------------------------------------------------------------ node

# the tag of a node's timer that takes a satellite-fed link down when its pass ends: (PASS_OVER, neighbour)
PASS_OVER = "pass_over"


@dataclass(slots=True)
class _Run:
    neighbour: str
    slot: int | None


class ModelNode(LinkEndNode):
    """A node's device and its ends of the model-driven heralded links."""

    STATION_MESSAGE = StationOutcome
    _in_flight: dict[tuple[str, int], _Run]

    def _setup(self) -> None:
        self._schemes = {nb: scheme_of(side.params) for nb, side in self.links.items()}
        self._capabilities = self._describe()

    def _describe(self) -> PhysicalCapabilities:
        links = {}
        for nb, side in self.links.items():
            entry = self._schemes[nb]
            hw_a, hw_b = ends_in_order(self.name, self.hardware, nb, side.neighbour_hardware)
            alpha = entry.link_alpha(side.params)
            prepared = prepared_link(self._world, entry, side.params, hw_a, hw_b, alpha, alpha)
            half = half_delay_ns(side.params)
            links[nb] = HeraldingLink(
                neighbour=nb,
                scheme=entry.name,
                attempt_period_ns=attempt_period_ns(side.params),
                classical_delay_ns=2 * half,
                bright_state_population=alpha,
                success_probability=prepared.p,
                fidelity=prepared.mean_fidelity(half, half),
                alpha_settings=alpha_settings(side.params, hw_a, hw_b, half),
                neighbour_memory=memory_decoherence(side.neighbour_hardware),
            )
        return PhysicalCapabilities(
            node=self.name, num_qubits=self.hardware.memory.num_qubits, links=links, memory=memory_decoherence(self.hardware)
        )

    def capabilities(self) -> PhysicalCapabilities:
        return self._capabilities

    def start(self) -> None:
        super().start()
        # a link fed from a satellite goes down for good when the pass ends (there is no next pass
        # in the model): both ends time it alike, so they go down at the same instant
        for neighbour, side in sorted(self.links.items()):
            arm = getattr(side.params, "fibre", None)
            if isinstance(arm, SatellitePassArm):
                n, first_ns, width_ns = arm.blocks()
                end_ns = math.ceil(first_ns + n * width_ns)
                self._ctx.set_timer(max(0, end_ns - self._ctx.now_ns), (PASS_OVER, neighbour))

    def handle_timer(self, tag: Hashable) -> None:
        if isinstance(tag, tuple) and tag[:1] == (PASS_OVER,):
            neighbour = tag[1]
            if neighbour not in self._cut:
                self._cut.add(neighbour)
                self._lose_attempts(neighbour)
                self._ctx.trace("physical.pass_over", neighbour=neighbour)
                self._ctx.send_up(HeraldingLinkState(neighbour=neighbour, up=False))
            return
        super().handle_timer(tag)

    def _attempt(self, msg: HeraldAttempt, side: LinkSide) -> None:
        if msg.bright_state_population is not None and self._schemes[msg.neighbour].alpha_field is None:
            raise EntityError(
                f"{self.name}/physical: bright_state_population given for the {self._schemes[msg.neighbour].name} "
                f"link with {msg.neighbour}, a scheme without one"
            )
        slot = self._free_slot()
        if slot is not None:
            self._slots[slot] = RESERVED_SLOT
        self._in_flight[(side.station, msg.attempt_id)] = _Run(msg.neighbour, slot)
        self._ctx.send_peer(
            side.station,
            AttemptReport(
                attempt_id=msg.attempt_id,
                node=self.name,
                has_memory=slot is not None,
                bright_state_population=msg.bright_state_population,
                max_attempts=msg.max_attempts,
                emitted_ns=self._ctx.now_ns,
            ),
        )

    def _from_station(self, station: str, msg: StationOutcome) -> None:
        run: _Run = self._landed(station, msg.attempt_id)
        if run.slot is None:
            self._send_failure(run.neighbour, msg.attempt_id, msg.attempts, no_memory=True)
            return
        if msg.success and msg.qubit is not None:
            self._slots[run.slot] = msg.qubit
            self._send_success(run.neighbour, msg.attempt_id, run.slot, msg, msg.attempts)
            return
        self._slots[run.slot] = None
        self._send_failure(run.neighbour, msg.attempt_id, msg.attempts)


# ------------------------------------------------------------------ station


@dataclass(slots=True)
class _Decided:
    reports: dict[str, AttemptReport]
    attempts: int
    branch: int | None
    prepared: _PreparedLink | None
    waits: tuple[int, int]


class ModelStation(MidpointStationBase):
    """The heralding station of one link: draws outcomes from the link's model."""

    REPORT = AttemptReport

    def _setup(self) -> None:
        self.scheme = scheme_of(self.params)
        self._noise = (_memory_noise(self._hardware[self.ends[0]]), _memory_noise(self._hardware[self.ends[1]]))
        self.period_ns = attempt_period_ns(self.params)
        self._prepared: dict[tuple[float | None, float | None], _PreparedLink] = {}
        self._own: _PreparedLink | None = None  # the outcomes at the link's own α
        self._decided: dict[int, _Decided] = {}
        # a satellite-fed link's click law changes along the pass, which the counter's one law
        # does not follow: such a station counts no photons yet (and the report lists it not)
        self.photon_counter = None if isinstance(getattr(self.params, "fibre", None), SatellitePassArm) else pattern_counter(self)
        arm = getattr(self.params, "fibre", None)
        # a link fed from a satellite: its success probability follows the pass in simulated time
        self._pass = (
            PassLink(self._world, self.scheme, self.params, self._hardware[self.ends[0]], self._hardware[self.ends[1]])
            if isinstance(arm, SatellitePassArm)
            else None
        )

    def prepared(self, alpha_a: float | None, alpha_b: float | None) -> _PreparedLink:
        """The link's outcomes for these α (``None``: the link's own), cached."""
        if alpha_a is None and alpha_b is None and self._own is not None:
            return self._own  # the common case, once per attempt: skip building the key
        link_alpha = self.scheme.link_alpha(self.params)
        key = (link_alpha if alpha_a is None else alpha_a, link_alpha if alpha_b is None else alpha_b)
        found = self._prepared.get(key)
        if found is None:
            a, b = self.ends
            found = prepared_link(self._world, self.scheme, self.params, self._hardware[a], self._hardware[b], *key)
            if len(self._prepared) > 64:
                self._prepared.clear()
            self._prepared[key] = found
        if alpha_a is None and alpha_b is None:
            self._own = found
        return found

    def _check_new_attempt(self, attempt_id: int) -> None:
        if attempt_id in self._decided:
            raise EntityError(f"station {self._ctx.node}: attempt {attempt_id} reported while its run is on")

    def _timer(self, what: str, attempt_id: int) -> None:
        if what != "herald":
            super()._timer(what, attempt_id)
            return
        decided = self._decided.pop(attempt_id, None)
        if decided is not None:
            self._herald(attempt_id, decided)

    def _resolve(self, attempt_id: int, reports: dict[str, AttemptReport]) -> None:
        now = self._ctx.now_ns
        ra, rb, in_step = self._in_step(reports)
        if not in_step:
            self._count_incomplete(attempt_id)
            self._herald(attempt_id, _Decided(reports, 1, None, None, (0, 0)))
            return
        assert ra is not None and rb is not None
        if self._pass is not None:
            attempts, branch, prepared_or_none = self._pass.draw(
                self._ctx.rng, ra.emitted_ns, self.period_ns, ra.max_attempts, ra.bright_state_population, rb.bright_state_population
            )
            self.attempts += attempts
            waits = (now - ra.emitted_ns, now - rb.emitted_ns)
            decided = _Decided(reports, attempts, branch, prepared_or_none, waits)
            if attempts == 1:
                self._herald(attempt_id, decided)
            else:
                self._decided[attempt_id] = decided
                self._ctx.set_timer((attempts - 1) * self.period_ns, ("herald", attempt_id))
            return
        prepared = self.prepared(ra.bright_state_population, rb.bright_state_population)
        attempts, branch = prepared.draw(self._ctx.rng, ra.max_attempts)
        self.attempts += attempts
        if self.photon_counter is not None:
            self.photon_counter.record(attempts, branch, ra.max_attempts)
        decided = _Decided(reports, attempts, branch, prepared, (now - ra.emitted_ns, now - rb.emitted_ns))
        if attempts == 1:
            self._herald(attempt_id, decided)
        else:
            self._decided[attempt_id] = decided
            self._ctx.set_timer((attempts - 1) * self.period_ns, ("herald", attempt_id))

    def _herald(self, attempt_id: int, decided: _Decided) -> None:
        now = self._ctx.now_ns
        prepared, branch = decided.prepared, decided.branch
        success = branch is not None and prepared is not None
        if prepared is not None or self._pass is not None:
            self._ctx.trace("station.attempt", link=self.link, success=success, attempt_id=attempt_id, attempts=decided.attempts)
        if not success:
            # a failure says the same to both ends (messages are immutable): build it once
            failure = StationOutcome(attempt_id=attempt_id, success=False, attempts=decided.attempts, herald_time_ns=now)
            self._tell_reporters(decided.reports, failure)
            return
        assert prepared is not None and branch is not None
        state, fidelity, diagonal = prepared.state(branch, *decided.waits)
        qubits = self._world.new_qubits(state, now, self._noise)
        bell = prepared.branches[branch].bell_state
        self.herald_sequence += 1
        for end, qubit in zip(self.ends, qubits):
            # both ends reported (a success needs both in step)
            outcome = StationOutcome(
                attempt_id=attempt_id,
                success=True,
                attempts=decided.attempts,
                qubit=qubit,
                bell_state=bell,
                herald_sequence=self.herald_sequence,
                fidelity_estimate=fidelity,
                herald_time_ns=now,
                bell_diagonal=diagonal,
            )
            self._ctx.send_peer(end, outcome)


# ------------------------------------------------------------------ backend


class HeraldingModelBackend(MidpointBackend):
    """Factory of the physical entities of one network, outcomes drawn from each link's scheme model."""

    name = "model-heralding"
    SCHEMES = frozenset(entry.name for entry in HERALDING_SCHEMES)  # heralding schemes this backend runs
    NODE = ModelNode
    STATION = ModelStation
    PROVIDES = MidpointBackend.PROVIDES | {CAP_PULSES}

    nodes: dict[str, ModelNode]
    stations: dict[str, ModelStation]

    def pulse_trains(
        self, links: list[PulseLink], adversary: dict[str, Any] | None = None, eavesdropper_oracle: Any = None
    ) -> PulseTrainBackend:
        """Weak-coherent pulse trains on ``links`` (``physical/backends/pulses.py``): not yet
        answered by the node entities, which have no prepare-and-measure link to send on.
        ``adversary`` and ``eavesdropper_oracle`` are passed to ``PulseTrainBackend``."""
        return PulseTrainBackend(links, adversary=adversary, eavesdropper_oracle=eavesdropper_oracle)
