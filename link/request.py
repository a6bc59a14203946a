"""A link request as a session: its state machine and the counters beside it.

Theory of operation
-------------------
Every request the EGP serves is one :class:`LinkRequest` at each end of its
link, keyed by ``(origin node, create_id)``, the name both ends and the
request's messages use. The origin's copy is made when its layer above sends
the CREATE, the responder's when the ``PeerCreate`` arrives; both go through
the same machine, :data:`REQUEST_MACHINE` (only the origin can be refused).

Where a request is in its life is its *state*; what it has counted is in
fields beside it. The state changes only a handful of times per request, so
the EGP fires one event per state change and never one per attempt:

* ``queued``: known at this end, no attempt made for it yet (its start time
  has not come, or other requests have the link);
* ``active``: attempts are being made for it; pairs that leave it short of
  ``number`` are counted in ``made`` and do not change the state;
* ``holding`` (atomic requests): the link layer holds its pairs made so far,
  to report them all together when the last one is made;
* ``done``, ``timed_out``, ``refused``, ``down``, ``cancelled``: final. A
  request its origin withdrew (``LinkCancel``) keeps its state, and the
  instant both ends stop attempting for it in ``stop_ns``, until that instant
  comes: the state is an input of the scheduling policy, and the two ends
  learn of the cancel one delay apart. An ended request is forgotten
  by the EGP, so whatever names it later is an unknown session (LINK-SESS-1).

The counters the scheduling policy reads (``made``, ``in_flight``,
``last_pair``, ``last_pair_ns``) are kept by the EGP, identical at both ends
because they change only on events both ends see at the same instant.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from qnetstack.entity import Wait
from qnetstack.entity.machine import Machine, Session
from qnetstack.link.peer import CREATE_TERMS, PeerCreate
from qnetstack.link.service import LinkOkKeep, RandomBasis, RequestType
from qnetstack.physical.service import Basis

__all__ = ["RequestState", "RequestEvent", "REQUEST_MACHINE", "MACHINES", "LinkRequest", "RequestKey"]

RequestKey = tuple[str, int]  # (origin node, create_id)


class RequestState(str, enum.Enum):
    QUEUED = "queued"
    ACTIVE = "active"
    HOLDING = "holding"
    DONE = "done"
    TIMED_OUT = "timed_out"
    REFUSED = "refused"
    DOWN = "down"
    CANCELLED = "cancelled"


class RequestEvent(str, enum.Enum):
    FIRST_ATTEMPT = "first_attempt"  # the scheduling policy gave it an attempt for the first time
    PAIR_HELD = "pair_held"  # atomic: its first pair is made and held by the link layer
    LAST_PAIR = "last_pair"  # its number-th pair is made (and every OK sent up)
    DEADLINE = "deadline"  # max_time_ns ran out
    PEER_REFUSAL = "peer_refusal"  # the responder will not serve it (origin only)
    LINK_DOWN = "link_down"  # the physical layer reported the link cut (ERR DOWN at both ends)
    CANCEL = "cancel"  # the agreed stop instant of a withdrawn request came (ERR CANCELLED at both ends)


_S, _E = RequestState, RequestEvent

REQUEST_MACHINE = Machine(
    name="link-request",
    initial=_S.QUEUED,
    transitions={
        (_S.QUEUED, _E.FIRST_ATTEMPT): _S.ACTIVE,
        (_S.QUEUED, _E.DEADLINE): _S.TIMED_OUT,
        (_S.QUEUED, _E.PEER_REFUSAL): _S.REFUSED,
        (_S.ACTIVE, _E.PAIR_HELD): _S.HOLDING,
        (_S.ACTIVE, _E.LAST_PAIR): _S.DONE,
        (_S.ACTIVE, _E.DEADLINE): _S.TIMED_OUT,
        # the refusal arrives 1 ns before the agreed start, so only if the classical
        # channel is slower than the link announced can it find the origin attempting
        (_S.ACTIVE, _E.PEER_REFUSAL): _S.REFUSED,
        (_S.HOLDING, _E.LAST_PAIR): _S.DONE,
        (_S.HOLDING, _E.DEADLINE): _S.TIMED_OUT,
        (_S.QUEUED, _E.LINK_DOWN): _S.DOWN,
        (_S.ACTIVE, _E.LINK_DOWN): _S.DOWN,
        (_S.HOLDING, _E.LINK_DOWN): _S.DOWN,
        (_S.QUEUED, _E.CANCEL): _S.CANCELLED,
        (_S.ACTIVE, _E.CANCEL): _S.CANCELLED,
        (_S.HOLDING, _E.CANCEL): _S.CANCELLED,
    },
    final=frozenset({_S.DONE, _S.TIMED_OUT, _S.REFUSED, _S.DOWN, _S.CANCELLED}),
    doc=(
        "One link request at one end of its link, keyed by `(origin node, create_id)` (the reference EGP, "
        "`qnetstack.link.request`). A pair that leaves the request short of `number` changes its counters, "
        "not its state; `peer_refusal` happens at the origin only."
    ),
)

MACHINES = (REQUEST_MACHINE,)


class LinkRequest(Session[tuple[str, int]]):
    """One request at one end: its key, state and what it asked for and got so far."""

    machine = REQUEST_MACHINE
    __slots__ = (
        "create_id",
        "origin",
        "remote",
        "purpose_id",
        "number",
        "min_fidelity",
        "type",
        "basis",
        "start_ns",
        "deadline_ns",
        "remote_basis",
        "random_basis",
        "remote_random_basis",
        "priority",
        "atomic",
        "consecutive",
        "alpha",
        "tag",
        "order",
        "made",
        "in_flight",
        "last_pair",
        "last_pair_ns",
        "held",
        "deadline_timer",
        "stop_ns",
        "stop_timer",
    )

    def __init__(
        self,
        *,
        create_id: int,
        origin: str,
        remote: str,
        purpose_id: int = 0,
        number: int = 1,
        min_fidelity: float = 0.0,
        type: RequestType = RequestType.K,
        basis: Basis = Basis.Z,
        start_ns: int = 0,
        deadline_ns: int | None = None,
        remote_basis: Basis | None = None,
        random_basis: RandomBasis = RandomBasis.NONE,
        remote_random_basis: RandomBasis = RandomBasis.NONE,
        priority: int = 0,
        atomic: bool = False,
        consecutive: bool = False,
        alpha: float | None = None,
        tag: int | None = None,
        trace: Callable[..., None] | None = None,
    ) -> None:
        super().__init__((origin, create_id), trace)
        self.create_id = create_id
        self.origin = origin
        self.remote = remote
        self.purpose_id = purpose_id
        self.number = number
        self.min_fidelity = min_fidelity
        self.type = type
        self.basis = basis
        self.start_ns = start_ns
        self.deadline_ns = deadline_ns
        self.remote_basis = remote_basis
        self.random_basis = random_basis
        self.remote_random_basis = remote_random_basis
        self.priority = priority
        self.atomic = atomic
        self.consecutive = consecutive
        self.alpha = alpha
        self.tag = tag  # the caller's tag, at the origin only
        # the order both ends agree on: start time, then origin, then create id
        self.order: tuple[int, str, int] = (start_ns, origin, create_id)
        self.made = 0  # pairs made (reported, or held if atomic)
        self.in_flight = 0  # attempts (or runs) in flight for it
        self.last_pair = -1  # the link's pair count when it last got a pair (-1: never)
        self.last_pair_ns = -1  # when it last got a pair
        self.held: list[LinkOkKeep] = []  # atomic: made, not yet reported
        self.deadline_timer: int | None = None
        self.stop_ns: int | None = None  # withdrawn: it ends at this instant, and gets no attempt from then on
        self.stop_timer: int | None = None

    @classmethod
    def from_peer_create(
        cls, msg: PeerCreate, remote: str, tag: int | None = None, trace: Callable[..., None] | None = None
    ) -> LinkRequest:
        """The request a ``PeerCreate`` describes, as seen from the end whose neighbour is ``remote``."""
        return cls(
            create_id=msg.create_id,
            origin=msg.origin_node,
            remote=remote,
            start_ns=msg.start_ns,
            deadline_ns=msg.deadline_ns,
            alpha=msg.bright_state_population,
            tag=tag,
            trace=trace,
            **{term: getattr(msg, term) for term in CREATE_TERMS},
        )

    @property
    def unattempted(self) -> int:
        """Pairs still to make that no attempt in flight is for."""
        return self.number - self.made - self.in_flight

    def ready(self, now_ns: int) -> bool:
        """Both ends know of it: its agreed start time has come."""
        return self.start_ns <= now_ns

    def describe_wait(self, now_ns: int) -> Wait:
        """What this request waits for at this end, now (for ``describe_waits``; changes nothing)."""
        progress = f"{self.made}/{self.number} pairs made"
        if self.stop_ns is not None:
            progress += f"; withdrawn, it ends at {self.stop_ns / 1e6:.6f} ms"
        if self.state is RequestState.HOLDING:
            waiting = f"the rest of its pairs with {self.remote} ({self.made}/{self.number} held here, atomic)"
        elif not self.ready(now_ns):
            waiting = f"its agreed start at {self.start_ns / 1e6:.6f} ms"
        elif self.in_flight:
            waiting = f"heralds of {self.in_flight} attempt(s) with {self.remote} ({progress})"
        else:
            waiting = f"an attempt slot on the link with {self.remote} ({progress})"
        return Wait(
            session=f"link request {self.origin}#{self.create_id}",
            waiting_for=waiting,
            request=self.key,
            peer=self.remote,
            holds=len(self.held),
        )
