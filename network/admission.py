"""Admission on fidelity: whether a circuit can meet a request's ``min_fidelity``, and what to
ask of each link for it (specs/network.md NET-ADMIT-1..3).

Theory of operation
-------------------
The head turns the end-to-end target ``F`` into one per-link target, the fidelity every link
of the route is asked for (``LinkCreate.min_fidelity``), with
:func:`~qnetstack.network.routing.uniform_link_target`: equal Werner parameters on every link,
composed through the swap algebra (Dür, Briegel, Cirac & Zoller, PRA 59, 169, 1999) with the
memory decoherence of the expected wait, give exactly ``F``. The rule it replaces, ``F^(1/n)`` per link, ignored both the algebra and
the decoherence: on decohering memories it could ask the links for less than they gave anyway,
accept, and deliver pairs below ``F``.

A link announces the fidelity of its operating point (edge attribute ``fidelity``); one whose
fidelity is below the per-link target cannot serve the circuit. A link that announces several
operating points (``operating_points``: a single-click link's settings of α) is taken to run at
the fastest one that gives the per-link target, as the link layer picks it. A higher target
may then move links to slower points, lengthen the waits and so raise the target again;
:func:`admit` follows this up to the least per-link target that is enough. The best end-to-end
figure a route reaches this way is :func:`reachable_fidelity`, and a target is met exactly
when it is at most that. If the route the head's metric chose falls short, the head tries the
best routes by expected fidelity (:data:`~qnetstack.network.routing.FIDELITY_CANDIDATES` of
them, avoiding links known down) and takes the first that reaches the target; if none does,
the request is refused with the best figure found (``NetRejected.best_fidelity``). A target of
0 is no target: the route and the links are left as they are.

Where the topology announces no link fidelities (a bare graph), nothing can be judged here:
the target is still turned into a per-link one (with no decay if the waits are unknown), and
the link layer refuses what it cannot give.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import networkx as nx

from qnetstack.network.bell_diagonal import chain_fidelity
from qnetstack.network.routing import (
    EDGE_FIGURES,
    FIDELITY_CANDIDATES,
    NoRoute,
    k_shortest_routes,
    link_arrival_rate_per_ns,
    link_operating_points,
    route_decay,
    uniform_link_target,
)

__all__ = ["Admitted", "Refused", "admit", "reachable_fidelity"]

# A per-link target this close above the weakest link's fidelity is rounding, not a shortfall.
_ROUNDING = 1e-9


@dataclass(frozen=True)
class Admitted:
    """The circuit's route and the fidelity each of its links is asked for (0: no target)."""

    path: list[Any]
    link_min_fidelity: float


@dataclass(frozen=True)
class Refused:
    """Why no route meets the target; ``best_fidelity`` the best end-to-end figure reachable
    (None: the topology does not say)."""

    reason: str
    best_fidelity: float | None


def _edges(topology: nx.Graph, path: list[Any]) -> list[tuple[Any, Any, dict[str, Any]]]:
    return [(u, v, topology.edges[u, v]) for u, v in itertools.pairwise(path)]


def _announced(topology: nx.Graph, path: list[Any]) -> bool:
    """Whether every link of ``path`` announces the figures admission reads."""
    return all(all(name in data for name in EDGE_FIGURES) for _, _, data in _edges(topology, path))


def _run_at(topology: nx.Graph, path: list[Any], link_min_fidelity: float) -> list[float] | None:
    """The arrival rates of the links of ``path`` asked for ``link_min_fidelity``: each at its
    fastest operating point that gives at least that (as the link layer picks it); None if
    some link has no such point."""
    rates = []
    for u, v, data in _edges(topology, path):
        good = [p for f, p in link_operating_points(u, v, data) if f >= link_min_fidelity - _ROUNDING]
        if not good:
            return None
        rates.append(link_arrival_rate_per_ns(u, v, {**data, "success_probability": max(good)}) or 0.0)
    return rates


