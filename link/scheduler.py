"""Scheduling policies: which request on a link gets the next attempt.

Theory of operation
-------------------
Both ends of a link must attempt for the same request at the same instant,
or their attempts meet no twin at the station and a herald cannot be
credited. The reference EGP gets this without messages: before each attempt
both ends run the same *scheduling policy* on the same inputs. A policy sees
the link's open requests (:class:`qnetstack.link.request.LinkRequest`, in the
order both ends agree on: start time, origin, create id) and the time; a
request is *ready* once its start time has come (``request.ready(now_ns)``).
Everything a policy may read (the requests, their state and counters, the
time) changes only on events both ends see at the same instant: the agreed
start times and deadlines, and heralds. A policy must therefore be a
function of those inputs alone, with no randomness and no state of its own
beyond them, and **both ends of a link must use the same policy**
(``specs/link.md`` §5).

A policy answers two questions:

* :meth:`SchedulingPolicy.choose`: which request gets the next attempt
  (``None``: the attempt slot waits). The EGP asks once per free attempt slot.
* :meth:`SchedulingPolicy.may_take_pair`: with several attempts in flight, a
  success may arrive for a request that should no longer get a pair (another
  became more urgent while the attempt was in flight); ``False`` makes the
  pair a surplus, freed at both ends. With one attempt in flight per link
  nothing needs refusing; the default accepts every pair.

Policies are registered by name, as congestion controllers are in QUIC
stacks (e.g. aioquic's ``register_congestion_control``), and the EGP takes
a name or a policy object: ``SingleClickEgp(ctx, scheduler="...")``.
``"priority-round-robin"`` (:class:`PriorityRoundRobin`) is the default and
the rule the link spec's scheduling clauses (LINK-PRIO-1, -FAIR-1,
-CONSEC-1) are written for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from qnetstack.link.request import LinkRequest, RequestState

__all__ = [
    "SchedulingPolicy",
    "PriorityRoundRobin",
    "DEFAULT_POLICY",
    "register_policy",
    "get_policy",
    "policy_names",
    "resolve_policy",
]

DEFAULT_POLICY = "priority-round-robin"
_QUEUED = RequestState.QUEUED  # a module constant: an enum's class attribute is slow to look up on the hot path


class SchedulingPolicy:
    """Chooses the request each attempt on a link is for. Subclass and override
    :meth:`choose` (and :meth:`may_take_pair` for rules that pre-empt)."""

    name: ClassVar[str] = ""

    def choose(self, requests: Sequence[LinkRequest], now_ns: int) -> LinkRequest | None:
        """The request the next attempt is for, or None (the slot waits).

        ``requests``: the link's open requests in the agreed order. A chosen
        request must be ready and have ``unattempted > 0`` (a pair still to
        make that no attempt in flight is for)."""
        raise NotImplementedError

    def may_take_pair(self, request: LinkRequest, last_pair_at_launch: int, requests: Sequence[LinkRequest], now_ns: int) -> bool:
        """Whether a success of an attempt made for ``request`` (open) goes to it.

        ``last_pair_at_launch``: the request's ``last_pair`` when the attempt was
        made (equal to its ``last_pair`` now if it got no pair since)."""
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _holder(requests: Sequence[LinkRequest]) -> LinkRequest | None:
    """The consecutive request that has had its first attempt: it keeps the link
    until it ends (LINK-CONSEC-1). There is at most one, since no other request
    is chosen while it is open."""
    for request in requests:
        if request.consecutive and request.state is not _QUEUED:
            return request
    return None


def _fair(request: LinkRequest, ready: Sequence[LinkRequest]) -> bool:
    """Round robin per pair (LINK-FAIR-1): ``request`` may take another pair
    only once every other non-consecutive request of its priority that was
    ready by its last pair has got a pair since."""
    last_pair, last_pair_ns, priority = request.last_pair, request.last_pair_ns, request.priority
    for other in ready:
        if (
            other is not request
            and not other.consecutive
            and other.priority == priority
            and other.start_ns <= last_pair_ns
            and other.last_pair < last_pair
        ):
            return False
    return True


class PriorityRoundRobin(SchedulingPolicy):
    """The reference rule: a started consecutive request keeps the link; else
    the lowest ``priority`` value among the ready requests, and within it round
    robin per pair.

    With several attempts in flight: only requests of the lowest ready priority
    value that may take a pair now under round robin are eligible, the one with
    the fewest attempts in flight first, then the one that least recently got a
    pair, then the agreed order; when none is eligible the slot waits (nothing
    of a larger priority value starts, LINK-PRIO-1). With one attempt in flight
    this is the rule (priority, least recent pair, agreed order)."""

    name = DEFAULT_POLICY

    def choose(self, requests: Sequence[LinkRequest], now_ns: int) -> LinkRequest | None:
        if len(requests) == 1:
            # one request on the link (the common case): the rule below picks it if it is ready
            # and needs a pair no attempt is for (round robin among one is always fair; if it
            # holds the link as a started consecutive request, it is ready)
            only = requests[0]
            return None if only.start_ns > now_ns or only.unattempted <= 0 else only
        holder = _holder(requests)
        if holder is not None:
            return holder if holder.unattempted > 0 else None
        ready = [r for r in requests if r.start_ns <= now_ns]
        if not ready:
            return None
        first = min(r.priority for r in ready)
        # The first fair request in key order is the least of the fair ones (``order`` makes
        # keys unique); testing fairness in that order, not for every request, keeps a link
        # with many open requests from costing a pass over all of them per candidate.
        candidates = sorted(
            (r for r in ready if r.priority == first and r.unattempted > 0), key=lambda r: (r.in_flight, r.last_pair, r.order)
        )
        return next((r for r in candidates if _fair(r, ready)), None)

    def may_take_pair(self, request: LinkRequest, last_pair_at_launch: int, requests: Sequence[LinkRequest], now_ns: int) -> bool:
        """An attempt made for a request may give it the pair as long as the
        request got no other pair while the attempt was in flight (so an attempt
        in flight when a request of higher priority became ready still gives its
        request one pair, LINK-PRIO-1); a later success is credited only if the
        request may take a pair now by the rules of :meth:`choose`."""
        holder = _holder(requests)
        if holder is not None and holder is not request:
            return False  # a started consecutive request holds the link (LINK-CONSEC-1)
        if request.last_pair == last_pair_at_launch or holder is request:
            return True
        waiting = [r for r in requests if r.start_ns <= now_ns and (r.deadline_ns is None or r.deadline_ns > now_ns)]
        if any(r.priority < request.priority for r in waiting):
            return False
        return _fair(request, waiting)


_POLICIES: dict[str, Callable[[], SchedulingPolicy]] = {}


def register_policy(name: str, factory: Callable[[], SchedulingPolicy]) -> None:
    """Make ``factory`` (a policy class, or any callable returning a policy)
    available as ``scheduler=name``. A name is registered once."""
    known = _POLICIES.get(name)
    if known is not None and known is not factory and _origin(known) != _origin(factory):
        raise ValueError(f"a scheduling policy named {name!r} is already registered")
    _POLICIES[name] = factory


def _origin(factory: Callable[[], SchedulingPolicy]) -> tuple[str, str]:
    # A module imported twice (under two names, or reloaded in a notebook) registers a new
    # object of the same definition: that is the same policy, not a clash.
    return (getattr(factory, "__module__", "").rsplit(".", 1)[-1], getattr(factory, "__qualname__", repr(factory)))


def policy_names() -> list[str]:
    return sorted(_POLICIES)


def get_policy(name: str) -> SchedulingPolicy:
    """A new policy of the registered ``name``; ValueError listing the known names otherwise."""
    factory = _POLICIES.get(name)
    if factory is None:
        raise ValueError(f"unknown scheduling policy {name!r}; known policies: {', '.join(policy_names())}")
    return factory()


def resolve_policy(scheduler: str | SchedulingPolicy | type[SchedulingPolicy]) -> SchedulingPolicy:
    """A policy from a registered name, a policy class or a policy object."""
    if isinstance(scheduler, str):
        return get_policy(scheduler)
    if isinstance(scheduler, type) and issubclass(scheduler, SchedulingPolicy):
        return scheduler()
    if isinstance(scheduler, SchedulingPolicy):
        return scheduler
    raise TypeError(f"scheduler must be a policy name, a SchedulingPolicy or its class, got {scheduler!r}")


register_policy(DEFAULT_POLICY, PriorityRoundRobin)
