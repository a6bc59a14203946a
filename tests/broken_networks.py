"""Deliberately broken network layers: the reference with one thing taken out.

Each shows that a clause of specs/network.md can fail (tests/test_conformance.py)
or, for the stall watch, that a run which deadlocks for memory is reported as
stalled (tests/test_runs.py).
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from qnetstack.link.service import LinkError, LinkErrorCode, LinkOkKeep, LinkState
from qnetstack.network.distill_e2e import EndToEndDistiller
from qnetstack.network.linkstate import LinkStateAdvert
from qnetstack.network.peer import Release
from qnetstack.network.policy import SwapAsapPolicy
from qnetstack.network.reroute import Rerouter
from qnetstack.network.swap_asap import SwapAsap
from qnetstack.physical.service import BellState

__all__ = [
    "AdmitsBlindly",
    "DeliversPastTheCircuitCutoff",
    "EndsMovableCircuits",
    "IgnoresAdverts",
    "KeepsFailedRounds",
    "KeepsLinkRequestsRunning",
    "LeaksReleasedSetUps",
    "LeavesBrokenChains",
    "LosesCutRequests",
    "ReportsUndistilledGoodness",
    "ReservesNothing",
    "SwapsPastTheCutoff",
    "WernerGoodness",
]


class _SwapAsapHoldingNothing(SwapAsapPolicy):
    """swap-asap that claims to hold no memory: its circuits reserve none."""

    name = "swap-asap-reserving-nothing"

    def qubits_held(self, hops: int, position: int) -> int:
        return 0


class ReservesNothing(SwapAsap):
    """The reference without memory reservations (so without admission and without pacing
    link pairs per hop), as it was before it had them: its circuits take memory as they find
    it, and circuits that cross at a node can deadlock for it."""

    def __init__(self, ctx: Any, topology: Any) -> None:
        super().__init__(ctx, topology)
        self.policy = _SwapAsapHoldingNothing()


class LeaksReleasedSetUps(SwapAsap):
    """Keeps the reservation (or the place in the queue) of a circuit whose head released it
    before it started, e.g. when its deadline ran out while it waited for memory."""

    def _release_here(self, msg: Release) -> None:
        if msg.path[-1] == self.ctx.node:
            super()._release_here(msg)  # the tail still reports the NetError


class WernerGoodness(SwapAsap):
    """Ignores the Bell-diagonal estimates its links give and composes their goodness as if
    every link pair were a Werner state, as the reference did before it had them."""

    def handle_below(self, msg: Any) -> None:
        if isinstance(msg, LinkOkKeep) and msg.bell_diagonal is not None:
            msg = msg.model_copy(update={"bell_diagonal": None})
        super().handle_below(msg)


class SwapsPastTheCutoff(SwapAsap):
    """Takes a cutoff but never cuts a pair off: a link pair older than the cutoff is still
    swapped when its partner comes (NET-CUT-1)."""

    def _cut_off(self, circuit: Any, pair: Any) -> None:
        pass


class LosesCutRequests(SwapAsap):
    """Forgets the link requests a cut link ends (ERR DOWN) and ignores the link layer's notice
    that the link is down: the circuits over it are never ended, so their requests stay open
    and keep the memory they reserved."""

    def _link_failed(self, err: LinkError) -> None:
        if err.code is LinkErrorCode.DOWN:
            request = self._requests.get(err.tag) if err.tag is not None and err.origin_node == self.ctx.node else None
            if request is not None:
                self._end_request(request)
            return
        super()._link_failed(err)

    def handle_below(self, msg: Any) -> None:
        if isinstance(msg, LinkState):
            return
        super().handle_below(msg)


class _NeverMoves(Rerouter):
    def moves(self, circuit: Any, code: Any, down_link: Any) -> bool:
        return False


class EndsMovableCircuits(SwapAsap):
    """Ends a circuit whose link went down with LINK_FAILURE even where its head has another
    path, as the reference did before it moved circuits (NET-ROUTE-2)."""

    def __init__(self, ctx: Any, topology: Any) -> None:
        super().__init__(ctx, topology)
        self._reroute = _NeverMoves(self)


class IgnoresAdverts(SwapAsap):
    """Drops the link-state advertisements of its peers: a node away from a link that went down
    keeps routing over it (NET-ROUTE-1)."""

    def handle_peer(self, sender: str, msg: Any) -> None:
        if isinstance(msg, LinkStateAdvert):
            return
        super().handle_peer(sender, msg)


class AdmitsBlindly(SwapAsap):
    """Ignores the fidelities the topology's links announce, as the reference did before it
    admitted on fidelity: a target no route can reach is accepted, its links are asked for more
    than they give, and the request ends later with a NetError instead of a NetRejected."""

    def __init__(self, ctx: Any, topology: Any) -> None:
        super().__init__(ctx, topology)
        bare = nx.Graph()
        bare.add_nodes_from(topology.nodes(data=True))
        bare.add_edges_from((u, v, {"length_km": data["length_km"]}) for u, v, data in topology.edges(data=True))
        self.topology = bare
        self._reroute = Rerouter(self)  # its view, which admission reads, starts from the bare topology


class KeepsLinkRequestsRunning(SwapAsap):
    """Never withdraws the link requests of a circuit that has ended, though the link serves
    LinkCancel: they go on making pairs that are freed as they come (NET-RES-5)."""

    def _withdraw(self, request: Any) -> None:
        pass


class LeavesBrokenChains(SwapAsap):
    """Cuts its link pairs off, but when told that a pair it already swapped was cut off at the
    other end of its hop, does nothing: the rest of the broken chain is neither freed nor made
    anew, so the far half stays held and its request never gets all its pairs (NET-CUT-4)."""

    def _void(self, circuit: Any, joined: Any, told_by: str) -> None:
        pass


class DeliversPastTheCircuitCutoff(SwapAsap):
    """Takes a per-circuit cutoff but delivers every complete chain, however old its oldest
    link pair (NET-CUT-5)."""

    def _over_circuit_cutoff(self, circuit: Any, pair: Any, records: Any) -> bool:
        return False


class _KeepingEveryRound(EndToEndDistiller):
    def _decide(self, circuit: Any, current: Any) -> None:
        if current.outcome is not None and current.peer_outcome is not None:
            current.peer_outcome = current.outcome  # as if the readouts always agreed
        super()._decide(circuit, current)


class KeepsFailedRounds(SwapAsap):
    """End-to-end distillation that keeps the source of every round, whatever the two readouts
    say: pairs a round should have freed are delivered as distilled (NET-ENDS-1)."""

    def __init__(self, ctx: Any, topology: Any, **options: Any) -> None:
        super().__init__(ctx, topology, **options)
        if self._e2e is not None:
            self._e2e = _KeepingEveryRound(self, self._e2e.policy)


class _UndistilledEstimate(EndToEndDistiller):
    def _kept_estimate(self, circuit: Any, current: Any) -> Any:
        return current.source.ok.model_copy(update={"bell_state": BellState.PHI_PLUS})


class ReportsUndistilledGoodness(SwapAsap):
    """End-to-end distillation that delivers a kept pair with the goodness of the pair before the
    round, as if distilling changed nothing (NET-ENDS-3)."""

    def __init__(self, ctx: Any, topology: Any, **options: Any) -> None:
        super().__init__(ctx, topology, **options)
        if self._e2e is not None:
            self._e2e = _UndistilledEstimate(self, self._e2e.policy)
