"""What the two backends' heralded links share: midpoint timing, the node's end, the station's bookkeeping.

Both backends run a heralded link the same way around a station half-way
along the fibre (the layout of Humphreys et al., Nature 558, 268 (2018)):
each end answers a ``HeraldAttempt`` with one report to the station, the
station waits for both ends' reports of that attempt, resolves it and tells
each end that reported. What differs is *how* an attempt is resolved — the
QuTiP backend interferes photons in the world, the model backend draws from
the scheme's analytic model — so this module holds the rest:

* :func:`half_delay_ns`, :func:`attempt_period_ns`: node-to-station flight
  and emission-to-herald time, 2 · delay(L/2);
* :func:`ends_in_order`, :func:`alpha_settings`: the numbers both ends of a
  link announce, computed with node A the alphabetically first end so they
  agree;
* :class:`LinkEndNode`: a node's device plus its ends of the links — the
  checks on a ``HeraldAttempt``, the attempts in flight, the
  ``HeraldResult`` s sent up;
* :class:`MidpointStationBase`: the station's collection of reports
  (first report of an attempt sets a zero-delay timer; the other end's
  report for the same instant is already queued ahead of it), the in-step
  test, the counters and the answer to each end that reported;
* :class:`MidpointBackend`: the factory of one network's node and station
  entities on one shared :class:`~qnetstack.physical.engines.world.QuantumWorld`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, ClassVar, Protocol, cast

from qnetstack.entity import Context, EntityError
from qnetstack.entity.refusing import Refusing
from qnetstack.physical.backends.device import MemoryDevice
from qnetstack.physical.backends.photon_counts import counts_without_patterns
from qnetstack.physical.engines.world import QuantumWorld
from qnetstack.physical.params import FibreParams, LinkSide, NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.registry import scheme_of
from qnetstack.physical.schemes.single_click import operating_points
from qnetstack.physical.service import (
    CAP_DEVICE,
    CAP_FAULTS,
    CAP_HERALDING,
    AlphaSetting,
    DeviceRequest,
    FibreCut,
    FreeQubit,
    HeraldAttempt,
    HeraldingLinkState,
    HeraldResult,
    MemoryDecoherence,
    NodeCrash,
    StationPhotonCounts,
)

__all__ = [
    "half_delay_ns",
    "attempt_period_ns",
    "ends_in_order",
    "alpha_settings",
    "memory_decoherence",
    "LinkEndNode",
    "MidpointStationBase",
    "MidpointBackend",
]

# the tag of the station's zero-delay timer that resolves an attempt once both reports are in
RESOLVE = "resolve"
# the tag of a node's timer that ends an attempt on a cut fibre: (CUT_ATTEMPT, neighbour, attempt id)
CUT_ATTEMPT = "cut_attempt"


def half_delay_ns(params: Any) -> int:
    """One-way delay between a node and the midpoint station, delay(L/2)."""
    fibre = getattr(params, "fibre", None) or FibreParams()
    return fibre.delay_ns(params.length_km / 2)


def memory_decoherence(hardware: NodeHardware) -> MemoryDecoherence:
    """How this hardware's memory qubits decohere, as the capabilities tell it."""
    return MemoryDecoherence(t1_ns=hardware.memory.t1_ns, t2_ns=hardware.memory.t2_ns)


def attempt_period_ns(params: Any) -> int:
    """Emission to herald at the nodes: there and back between node and midpoint
    station, 2 · delay(L/2) (at least 1 ns)."""
    return max(1, 2 * half_delay_ns(params))


def ends_in_order(name: str, hardware: NodeHardware, neighbour: str, neighbour_hardware: NodeHardware) -> tuple[NodeHardware, NodeHardware]:
    """The two ends' hardware, the alphabetically first end's first, so that both
    ends of a link announce the very same numbers."""
    if name <= neighbour:
        return hardware, neighbour_hardware
    return neighbour_hardware, hardware


def alpha_settings(params: Any, hw_a: NodeHardware, hw_b: NodeHardware, wait_ns: int) -> list[AlphaSetting] | None:
    """Single-click links announce the α they can run at (the link layer picks
    one per request from its min fidelity); other schemes have no α."""
    if not isinstance(params, SingleClickLinkParams):
        return None
    return [
        AlphaSetting(bright_state_population=a, success_probability=p, fidelity=f)
        for a, p, f in operating_points(params, hw_a, hw_b, wait_ns)
    ]


