"""Earliest deadline first: a scheduling policy for the reference link layer.

The worked example of ``docs/conformance.md``. The reference EGP
(``qnetstack.link.egp.SingleClickEgp``) serves the requests on a link by
priority (a consecutive request that has started keeps the link), then round
robin per pair, then in the order both ends agree on. To serve them by
deadline instead, none of the EGP has to be rewritten: the choice of the
request each attempt is for is a *scheduling policy*
(``qnetstack.link.scheduler``), and the EGP takes one by name or as an object.

The policy below gives the next attempt to the ready request with the
earliest deadline (requests without ``max_time_ns`` last; ties in the order
both ends agree on). It reads only what both ends of the link know at the
same instant, so both ends, running the same policy, pick the same request.
It ignores ``priority`` and ``consecutive``, so :class:`EdfEgp` leaves
``link:priority`` out of ``PROVIDES`` and the suite marks those clauses not
applicable.

Check it:  ``qnetstack conform link minimal_link:EdfEgp`` (from ``examples/``)
Use it:    ``qnetstack run teleport-chain.yaml --impl link=minimal_link:EdfEgp``
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from qnetstack.link.egp import SingleClickEgp
from qnetstack.link.request import LinkRequest
from qnetstack.link.scheduler import SchedulingPolicy, register_policy
from qnetstack.link.service import CAP_LINK_PRIORITY


class EarliestDeadlineFirst(SchedulingPolicy):
    name = "earliest-deadline-first"

    def choose(self, requests: Sequence[LinkRequest], now_ns: int) -> LinkRequest | None:
        best, best_deadline = None, math.inf
        for request in requests:  # in the agreed order, so a tie goes to the first
            deadline = math.inf if request.deadline_ns is None else request.deadline_ns
            if request.ready(now_ns) and request.unattempted > 0 and (best is None or deadline < best_deadline):
                best, best_deadline = request, deadline
        return best


register_policy(EarliestDeadlineFirst.name, EarliestDeadlineFirst)  # now also scheduler="earliest-deadline-first"


class EdfEgp(SingleClickEgp):
    """The reference EGP, scheduling by earliest deadline."""

    PROVIDES = SingleClickEgp.PROVIDES - {CAP_LINK_PRIORITY}

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx, scheduler=EarliestDeadlineFirst())
