"""Link-state routing: each node's own view of the network, kept up to date by advertisements.

Theory of operation
-------------------
Every node routes new circuits on its *view* of the topology, not on the
topology itself. At the start every view is the assembled topology (the
operator configured one network, so the nodes agree on it). Afterwards a node
changes what it knows of the world only through what it sees itself and what it
is told, after the link-state routing of OSPF (RFC 2328, §12–13) as proposed
for entanglement distribution by Q-OSPF (Van Meter, Satoh, Ladd, Munro & Nemoto,
Networking Science 3, 82, 2013; Li, Liu & Chen's Q-OSPF, 2021):

* A node *owns* the state of its own links: whether each is up, and its
  figures (``fidelity``, ``success_probability``, ``attempt_period_ns``,
  ``classical_delay_ns``, the edge attributes the routing metrics read,
  :mod:`~qnetstack.network.routing`). When it learns that one of them changed
  (a link it can no longer use, a fidelity that dropped), it updates its own
  view at once and *originates* a :class:`LinkStateAdvert`: every link of the
  node with its state as the node sees it, under a sequence number the node
  increases with every advertisement.
* A node that receives an advertisement newer than any it holds from that
  origin takes it into its view and floods it on to every neighbour but the
  one it came from; an older or repeated one is dropped, which ends the flood.
  Advertisements travel as classical messages, in simulated time, so a view
  far from a change is stale until the advertisement reaches it (and stays
  stale if it is lost: there is no acknowledgement or periodic refresh in this
  version).
* A link is in a view when neither of its two ends last said it is down; its
  figures are, figure by figure, the worse of what its two ends last said
  (lower fidelity and success probability, longer attempt period and
  classical delay), so a view never believes a link better than either end
  does. A link neither end has spoken of keeps its assembled figures.

The view hands routing a networkx graph (:meth:`LinkStateView.graph`): the
shared topology itself while nothing has changed, else a copy with the changes
applied, made once per change at this node.
"""

from __future__ import annotations

from typing import Any, Literal

import networkx as nx
from pydantic import Field

from qnetstack.entity.message import Message as _Peer

__all__ = ["LinkReport", "LinkStateAdvert", "LinkStateView", "WORSE_IS_LOWER", "WORSE_IS_HIGHER"]

# the figures a report may carry, by which way is worse (for "the worse of the two ends")
WORSE_IS_LOWER = ("fidelity", "success_probability")
WORSE_IS_HIGHER = ("attempt_period_ns", "classical_delay_ns")


class LinkReport(_Peer):
    """What a node says of one of its links: up or down, and figures that differ from the
    assembled ones (``None``: as assembled)."""

    kind: Literal["link_report"] = "link_report"
    neighbour: str = Field(min_length=1)
    up: bool = True
    fidelity: float | None = Field(None, ge=0.0, le=1.0)
    success_probability: float | None = Field(None, ge=0.0, le=1.0)
    attempt_period_ns: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    classical_delay_ns: float | None = Field(None, ge=0.0, allow_inf_nan=False)

    def figures(self) -> dict[str, float]:
        return {name: value for name in (*WORSE_IS_LOWER, *WORSE_IS_HIGHER) if (value := getattr(self, name)) is not None}


class LinkStateAdvert(_Peer):
    """A node's links as it sees them, flooded to every node (module docstring)."""

    kind: Literal["link_state"] = "link_state"
    origin: str = Field(min_length=1)
    sequence: int = Field(ge=0)
    links: tuple[LinkReport, ...]


class LinkStateView:
    """One node's view of the network (module docstring)."""

    def __init__(self, topology: nx.Graph, me: str) -> None:
        self.topology = topology
        self.me = me
        self._own: dict[str, LinkReport] = {}  # my links that differ from the assembled topology
        self._sequence = 0  # of my next advertisement
        self._heard: dict[str, int] = {}  # origin -> sequence of its latest advertisement taken in
        self._said: dict[tuple[str, str], LinkReport] = {}  # (speaker, neighbour) -> latest report
        self._graph: nx.Graph | None = None  # the view with the changes applied, while valid

    # ------------------------------------------------------------ what this node sees itself

    def local_change(self, neighbour: str, *, up: bool = True, **figures: float) -> LinkStateAdvert | None:
        """This node learned the state of its link to ``neighbour``: the advertisement to flood,
        or ``None`` if it says nothing new (no flood for a repeated observation)."""
        if not self.topology.has_edge(self.me, neighbour):
            raise ValueError(f"{self.me!r} has no link to {neighbour!r}")
        report = LinkReport(neighbour=neighbour, up=up, **figures)
        if self._said.get((self.me, neighbour), LinkReport(neighbour=neighbour)) == report:
            return None
        if report == LinkReport(neighbour=neighbour):  # back to as assembled
            self._own.pop(neighbour, None)
            self._said.pop((self.me, neighbour), None)
        else:
            self._own[neighbour] = report
            self._said[(self.me, neighbour)] = report
        self._graph = None
        advert = LinkStateAdvert(origin=self.me, sequence=self._sequence, links=tuple(self._own[n] for n in sorted(self._own)))
        self._sequence += 1
        return advert

    # ------------------------------------------------------------ what others say

    def receive(self, advert: LinkStateAdvert) -> bool:
        """Take in an advertisement; whether it was new (and so is to be flooded on)."""
        if advert.origin == self.me or advert.origin not in self.topology:
            return False
        if advert.sequence <= self._heard.get(advert.origin, -1):
            return False
        self._heard[advert.origin] = advert.sequence
        # an advertisement lists every link of its origin that differs from the assembled
        # topology: a link it no longer lists is back to its assembled state
        for key in [key for key in self._said if key[0] == advert.origin]:
            del self._said[key]
        for report in advert.links:
            if self.topology.has_edge(advert.origin, report.neighbour):
                self._said[(advert.origin, report.neighbour)] = report
        self._graph = None
        return True

    def flood_to(self, sender: str | None) -> list[str]:
        """The neighbours an advertisement goes to from here: every one but ``sender``."""
        return sorted(n for n in self.topology.neighbors(self.me) if n != sender)

    # ------------------------------------------------------------ the view

    def is_up(self, a: str, b: str) -> bool:
        return self.topology.has_edge(a, b) and all(report.up for key in ((a, b), (b, a)) if (report := self._said.get(key)) is not None)

    def graph(self) -> nx.Graph:
        """The topology as this node now believes it (the shared graph while nothing changed)."""
        if not self._said:
            return self.topology
        if self._graph is None:
            view = nx.Graph(self.topology)  # an unfrozen copy: the shared topology is never changed
            for a, b in {tuple(sorted(key)) for key in self._said}:
                if not self.is_up(a, b):
                    view.remove_edge(a, b)
                    continue
                data = view.edges[a, b]
                for report in (self._said.get((a, b)), self._said.get((b, a))):
                    if report is not None:
                        _take_worse(data, report.figures())
            self._graph = view
        return self._graph


def _take_worse(data: dict[str, Any], figures: dict[str, float]) -> None:
    for name, value in figures.items():
        known = data.get(name)
        if known is None:
            data[name] = value
        elif name in WORSE_IS_LOWER:
            data[name] = min(known, value)
        else:
            data[name] = max(known, value)