class LinkEndNode(MemoryDevice):
    """A node's device and its ends of heralded links through midpoint stations.

    Subclasses set :attr:`STATION_MESSAGE` (what their station answers) and
    implement ``_attempt(msg, side)`` (the node's half of an attempt) and
    ``_from_station(station, msg)``; ``_setup()`` is theirs to prepare their
    per-link state once the links are known. Attempts in flight are kept in
    ``_in_flight`` by (station, attempt id).

    Faults (``FibreCut``, ``NodeCrash`` from the run, ``qnetstack.physical.service``)
    are handled here for both backends: an attempt on a cut fibre never reaches the
    station, and the node answers it itself one attempt period later (it waited
    that long for a herald); attempts in flight when the fibre is cut are lost and
    answered at once. A crash frees every qubit. Attempts lost either way become
    orphans, whose heralds are dropped when the station's answer comes (a qubit
    they bring freed) instead of being sent up.
    """

    STATION_MESSAGE: ClassVar[type]

    def __init__(
        self,
        ctx: Context,
        hardware: NodeHardware,
        links: Mapping[str, LinkSide],
        world: QuantumWorld,
        registry: Mapping[str, MemoryDevice],
    ) -> None:
        super().__init__(ctx, hardware, world, registry)
        self.links: dict[str, LinkSide] = dict(links)
        self._in_flight: dict[tuple[str, int], Any] = {}
        self._cut: set[str] = set()  # neighbours whose fibre is cut
        self._orphans: set[tuple[str, int]] = set()  # (neighbour, attempt id) in flight when the node crashed
        self._setup()

    def _setup(self) -> None:
        """Prepare the subclass's per-link state (``self.links`` is set)."""

    def handle_above(self, msg: Any) -> None:
        if isinstance(msg, HeraldAttempt):
            side = self._side_of(msg)
            if self._cut and msg.neighbour in self._cut:
                self._ctx.set_timer(attempt_period_ns(side.params), (CUT_ATTEMPT, msg.neighbour, msg.attempt_id))
                return
            self._attempt(msg, side)
            return
        if isinstance(msg, DeviceRequest):
            super().handle_above(msg)
            return
        if isinstance(msg, FibreCut):
            if msg.neighbour not in self.links:
                raise EntityError(f"{self.name}/physical: FibreCut for {msg.neighbour!r}, which is not a neighbour")
            if msg.cut:
                self._cut.add(msg.neighbour)
                self._lose_attempts(msg.neighbour)
            else:
                self._cut.discard(msg.neighbour)
            self._ctx.trace("physical.fibre_cut", neighbour=msg.neighbour, cut=msg.cut)
            self._ctx.send_up(HeraldingLinkState(neighbour=msg.neighbour, up=not msg.cut))
            return
        if isinstance(msg, NodeCrash):
            self._crash()
            return
        raise EntityError(f"{self.name}/physical: unexpected request from above: {type(msg).__name__}")

    def handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, self.STATION_MESSAGE):
            self._from_station(sender, msg)
            return
        raise EntityError(f"{self.name}/physical: unexpected message from {sender}: {type(msg).__name__}")

    def handle_timer(self, tag: Hashable) -> None:
        if isinstance(tag, tuple) and tag[:1] == (CUT_ATTEMPT,):
            _, neighbour, attempt_id = tag
            self._ctx.send_up(HeraldResult(neighbour=neighbour, attempt_id=attempt_id, success=False, link_down=True))
            return
        super().handle_timer(tag)

    def _lose_attempts(self, neighbour: str) -> None:
        """The fibre to ``neighbour`` was cut: the attempts in flight on it are lost with their
        photons. Each is answered now (``link_down``) and its herald, when the station's answer
        comes, is dropped like a crashed node's (a qubit it brings freed). Both ends are cut at
        the same instant, so both answer the same attempts at once and stay in step."""
        station = self.links[neighbour].station
        lost = sorted(a for s, a in self._in_flight if s == station and (neighbour, a) not in self._orphans)
        for attempt_id in lost:
            self._orphans.add((neighbour, attempt_id))
            self._ctx.send_up(HeraldResult(neighbour=neighbour, attempt_id=attempt_id, success=False, link_down=True))

    def _crash(self) -> None:
        """The node crashed: its memory is lost, and no attempt in flight is reported."""
        freed = self.held_handles()
        for handle in freed:
            self._free(FreeQubit(handle=handle))
        stations = {side.station: neighbour for neighbour, side in self.links.items()}
        self._orphans.update((stations[station], attempt_id) for station, attempt_id in self._in_flight)
        self._ctx.trace("physical.crash", freed=len(freed), orphans=len(self._in_flight))

    def _orphaned(self, neighbour: str, attempt_id: int) -> bool:
        """Whether the attempt was in flight when the node crashed (it is then forgotten)."""
        if not self._orphans or (neighbour, attempt_id) not in self._orphans:
            return False
        self._orphans.discard((neighbour, attempt_id))
        return True

    def _attempt(self, msg: HeraldAttempt, side: LinkSide) -> None:
        raise NotImplementedError

    def _from_station(self, station: str, msg: Any) -> None:
        raise NotImplementedError

    def _side_of(self, msg: HeraldAttempt) -> LinkSide:
        """The link the attempt is for; an error if there is none or the attempt is still in flight."""
        side = self.links.get(msg.neighbour)
        if side is None:
            raise EntityError(
                f"{self.name}/physical: HeraldAttempt for {msg.neighbour!r}, which is not a neighbour "
                f"(neighbours: {', '.join(sorted(self.links)) or 'none'})"
            )
        if (side.station, msg.attempt_id) in self._in_flight:
            raise EntityError(f"{self.name}/physical: attempt {msg.attempt_id} with {msg.neighbour} is still in flight")
        return side

    def _landed(self, station: str, attempt_id: int) -> Any:
        """The attempt in flight that the station's answer is about, no longer in flight."""
        found = self._in_flight.pop((station, attempt_id), None)
        if found is None:
            raise EntityError(f"{self.name}/physical: herald from {station} for unknown attempt {attempt_id}")
        return found

    def _send_success(self, neighbour: str, attempt_id: int, handle: int, herald: Any, attempts: int) -> None:
        """Up: the pair is in slot ``handle``; Bell state, sequence, fidelity
        estimate and time are the station's (``herald``)."""
        if self._orphaned(neighbour, attempt_id):
            self._free(FreeQubit(handle=handle))
            return
        self._ctx.send_up(
            HeraldResult.trusted(
                neighbour=neighbour,
                attempt_id=attempt_id,
                success=True,
                handle=handle,
                bell_state=herald.bell_state,
                herald_sequence=herald.herald_sequence,
                fidelity_estimate=herald.fidelity_estimate,
                herald_time_ns=herald.herald_time_ns,
                attempts=attempts,
                bell_diagonal=getattr(herald, "bell_diagonal", None),
            )
        )

    def _send_failure(self, neighbour: str, attempt_id: int, attempts: int, no_memory: bool = False) -> None:
        if self._orphaned(neighbour, attempt_id):
            return
        self._ctx.send_up(
            HeraldResult.trusted(neighbour=neighbour, attempt_id=attempt_id, success=False, no_memory=no_memory, attempts=attempts)
        )


