"""Single-click entanglement generation protocol (EGP): the reference link layer.

Theory of operation
-------------------
One ``SingleClickEgp`` runs on every node and serves all its links. It is the
wiring between four parts, each in its own module:

* the messages to the other end of a link (:mod:`qnetstack.link.peer`);
* one session per request at each end (:mod:`qnetstack.link.request`: the
  request's state machine and counters), keyed by ``(origin, create_id)``;
* the scheduling policy that picks the request each attempt is for
  (:mod:`qnetstack.link.scheduler`; by name or object, ``scheduler=``);
* this module: checking CREATEs, per-link attempt slots, crediting heralds,
  building OKs, and routing every message and timer to its request *by key*.
  Whatever names a request (or an attempt) this end does not hold is dropped
  and traced ``unknown_session`` (LINK-SESS-1); a stray qubit is freed.

1. ``LinkCreate`` from above: check it (remote is a neighbour, memory exists,
   some operating point of the link reaches the fidelity, the flags are
   served), answer ``LinkAck`` or ``LinkError`` at once, and tell the peer EGP
   with a ``PeerCreate`` that carries the request and an agreed start time
   ``start_ns = now + 2 × (one-way classical delay) + 1 ns``. The peer learns
   of the request one delay later and either queues it or refuses it with a
   ``PeerRefuse`` (no consent: REJECTED; no memory: UNSUPP or NORES), which
   reaches the origin 1 ns *before* the start, so a refused request never
   takes an attempt slot at one end only.
2. Both ends know every request with ``start_ns <= now``. Before each attempt
   both ask the same scheduling policy which request it is for (default
   ``priority-round-robin``: a consecutive request that already started keeps
   the link; otherwise the lowest ``priority`` value, then the request that
   least recently got a pair, then ``(start_ns, origin, create_id)``). The
   inputs change only on events both ends see at the same instant (heralds,
   agreed starts and deadlines), so both choose alike without talking, as
   long as both ends run the same policy.
3. While a request is chosen the EGP asks its physical layer for an attempt
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
slot, by the policy; the EGP never gives a request more attempts in flight
than pairs still to make. A herald is credited strictly by its ``attempt_id``
to the request its attempt was made for; its success goes to that request if
the policy's ``may_take_pair`` agrees, otherwise it is a surplus, freed at
both ends (and ``PeerLost`` sent, as for a request that ended). An attempt
started while the memory is full (the layer above still holds its pairs)
fails with ``no_memory``: with k attempts in flight on k qubits and pairs
freed at once, each success costs its slot one attempt period, so the gain
is about k/(1 + p) rather than k.

Single-click operating point: when the link announces ``alpha_settings`` the
origin picks, of the settings whose fidelity reaches ``min_fidelity``, the one
with the highest success probability (the largest α, since for single-click
F ≈ 1 − α and p ≈ 2αη; Humphreys et al., Nature 558, 268, 2018), sends it in
the ``PeerCreate`` and both ends put it in every ``HeraldAttempt`` of the
request. Without the table only the configured α is known, and a request
above its fidelity is refused (UNSUPP).

Cancel (``LinkCancel``, capability ``link:cancel``): the origin picks a stop
instant ``stop_ns = now + (one-way classical delay) + 1 ns`` and sends it in
a ``PeerCancel``, which reaches the responder 1 ns before it. Both ends keep
the request as it was until ``stop_ns`` (its state and counters are inputs of
the scheduling policy, so they must not change at one end only), then end it
with ``LinkError`` CANCELLED. The stop is applied before anything else that
happens at that instant (a herald, another request's start or deadline), by a
check that does not depend on the order of same-instant events, so both ends
give the request its last attempt at the same instant. A herald that lands at
or after ``stop_ns`` finds the request gone and is freed at both ends, like a
herald for a request that timed out; a fast-forward run in flight at the stop
is not cut short (the physical layer cannot), but its success is freed too.

Lost classical messages (``reliable=True``, scenario ``link: {reliable: true}``):
the ends agree on instants by messages (a start two delays after the CREATE, a
refusal before it, a stop one delay after a cancel), so a lost ``PeerCreate``
leaves the origin attempting alone, every attempt incomplete at the station, and
a request without a deadline never ends. With the switch on every peer message
goes over the reliable channel (:mod:`qnetstack.entity.reliable`: numbered,
acknowledged, sent again after a round trip and 1 µs, handed on once and in
order), and every agreed instant is put as far off as the channel may take to
deliver: the one-way delay ``D`` becomes the channel's worst delay ``(max_tries
- 1) × (2D + 1 µs) + D``. A message the channel delivers at all therefore comes in
time, and both ends stay in step; the price is that a request starts that much
later (0.64 ms on a 2 km link rather than 20 µs). Only a message the
channel gives up on (``link.reliable_gave_up``: at 20 % loss each way, 16
sendings all unanswered, below 1e-7 a message) can still leave the ends apart.
A ``PeerCreate`` that reaches the responder after its start anyway (it was sent
to an incarnation of the node that has crashed since, or given up on) is refused
(ERR OTHER) rather than attempted alone. The heralds are not peer messages: the
physical layer sends them, the scenario's classical faults never touch them, and
both ends hear each one.

Consent: a node serves every peer CREATE until its layer above sends its
first ``LinkRecv`` or ``LinkStopRecv`` (or from the start with
``require_consent=True``); from then on only CREATEs for a (neighbour,
purpose) or (any neighbour, purpose) it consented to.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from qnetstack.entity import Context, EntityError, Wait
from qnetstack.entity.machine import drop_unknown, transition_trace
from qnetstack.entity.reliable import RETRANSMIT, Ack, ReliableContext, Sequenced
from qnetstack.link.peer import CREATE_TERMS, PeerCancel, PeerCreate, PeerLost, PeerMultiplex, PeerRefuse
from qnetstack.link.request import LinkRequest, RequestEvent, RequestKey, RequestState
from qnetstack.link.scheduler import DEFAULT_POLICY, SchedulingPolicy, resolve_policy
from qnetstack.link.service import (
    CAP_LINK_ALPHA,
    CAP_LINK_ATOMIC,
    CAP_LINK_CANCEL,
    CAP_LINK_K,
    CAP_LINK_M,
    CAP_LINK_PRIORITY,
    CAP_LINK_R,
    CAP_LINK_RECV,
    EntanglementId,
    LinkAck,
    LinkCancel,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    LinkOkMeasure,
    LinkRecv,
    LinkState,
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
    HeraldingLinkState,
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
    "PeerCancel",
]

LinkMode = Literal["per-attempt", "fast-forward"]

# module constants: an enum's class attribute is slow to look up, and these are read per attempt
_QUEUED, _ACTIVE = RequestState.QUEUED, RequestState.ACTIVE
_FIRST_ATTEMPT = RequestEvent.FIRST_ATTEMPT
_K, _R = RequestType.K, RequestType.R

_RECENT_OKS = 16  # OKs per link and attempt slot remembered for a late PeerLost (it comes within one delay)


@dataclass(slots=True)
class _Flight:
    """An attempt (or run) in flight: the key of the request it was made for,
    and that request's ``last_pair`` when it was made."""

    key: RequestKey
    last_pair_at_launch: int


