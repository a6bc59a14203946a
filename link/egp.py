"""Single-click entanglement generation protocol (EGP): the reference link layer.

Theory of operation
-------------------
One ``SingleClickEgp`` runs on every node. For each neighbour it keeps a queue
of requests and at most one outstanding heralding attempt.

1. ``LinkCreate`` from above: check it (remote is a neighbour, the fidelity is
   within what the link can give, memory exists for type K), answer ``LinkAck``
   or ``LinkError`` at once, and tell the peer EGP with a ``PeerCreate`` that
   carries the request and an agreed start time ``start_ns = now + 2 × (one-way
   classical delay)``. The margin is generous on purpose: the peer learns of
   the request before it starts, so both ends start in the same attempt slot.
2. Both ends order their queues by ``(start_ns, origin, create_id)``. Every
   request with ``start_ns <= now`` is known at both ends by then, so both
   choose the same *active* request without talking.
3. While a request is active the EGP asks its physical layer for one attempt
   (``HeraldAttempt``); the herald reaches both ends at the same instant, and
   the next attempt starts as soon as it arrives. Both ends therefore stay in
   step, attempt by attempt, with no further messages.
4. On a successful herald whose fidelity estimate reaches the request's
   ``min_fidelity`` each end sends up an OK (a weaker pair is freed at both
   ends, which see the same estimate): ``LinkOkKeep`` with the qubit
   handle (type K) or ``LinkOkMeasure`` after measuring it (type M). The pair is
   named ``(origin, peer, herald sequence)``; goodness is the physical model's
   fidelity at the herald time.
5. When ``number`` pairs are made the request ends; if its deadline
   (``max_time_ns`` after the CREATE) comes first both ends send ``LinkError``
   TIMEOUT. A success heralded for a request that is gone is freed.

Run modes (the same service, the same results in distribution):

* ``per-attempt`` (default, registry name ``single-click-egp``): one
  ``HeraldAttempt`` per attempt, as above;
* ``fast-forward`` (:class:`FastForwardEgp`, registry name
  ``fast-forward-egp``): each ``HeraldAttempt`` asks for a run of up to
  ``max_attempts`` attempts back to back, stopping at the first success, so
  the physical layer may sample the number of attempts to the next success
  instead of simulating each (``physical.heralding_backend``). ``max_attempts``
  covers the attempts that would start before the active request's deadline,
  ``ceil((deadline - now) / attempt_period)``, or ``max_attempts_cap`` when it
  has none. Attempt k of a run starts (k-1) attempt periods after the first,
  exactly when the per-attempt mode would start it, since there each attempt
  starts when the previous herald arrives, one period after its emission.
  Both ends compute the same number: they agree on the active request, its
  deadline and the time.

States of a request (at each end): QUEUED -> ACTIVE -> DONE | TIMED_OUT.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from entity import Context, EntityError
from link.service import (
    CAP_LINK_K,
    CAP_LINK_M,
    EntanglementId,
    LinkAck,
    LinkCreate,
    LinkError,
    LinkErrorCode,
    LinkOkKeep,
    LinkOkMeasure,
    RequestType,
)
from physical.service import (
    CAP_DEVICE,
    CAP_HERALDING,
    Basis,
    FreeQubit,
    HeraldAttempt,
    HeraldResult,
    Measure,
    MeasureResult,
    PhysicalCapabilities,
)

__all__ = ["SingleClickEgp", "FastForwardEgp", "LinkMode", "PeerCreate"]

LinkMode = Literal["per-attempt", "fast-forward"]


class PeerCreate(BaseModel):
    """EGP-to-EGP: a CREATE the other end accepted, with the agreed start."""

    model_config = ConfigDict(frozen=True, extra="forbid")
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
    made: int = 0
    deadline_timer: int | None = field(default=None, repr=False)

    @property
    def order(self) -> tuple[int, str, int]:
        return (self.start_ns, self.origin, self.create_id)


class SingleClickEgp:
    """Reference link-layer entity on the physical heralding service."""

    PROVIDES = frozenset({CAP_LINK_K, CAP_LINK_M})
    REQUIRES = frozenset({CAP_DEVICE, CAP_HERALDING})

    def __init__(self, ctx: Context, mode: LinkMode = "per-attempt", max_attempts_cap: int = 100_000) -> None:
        if mode not in ("per-attempt", "fast-forward"):
            raise ValueError(f"mode must be 'per-attempt' or 'fast-forward', got {mode!r}")
        if max_attempts_cap < 1:
            raise ValueError(f"max_attempts_cap must be at least 1, got {max_attempts_cap}")
        self.ctx = ctx
        self.mode: LinkMode = mode
        self.max_attempts_cap = max_attempts_cap
        self._caps: PhysicalCapabilities | None = None
        self._next_create_id = 0
        self._queues: dict[str, list[_Request]] = {}
        self._active: dict[str, _Request | None] = {}
        # neighbour -> (attempt id, request it was made for); None when idle
        self._outstanding: dict[str, tuple[int, _Request] | None] = {}
        self._next_attempt: dict[str, int] = {}

    # ------------------------------------------------------------ entity API

    def start(self) -> None:
        self._caps = self.ctx.device.capabilities()
        for neighbour in self._caps.links:
            self._queues[neighbour] = []
            self._active[neighbour] = None
            self._outstanding[neighbour] = None
            self._next_attempt[neighbour] = 0

    @property
    def capabilities(self) -> PhysicalCapabilities:
        if self._caps is None:
            raise EntityError("the link entity was used before start()")
        return self._caps

    def handle_above(self, msg: Any) -> None:
        if not isinstance(msg, LinkCreate):
            raise EntityError(f"link layer got {type(msg).__name__} from above; it serves LinkCreate")
        create_id = self._next_create_id
        self._next_create_id += 1
        refusal = self._refusal(msg)
        if refusal is not None:
            code, detail = refusal
            self.ctx.send_up(LinkError(create_id=create_id, origin_node=self.ctx.node, code=code, detail=detail))
            return
        self.ctx.send_up(LinkAck(create_id=create_id, remote_node=msg.remote_node, purpose_id=msg.purpose_id))
        now = self.ctx.now_ns
        link = self.capabilities.links[msg.remote_node]
        start_ns = now + 2 * link.classical_delay_ns
        deadline = None if msg.max_time_ns is None else now + msg.max_time_ns
        request = _Request(
            create_id=create_id,
            origin=self.ctx.node,
            remote=msg.remote_node,
            purpose_id=msg.purpose_id,
            number=msg.number,
            min_fidelity=msg.min_fidelity,
            type=msg.type,
            basis=msg.basis,
            start_ns=start_ns,
            deadline_ns=deadline,
        )
        self.ctx.send_peer(
            msg.remote_node,
            PeerCreate(
                create_id=create_id,
                origin_node=self.ctx.node,
                purpose_id=msg.purpose_id,
                number=msg.number,
                min_fidelity=msg.min_fidelity,
                type=msg.type,
                basis=msg.basis,
                start_ns=start_ns,
                deadline_ns=deadline,
            ),
        )
        self._enqueue(request)
        self.ctx.trace("link.create", create_id=create_id, remote=msg.remote_node, number=msg.number, type=msg.type.value)

    def handle_peer(self, sender: str, msg: Any) -> None:
        if not isinstance(msg, PeerCreate):
            raise EntityError(f"link layer got {type(msg).__name__} from peer {sender!r}")
        if sender not in self._queues:
            return  # not a neighbour of ours: nothing to do with us
        self._enqueue(
            _Request(
                create_id=msg.create_id,
                origin=msg.origin_node,
                remote=sender,
                purpose_id=msg.purpose_id,
                number=msg.number,
                min_fidelity=msg.min_fidelity,
                type=msg.type,
                basis=msg.basis,
                start_ns=msg.start_ns,
                deadline_ns=msg.deadline_ns,
            )
        )

    def handle_below(self, msg: Any) -> None:
        if not isinstance(msg, HeraldResult):
            raise EntityError(f"link layer got {type(msg).__name__} from below; expected HeraldResult")
        neighbour = msg.neighbour
        outstanding = self._outstanding.get(neighbour)
        if outstanding is None or outstanding[0] != msg.attempt_id:
            if msg.success and msg.handle is not None:
                self.ctx.device.execute(FreeQubit(handle=msg.handle))
            return
        self._outstanding[neighbour] = None
        request = outstanding[1]
        if msg.success:
            if self._active.get(neighbour) is request:
                self._deliver(request, msg)
            elif msg.handle is not None:
                self.ctx.device.execute(FreeQubit(handle=msg.handle))
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
                )
            )
            self._advance(neighbour)

    # ------------------------------------------------------------ internals

    def _refusal(self, msg: LinkCreate) -> tuple[LinkErrorCode, str] | None:
        caps = self.capabilities
        if msg.remote_node == self.ctx.node:
            return LinkErrorCode.CREATE, "remote_node is this node"
        link = caps.links.get(msg.remote_node)
        if link is None:
            return LinkErrorCode.CREATE, f"{msg.remote_node!r} is not a neighbour (neighbours: {sorted(caps.links)})"
        if msg.min_fidelity > link.fidelity:
            return (
                LinkErrorCode.UNSUPP,
                f"min_fidelity {msg.min_fidelity} exceeds what the link gives ({link.fidelity:.4f})",
            )
        if caps.num_qubits == 0:
            return LinkErrorCode.UNSUPP, "this node has no memory qubit to generate entanglement with"
        return None

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
        self._queues[request.remote].remove(request)
        if request.deadline_timer is not None:
            self.ctx.cancel_timer(request.deadline_timer)
        if self._active.get(request.remote) is request:
            self._active[request.remote] = None

    def _advance(self, neighbour: str) -> None:
        """Start the next attempt on this link if there is work and none is in flight."""
        if self._outstanding[neighbour] is not None:
            return
        now = self.ctx.now_ns
        ready = [r for r in self._queues[neighbour] if r.start_ns <= now]
        if not ready:
            self._active[neighbour] = None
            return
        request = ready[0]
        self._active[neighbour] = request
        attempt_id = self._next_attempt[neighbour]
        self._next_attempt[neighbour] += 1
        self._outstanding[neighbour] = (attempt_id, request)
        self.ctx.send_down(
            HeraldAttempt(neighbour=neighbour, attempt_id=attempt_id, max_attempts=self._run_length(neighbour, request))
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

    def _deliver(self, request: _Request, herald: HeraldResult) -> None:
        assert herald.handle is not None and herald.bell_state is not None
        peer = request.remote if request.origin == self.ctx.node else self.ctx.node
        ent_id = EntanglementId(creator=request.origin, peer=peer, sequence=herald.herald_sequence or 0)
        goodness = herald.fidelity_estimate if herald.fidelity_estimate is not None else 0.0
        time_ns = herald.herald_time_ns if herald.herald_time_ns is not None else self.ctx.now_ns
        if goodness < request.min_fidelity:
            # Both ends got the same estimate in the herald, so both drop this pair.
            self.ctx.device.execute(FreeQubit(handle=herald.handle))
            self.ctx.trace("link.below_min_fidelity", remote=request.remote, goodness=goodness)
            return
        if request.type is RequestType.K:
            ok: LinkOkKeep | LinkOkMeasure = LinkOkKeep(
                create_id=request.create_id,
                origin_node=request.origin,
                ent_id=ent_id,
                purpose_id=request.purpose_id,
                remote_node=request.remote,
                bell_state=herald.bell_state,
                goodness=goodness,
                goodness_time_ns=time_ns,
                handle=herald.handle,
            )
        else:
            result = self.ctx.device.execute(Measure(handle=herald.handle, basis=request.basis))
            if not isinstance(result, MeasureResult):
                raise EntityError(f"measuring a heralded qubit failed: {result}")
            ok = LinkOkMeasure(
                create_id=request.create_id,
                origin_node=request.origin,
                ent_id=ent_id,
                purpose_id=request.purpose_id,
                remote_node=request.remote,
                bell_state=herald.bell_state,
                goodness=goodness,
                outcome=result.outcome,
                basis=request.basis,
            )
        request.made += 1
        self.ctx.trace("link.ok", remote=request.remote, create_id=request.create_id, sequence=ent_id.sequence)
        self.ctx.send_up(ok)
        if request.made >= request.number:
            self._end(request)


class FastForwardEgp(SingleClickEgp):
    """The reference EGP in fast-forward mode (registry name ``fast-forward-egp``)."""

    def __init__(self, ctx: Context, max_attempts_cap: int = 100_000) -> None:
        super().__init__(ctx, mode="fast-forward", max_attempts_cap=max_attempts_cap)