class StationReport(Protocol):
    """What the station reads of every report, whatever else a scheme's report carries."""

    @property
    def node(self) -> str: ...

    @property
    def attempt_id(self) -> int: ...

    @property
    def max_attempts(self) -> int: ...

    @property
    def has_memory(self) -> bool: ...


class MidpointStationBase(Refusing):
    """The heralding station of one link: collects both ends' reports of an attempt.

    Subclasses set :attr:`REPORT` (what their nodes send; it has ``node``,
    ``attempt_id``, ``max_attempts`` and ``has_memory``) and implement
    ``_resolve(attempt_id, reports)``, called once at the instant of the
    attempt's first report, when every report of that instant is in;
    ``_setup()`` is theirs to prepare what they need of the link's parameters.
    """

    REPORT: ClassVar[type[StationReport]]

    def __init__(
        self,
        ctx: Context,
        ends: tuple[str, str],
        params: Any,
        hardware: Mapping[str, NodeHardware],
        world: QuantumWorld,
    ) -> None:
        if len(ends) != 2 or ends[0] == ends[1]:
            raise ValueError(f"a station needs two different ends, got {ends!r}")
        self._ctx = ctx
        self.ends = (ends[0], ends[1])
        self.link = f"{ends[0]}-{ends[1]}"
        self.params = params
        self._hardware = {end: hardware[end] for end in self.ends}
        self._world = world
        self._reports: dict[int, dict[str, Any]] = {}
        self.herald_sequence = 0  # successes so far on this link
        self.attempts = 0  # attempts resolved with both ends in step
        self.incomplete_attempts = 0
        self._setup()

    def _setup(self) -> None:
        """Prepare the subclass's state from ``self.params`` and ``self._hardware``."""

    def _who(self) -> str:
        return f"station {self._ctx.node}"

    def handle_peer(self, sender: str, msg: Any) -> None:
        if not isinstance(msg, self.REPORT):
            raise EntityError(f"station {self._ctx.node}: unexpected message from {sender}: {type(msg).__name__}")
        if sender not in self.ends or msg.node != sender:
            raise EntityError(f"station {self._ctx.node} of link {self.link}: report from {sender!r} (claims to be {msg.node!r})")
        reports = self._reports.get(msg.attempt_id)
        if reports is None:
            self._check_new_attempt(msg.attempt_id)
            reports = self._reports[msg.attempt_id] = {}
            # the other end's report for the same instant is already queued ahead of this timer
            self._ctx.set_timer(0, (RESOLVE, msg.attempt_id))
        elif sender in reports:
            raise EntityError(f"station {self._ctx.node}: {sender} reported attempt {msg.attempt_id} twice")
        reports[sender] = msg

    def handle_timer(self, tag: Hashable) -> None:
        # the station's own timers: (kind, attempt id). The cast names its type as a string:
        # written as tuple[str, int] it would build a generic alias on every attempt
        what, attempt_id = cast("tuple[str, int]", tag)
        if what != RESOLVE:
            self._timer(what, attempt_id)
            return
        reports = self._reports.pop(attempt_id, None)
        if reports is not None:
            self._resolve(attempt_id, reports)

    def _timer(self, what: str, attempt_id: int) -> None:
        """A timer a subclass set itself (the resolve timers are handled here)."""
        raise EntityError(f"station {self._ctx.node}: no such timer {(what, attempt_id)!r}")

    def _check_new_attempt(self, attempt_id: int) -> None:
        """Refuse a first report the station cannot take (nothing to refuse here)."""

    def _resolve(self, attempt_id: int, reports: dict[str, Any]) -> None:
        raise NotImplementedError

    def _in_step(self, reports: dict[str, Any]) -> tuple[Any, Any, bool]:
        """Both ends' reports (None if absent) and whether they are in step: both
        came, both with a memory, for runs of the same length (runs of different
        lengths are not in step)."""
        ra, rb = reports.get(self.ends[0]), reports.get(self.ends[1])
        in_step = ra is not None and rb is not None and ra.has_memory and rb.has_memory and ra.max_attempts == rb.max_attempts
        return ra, rb, in_step

    def photon_statistics(self) -> StationPhotonCounts:
        """The station's photon counts so far, for the run's report (``PhotonStatisticsSource``):
        full click figures where a subclass keeps a pattern counter (``photon_counter``), else
        attempts and heralds only."""
        counter = getattr(self, "photon_counter", None)
        if counter is not None:
            return counter.counts(self._ctx.node, self.link, self.ends, self.attempts, self.herald_sequence)
        scheme = scheme_of(self.params).name
        return counts_without_patterns(self._ctx.node, self.link, scheme, self.ends, self.attempts, self.herald_sequence)

    def _count_incomplete(self, attempt_id: int) -> None:
        self.incomplete_attempts += 1
        self._ctx.trace("station.attempt_incomplete", link=self.link, attempt_id=attempt_id)

    def _tell_reporters(self, reports: Mapping[str, Any], msg: Any) -> None:
        """Send ``msg`` to each end that reported the attempt."""
        for end in self.ends:
            if end in reports:
                self._ctx.send_peer(end, msg)


