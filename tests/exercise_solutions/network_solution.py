"""A worked answer to the network exercise, in the shape of its stub.

The stub (``qnetstack exercise network DIR``) hands the student a class built
as ``Impl(ctx, topology)`` with ``PROVIDES``, ``REQUIRES`` and the entity
methods. This answer keeps that shape (its constructor also takes the
options the reference takes: ``policy``, ``metric``, ``policy_options`` and
``reliable``, which the cutoff, nesting, distillation and lost-message clauses
are about) and answers each method with the reference entity
(``qnetstack.network.swap_asap.SwapAsap``) built on the same context. It is
not a second network layer: it shows that the stub's methods and imports are
all a complete implementation needs.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import networkx as nx

from qnetstack.entity import Context, Wait
from qnetstack.network.swap_asap import SwapAsap

__all__ = ["NetworkSolution"]


class NetworkSolution:
    """The stub's class, each method answered by the reference entity."""

    PROVIDES = SwapAsap.PROVIDES
    REQUIRES = SwapAsap.REQUIRES

    def __init__(
        self,
        ctx: Context,
        topology: nx.Graph,
        policy: str | None = None,
        metric: Any = None,
        policy_options: dict[str, Any] | None = None,
        reliable: bool = False,
    ) -> None:
        self.ctx = ctx
        self.topology = topology
        self._inner = SwapAsap(ctx, topology, policy=policy, metric=metric, policy_options=policy_options, reliable=reliable)

    def start(self) -> None:
        self._inner.start()

    def handle_above(self, msg: Any) -> None:
        self._inner.handle_above(msg)

    def handle_peer(self, sender: str, msg: Any) -> None:
        self._inner.handle_peer(sender, msg)

    def handle_below(self, msg: Any) -> None:
        self._inner.handle_below(msg)

    def handle_device(self, tag: Hashable, result: Any) -> None:
        self._inner.handle_device(tag, result)

    def handle_timer(self, tag: Hashable) -> None:
        self._inner.handle_timer(tag)

    def describe_waits(self) -> list[Wait]:
        return self._inner.describe_waits()
