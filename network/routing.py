"""Routing: which path a circuit takes, as plain functions over a networkx graph.

Theory of operation
-------------------
A route is a simple path of the topology from the head to the tail. The
reference picks a shortest path under a *metric*, an edge attribute or the
hop count, with networkx's Dijkstra (ties broken as networkx breaks them, so
a route is reproducible). ``METRICS`` names the metrics an entity can be
configured with; a new routing rule is a function with the signature of
:func:`shortest_route`.

Fibre length is the default because the classical and heralding delays of a
link grow with it, so the shortest fibre path is the fastest to set up and,
for equal links, the one with the least memory waiting (RFC 9340 §6.2 leaves
the metric to the network).
"""

from __future__ import annotations

from typing import Literal

import networkx as nx

__all__ = ["METRICS", "Metric", "NoRoute", "shortest_route"]

Metric = Literal["length_km", "hops"]
METRICS: tuple[Metric, ...] = ("length_km", "hops")


class NoRoute(Exception):
    """No path joins the two nodes (or one of them is not in the topology)."""


def shortest_route(topology: nx.Graph, source: str, target: str, metric: Metric = "length_km") -> list[str]:
    """A shortest path from ``source`` to ``target`` under ``metric``; :class:`NoRoute` if none."""
    if metric not in METRICS:
        raise ValueError(f"unknown routing metric {metric!r}; known: {', '.join(METRICS)}")
    if source not in topology or target not in topology:
        raise NoRoute(f"{source!r} or {target!r} is not in the topology")
    try:
        return list(nx.shortest_path(topology, source, target, weight=None if metric == "hops" else metric))
    except nx.NetworkXNoPath:
        raise NoRoute(f"no path from {source!r} to {target!r}") from None
