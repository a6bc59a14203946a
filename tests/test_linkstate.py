"""Link-state views (network/linkstate.py) on their own: origination, flooding, staleness, the
worse-of-two-ends rule, and routing on a view."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qnetstack.network.linkstate import LinkStateAdvert, LinkStateView
from qnetstack.network.routing import shortest_route


def grid(n: int = 3) -> nx.Graph:
    g = nx.Graph()
    for i in range(n):
        for j in range(n):
            for di, dj in ((0, 1), (1, 0)):
                if i + di < n and j + dj < n:
                    g.add_edge(
                        f"n{i}{j}",
                        f"n{i + di}{j + dj}",
                        length_km=10.0,
                        fidelity=0.9,
                        success_probability=0.01,
                        attempt_period_ns=100.0,
                        classical_delay_ns=50.0,
                    )
    return nx.freeze(g)


def flood(views: dict[str, LinkStateView], origin: str, advert: LinkStateAdvert, lost: set[tuple[str, str]] = frozenset()) -> int:
    """Deliver an advertisement as the nodes would, breadth first; how many copies were sent."""
    sent = 0
    queue = [(origin, n, advert) for n in views[origin].flood_to(None)]
    while queue:
        sender, receiver, message = queue.pop(0)
        sent += 1
        if (sender, receiver) in lost:
            continue
        if views[receiver].receive(message):
            queue.extend((receiver, n, message) for n in views[receiver].flood_to(sender))
    return sent


def test_views_start_as_the_topology_and_share_it():
    topology = grid()
    view = LinkStateView(topology, "n00")
    assert view.graph() is topology
    assert shortest_route(view.graph(), "n00", "n22") == shortest_route(topology, "n00", "n22")


def test_a_link_down_reaches_every_node_and_routes_avoid_it():
    topology = grid()
    views = {n: LinkStateView(topology, n) for n in topology}
    advert = views["n01"].local_change("n11", up=False)
    assert advert is not None and advert.origin == "n01" and advert.sequence == 0
    sent = flood(views, "n01", advert)
    # each node forwards a new advertisement once to each neighbour but the sender: at most
    # one copy per direction of every link
    assert sent <= 2 * topology.number_of_edges()
    for name, view in views.items():
        assert not view.is_up("n01", "n11") and not view.is_up("n11", "n01"), name
        assert not view.graph().has_edge("n01", "n11")
        assert topology.has_edge("n01", "n11")  # the shared topology is never changed
    route = shortest_route(views["n00"].graph(), "n00", "n21", "hops")
    assert ("n01", "n11") not in zip(route, route[1:]) and ("n11", "n01") not in zip(route, route[1:])


def test_a_view_is_stale_until_the_advertisement_arrives_and_stays_so_if_it_is_lost():
    topology = grid()
    views = {n: LinkStateView(topology, n) for n in topology}
    advert = views["n00"].local_change("n01", up=False)
    assert advert is not None
    assert views["n22"].is_up("n00", "n01")  # nothing told it yet
    # every copy into n22 lost: its view stays stale
    flood(views, "n00", advert, lost={("n12", "n22"), ("n21", "n22")})
    assert views["n22"].is_up("n00", "n01")
    assert not views["n11"].is_up("n00", "n01")


def test_old_and_repeated_advertisements_are_dropped_and_a_repair_is_heard():
    topology = grid()
    me, other = LinkStateView(topology, "n00"), LinkStateView(topology, "n11")
    down = me.local_change("n01", up=False)
    assert me.local_change("n01", up=False) is None  # the same observation again: no flood
    up = me.local_change("n01", up=True)
    assert down is not None and up is not None and up.sequence == down.sequence + 1
    assert other.receive(up) and other.is_up("n00", "n01")
    assert not other.receive(down)  # older than what it holds: the late copy changes nothing
    assert other.is_up("n00", "n01") and other.graph() is topology
    assert not other.receive(up)  # a repeat ends the flood


def test_figures_are_the_worse_of_what_the_two_ends_said():
    topology = grid()
    view = LinkStateView(topology, "n22")
    view.receive(LinkStateAdvert(origin="n00", sequence=0, links=(dict(neighbour="n01", fidelity=0.8, attempt_period_ns=90.0),)))
    view.receive(LinkStateAdvert(origin="n01", sequence=0, links=(dict(neighbour="n00", fidelity=0.85, attempt_period_ns=200.0),)))
    data = view.graph().edges["n00", "n01"]
    assert data["fidelity"] == 0.8  # lower is worse
    assert data["attempt_period_ns"] == 200.0  # longer is worse; 90 is better than assembled, so 100 would hold
    assert data["success_probability"] == 0.01  # nobody spoke of it: as assembled


def test_a_degraded_link_is_avoided_by_the_fidelity_metric():
    topology = grid()
    view = LinkStateView(topology, "n00")
    before = shortest_route(view.graph(), "n00", "n11", "fidelity")
    first_hop = before[1]
    view.local_change(first_hop, fidelity=0.6)
    after = shortest_route(view.graph(), "n00", "n11", "fidelity")
    assert after[1] != first_hop and len(after) == len(before)


def test_bad_input_is_refused():
    view = LinkStateView(grid(), "n00")
    with pytest.raises(ValueError, match="no link"):
        view.local_change("n22", up=False)
    with pytest.raises(ValueError):
        view.local_change("n01", fidelity=1.5)
    # an advertisement from a node outside the topology, or about a link that does not exist, changes nothing
    assert not view.receive(LinkStateAdvert(origin="mallory", sequence=0, links=(dict(neighbour="n00", up=False),)))
    assert view.receive(LinkStateAdvert(origin="n11", sequence=0, links=(dict(neighbour="n00", up=False),)))
    assert view.graph().has_edge("n00", "n01") and view.is_up("n11", "n12")


@settings(max_examples=40, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(["n00", "n11", "n12", "n21"]), st.integers(0, 3), st.booleans()), max_size=12))
def test_after_every_flood_all_views_agree(changes):
    """With no loss, every view holds the same links once the floods are over, whatever the
    order of changes (each origin's latest advertisement wins everywhere)."""
    topology = grid()
    views = {n: LinkStateView(topology, n) for n in topology}
    for origin, which, up in changes:
        neighbour = sorted(topology.neighbors(origin))[which % topology.degree(origin)]
        advert = views[origin].local_change(neighbour, up=up)
        if advert is not None:
            flood(views, origin, advert)
    edges = {n: sorted(tuple(sorted(e)) for e in view.graph().edges) for n, view in views.items()}
    assert len({tuple(e) for e in edges.values()}) == 1
