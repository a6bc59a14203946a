"""Assembly shares what every node reads: one topology, delays found when first needed."""

import networkx as nx
import pytest

from qnetstack.stack import assemble
from qnetstack.stack.runtime import FibreDelays
from qnetstack.stack.scenario import parse_scenario


def _grid_scenario() -> dict:
    nodes = [f"n{r}{c}" for r in range(3) for c in range(3)]
    links = [{"a": f"n{r}{c}", "b": f"n{r}{c + 1}", "length_km": 1 + r + c} for r in range(3) for c in range(2)]
    links += [{"a": f"n{r}{c}", "b": f"n{r + 1}{c}", "length_km": 2} for r in range(2) for c in range(3)]
    return {"nodes": [{"name": n} for n in nodes], "links": links}


def test_fibre_delays_are_the_shortest_paths_of_the_whole_table():
    graph = nx.Graph()
    # a square with one diagonal and a tail, weights chosen so that some shortest paths take two or three edges
    graph.add_weighted_edges_from(
        [("a", "b", 5), ("b", "c", 7), ("c", "d", 1), ("d", "a", 2), ("a", "c", 9), ("d", "e", 4)], weight="delay_ns"
    )
    graph.add_node("alone")
    table = dict(nx.all_pairs_dijkstra_path_length(graph, weight="delay_ns"))
    delays = FibreDelays(graph)
    for a in "abcde":
        for b in "abcde":
            assert delays(a, b) == table[a][b] and isinstance(delays(a, b), int)
    assert delays("a", "c") == 3 and delays("b", "e") == 11
    for a, b in (("a", "alone"), ("a", "nowhere")):
        with pytest.raises(RuntimeError, match="no classical channel"):
            delays(a, b)


def test_every_network_entity_reads_one_frozen_topology_in_the_order_a_copy_has():
    simulation = assemble(parse_scenario(_grid_scenario()))
    topologies = [layers["network"].topology for name, layers in simulation.network.entities.items() if "network" in layers]
    assert len(topologies) == 9 and all(t is topologies[0] for t in topologies)
    shared = topologies[0]
    assert nx.is_frozen(shared)
    with pytest.raises(nx.NetworkXError):
        shared.add_edge("n00", "n22", length_km=1)
    # routes between equally short paths follow the neighbour order, which must be a copy's (as before sharing)
    built = nx.Graph()
    built.add_nodes_from(shared.nodes)
    for link in _grid_scenario()["links"]:
        built.add_edge(link["a"], link["b"], length_km=link["length_km"])
    assert {n: list(shared.adj[n]) for n in shared} == {n: list(built.copy().adj[n]) for n in built}
