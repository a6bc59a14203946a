"""benchmarks/network.py: its topologies, its fields and how they agree (tiny runs; no timing)."""

import contextlib
import functools
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIELDS = (
    "nodes",
    "links",
    "circuits",
    "pairs_delivered",
    "mean_goodness",
    "mean_oracle_fidelity",
    "events",
    "sim_time_ns",
    "wall_s",
    "peak_rss_mb",
)
TIMES = ("wall_s", "assembly_s", "run_s", "peak_rss_mb")


@functools.cache
def _module():
    spec = importlib.util.spec_from_file_location("network_benchmark", ROOT / "benchmarks" / "network.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _json(*args: str) -> dict:
    """The benchmark's JSON from its main() in this process (a run is a function of its arguments)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert _module().main([*args, "--json"]) == 0
    return json.loads(printed.getvalue())


CHAIN = ("--topology", "chain", "--nodes", "4", "--km", "5", "--circuits", "1", "--pairs", "5", "--endpoints", "ends", "--sim-time-s", "1")
GRID = ("--topology", "grid", "--nodes", "10", "--km", "5", "--circuits", "3", "--pairs", "2", "--sim-time-s", "1", "--seed", "2")


@pytest.mark.parametrize(
    ("topology", "nodes", "links"),
    [("chain", 9, 8), ("grid", 9, 12), ("grid", 10, 13)],  # grid 10: three rows of 3 (12 links) and n9 under n6
)
def test_regular_topologies_have_the_links_they_describe(topology, nodes, links):
    graph = _module().build_topology(topology, nodes, 10.0, np.random.default_rng(1))
    assert graph.number_of_nodes() == nodes and graph.number_of_edges() == links
    assert all(length == 10.0 for _, _, length in graph.edges(data="length_km"))


def test_waxman_topology_is_connected_seeded_and_about_the_mean_degree():
    module = _module()
    graphs = [module.build_topology("waxman", 200, 10.0, np.random.default_rng(seed)) for seed in (1, 1, 2)]
    assert nx.utils.graphs_equal(graphs[0], graphs[1]) and not nx.utils.graphs_equal(graphs[0], graphs[2])
    for graph in graphs:
        assert nx.is_connected(graph)
        assert min(length for _, _, length in graph.edges(data="length_km")) >= module.MIN_LINK_KM
        # 2 * links / nodes: the Waxman draw aims at 4; it and the joining links move it a little (200 nodes)
        assert 3.0 < 2 * graph.number_of_edges() / graph.number_of_nodes() < 5.0


def test_random_circuits_join_distinct_pairs_of_distinct_nodes():
    module = _module()
    graph = module.build_topology("chain", 5, 1.0, np.random.default_rng(1))
    ends = module.circuit_ends(graph, 10, "random", np.random.default_rng(1))  # all 10 pairs of 5 nodes
    assert all(a != b for a, b in ends)
    assert len({frozenset(e) for e in ends}) == 10
    with pytest.raises(ValueError):
        module.circuit_ends(graph, 11, "random", np.random.default_rng(1))


def test_a_run_that_ends_done_reports_every_pair_it_asked_for():
    data = _json(*CHAIN)
    for key in FIELDS:
        assert key in data, key
    assert (data["nodes"], data["links"], data["circuits"]) == (4, 3, 1)
    assert (data["status"], data["reason"], data["partial"]) == ("done", "finished", False)
    assert data["requests_done"] == 1 and data["requests_open"] == data["requests_failed"] == 0
    assert data["pairs_delivered"] == data["pairs_requested"] == 5 and data["mean_hops"] == 3
    assert 0 < data["sim_time_ns"] < 1e9 and data["events"] > 0
    assert 0.5 < data["mean_oracle_fidelity"] <= 1 and 0.5 < data["mean_goodness"] <= 1
    assert data["wall_s"] == pytest.approx(data["assembly_s"] + data["run_s"])
    assert data["peak_rss_mb"] > 10


def test_concurrent_circuits_are_counted_request_by_request():
    data = _json(*GRID)
    assert (data["nodes"], data["links"], data["circuits"], data["pairs_requested"]) == (10, 13, 3, 6)
    assert data["requests_done"] + data["requests_failed"] + data["requests_open"] == 3
    assert data["partial"] == (data["requests_open"] > 0)
    assert 0 <= data["pairs_delivered"] <= data["pairs_requested"]
    if data["status"] == "done":
        assert data["pairs_delivered"] == 6
    else:
        assert data["partial"] or data["requests_failed"]


def test_a_run_cut_at_its_simulated_time_says_it_is_partial():
    """1 µs is less than one classical round trip over 5 km: no request can end."""
    data = _json(*CHAIN[:-1], "0.000001")
    assert (data["status"], data["reason"], data["partial"]) == ("stalled", "max_time", True)
    assert data["sim_time_ns"] == 1000 and data["requests_open"] == 1
    assert data["pairs_delivered"] == 0 and data["mean_goodness"] is None and data["mean_oracle_fidelity"] is None


def test_the_same_seed_gives_the_same_numbers():
    first = _json(*GRID)
    again = json.loads(
        json.dumps(
            _module().run(
                _module().build_scenario(topology="grid", nodes=10, km=5, circuits=3, pairs=2, sim_time_s=1, seed=2), topology="grid"
            )
        )
    )
    assert {k: v for k, v in first.items() if k not in TIMES} == {k: v for k, v in again.items() if k not in TIMES}


@pytest.mark.slow
def test_the_script_prints_one_json_object():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "network.py"), *CHAIN, "--json"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    data = json.loads(out.stdout)
    assert data["pairs_delivered"] == 5 and data["status"] == "done"