def _plan(topology: nx.Graph, path: list[Any], min_fidelity: float) -> float | None:
    """The per-link target that meets ``min_fidelity`` on ``path`` with every link at the
    operating point it would pick for it; None if there is none.

    A higher per-link target may move links to slower operating points, so longer waits, more
    decoherence and a higher target again: start from every link at its fastest point and raise
    the target until the points it picks need no more. Each step moves some link to a strictly
    slower point (or stops), so this ends within the number of points."""
    rates = _run_at(topology, path, 0.0)
    assert rates is not None  # every link has a point
    target = uniform_link_target(topology, path, min_fidelity, rates)
    while True:
        rates = _run_at(topology, path, target)
        if rates is None:
            return None
        needed = uniform_link_target(topology, path, min_fidelity, rates)
        if needed <= target + _ROUNDING:
            # rounding must not ask a link for more than its best point gives
            return min(target, min(max(f for f, _ in link_operating_points(u, v, data)) for u, v, data in _edges(topology, path)))
        target = needed


def reachable_fidelity(topology: nx.Graph, path: list[Any]) -> float:
    """The highest end-to-end target a uniform per-link target can meet on ``path`` (the links
    announce their figures).

    Asked for a per-link fidelity ``f``, every link runs at its fastest point that gives ``f``,
    and the end-to-end figure guaranteed is that of Werner links of fidelity ``f`` at those
    points' rates. A higher ``f`` is not always better: it may move links to slower points,
    whose longer waits decohere more. Between two announced point fidelities the points stay
    the same and the figure grows with ``f``, so the best is at one of the announced point
    fidelities; each (up to the weakest link's best) is tried."""
    edges = _edges(topology, path)
    points = [link_operating_points(u, v, data) for u, v, data in edges]
    ceiling = min(max(f for f, _ in link) for link in points)
    best = 0.0
    for level in sorted({f for link in points for f, _ in link if f <= ceiling}):
        rates = _run_at(topology, path, level)
        assert rates is not None  # every link reaches the weakest link's best
        rest = (1.0 - level) / 3.0
        best = max(best, chain_fidelity([(level, rest, rest, rest)] * len(edges), route_decay(topology, path, rates)))
    return best


def _admitted(topology: nx.Graph, path: list[Any], min_fidelity: float) -> Admitted | None:
    if not _announced(topology, path):  # nothing to judge by: ask the links (module docstring)
        unjudged = uniform_link_target(topology, path, min_fidelity)
        return Admitted(list(path), unjudged) if unjudged <= 1.0 else None
    planned = _plan(topology, path, min_fidelity)
    return None if planned is None else Admitted(list(path), planned)


def admit(topology: nx.Graph, path: list[Any], min_fidelity: float, excluded: Collection[frozenset[Any]] = ()) -> Admitted | Refused:
    """Admission of a circuit on ``path`` (the head's chosen route) for an end-to-end target
    ``min_fidelity`` (module docstring); ``excluded`` are the links known down, which other
    candidate routes avoid."""
    if min_fidelity <= 0.0:
        return Admitted(list(path), 0.0)
    admitted = _admitted(topology, path, min_fidelity)
    if admitted is not None:
        return admitted
    try:
        candidates = k_shortest_routes(topology, path[0], path[-1], FIDELITY_CANDIDATES, "fidelity", excluded)
    except (NoRoute, ValueError):  # ValueError: some link announces no figures
        candidates = []
    for candidate in candidates:
        admitted = _admitted(topology, candidate, min_fidelity)
        if admitted is not None:
            return admitted
    figures = [(reachable_fidelity(topology, route), route) for route in [path, *candidates] if _announced(topology, route)]
    if not figures:
        return Refused(
            f"min_fidelity {min_fidelity} is out of reach on {path}: the memories decohere too much during the expected wait",
            None,
        )
    best, route = max(figures, key=lambda figure: figure[0])
    return Refused(
        f"min_fidelity {min_fidelity} is out of reach: the best route, {route}, is expected to deliver at most {best:.4f} "
        "(every link asked for one fidelity, taken as Werner, swapped, with memory decoherence during the expected wait)",
        best,
    )
