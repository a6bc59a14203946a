"""Implementations that try to get a verdict they have not earned, or that
crash, hang or exit, for the tests of the conformance kit itself
(``tests/test_conformance_kit.py``).

Each starts from a reference implementation and changes one thing. This
module imports the conformance kit on purpose (to raise its exceptions), so
these classes also fail the clauses on imports (LINK-IMPL-2, APP-IMPL-2).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from hypothesis import reject
from hypothesis.errors import UnsatisfiedAssumption

from qnetstack.application.apps import BasicApps
from qnetstack.entity.conformance import ClauseFailure, NotApplicable
from qnetstack.entity.containment import ClauseTimeout
from qnetstack.link.egp import SingleClickEgp
from qnetstack.link.service import LinkOkKeep
from tests.broken_links import InflatedGoodness

# ------------------------------------------------------- control exceptions


def _raising(exc: BaseException) -> type:
    """A reference link layer whose handle_above raises ``exc``."""

    class Raises(SingleClickEgp):
        def handle_above(self, msg: Any) -> None:
            raise exc

    Raises.__qualname__ = Raises.__name__ = f"Raises{type(exc).__name__}"
    return Raises


RAISING = [
    _raising(NotApplicable("the implementation says so")),
    _raising(ClauseFailure("nothing to see")),
    _raising(ClauseTimeout("not the kit's")),
    _raising(KeyboardInterrupt()),
    _raising(GeneratorExit()),
    _raising(UnsatisfiedAssumption()),
]


RaisesNotApplicable = RAISING[0]


class NotApplicableWhenBuilt(SingleClickEgp):
    """Raises the kit's NotApplicable from its constructor."""

    def __init__(self, ctx: Any) -> None:
        raise NotApplicable("built nowhere")


class ExitsInHandler(SingleClickEgp):
    """Ends the process as soon as the layer above asks for something."""

    def handle_above(self, msg: Any) -> None:
        sys.exit(0)


class RejectsWhereItCheats(InflatedGoodness):
    """Inflates goodness (LINK-OK-5) and hides it: every example in which it
    reports a pair is thrown away by telling hypothesis the example is invalid."""

    def handle_below(self, msg: Any) -> None:
        if getattr(msg, "success", False):
            reject()
        super().handle_below(msg)


# ------------------------------------------------------------- changed messages


class RewritesItsRequest(SingleClickEgp):
    """Asks for two pairs more than the CREATE it was handed, by changing the
    frozen CREATE in place: the check of LINK-OK-7 would then count against
    the larger number."""

    def handle_above(self, msg: Any) -> None:
        if hasattr(msg, "number"):
            object.__setattr__(msg, "number", msg.number + 2)
        super().handle_above(msg)


class EditsItsOksLater(InflatedGoodness):
    """Reports goodness 0.99 (LINK-OK-5), then puts the herald's value into the
    OK it has already sent, so that the record would look honest."""

    def _deliver(self, request: Any, herald: Any) -> None:
        sent: list[Any] = []
        send_up = self.ctx.send_up

        def keep(msg: Any) -> None:
            sent.append(msg)
            send_up(msg)

        self.ctx.send_up = keep
        try:
            super()._deliver(request, herald)
        finally:
            self.ctx.send_up = send_up
        for msg in sent:
            if isinstance(msg, LinkOkKeep):
                object.__setattr__(msg, "goodness", herald.fidelity_estimate)


# ----------------------------------------------------------------- hangs


class LoopsForever(SingleClickEgp):
    """Never returns from handle_above."""

    def handle_above(self, msg: Any) -> None:
        self._spin()

    def _spin(self) -> None:
        while True:
            pass


class SwallowsTimeouts(SingleClickEgp):
    """Loops in handle_above, catches whatever interrupts it, and carries on as the reference."""

    def handle_above(self, msg: Any) -> None:
        try:
            while True:
                pass
        except BaseException:  # noqa: BLE001 - swallowing the kit's timeout is the point
            pass
        super().handle_above(msg)


class PressesCtrlC(SingleClickEgp):
    """Sends the process a real SIGINT from inside a handler, as a user's Ctrl-C would."""

    def handle_above(self, msg: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        while True:  # the signal arrives within a few bytecodes
            pass


class ExitsWhenBuilt:
    """A physical backend whose constructor ends the process."""

    PROVIDES = frozenset({"physical:device", "physical:heralding"})

    def __init__(self) -> None:
        sys.exit(3)


# ----------------------------------------------------------- applications


class ProvidesNothing(BasicApps):
    """The reference applications, declaring none of them: every clause about
    teleportation or pairs would be not applicable."""

    PROVIDES = frozenset()


class DoesNothing:
    """An application that declares nothing and does nothing."""

    PROVIDES: frozenset[str] = frozenset()
    REQUIRES: frozenset[str] = frozenset()

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def start(self) -> None:
        pass

    def handle_above(self, msg: Any) -> None:
        pass

    def handle_below(self, msg: Any) -> None:
        pass

    def handle_peer(self, sender: str, msg: Any) -> None:
        pass

    def handle_timer(self, tag: Any) -> None:
        pass