class MidpointBackend:
    """Factory of the physical entities of one network, sharing one quantum world.

    Subclasses set :attr:`NODE` and :attr:`STATION` (and the registry's
    ``name`` and ``SCHEMES``)."""

    NODE: ClassVar[type[LinkEndNode]]
    STATION: ClassVar[type[MidpointStationBase]]
    PROVIDES: ClassVar[frozenset[str]] = frozenset({CAP_DEVICE, CAP_HERALDING, CAP_FAULTS})
    REQUIRES: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self.world = QuantumWorld()
        self.nodes: dict[str, Any] = {}
        self.stations: dict[str, Any] = {}

    def _check_new_node(self, node: str) -> None:
        if node in self.nodes or node in self.stations:
            raise ValueError(f"node {node!r} already has a physical entity")

    def node_entity(self, ctx: Context, hardware: NodeHardware, links: Mapping[str, LinkSide]) -> Any:
        self._check_new_node(ctx.node)
        node = self.NODE(ctx, hardware, links, self.world, self.nodes)
        self.nodes[ctx.node] = node
        return node

    def station_entity(self, ctx: Context, ends: tuple[str, str], params: Any, hardware: Mapping[str, NodeHardware]) -> Any:
        self._check_new_node(ctx.node)
        station = self.STATION(ctx, ends, params, hardware, self.world)
        self.stations[ctx.node] = station
        return station
