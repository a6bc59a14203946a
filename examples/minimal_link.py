"""A link layer written from specs/link.md alone: the worked example of docs/conformance.md.

It is deliberately small and makes different choices from the reference
``qnetstack.link.egp.SingleClickEgp``:

* it offers type K only (``PROVIDES`` has no ``link:M``), so the suite marks the
  type-M clause "not applicable" instead of failing it;
* it serves the request with the **earliest deadline first** (requests without
  a deadline last), where the reference serves in arrival order.

How the two ends stay in step (the spec leaves this to the implementation):
the origin accepts a CREATE and tells the responder, in a ``Announce`` message,
the request and a start time two one-way delays ahead, so the responder knows
it before it starts. From then on both ends hold the same set of started
requests, sort them the same way, and make one attempt at a time, starting the
next when the herald of the last one arrives (it reaches both ends at the
same instant). They therefore pick the same request for every attempt without
talking again.

Check it:  ``qnetstack conform link minimal_link:MinimalEgp`` (from ``examples/``)
Use it:    ``qnetstack run teleport-chain.yaml --impl link=minimal_link:MinimalEgp``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qnetstack.entity import Context, EntityError
from qnetstack.link.service import (
    CAP_LINK_K,
    EntanglementId,
    LinkAck,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    RequestType,
)
from qnetstack.physical.service import CAP_DEVICE, CAP_HERALDING, FreeQubit, HeraldAttempt, HeraldResult

NO_DEADLINE = 2**63


@dataclass(frozen=True)
class Announce:
    """Origin -> responder: a request it accepted, and when both ends start on it."""

    origin: str
    create_id: int
    purpose_id: int
    number: int
    min_fidelity: float
    start_ns: int
    deadline_ns: int  # NO_DEADLINE when the CREATE had no max_time_ns


@dataclass
class Request:
    announce: Announce
    remote: str
    made: int = 0

    @property
    def order(self) -> tuple[int, int, str, int]:
        a = self.announce
        return (a.deadline_ns, a.start_ns, a.origin, a.create_id)


class MinimalEgp:
    PROVIDES = frozenset({CAP_LINK_K})
    REQUIRES = frozenset({CAP_DEVICE, CAP_HERALDING})

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.links: dict[str, Any] = {}  # neighbour -> HeraldingLink
        self.num_qubits = 0
        self.requests: dict[str, list[Request]] = {}  # neighbour -> open requests
        self.in_flight: dict[str, int | None] = {}  # neighbour -> outstanding attempt id
        self.attempts: dict[str, int] = {}  # neighbour -> attempts made
        self.next_create_id = 0

    def start(self) -> None:
        caps = self.ctx.device.capabilities()
        self.links = dict(caps.links)
        self.num_qubits = caps.num_qubits
        for neighbour in self.links:
            self.requests[neighbour] = []
            self.in_flight[neighbour] = None
            self.attempts[neighbour] = 0

    # -- from the layer above -------------------------------------------------

    def handle_above(self, msg: Any) -> None:
        if not isinstance(msg, LinkCreate):
            raise EntityError(f"MinimalEgp serves LinkCreate, got {type(msg).__name__}")
        create_id = self.next_create_id
        self.next_create_id += 1
        problem = self._refusal(msg)
        if problem is not None:
            code, detail = problem
            self.ctx.send_up(LinkError(create_id=create_id, origin_node=self.ctx.node, code=code, detail=detail))
            return
        self.ctx.send_up(LinkAck(create_id=create_id, remote_node=msg.remote_node, purpose_id=msg.purpose_id))
        now = self.ctx.now_ns
        announce = Announce(
            origin=self.ctx.node,
            create_id=create_id,
            purpose_id=msg.purpose_id,
            number=msg.number,
            min_fidelity=msg.min_fidelity,
            start_ns=now + 2 * self.links[msg.remote_node].classical_delay_ns,
            deadline_ns=NO_DEADLINE if msg.max_time_ns is None else now + msg.max_time_ns,
        )
        self.ctx.send_peer(msg.remote_node, announce)
        self._add(Request(announce, msg.remote_node))

    def _refusal(self, msg: LinkCreate) -> tuple[LinkErrorCode, str] | None:
        if msg.remote_node not in self.links:
            return LinkErrorCode.CREATE, f"{msg.remote_node!r} is not a neighbour of {self.ctx.node!r}"
        if msg.type is not RequestType.K:
            return LinkErrorCode.UNSUPP, "MinimalEgp makes type-K pairs only"
        if msg.min_fidelity > self.links[msg.remote_node].fidelity:
            return LinkErrorCode.UNSUPP, "min_fidelity is above what the link can give"
        if self.num_qubits == 0:
            return LinkErrorCode.UNSUPP, "no memory qubit"
        return None

    # -- from the other end ---------------------------------------------------

    def handle_peer(self, sender: str, msg: Any) -> None:
        if not isinstance(msg, Announce) or sender not in self.links:
            raise EntityError(f"MinimalEgp: unexpected {type(msg).__name__} from {sender!r}")
        self._add(Request(msg, sender))

    def _add(self, request: Request) -> None:
        a = request.announce
        self.requests[request.remote].append(request)
        now = self.ctx.now_ns
        self.ctx.set_timer(a.start_ns - now, ("start", request.remote))
        if a.deadline_ns != NO_DEADLINE:
            self.ctx.set_timer(max(0, a.deadline_ns - now), ("deadline", request.remote, a.origin, a.create_id))

    # -- timers ---------------------------------------------------------------

    def handle_timer(self, tag: Any) -> None:
        if tag[0] == "start":
            self._attempt(tag[1])
            return
        _, neighbour, origin, create_id = tag
        for request in self.requests[neighbour]:
            if (request.announce.origin, request.announce.create_id) == (origin, create_id):
                self.requests[neighbour].remove(request)
                made, number = request.made, request.announce.number
                self.ctx.send_up(
                    LinkError(
                        create_id=create_id,
                        origin_node=origin,
                        code=LinkErrorCode.TIMEOUT,
                        detail=f"{made} of {number} pairs made in time",
                    )
                )
                break

    # -- attempts and heralds -------------------------------------------------

    def _current(self, neighbour: str) -> Request | None:
        """The started request with the earliest deadline: the same at both ends."""
        now = self.ctx.now_ns
        started = [r for r in self.requests[neighbour] if r.announce.start_ns <= now]
        return min(started, key=lambda r: r.order, default=None)

    def _attempt(self, neighbour: str) -> None:
        if self.in_flight[neighbour] is not None or self._current(neighbour) is None:
            return
        attempt_id = self.attempts[neighbour]
        self.attempts[neighbour] += 1
        self.in_flight[neighbour] = attempt_id
        self.ctx.send_down(HeraldAttempt(neighbour=neighbour, attempt_id=attempt_id))

    def handle_below(self, msg: Any) -> None:
        if not isinstance(msg, HeraldResult):
            raise EntityError(f"MinimalEgp: unexpected {type(msg).__name__} from below")
        neighbour = msg.neighbour
        if self.in_flight.get(neighbour) == msg.attempt_id:
            self.in_flight[neighbour] = None
        if msg.success and msg.handle is not None:
            request = self._current(neighbour)
            good = msg.fidelity_estimate or 0.0
            if request is None or good < request.announce.min_fidelity:
                self.ctx.device.execute(FreeQubit(handle=msg.handle))
            else:
                self._deliver(request, msg, good)
        self._attempt(neighbour)

    def _deliver(self, request: Request, herald: HeraldResult, goodness: float) -> None:
        a = request.announce
        peer = request.remote if a.origin == self.ctx.node else self.ctx.node
        request.made += 1
        if request.made == a.number:
            self.requests[request.remote].remove(request)
        self.ctx.send_up(
            LinkOkKeep(
                create_id=a.create_id,
                origin_node=a.origin,
                ent_id=EntanglementId(creator=a.origin, peer=peer, sequence=herald.herald_sequence or 0),
                purpose_id=a.purpose_id,
                remote_node=request.remote,
                bell_state=herald.bell_state,
                goodness=goodness,
                goodness_time_ns=herald.herald_time_ns if herald.herald_time_ns is not None else self.ctx.now_ns,
                handle=herald.handle,
            )
        )
