"""A link layer that reaches into other layers' private modules (LINK-IMPL-2).

The imports below are what the conformance kit must find by reading this
file; the class itself is the reference EGP, so nothing else fails.
"""

from __future__ import annotations

import importlib
from typing import Any

from qnetstack.link.egp import SingleClickEgp  # the link layer's own module: allowed
from qnetstack.network import routing  # a private module of a layer above
from qnetstack.physical.service import FreeQubit  # a public module of the layer below: allowed

__all__ = ["routing", "FreeQubit", "ReachesIntoOtherLayers"]


class ReachesIntoOtherLayers(SingleClickEgp):
    def start(self) -> None:
        from qnetstack.physical.engines import world  # noqa: F401 - a private module of the layer below

        super().start()

    def handle_timer(self, tag: Any) -> None:
        importlib.import_module("qnetstack.stack.runtime")  # the stack, with a literal name
        super().handle_timer(tag)
