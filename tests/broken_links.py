"""Deliberately broken link layers, each violating one clause of specs/link.md.

They start from the reference ``SingleClickEgp`` and change one behaviour, so a
conformance failure can only come from that change. ``tests/test_conformance.py``
checks that the link suite catches each one under the right clause id.
"""

from __future__ import annotations

from typing import Any

from qnetstack.link.egp import SingleClickEgp
from qnetstack.link.request import RequestEvent
from qnetstack.link.service import CAP_LINK_K, BellState, LinkErrorCode, LinkOkKeep, LinkOkMeasure
from qnetstack.physical.service import FreeQubit


class OkAtOneEnd(SingleClickEgp):
    """Only the node that sent the CREATE hears about its pairs (LINK-OK-2).

    It declares type K alone, so the clauses of the rest of the full service
    (which also count OKs at both ends) are not applicable to it."""

    PROVIDES = frozenset({CAP_LINK_K})

    def _deliver(self, request: Any, herald: Any) -> None:
        if request.origin != self.ctx.node:
            self.ctx.device.execute(FreeQubit(handle=herald.handle))
            request.made += 1
            if request.made >= request.number:
                self._end(request, RequestEvent.LAST_PAIR)
            return
        super()._deliver(request, herald)


class InflatedGoodness(SingleClickEgp):
    """Reports the fidelity the caller hoped for, not the one it got (LINK-OK-5)."""

    def _deliver(self, request: Any, herald: Any) -> None:
        super()._deliver(request, herald.model_copy(update={"fidelity_estimate": 0.99}))


class LabelledBellState(SingleClickEgp):
    """Always says PHI_PLUS, whatever the station heralded (LINK-OK-4)."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        send_up = ctx.send_up

        def relabel(msg: Any) -> None:
            if isinstance(msg, (LinkOkKeep, LinkOkMeasure)):
                msg = msg.model_copy(update={"bell_state": BellState.PHI_PLUS})
            send_up(msg)

        self.ctx = _Relabelled(ctx, relabel)


class _Relabelled:
    """The entity's context with ``send_up`` replaced."""

    def __init__(self, ctx: Any, send_up: Any) -> None:
        self._ctx = ctx
        self.send_up = send_up

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


class NeverTimesOut(SingleClickEgp):
    """Ignores max_time_ns: a request without pairs stays open forever (LINK-TIMEOUT-1)."""

    def handle_timer(self, tag: Any) -> None:
        if tag[0] == "deadline":
            return
        super().handle_timer(tag)


class ErrorsLoseTheirTag(SingleClickEgp):
    """Echoes the tag in the ACK but forgets it for the request's later ERRs
    (TIMEOUT, a refusal by the responder, EXPIRE) (LINK-TAG-1)."""

    def _open(self, request: Any) -> None:
        request.tag = None
        super()._open(request)


class TaggedAtTheResponder(SingleClickEgp):
    """Gives the responder's copy of each request a tag of its own, which its
    ERRs then carry (LINK-TAG-2)."""

    def _open(self, request: Any) -> None:
        if request.origin != self.ctx.node:
            request.tag = 0
        super()._open(request)


class StrayHeraldKept(SingleClickEgp):
    """Ignores a herald for an attempt it does not have in flight, keeping the
    qubit and tracing nothing (LINK-SESS-1)."""

    def handle_below(self, msg: Any) -> None:
        link = self._links.get(msg.neighbour)
        if link is not None and msg.attempt_id not in link.flights:
            return
        super().handle_below(msg)


class CancelledAtOneEnd(SingleClickEgp):
    """Ends a withdrawn request at the origin at once and never tells the responder,
    which goes on attempting for it alone (LINK-CANCEL-1, LINK-CANCEL-2)."""

    def _cancel(self, msg: Any) -> None:
        mine = [r for r in self._requests.values() if r.origin == self.ctx.node and r.tag == msg.tag]
        if not mine:
            super()._cancel(msg)
        for request in mine:
            self._end(request, RequestEvent.CANCEL)
            self._error_up(request, LinkErrorCode.CANCELLED, "withdrawn here only")
