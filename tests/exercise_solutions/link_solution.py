"""A worked answer to the link exercise, in the shape of its stub.

The stub (``qnetstack exercise link DIR``) hands the student a class with
``PROVIDES``, ``REQUIRES``, a constructor taking the context and the five
entity methods. This answer keeps that shape (its constructor also takes
``reliable``, the option LINK-REL-1 is about) and fills each method
by handing the call to the reference entity
(``qnetstack.link.egp.SingleClickEgp``) built on the same context. It is not a
second link layer: it shows that the stub's methods and imports are all a
complete implementation needs (every clause the reference passes, this class
passes), so the exercise can be solved without changing its skeleton.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from qnetstack.entity import Context, Wait
from qnetstack.link.egp import SingleClickEgp
from qnetstack.physical.service import CAP_DEVICE, CAP_HERALDING

__all__ = ["LinkSolution"]


class LinkSolution:
    """The stub's class, each method answered by the reference entity."""

    PROVIDES = SingleClickEgp.PROVIDES
    REQUIRES = frozenset({CAP_DEVICE, CAP_HERALDING})

    def __init__(self, ctx: Context, reliable: bool = False) -> None:
        # ``reliable`` is the one addition to the stub: LINK-REL-1 applies to a class that takes it
        self.ctx = ctx
        self._inner = SingleClickEgp(ctx, reliable=reliable)

    def start(self) -> None:
        self._inner.start()

    def handle_above(self, msg: Any) -> None:
        self._inner.handle_above(msg)

    def handle_peer(self, sender: str, msg: Any) -> None:
        self._inner.handle_peer(sender, msg)

    def handle_below(self, msg: Any) -> None:
        self._inner.handle_below(msg)

    def handle_timer(self, tag: Hashable) -> None:
        self._inner.handle_timer(tag)

    def describe_waits(self) -> list[Wait]:
        return self._inner.describe_waits()
