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

Two more inputs, both local:

* **Hearsay of a cut** (:meth:`LinkStateView.told_down`). A circuit that ends
  because a link went down names the link (``down_link`` of the network's
  failure notices). That notice goes straight to the circuit's ends and may
  arrive before the flooded advertisement, so the view marks the link down at
  once, as if its end had said so; the next advertisement of that end replaces
  it (a repair is heard of that way).
* **A link measured worse than announced** (:class:`FidelityWatch`). A node
  keeps, per link of its own, the mean goodness of the last ``WINDOW`` link
  pairs it got on it (the link layer's estimate of each pair's fidelity,
  ``LinkOkKeep.goodness``). When a full window's mean falls more than
  ``MARGIN`` below the fidelity the link announced (its ``fidelity`` edge
  attribute), the node advertises the link with that mean as its fidelity;
  when the mean is back within ``MARGIN / 2`` of the announced figure it
  advertises the link as assembled again (the gap between the two thresholds
  keeps a mean near one of them from flapping). With ``WINDOW = 50`` the mean
  of a healthy link scatters by ``sd / √50`` for a per-pair spread ``sd``: even
  ``sd = 0.05`` gives 0.007, so the ``MARGIN`` of 0.05 is seven standard
  deviations away. The reference link layers report the same goodness for
  every pair of a healthy link, so a run without a change never advertises.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

import networkx as nx
from pydantic import Field

from qnetstack.entity.message import Message as _Peer

__all__ = ["FidelityWatch", "LinkReport", "LinkStateAdvert", "LinkStateView", "WORSE_IS_LOWER", "WORSE_IS_HIGHER"]

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

    def local_change(self, neighbour: str, *, up: bool | None = None, **figures: float | None) -> LinkStateAdvert | None:
        """This node learned the state of its link to ``neighbour``: the advertisement to flood,
        or ``None`` if it says nothing new (no flood for a repeated observation).

        What is not given stays as this node last said it: ``up=None`` keeps the link's up or
        down state, a figure not named keeps its value, a figure given as ``None`` is back to
        as assembled (so a link that was degraded, cut and repaired is still degraded)."""
        if not self.topology.has_edge(self.me, neighbour):
            raise ValueError(f"{self.me!r} has no link to {neighbour!r}")
        current = self._said.get((self.me, neighbour), LinkReport(neighbour=neighbour))
        merged: dict[str, Any] = {**current.figures(), **figures}
        report = LinkReport(neighbour=neighbour, up=current.up if up is None else up, **merged)
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

    def told_down(self, a: str, b: str) -> None:
        """A failure notice said link ``a``-``b`` went down (module docstring: hearsay). A node's
        own links are known from its link layer, so hearsay about them is ignored."""
        if self.me in (a, b) or not self.topology.has_edge(a, b) or not self.is_up(a, b):
            return
        current = self._said.get((a, b), LinkReport(neighbour=b))
        self._said[(a, b)] = current.model_copy(update={"up": False})
        self._graph = None

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


class FidelityWatch:
    """The mean goodness of the last ``WINDOW`` link pairs on each of a node's links, against
    the fidelity each link announced (module docstring)."""

    WINDOW = 50
    MARGIN = 0.05

    def __init__(self, topology: nx.Graph, me: str) -> None:
        self.topology = topology
        self.me = me
        self._links: dict[str, _Window] = {}

    def observe(self, neighbour: str, goodness: float) -> tuple[bool, float] | None:
        """One more link pair on the link to ``neighbour``: ``(True, mean)`` when the link has
        just become degraded, ``(False, mean)`` when it has just recovered, else ``None``."""
        window = self._links.get(neighbour)
        if window is None:
            edge = self.topology.get_edge_data(self.me, neighbour)
            announced = None if edge is None else edge.get("fidelity")
            window = self._links[neighbour] = _Window(announced, self.WINDOW)
        if window.announced is None:
            return None
        values = window.values
        if len(values) == self.WINDOW:
            window.total -= values[0]
        values.append(goodness)
        window.total += goodness
        if len(values) < self.WINDOW:
            return None
        mean = window.total / self.WINDOW
        if not window.degraded and mean < window.announced - self.MARGIN:
            window.degraded = True
            return True, mean
        if window.degraded and mean >= window.announced - self.MARGIN / 2:
            window.degraded = False
            return False, mean
        return None


class _Window:
    __slots__ = ("announced", "values", "total", "degraded")

    def __init__(self, announced: float | None, size: int) -> None:
        self.announced = announced
        self.values: deque[float] = deque(maxlen=size)
        self.total = 0.0
        self.degraded = False