@dataclass(slots=True)
class _Link:
    """What this end keeps per neighbour."""

    neighbour: str
    own_limit: int  # attempts in flight this end would keep
    requests: list[LinkRequest] = field(default_factory=list)  # open, in the agreed order
    flights: dict[int, _Flight] = field(default_factory=dict)  # attempt id -> the attempt in flight
    peer_limit: int = 1  # attempts in flight the other end would keep (1 until it says more)
    next_attempt: int = 0
    pairs_made: int = 0  # successes credited (the round-robin clock)
    recent_oks: deque[tuple[int, LinkRequest, EntanglementId]] = field(default_factory=deque)
    stopping: int = 0  # open requests withdrawn by their origin, waiting for their stop instant


class SingleClickEgp:
    """Reference link-layer entity on the physical heralding service."""

    PROVIDES = frozenset(
        {CAP_LINK_K, CAP_LINK_M, CAP_LINK_R, CAP_LINK_RECV, CAP_LINK_PRIORITY, CAP_LINK_ATOMIC, CAP_LINK_ALPHA, CAP_LINK_CANCEL}
    )
    REQUIRES = frozenset({CAP_DEVICE, CAP_HERALDING})

    def __init__(
        self,
        ctx: Context,
        mode: LinkMode = "per-attempt",
        max_attempts_cap: int = 100_000,
        require_consent: bool = False,
        max_in_flight: int | None = 1,
        scheduler: str | SchedulingPolicy | type[SchedulingPolicy] = DEFAULT_POLICY,
        reliable: bool = False,
    ) -> None:
        if mode not in ("per-attempt", "fast-forward"):
            raise ValueError(f"mode must be 'per-attempt' or 'fast-forward', got {mode!r}")
        if max_attempts_cap < 1:
            raise ValueError(f"max_attempts_cap must be at least 1, got {max_attempts_cap}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1 (or None: what the memory can spare), got {max_in_flight}")
        # reliable: peer messages numbered, acknowledged and sent again until they arrive, and
        # every agreed instant as far off as that may take (see "Lost classical messages" above)
        self._reliable = ReliableContext(ctx, self._delay_ns, "link") if reliable else None
        self.ctx: Context = ctx if self._reliable is None else self._reliable
        self.mode: LinkMode = mode
        self.max_attempts_cap = max_attempts_cap
        self.max_in_flight = max_in_flight
        self.scheduler = resolve_policy(scheduler)
        self._caps: PhysicalCapabilities | None = None
        self._next_create_id = 0
        self._links: dict[str, _Link] = {}
        self._requests: dict[RequestKey, LinkRequest] = {}  # every open request, by (origin, create_id)
        self._consent_required = require_consent
        self._consents: set[tuple[str | None, int]] = set()

    # ------------------------------------------------------------ entity API

    def start(self) -> None:
        self._caps = self.ctx.device.capabilities()
        spare = max(1, self._caps.num_qubits // max(1, len(self._caps.links)))
        own = spare if self.max_in_flight is None else max(1, min(self.max_in_flight, self._caps.num_qubits))
        for neighbour, side in self._caps.links.items():
            remembered = _RECENT_OKS
            if self._reliable is not None:
                # a PeerLost may come as late as the channel's worst delay: remember every OK since
                remembered += -(-self._lead_ns(neighbour) // side.attempt_period_ns)
            self._links[neighbour] = _Link(neighbour, own, recent_oks=deque(maxlen=remembered * own))
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
        if isinstance(msg, LinkCancel):
            self._cancel(msg)
            return
        if not isinstance(msg, LinkCreate):
            raise EntityError(
                f"link layer got {type(msg).__name__} from above; it serves LinkCreate, LinkRecv, LinkStopRecv and LinkCancel"
            )
        create_id = self._next_create_id
        self._next_create_id += 1
        refusal = self._refusal(msg)
        if refusal is not None:
            code, detail = refusal
            self.ctx.send_up(LinkError(create_id=create_id, origin_node=self.ctx.node, code=code, detail=detail, tag=msg.tag))
            return
        self.ctx.send_up(
            LinkAck.trusted(
                create_id=create_id,
                remote_node=msg.remote_node,
                purpose_id=msg.purpose_id,
                tag=msg.tag,
                cancellable=CAP_LINK_CANCEL in self.PROVIDES,
            )
        )
        now = self.ctx.now_ns
        link = self.capabilities.links[msg.remote_node]
        start_ns = now + 2 * self._lead_ns(msg.remote_node) + 1
        deadline = None if msg.max_time_ns is None else now + msg.max_time_ns
        peer_create = PeerCreate.trusted(
            create_id=create_id,
            origin_node=self.ctx.node,
            start_ns=start_ns,
            deadline_ns=deadline,
            bright_state_population=_operating_point(link, msg.min_fidelity),
            **{term: getattr(msg, term) for term in CREATE_TERMS},
        )
        self.ctx.send_peer(msg.remote_node, peer_create)
        self._open(LinkRequest.from_peer_create(peer_create, remote=msg.remote_node, tag=msg.tag, trace=transition_trace(self.ctx)))
        self.ctx.trace("link.create", create_id=create_id, remote=msg.remote_node, number=msg.number, type=msg.type.value)

    def _delay_ns(self, neighbour: str) -> float:
        """The one-way classical delay to ``neighbour``, as the physical layer announced it."""
        return float(self.capabilities.links[neighbour].classical_delay_ns)

    def _lead_ns(self, neighbour: str) -> int:
        """The longest a message to ``neighbour`` takes: the classical delay, or with the
        reliable channel the latest it delivers a message at all."""
        if self._reliable is None:
            return self.capabilities.links[neighbour].classical_delay_ns
        return self._reliable.worst_delay_ns(neighbour)

    def handle_peer(self, sender: str, msg: Any) -> None:
        if self._reliable is not None and isinstance(msg, (Sequenced, Ack)):
            for inner in self._reliable.received(sender, msg):
                self._handle_peer(sender, inner)
            return
        self._handle_peer(sender, msg)

    def _handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, PeerCreate):
            key: Hashable = (msg.origin_node, msg.create_id)
            if sender not in self._links or key in self._requests:
                drop_unknown(self.ctx.trace, msg.kind, key, sender=sender)  # no link to serve it on, or a replay
                return
            refusal = self._peer_refusal(sender, msg)
            if self._reliable is not None and msg.start_ns <= self.ctx.now_ns:
                # over the channel every PeerCreate its origin still holds comes before its start
                # (see "Lost classical messages" above): this one was sent to an incarnation of this
                # node that crashed since, or given up on; opened, it would be attempted here alone
                refusal = LinkErrorCode.OTHER, f"the CREATE reached {self.ctx.node} after its agreed start"
            if refusal is not None:
                code, detail = refusal
                self.ctx.send_peer(sender, PeerRefuse(create_id=msg.create_id, code=code, detail=detail))
                self.ctx.trace("link.refused", remote=sender, create_id=msg.create_id, code=code.value)
                return
            self._open(LinkRequest.from_peer_create(msg, remote=sender, trace=transition_trace(self.ctx)))
        elif isinstance(msg, PeerRefuse):
            key = (self.ctx.node, msg.create_id)
            request = self._requests.get(key)
            if request is None or request.remote != sender:
                drop_unknown(self.ctx.trace, msg.kind, key, sender=sender)  # e.g. its deadline came first
                return
            self._end(request, RequestEvent.PEER_REFUSAL)
            self._error_up(request, msg.code, f"{sender}: {msg.detail}")
        elif isinstance(msg, PeerLost):
            link = self._links.get(sender)
            reported = [] if link is None else [(r, e) for s, r, e in link.recent_oks if s == msg.sequence]
            if not reported:
                # this end never reported the pair (it freed its half too) or has forgotten it
                drop_unknown(self.ctx.trace, msg.kind, (sender, msg.sequence), sender=sender)
                return
            for request, ent_id in reported:
                detail = f"{sender} lost its half of the pair: its request had ended when the herald came"
                self._error_up(request, LinkErrorCode.EXPIRE, detail, ent_id=ent_id)
        elif isinstance(msg, PeerMultiplex):
            link = self._links.get(sender)
            if link is None:
                drop_unknown(self.ctx.trace, msg.kind, sender, sender=sender)
                return
            link.peer_limit = msg.max_in_flight
        elif isinstance(msg, PeerCancel):
            key = (sender, msg.create_id)
            request = self._requests.get(key)
            if request is None or request.remote != sender or request.stop_ns is not None:
                drop_unknown(self.ctx.trace, msg.kind, key, sender=sender)  # it ended here first (its last pair, its deadline)
                return
            self._stop_at(request, msg.stop_ns)
        else:
            raise EntityError(f"link layer got {type(msg).__name__} from peer {sender!r}")

    def handle_below(self, msg: Any) -> None:
        if not isinstance(msg, HeraldResult):
            if isinstance(msg, HeraldingLinkState):
                self._link_state(msg)
                return
            raise EntityError(f"link layer got {type(msg).__name__} from below; expected HeraldResult")
        link = self._links.get(msg.neighbour)
        flight = None if link is None else link.flights.pop(msg.attempt_id, None)
        if flight is None:
            if msg.success and msg.handle is not None:
                self.ctx.device.execute(FreeQubit(handle=msg.handle))  # not ours to keep: no request wants it
            drop_unknown(self.ctx.trace, "herald", (msg.neighbour, msg.attempt_id))
            return
        assert link is not None
        if link.stopping:
            self._stop_due(link)  # a withdrawn request ends before a herald at its stop instant is credited
        # The herald belongs to the request its attempt was made for, and to no other.
        request = self._requests.get(flight.key)
        if request is not None:
            request.in_flight -= 1
        if msg.link_down:
            self._link_down(link)
            return
        if msg.success:
            now = self.ctx.now_ns
            if request is not None and self.scheduler.may_take_pair(request, flight.last_pair_at_launch, link.requests, now):
                link.pairs_made += 1
                request.last_pair = link.pairs_made
                request.last_pair_ns = now
                self._deliver(request, msg)
            elif msg.handle is not None:
                # the request ended while its attempt was in flight, or the policy refuses the pair
                if request is not None:
                    self.ctx.trace("link.surplus", remote=link.neighbour, create_id=request.create_id, sequence=msg.herald_sequence)
                self.ctx.device.execute(FreeQubit(handle=msg.handle))
                if msg.herald_sequence is not None:
                    self.ctx.send_peer(link.neighbour, PeerLost(sequence=msg.herald_sequence))
        self._advance(link)

    def handle_timer(self, tag: Hashable) -> None:
        if self._reliable is not None and isinstance(tag, tuple) and tag[:1] == (RETRANSMIT,):
            self._reliable.timer(cast("tuple[str, str, int]", tag))
            return
        what, key = cast(tuple[str, tuple[str, int]], tag)  # this entity's own timers: (kind, request key)
        request = self._requests.get(key)
        if request is None:  # it ended before its start time came (refused, or a deadline before it)
            drop_unknown(self.ctx.trace, f"{what}_timer", key)
            return
        link = self._links[request.remote]
        if link.stopping:
            self._stop_due(link)  # whatever the order of this instant's events, as at the other end
            if request.key not in self._requests:  # withdrawn, and its stop is now (a "stop" timer always ends here)
                self._advance(link)
                return
        if what == "start":
            self._advance(link)
        elif what == "deadline":
            request.deadline_timer = None  # it fired: nothing to cancel
            self._end(request, RequestEvent.DEADLINE)
            self._error_up(request, LinkErrorCode.TIMEOUT, f"{request.made} of {request.number} pairs made before the deadline")
            self._advance(link)

    def _link_state(self, msg: HeraldingLinkState) -> None:
        """The physical layer saw the fibre to a neighbour go (or come back): end the
        link's requests at once (ERR DOWN) and tell the layer above, requests or not."""
        link = self._links.get(msg.neighbour)
        if link is None:
            drop_unknown(self.ctx.trace, msg.kind, msg.neighbour)
            return
        if msg.up:
            # The two ends number their attempts alike to stay in step, but one of them may have
            # restarted (its count back at 0) while the other went on. Both hear of the repair at
            # the same instant, so both start again from a number of that instant that neither can
            # have used: fewer than 2**20 attempts a nanosecond were ever made on a link.
            link.next_attempt = (self.ctx.now_ns + 1) << 20
            if link.own_limit > 1:
                # a restarted neighbour has forgotten this end's number (as at start: known one
                # delay later, before any new request can start)
                self.ctx.send_peer(link.neighbour, PeerMultiplex(max_in_flight=link.own_limit))
        else:
            self._link_down(link)
        self.ctx.send_up(LinkState(remote_node=msg.neighbour, up=msg.up))

    def _link_down(self, link: _Link) -> None:
        """The physical layer says the link is cut: every request on it ends with ERR DOWN.

        Both ends attempt in step, so both hear it at the same instant and end the same
        requests; a request is never retried on a link that cannot herald. Attempts still
        in flight for other requests land as usual (their heralds find no request)."""
        for request in list(link.requests):
            self._end(request, RequestEvent.LINK_DOWN)
            self._error_up(
                request, LinkErrorCode.DOWN, f"the link to {link.neighbour} is down: {request.made} of {request.number} pairs made"
            )
        self.ctx.trace("link.down", remote=link.neighbour)

    def _cancel(self, msg: LinkCancel) -> None:
        """The layer above withdraws requests of this node: agree on a stop instant with the responder."""
        me = self.ctx.node
        if msg.create_id is not None:
            named = self._requests.get((me, msg.create_id))
            requests = [] if named is None else [named]
        else:
            requests = [r for r in self._requests.values() if r.origin == me and r.tag == msg.tag]
        requests = [r for r in requests if r.stop_ns is None]  # a second cancel changes nothing
        if not requests:
            drop_unknown(self.ctx.trace, msg.kind, (me, msg.create_id), tag=msg.tag)  # ended, never opened, or not ours
            return
        for request in requests:
            # the responder hears of it one delay later, 1 ns before the stop (as a refusal comes before the start)
            stop_ns = self.ctx.now_ns + self._lead_ns(request.remote) + 1
            self.ctx.send_peer(request.remote, PeerCancel(create_id=request.create_id, stop_ns=stop_ns))
            self._stop_at(request, stop_ns)
            self.ctx.trace("link.cancel", remote=request.remote, create_id=request.create_id, stop_ns=stop_ns)

    def _stop_at(self, request: LinkRequest, stop_ns: int) -> None:
        request.stop_ns = stop_ns
        self._links[request.remote].stopping += 1
        request.stop_timer = self.ctx.set_timer(max(0, stop_ns - self.ctx.now_ns), ("stop", request.key))

    def _stop_due(self, link: _Link) -> None:
        """End the link's withdrawn requests whose stop instant has come (ERR CANCELLED)."""
        now = self.ctx.now_ns
        for request in [r for r in link.requests if r.stop_ns is not None and r.stop_ns <= now]:
            self._end(request, RequestEvent.CANCEL)
            self._error_up(
                request, LinkErrorCode.CANCELLED, f"withdrawn by {request.origin}: {request.made} of {request.number} pairs made"
            )

    # ------------------------------------------------------------ introspection

    def describe_waits(self) -> list[Wait]:
        """What each open request waits for at this end (``qnetstack.entity``'s
        optional ``describe_waits``): computed when asked, changes nothing."""
        now = self.ctx.now_ns
        waits = []
        for link in self._links.values():
            busy = sorted({f"{flight.key[0]}#{flight.key[1]}" for flight in link.flights.values()})
            for request in link.requests:
                wait = request.describe_wait(now)
                if request.ready(now) and not request.in_flight and busy and request.state is not RequestState.HOLDING:
                    wait = wait._replace(waiting_for=f"{wait.waiting_for}; the link's attempts are for {', '.join(busy)}")
                waits.append(wait)
        return waits

    # ------------------------------------------------------------ internals

    def _error_up(self, request: LinkRequest, code: LinkErrorCode, detail: str, ent_id: EntanglementId | None = None) -> None:
        """ERR for ``request`` to the layer above: the request ended, or (EXPIRE) its pair ``ent_id`` is revoked."""
        self.ctx.send_up(
            LinkError(create_id=request.create_id, origin_node=request.origin, code=code, detail=detail, ent_id=ent_id, tag=request.tag)
        )

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
        reserved = sum(r.number for r in self._requests.values() if r.atomic)
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

    def _open(self, request: LinkRequest) -> None:
        """Hold a new request: on its link in the agreed order, with its timers."""
        self._requests[request.key] = request
        queue = self._links[request.remote].requests
        queue.append(request)
        queue.sort(key=lambda r: r.order)
        now = self.ctx.now_ns
        if request.deadline_ns is not None:
            request.deadline_timer = self.ctx.set_timer(max(0, request.deadline_ns - now), ("deadline", request.key))
        self.ctx.set_timer(max(0, request.start_ns - now), ("start", request.key))

    def _end(self, request: LinkRequest, event: RequestEvent) -> None:
        """The request ends with ``event``; this end forgets it."""
        request.fire(event)
        del self._requests[request.key]
        self._links[request.remote].requests.remove(request)
        if request.deadline_timer is not None:
            self.ctx.cancel_timer(request.deadline_timer)
            request.deadline_timer = None
        if request.stop_ns is not None:
            self._links[request.remote].stopping -= 1
            if request.stop_timer is not None:
                self.ctx.cancel_timer(request.stop_timer)
                request.stop_timer = None
        for ok in request.held:  # an atomic request that did not complete: none of its pairs is reported
            self.ctx.device.execute(FreeQubit(handle=ok.handle))
        request.held.clear()

    def _advance(self, link: _Link) -> None:
        """Fill the link's free attempt slots with attempts for the requests the policy chooses."""
        flights = link.flights
        limit = self._in_flight_limit(link)
        choose = self.scheduler.choose
        while len(flights) < limit:
            request = choose(link.requests, self.ctx.now_ns)
            if request is None:
                return
            if request.unattempted <= 0:
                raise EntityError(
                    f"scheduling policy {self.scheduler!r} chose {request!r}, which has an attempt in flight for every pair it still needs"
                )
            if request.state is _QUEUED:
                request.fire(_FIRST_ATTEMPT)
            attempt_id = link.next_attempt
            link.next_attempt += 1
            flights[attempt_id] = _Flight(request.key, request.last_pair)
            request.in_flight += 1
            self.ctx.send_down(
                HeraldAttempt.trusted(
                    neighbour=link.neighbour,
                    attempt_id=attempt_id,
                    max_attempts=self._run_length(link.neighbour, request),
                    bright_state_population=request.alpha,
                )
            )

    @staticmethod
    def _in_flight_limit(link: _Link) -> int:
        """Attempts kept in flight on this link: the smaller of the two ends' numbers."""
        return min(link.own_limit, link.peer_limit)

    def _run_length(self, neighbour: str, request: LinkRequest) -> int:
        """How many attempts one HeraldAttempt asks for (see the module docstring)."""
        if self.mode == "per-attempt":
            return 1
        if request.deadline_ns is None:
            return self.max_attempts_cap
        period = self.capabilities.links[neighbour].attempt_period_ns
        remaining = request.deadline_ns - self.ctx.now_ns
        return max(1, min(self.max_attempts_cap, -(-remaining // period)))

    def _basis_here(self, request: LinkRequest) -> Basis:
        """The measurement basis at this end for this pair (drawn anew per pair if random)."""
        at_origin = request.origin == self.ctx.node
        fixed = request.basis if at_origin or request.remote_basis is None else request.remote_basis
        choice = request.random_basis if at_origin else request.remote_random_basis
        if choice is RandomBasis.NONE:
            return fixed
        bases = choice.bases(at_origin)  # CHSH: Z/X at the origin, ZX_PLUS/ZX_MINUS at the responder
        return bases[int(self.ctx.rng.integers(len(bases)))]

    def _deliver(self, request: LinkRequest, herald: HeraldResult) -> None:
        assert herald.handle is not None and herald.bell_state is not None
        peer = request.remote if request.origin == self.ctx.node else self.ctx.node
        sequence = herald.herald_sequence or 0
        ent_id = EntanglementId.trusted(creator=request.origin, peer=peer, sequence=sequence)
        goodness = herald.fidelity_estimate if herald.fidelity_estimate is not None else 0.0
        time_ns = herald.herald_time_ns if herald.herald_time_ns is not None else self.ctx.now_ns
        if goodness < request.min_fidelity:
            # Both ends got the same estimate in the herald, so both drop this pair.
            self.ctx.device.execute(FreeQubit(handle=herald.handle))
            self.ctx.trace("link.below_min_fidelity", remote=request.remote, goodness=goodness)
            return
        keep = request.type is _K or (request.type is _R and request.origin != self.ctx.node)
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
            ok: LinkOkKeep | LinkOkMeasure = LinkOkKeep.trusted(
                **common, goodness_time_ns=time_ns, handle=herald.handle, bell_diagonal=herald.bell_diagonal
            )
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
                if request.state is _ACTIVE:
                    request.fire(RequestEvent.PAIR_HELD)
                return
            oks: list[LinkOkKeep | LinkOkMeasure] = list(request.held)
            request.held.clear()
        else:
            oks = [ok]
        recent_oks = self._links[request.remote].recent_oks
        for each in oks:
            recent_oks.append((each.ent_id.sequence, request, each.ent_id))
            self.ctx.send_up(each)
        if request.made >= request.number:
            self._end(request, RequestEvent.LAST_PAIR)


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
        self,
        ctx: Context,
        max_attempts_cap: int = 100_000,
        require_consent: bool = False,
        max_in_flight: int | None = 1,
        scheduler: str | SchedulingPolicy | type[SchedulingPolicy] = DEFAULT_POLICY,
        reliable: bool = False,
    ) -> None:
        super().__init__(
            ctx,
            mode="fast-forward",
            max_attempts_cap=max_attempts_cap,
            require_consent=require_consent,
            max_in_flight=max_in_flight,
            scheduler=scheduler,
            reliable=reliable,
        )


class MultiplexedEgp(SingleClickEgp):
    """The reference EGP keeping as many attempts in flight per link as the
    memory can spare (``max_in_flight=None``; see the module docstring)."""

    def __init__(
        self,
        ctx: Context,
        mode: LinkMode = "per-attempt",
        require_consent: bool = False,
        scheduler: str | SchedulingPolicy | type[SchedulingPolicy] = DEFAULT_POLICY,
        reliable: bool = False,
    ) -> None:
        super().__init__(ctx, mode=mode, require_consent=require_consent, max_in_flight=None, scheduler=scheduler, reliable=reliable)
