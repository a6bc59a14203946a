"""Single-click entanglement generation protocol (EGP): the reference link layer.

Theory of operation
-------------------
One ``SingleClickEgp`` runs on every node. For each neighbour it keeps a queue
of requests and up to ``max_in_flight`` outstanding heralding attempts (one
by default; see Multiplexing below).

1. ``LinkCreate`` from above: check it (remote is a neighbour, memory exists,
   some operating point of the link reaches the fidelity, the flags are
   served), answer ``LinkAck`` or ``LinkError`` at once, and tell the peer EGP
   with a ``PeerCreate`` that carries the request and an agreed start time
   ``start_ns = now + 2 × (one-way classical delay) + 1 ns``. The peer learns
   of the request one delay later and either queues it or refuses it with a
   ``PeerRefuse`` (no consent: REJECTED; no memory: UNSUPP or NORES), which
   reaches the origin 1 ns *before* the start, so a refused request never
   takes an attempt slot at one end only.
2. Both ends know every request with ``start_ns <= now``. Among them each end
   chooses the next request to attempt for by the same rule (``_choose``):
   a consecutive request that already started keeps the link; otherwise the
   lowest ``priority`` value, then the request that least recently got a
   pair (round robin per pair), then ``(start_ns, origin, create_id)``. The
   inputs change only on events both ends see at the same instant (heralds,
   agreed starts and deadlines), so both choose alike without talking.
3. While a request is active the EGP asks its physical layer for an attempt
   (``HeraldAttempt``) in every free attempt slot of the link; the herald
   reaches both ends at the same instant, and the slot's next attempt starts
   as soon as it arrives. Both ends therefore stay in step, attempt by
   attempt, with no further messages.
4. On a successful herald whose fidelity estimate reaches the request's
   ``min_fidelity`` each end sends up an OK (a weaker pair is freed at both
   ends, which see the same estimate): ``LinkOkKeep`` with the qubit
   handle (type K) or ``LinkOkMeasure`` after measuring it (type M). The pair is
   named ``(origin, peer, herald sequence)``; goodness is the physical model's
   fidelity at the herald time. Type R: the origin measures, the responder
   keeps. Random bases are drawn per pair at each end from its own set
   (``ctx.rng``). An atomic request keeps its pairs in link memory and sends
   all ``number`` OKs together when the last is made.
5. When ``number`` pairs are made the request ends; if its deadline
   (``max_time_ns`` after the CREATE) comes first both ends send ``LinkError``
   TIMEOUT (an atomic request's held pairs are freed). A success heralded for
   a request that is gone is freed and the peer told (``PeerLost``): if the
   peer had reported that pair, it revokes it with ERR EXPIRE.

Run modes (the same service, the same results in distribution):

* ``per-attempt`` (default, registry name ``single-click-egp``): one
  ``HeraldAttempt`` per attempt, as above;
* ``fast-forward`` (:class:`FastForwardEgp`, registry name
  ``fast-forward-egp``): each ``HeraldAttempt`` asks for a run of up to
  ``max_attempts`` attempts back to back, stopping at the first success, so
  the physical layer may sample the number of attempts to the next success
  instead of simulating each (``qnetstack.physical.backends.heralding_backend``). ``max_attempts``
  covers the attempts that would start before the active request's deadline,
  ``ceil((deadline - now) / attempt_period)``, or ``max_attempts_cap`` when it
  has none. Attempt k of a run starts (k-1) attempt periods after the first,
  exactly when the per-attempt mode would start it, since there each attempt
  starts when the previous herald arrives, one period after its emission.
  Both ends compute the same number: they agree on the active request, its
  deadline and the time. A run is not interrupted by a request that becomes
  ready during it; the choice is made again after the run.

Multiplexing: the physical layer lets a link have several attempts in flight,
each with its own ``attempt_id`` and a reserved memory qubit at each end.
The EGP keeps up to ``max_in_flight`` per link: 1 by default (exactly the
behaviour of one attempt at a time), ``None`` (:class:`MultiplexedEgp`) for
what the memory can spare, ``num_qubits // number of links`` (at least 1);
an explicit number is capped at ``num_qubits``. The link runs at the smaller
of the two ends' numbers: an end above 1 says so once at start
(``PeerMultiplex``); both ends start together, so both know it one delay
later, before any request can start, and an end that says nothing counts as
1. Free slots are filled after every herald, start and deadline, slot by
slot, by the rule of step 2 (``_choose``) with three additions: a request
never has more attempts in flight than pairs still to make (so the number of
pairs gives no surplus); among the requests of the lowest ready priority
value only those that may take a pair now under round robin per pair
(``_fair``) are eligible, the fewest attempts in flight first; when none is
eligible the slot waits (no attempt for a larger priority value). A herald
is credited strictly by its ``attempt_id`` to the request its attempt was
made for. Its success goes to that request if the request got no other pair
while the attempt was in flight (the one pair an attempt in flight may still
give a pre-empted request, LINK-PRIO-1), or if the request may take a pair now
(``_may_take_pair``: it holds the link as a started consecutive request, or no
request of a lower priority value is waiting and round robin lets it);
otherwise it is a surplus, freed at both ends (and ``PeerLost`` sent, as for
a request that ended). With one attempt in flight the first condition always
holds, so nothing changes. An attempt started while the memory is full
(the layer above still holds its pairs) fails with ``no_memory``: with k
attempts in flight on k qubits and pairs freed at once, each success costs
its slot one attempt period, so the gain is about k/(1 + p) rather than k.

Single-click operating point: when the link announces ``alpha_settings`` the
origin picks, of the settings whose fidelity reaches ``min_fidelity``, the one
with the highest success probability (the largest α, since for single-click
F ≈ 1 − α and p ≈ 2αη; Humphreys et al., Nature 558, 268, 2018), sends it in
the ``PeerCreate`` and both ends put it in every ``HeraldAttempt`` of the
request. Without the table only the configured α is known, and a request
above its fidelity is refused (UNSUPP).

Consent: a node serves every peer CREATE until its layer above sends its
first ``LinkRecv`` or ``LinkStopRecv`` (or from the start with
``require_consent=True``); from then on only CREATEs for a (neighbour,
purpose) or (any neighbour, purpose) it consented to.

States of a request (at each end): QUEUED -> ACTIVE -> DONE | TIMED_OUT, and
at the origin QUEUED -> REFUSED when the peer refuses it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qnetstack.entity import Context, EntityError
from qnetstack.link.service import (
    CAP_LINK_ALPHA,
    CAP_LINK_ATOMIC,
    CAP_LINK_K,
    CAP_LINK_M,
    CAP_LINK_PRIORITY,
    CAP_LINK_R,
    CAP_LINK_RECV,
    EntanglementId,
    LinkAck,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    LinkOkMeasure,
    LinkRecv,
    LinkStopRecv,
    RandomBasis,
    RequestType,
)
from qnetstack.physical.service import (
    CAP_DEVICE,
    CAP_HERALDING,
    Basis,
    FreeQubit,
    HeraldAttempt,
    HeraldingLink,
    HeraldResult,
    Measure,
    MeasureResult,
    PhysicalCapabilities,
)

__all__ = [
    "SingleClickEgp",
    "FastForwardEgp",
    "MultiplexedEgp",
    "LinkMode",
    "PeerCreate",
    "PeerRefuse",
    "PeerLost",
    "PeerMultiplex",
]

LinkMode = Literal["per-attempt", "fast-forward"]

_RECENT_OKS = 16  # OKs per link and attempt slot remembered for a late PeerLost (it comes within one delay)


class _PeerMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PeerCreate(_PeerMessage):
    """EGP-to-EGP: a CREATE the other end accepted, with the agreed start."""

    kind: Literal["peer_create"] = "peer_create"
    create_id: int = Field(ge=0)
    origin_node: str
    purpose_id: int
    number: int = Field(ge=1)
    min_fidelity: float = Field(ge=0.0, le=1.0)
    type: RequestType
    basis: Basis
    start_ns: int = Field(ge=0)
    deadline_ns: int | None
    remote_basis: Basis | None = None
    random_basis: RandomBasis = RandomBasis.NONE
    remote_random_basis: RandomBasis = RandomBasis.NONE
    priority: int = 0
    atomic: bool = False
    consecutive: bool = False
    bright_state_population: float | None = Field(None, ge=0.0, le=1.0)


class PeerRefuse(_PeerMessage):
    """Responder-to-origin: the responder will not serve this request."""

    kind: Literal["peer_refuse"] = "peer_refuse"
    create_id: int = Field(ge=0)
    code: LinkErrorCode
    detail: str = ""


class PeerLost(_PeerMessage):
    """A success heralded for a request that had already ended at the sender:
    the sender freed its half of pair ``sequence``."""

    kind: Literal["peer_lost"] = "peer_lost"
    sequence: int = Field(ge=0)


class PeerMultiplex(_PeerMessage):
    """Sent once per link at start when this end would keep more than one
    attempt in flight: the most it will keep (the link uses the smaller of the
    two ends' numbers; an end that never sends one keeps one)."""

    kind: Literal["peer_multiplex"] = "peer_multiplex"
    max_in_flight: int = Field(ge=2)


@dataclass
class _Request:
    create_id: int
    origin: str
    remote: str
    purpose_id: int
    number: int
    min_fidelity: float
    type: RequestType
    basis: Basis
    start_ns: int
    deadline_ns: int | None
    remote_basis: Basis | None = None
    random_basis: RandomBasis = RandomBasis.NONE
    remote_random_basis: RandomBasis = RandomBasis.NONE
    priority: int = 0
    atomic: bool = False
    consecutive: bool = False
    alpha: float | None = None
    made: int = 0
    last_pair: int = -1  # the link's pair count when it last got a pair (round robin)
    last_pair_ns: int = -1  # when it last got a pair
    in_flight: int = 0  # attempts (or runs) in flight for it
    held: list[LinkOkKeep] = field(default_factory=list, repr=False)  # atomic: made, not yet reported
    deadline_timer: int | None = field(default=None, repr=False)
    open: bool = True
    tag: int | None = None  # the caller's tag, at the origin only

    @property
    def order(self) -> tuple[int, str, int]:
        return (self.start_ns, self.origin, self.create_id)

    @property
    def unattempted(self) -> int:
        """Pairs still to make that no attempt in flight is for."""
        return self.number - self.made - self.in_flight


@dataclass(slots=True)
class _Flight:
    """An attempt (or run) in flight: the request it was made for, and that
    request's ``last_pair`` when it was made."""

    request: _Request
    last_pair_at_launch: int


class SingleClickEgp:
    """Reference link-layer entity on the physical heralding service."""

    PROVIDES = frozenset({CAP_LINK_K, CAP_LINK_M, CAP_LINK_R, CAP_LINK_RECV, CAP_LINK_PRIORITY, CAP_LINK_ATOMIC, CAP_LINK_ALPHA})
    REQUIRES = frozenset({CAP_DEVICE, CAP_HERALDING})

    def __init__(
        self,
        ctx: Context,
        mode: LinkMode = "per-attempt",
        max_attempts_cap: int = 100_000,
        require_consent: bool = False,
        max_in_flight: int | None = 1,
    ) -> None:
        if mode not in ("per-attempt", "fast-forward"):
            raise ValueError(f"mode must be 'per-attempt' or 'fast-forward', got {mode!r}")
        if max_attempts_cap < 1:
            raise ValueError(f"max_attempts_cap must be at least 1, got {max_attempts_cap}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1 (or None: what the memory can spare), got {max_in_flight}")
        self.ctx = ctx
        self.mode: LinkMode = mode
        self.max_attempts_cap = max_attempts_cap
        self.max_in_flight = max_in_flight
        self._caps: PhysicalCapabilities | None = None
        self._next_create_id = 0
        self._queues: dict[str, list[_Request]] = {}
        self._active: dict[str, _Request | None] = {}
        # neighbour -> attempt id -> the attempt in flight
        self._outstanding: dict[str, dict[int, _Flight]] = {}
        self._own_limit: dict[str, int] = {}  # attempts in flight this end would keep, per link
        self._peer_limit: dict[str, int] = {}  # ... and the other end (1 until it says more)
        self._next_attempt: dict[str, int] = {}
        self._pairs_made: dict[str, int] = {}  # successes credited per link (round-robin clock)
        self._locked: dict[str, _Request | None] = {}  # a consecutive request that holds the link
        self._recent_oks: dict[str, deque[tuple[int, _Request, EntanglementId]]] = {}
        self._consent_required = require_consent
        self._consents: set[tuple[str | None, int]] = set()

    # ------------------------------------------------------------ entity API

    def start(self) -> None:
        self._caps = self.ctx.device.capabilities()
        spare = max(1, self._caps.num_qubits // max(1, len(self._caps.links)))
        own = spare if self.max_in_flight is None else max(1, min(self.max_in_flight, self._caps.num_qubits))
        for neighbour in self._caps.links:
            self._queues[neighbour] = []
            self._active[neighbour] = None
            self._outstanding[neighbour] = {}
            self._own_limit[neighbour] = own
            self._peer_limit[neighbour] = 1
            self._next_attempt[neighbour] = 0
            self._pairs_made[neighbour] = 0
            self._locked[neighbour] = None
            self._recent_oks[neighbour] = deque(maxlen=_RECENT_OKS * own)
            if own > 1:
                # Both ends start at the same instant, so each knows the other's number one
                # delay later, before any request can start (2 delays + 1 ns after its CREATE).
                self.ctx.send_peer(neighbour, PeerMultiplex(max_in_flight=own))

    @property
    def capabilities(self) -> PhysicalCapabilities:
        if self._caps is None:
            raise EntityError("the link entity was used before start()")
        return self._caps

    def handle_above(self, msg: Any) -> None:
        if isinstance(msg, (LinkRecv, LinkStopRecv)):
            self._consent(msg)
            return
        if not isinstance(msg, LinkCreate):
            raise EntityError(f"link layer got {type(msg).__name__} from above; it serves LinkCreate, LinkRecv and LinkStopRecv")
        create_id = self._next_create_id
        self._next_create_id += 1
        refusal = self._refusal(msg)
        if refusal is not None:
            code, detail = refusal
            self.ctx.send_up(LinkError(create_id=create_id, origin_node=self.ctx.node, code=code, detail=detail, tag=msg.tag))
            return
        self.ctx.send_up(LinkAck(create_id=create_id, remote_node=msg.remote_node, purpose_id=msg.purpose_id, tag=msg.tag))
        now = self.ctx.now_ns
        link = self.capabilities.links[msg.remote_node]
        start_ns = now + 2 * link.classical_delay_ns + 1
        deadline = None if msg.max_time_ns is None else now + msg.max_time_ns
        peer_create = PeerCreate(
            create_id=create_id,
            origin_node=self.ctx.node,
            purpose_id=msg.purpose_id,
            number=msg.number,
            min_fidelity=msg.min_fidelity,
            type=msg.type,
            basis=msg.basis,
            start_ns=start_ns,
            deadline_ns=deadline,
            remote_basis=msg.remote_basis,
            random_basis=msg.random_basis,
            remote_random_basis=msg.remote_random_basis,
            priority=msg.priority,
            atomic=msg.atomic,
            consecutive=msg.consecutive,
            bright_state_population=_operating_point(link, msg.min_fidelity),
        )
        self.ctx.send_peer(msg.remote_node, peer_create)
        request = _request_from(peer_create, remote=msg.remote_node)
        request.tag = msg.tag
        self._enqueue(request)
        self.ctx.trace("link.create", create_id=create_id, remote=msg.remote_node, number=msg.number, type=msg.type.value)

    def handle_peer(self, sender: str, msg: Any) -> None:
        if sender not in self._queues:
            return  # not a neighbour of ours: nothing to do with us
        if isinstance(msg, PeerCreate):
            refusal = self._peer_refusal(sender, msg)
            if refusal is not None:
                code, detail = refusal
                self.ctx.send_peer(sender, PeerRefuse(create_id=msg.create_id, code=code, detail=detail))
                self.ctx.trace("link.refused", remote=sender, create_id=msg.create_id, code=code.value)
                return
            self._enqueue(_request_from(msg, remote=sender))
        elif isinstance(msg, PeerRefuse):
            request = next((r for r in self._queues[sender] if r.origin == self.ctx.node and r.create_id == msg.create_id), None)
            if request is None:
                return  # it ended here already (its deadline came first)
            self._end(request)
            self.ctx.send_up(
                LinkError(create_id=msg.create_id, origin_node=self.ctx.node, code=msg.code, detail=f"{sender}: {msg.detail}", tag=request.tag)
            )
        elif isinstance(msg, PeerMultiplex):
            self._peer_limit[sender] = msg.max_in_flight
        elif isinstance(msg, PeerLost):
            for sequence, request, ent_id in self._recent_oks[sender]:
                if sequence == msg.sequence:
                    self.ctx.send_up(
                        LinkError(
                            create_id=request.create_id,
                            origin_node=request.origin,
                            code=LinkErrorCode.EXPIRE,
                            detail=f"{sender} lost its half of the pair: its request had ended when the herald came",
                            ent_id=ent_id,
                            tag=request.tag,
                        )
                    )
        else:
            raise EntityError(f"link layer got {type(msg).__name__} from peer {sender!r}")

    def handle_below(self, msg: Any) -> None:
        if not isinstance(msg, HeraldResult):
            raise EntityError(f"link layer got {type(msg).__name__} from below; expected HeraldResult")
        neighbour = msg.neighbour
        flights = self._outstanding.get(neighbour)
        flight = None if flights is None else flights.pop(msg.attempt_id, None)
        if flight is None:
            if msg.success and msg.handle is not None:
                self.ctx.device.execute(FreeQubit(handle=msg.handle))
            return
        # The herald belongs to the request its attempt was made for, and to no other.
        request = flight.request
        request.in_flight -= 1
        if msg.success:
            if request.open and self._may_take_pair(request, flight):
                self._pairs_made[neighbour] += 1
                request.last_pair = self._pairs_made[neighbour]
                request.last_pair_ns = self.ctx.now_ns
                self._deliver(request, msg)
            elif msg.handle is not None:
                if request.open:
                    self.ctx.trace("link.surplus", remote=neighbour, create_id=request.create_id, sequence=msg.herald_sequence)
                self.ctx.device.execute(FreeQubit(handle=msg.handle))
                if msg.herald_sequence is not None:
                    self.ctx.send_peer(neighbour, PeerLost(sequence=msg.herald_sequence))
        self._advance(neighbour)

    def handle_timer(self, tag: Hashable) -> None:
        what, neighbour, order = tag  # type: ignore[misc]
        request = self._find(neighbour, order)
        if what == "start":
            self._advance(neighbour)
        elif what == "deadline" and request is not None:
            self._end(request)
            self.ctx.send_up(
                LinkError(
                    create_id=request.create_id,
                    origin_node=request.origin,
                    code=LinkErrorCode.TIMEOUT,
                    detail=f"{request.made} of {request.number} pairs made before the deadline",
                    tag=request.tag,
                )
            )
            self._advance(neighbour)

    # ------------------------------------------------------------ internals

    def _consent(self, msg: LinkRecv | LinkStopRecv) -> None:
        self._consent_required = True
        key = (msg.remote_node, msg.purpose_id)
        if isinstance(msg, LinkRecv):
            self._consents.add(key)
        else:
            self._consents.discard(key)
        self.ctx.trace("link." + msg.kind, remote=msg.remote_node, purpose_id=msg.purpose_id)

    def _refusal(self, msg: LinkCreate) -> tuple[LinkErrorCode, str] | None:
        caps = self.capabilities
        if msg.remote_node == self.ctx.node:
            return LinkErrorCode.CREATE, "remote_node is this node"
        link = caps.links.get(msg.remote_node)
        if link is None:
            return LinkErrorCode.CREATE, f"{msg.remote_node!r} is not a neighbour (neighbours: {sorted(caps.links)})"
        if caps.num_qubits == 0:
            return LinkErrorCode.UNSUPP, "this node has no memory qubit to generate entanglement with"
        best = _best_fidelity(link)
        if msg.min_fidelity > best:
            return LinkErrorCode.UNSUPP, f"min_fidelity {msg.min_fidelity} exceeds what the link gives ({best:.4f})"
        if msg.type is RequestType.K and (msg.random_basis, msg.remote_random_basis) != (RandomBasis.NONE, RandomBasis.NONE):
            return LinkErrorCode.UNSUPP, "random bases apply to type M and R only"
        if msg.type is RequestType.R and (msg.remote_basis is not None or msg.remote_random_basis is not RandomBasis.NONE):
            return LinkErrorCode.UNSUPP, "type R: the responder keeps its qubit, so it has no basis"
        return self._memory_refusal(msg.atomic, msg.type, msg.number, caps.num_qubits)

    def _memory_refusal(self, atomic: bool, kind: RequestType, number: int, num_qubits: int) -> tuple[LinkErrorCode, str] | None:
        if not atomic:
            return None
        if kind is not RequestType.K:
            return LinkErrorCode.UNSUPP, "atomic is served for type K only (M and R pairs are not held)"
        if number > num_qubits:
            return LinkErrorCode.UNSUPP, f"atomic request for {number} pairs, but this node has {num_qubits} memory qubits"
        reserved = sum(r.number for q in self._queues.values() for r in q if r.atomic)
        if number > num_qubits - reserved:
            return LinkErrorCode.NORES, f"atomic request for {number} pairs: {reserved} of {num_qubits} qubits are reserved"
        return None

    def _peer_refusal(self, sender: str, msg: PeerCreate) -> tuple[LinkErrorCode, str] | None:
        if self._consent_required and not ({(sender, msg.purpose_id), (None, msg.purpose_id)} & self._consents):
            return LinkErrorCode.REJECTED, f"no RECV for purpose {msg.purpose_id} from {msg.origin_node!r}"
        num_qubits = self.capabilities.num_qubits
        if num_qubits == 0:
            return LinkErrorCode.UNSUPP, "the responder has no memory qubit"
        return self._memory_refusal(msg.atomic, msg.type, msg.number, num_qubits)

    def _enqueue(self, request: _Request) -> None:
        queue = self._queues[request.remote]
        queue.append(request)
        queue.sort(key=lambda r: r.order)
        now = self.ctx.now_ns
        if request.deadline_ns is not None:
            request.deadline_timer = self.ctx.set_timer(
                max(0, request.deadline_ns - now), ("deadline", request.remote, request.order)
            )
        self.ctx.set_timer(max(0, request.start_ns - now), ("start", request.remote, request.order))

    def _find(self, neighbour: str, order: tuple[int, str, int]) -> _Request | None:
        for request in self._queues.get(neighbour, ()):
            if request.order == order:
                return request
        return None

    def _end(self, request: _Request) -> None:
        request.open = False
        self._queues[request.remote].remove(request)
        if request.deadline_timer is not None:
            self.ctx.cancel_timer(request.deadline_timer)
        if self._active.get(request.remote) is request:
            self._active[request.remote] = None
        if self._locked.get(request.remote) is request:
            self._locked[request.remote] = None
        for ok in request.held:  # an atomic request that did not complete: none of its pairs is reported
            self.ctx.device.execute(FreeQubit(handle=ok.handle))
        request.held.clear()

    def _in_flight_limit(self, neighbour: str) -> int:
        """Attempts kept in flight on this link: the smaller of the two ends' numbers."""
        return min(self._own_limit[neighbour], self._peer_limit[neighbour])

    def _choose(self, neighbour: str) -> _Request | None:
        """The request the next attempt is for; both ends compute the same one.

        A started consecutive request keeps the link; else, among the ready
        requests of the lowest priority value, those that may take a pair now
        (round robin, :meth:`_fair`) and still need one no attempt in flight is
        for; of these the one with the fewest attempts in flight, then the one
        that least recently got a pair, then the agreed order. With one attempt
        in flight at most this is the rule (priority, last pair, order)."""
        locked = self._locked[neighbour]
        if locked is not None:
            return locked if locked.unattempted > 0 else None
        now = self.ctx.now_ns
        queue = self._queues[neighbour]
        if len(queue) == 1:
            # one request on the link (the common case): the rule below picks it if it is ready
            # and needs a pair no attempt is for (round robin among one is always fair)
            chosen = queue[0]
            if chosen.start_ns > now or chosen.unattempted <= 0:
                return None
        else:
            ready = [r for r in queue if r.start_ns <= now]
            if not ready:
                return None
            chosen = self._choose_among(ready)
            if chosen is None:
                return None  # the slot waits: nothing of a larger priority value starts (LINK-PRIO-1)
        if chosen.consecutive:
            self._locked[neighbour] = chosen
        return chosen

    def _choose_among(self, ready: list[_Request]) -> _Request | None:
        """:meth:`_choose` when several requests are ready (None: the slot waits)."""
        first = min(r.priority for r in ready)
        candidates = [r for r in ready if r.priority == first and r.unattempted > 0 and self._fair(r, ready)]
        if not candidates:
            return None
        return min(candidates, key=lambda r: (r.in_flight, r.last_pair, r.order))

    @staticmethod
    def _fair(request: _Request, ready: list[_Request]) -> bool:
        """Round robin per pair (LINK-FAIR-1): ``request`` may take another pair
        only once every other non-consecutive request of its priority that was
        ready by its last pair has got a pair since."""
        return not any(
            other is not request
            and not other.consecutive
            and other.priority == request.priority
            and other.start_ns <= request.last_pair_ns
            and other.last_pair < request.last_pair
            for other in ready
        )

    def _may_take_pair(self, request: _Request, flight: _Flight) -> bool:
        """Whether a success of ``flight`` goes to its (open) request.

        An attempt that was made for a request may give it the pair as long as
        the request got no other pair while the attempt was in flight (so an
        attempt in flight when a request of higher priority became ready still
        gives its request one pair, LINK-PRIO-1); a later success is credited
        only if the request may take a pair now by the rules of :meth:`_choose`.
        A pair refused here is a surplus: freed at both ends, which decide
        alike. With one attempt in flight at most nothing is ever refused."""
        neighbour = request.remote
        locked = self._locked[neighbour]
        if locked is not None and locked is not request:
            return False  # a started consecutive request holds the link (LINK-CONSEC-1)
        if request.last_pair == flight.last_pair_at_launch or locked is request:
            return True
        now = self.ctx.now_ns
        waiting = [r for r in self._queues[neighbour] if r.start_ns <= now and (r.deadline_ns is None or r.deadline_ns > now)]
        if any(r.priority < request.priority for r in waiting):
            return False
        return self._fair(request, waiting)

    def _advance(self, neighbour: str) -> None:
        """Fill the link's free attempt slots with attempts for the chosen requests."""
        flights = self._outstanding[neighbour]
        limit = self._in_flight_limit(neighbour)
        while len(flights) < limit:
            request = self._choose(neighbour)
            self._active[neighbour] = request
            if request is None:
                return
            attempt_id = self._next_attempt[neighbour]
            self._next_attempt[neighbour] += 1
            flights[attempt_id] = _Flight(request, request.last_pair)
            request.in_flight += 1
            self.ctx.send_down(
                HeraldAttempt(
                    neighbour=neighbour,
                    attempt_id=attempt_id,
                    max_attempts=self._run_length(neighbour, request),
                    bright_state_population=request.alpha,
                )
            )

    def _run_length(self, neighbour: str, request: _Request) -> int:
        """How many attempts one HeraldAttempt asks for (see the module docstring)."""
        if self.mode == "per-attempt":
            return 1
        if request.deadline_ns is None:
            return self.max_attempts_cap
        period = self.capabilities.links[neighbour].attempt_period_ns
        remaining = request.deadline_ns - self.ctx.now_ns
        return max(1, min(self.max_attempts_cap, -(-remaining // period)))

    def _basis_here(self, request: _Request) -> Basis:
        """The measurement basis at this end for this pair (drawn anew per pair if random)."""
        at_origin = request.origin == self.ctx.node
        fixed = request.basis if at_origin or request.remote_basis is None else request.remote_basis
        choice = request.random_basis if at_origin else request.remote_random_basis
        if choice is RandomBasis.NONE:
            return fixed
        bases = choice.bases(at_origin)  # CHSH: Z/X at the origin, ZX_PLUS/ZX_MINUS at the responder
        return bases[int(self.ctx.rng.integers(len(bases)))]

    def _deliver(self, request: _Request, herald: HeraldResult) -> None:
        assert herald.handle is not None and herald.bell_state is not None
        peer = request.remote if request.origin == self.ctx.node else self.ctx.node
        sequence = herald.herald_sequence or 0
        # given as fields, the id is validated inside the OK's own validation (one pass, not two)
        ent_id = {"creator": request.origin, "peer": peer, "sequence": sequence}
        goodness = herald.fidelity_estimate if herald.fidelity_estimate is not None else 0.0
        time_ns = herald.herald_time_ns if herald.herald_time_ns is not None else self.ctx.now_ns
        if goodness < request.min_fidelity:
            # Both ends got the same estimate in the herald, so both drop this pair.
            self.ctx.device.execute(FreeQubit(handle=herald.handle))
            self.ctx.trace("link.below_min_fidelity", remote=request.remote, goodness=goodness)
            return
        keep = request.type is RequestType.K or (request.type is RequestType.R and request.origin != self.ctx.node)
        common = dict(
            create_id=request.create_id,
            origin_node=request.origin,
            ent_id=ent_id,
            purpose_id=request.purpose_id,
            remote_node=request.remote,
            bell_state=herald.bell_state,
            goodness=goodness,
        )
        if keep:
            ok: LinkOkKeep | LinkOkMeasure = LinkOkKeep(**common, goodness_time_ns=time_ns, handle=herald.handle)
        else:
            basis = self._basis_here(request)
            result = self.ctx.device.execute(Measure(handle=herald.handle, basis=basis))
            if not isinstance(result, MeasureResult):
                raise EntityError(f"measuring a heralded qubit failed: {result}")
            ok = LinkOkMeasure(**common, outcome=result.outcome, basis=basis)
        request.made += 1
        self.ctx.trace("link.ok", remote=request.remote, create_id=request.create_id, sequence=sequence)
        if request.atomic:
            assert isinstance(ok, LinkOkKeep)
            request.held.append(ok)
            if request.made < request.number:
                return
            oks: list[LinkOkKeep | LinkOkMeasure] = list(request.held)
            request.held.clear()
        else:
            oks = [ok]
        for each in oks:
            self._recent_oks[request.remote].append((each.ent_id.sequence, request, each.ent_id))
            self.ctx.send_up(each)
        if request.made >= request.number:
            self._end(request)


def _request_from(msg: PeerCreate, remote: str) -> _Request:
    return _Request(
        create_id=msg.create_id,
        origin=msg.origin_node,
        remote=remote,
        purpose_id=msg.purpose_id,
        number=msg.number,
        min_fidelity=msg.min_fidelity,
        type=msg.type,
        basis=msg.basis,
        start_ns=msg.start_ns,
        deadline_ns=msg.deadline_ns,
        remote_basis=msg.remote_basis,
        random_basis=msg.random_basis,
        remote_random_basis=msg.remote_random_basis,
        priority=msg.priority,
        atomic=msg.atomic,
        consecutive=msg.consecutive,
        alpha=msg.bright_state_population,
    )


def _best_fidelity(link: HeraldingLink) -> float:
    """The highest fidelity any announced operating point of the link gives."""
    if link.alpha_settings:
        return max(setting.fidelity for setting in link.alpha_settings)
    return link.fidelity


def _operating_point(link: HeraldingLink, min_fidelity: float) -> float | None:
    """The α to run a request at: of the announced settings that reach
    ``min_fidelity``, the fastest (ties: the larger α). None: the configured α."""
    if not link.alpha_settings or link.scheme != "single-click":
        return None
    good = [s for s in link.alpha_settings if s.fidelity >= min_fidelity]
    best = max(good, key=lambda s: (s.success_probability, s.bright_state_population))
    return best.bright_state_population


class FastForwardEgp(SingleClickEgp):
    """The reference EGP in fast-forward mode (registry name ``fast-forward-egp``)."""

    def __init__(
        self, ctx: Context, max_attempts_cap: int = 100_000, require_consent: bool = False, max_in_flight: int | None = 1
    ) -> None:
        super().__init__(
            ctx, mode="fast-forward", max_attempts_cap=max_attempts_cap, require_consent=require_consent, max_in_flight=max_in_flight
        )


class MultiplexedEgp(SingleClickEgp):
    """The reference EGP keeping as many attempts in flight per link as the
    memory can spare (``max_in_flight=None``; see the module docstring)."""

    def __init__(self, ctx: Context, mode: LinkMode = "per-attempt", require_consent: bool = False) -> None:
        super().__init__(ctx, mode=mode, require_consent=require_consent, max_in_flight=None)
