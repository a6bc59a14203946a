"""Network benchmark: many nodes, many concurrent circuits, the whole stack.

Usage::

    python benchmarks/network.py --topology chain --nodes 9 --km 10 --circuits 1 --pairs 100 \\
        --endpoints ends --sim-time-s 10 --seed 1 --json
    python benchmarks/network.py --topology waxman --nodes 1000 --km 10 --circuits 100 --pairs 10 \\
        --sim-time-s 1 --seed 1 --json

What runs: a network built here (``--topology``, ``--nodes``, ``--km``) and
assembled by :func:`qnetstack.stack.assemble` with the reference layers: the
``model-heralding`` physical backend (outcomes drawn from the scheme's
analytic model), the ``fast-forward-egp`` link layer, the ``swap-asap``
network layer (or the network node with another registered ``--policy``) and
the ``basic-apps`` application. ``--circuits`` pairs requests (``PairsRequest``,
``--pairs`` pairs each) join node pairs drawn with the seed: ``--endpoints
random`` draws distinct unordered pairs of distinct nodes, ``--endpoints ends``
makes every circuit join the first and the last node (a chain's two ends, a
grid's opposite corners). All requests are submitted at time 0, so their
circuits run at the same time. The run stops when every request has ended or
at ``--sim-time-s`` of simulated time, whichever comes first (or at the
stack's stall watch, see ``qnetstack.stack.runner``, or after
``--wall-limit-s`` of wall-clock time).

Topologies (every link ``--km`` long unless said otherwise; each node holds
``--qubits`` memory qubits):

* ``chain``: ``n0 - n1 - ... - n{N-1}``;
* ``grid``: the nodes fill a grid row by row, ``floor(sqrt(N))`` wide (the
  last row may be short), each joined to its right and lower neighbour;
* ``waxman``: nodes placed uniformly in a square of side ``--km`` × sqrt(N)
  (one node per ``--km`` × ``--km`` on average), two nodes at distance ``d``
  joined with the probability ``beta exp(-d / (alpha L))`` of Waxman (IEEE
  J. Sel. Areas Commun. 6, 1617 (1988)), with ``alpha L`` = ``--km``
  (so links stay about as long, near 2 × ``--km`` on average, whatever the
  number of nodes) and ``beta``
  set for a mean degree of 4; each component left over is then joined to the
  rest by its shortest possible link, so the network is connected. A link is
  as long as the distance between its nodes (at least 0.1 km).

Reported (``--json``: one object on stdout):

* ``nodes``, ``links``, ``circuits``, ``pairs_requested`` (circuits × pairs),
  ``pairs_delivered`` (end-to-end pairs reported to the users);
* ``mean_hops``: links per circuit, over the paths the network accepted;
* ``status``, ``reason``, ``detail``: how the run ended, as the run states it
  (``done``: every request done; ``stalled``: requests were open when it
  stopped, e.g. at ``--sim-time-s`` (reason ``max_time``) or at the stall
  watch; ``failed``), with ``requests_done`` / ``requests_failed`` /
  ``requests_open`` counting the requests by their state. A run that did not
  end ``done`` is partial, and ``partial`` says so;
* ``mean_goodness`` (the network's fidelity estimate, delivered with each
  pair) and ``mean_oracle_fidelity`` (the simulated state's fidelity, read
  by the application), over the delivered pairs (None when none was);
* ``events`` (kernel events), ``counters`` (the run's traced events by name,
  e.g. ``station.attempt_incomplete``: an attempt the two ends did not make
  together, one of them absent or without a free memory),
  ``sim_time_ns`` (simulated time at the end);
* ``assembly_s`` (``time.perf_counter`` around :func:`~qnetstack.stack.assemble`),
  ``run_s`` (around the run), ``wall_s`` (their sum; with ``--repeat N`` the
  fastest of N identical runs, and its ``assembly_s`` and ``run_s``);
* ``peak_rss_mb``: the process's peak resident memory
  (``resource.getrusage``), everything included: the interpreter, the
  imports, building the topology, every repeat.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from typing import Any

import networkx as nx
import numpy as np

from qnetstack.network.node import NetworkNode
from qnetstack.network.policy import POLICIES
from qnetstack.stack import assemble
from qnetstack.stack.scenario import Scenario, parse_scenario

__all__ = ["TOPOLOGIES", "ENDPOINTS", "SCHEMES", "build_topology", "circuit_ends", "build_scenario", "run", "main"]

TOPOLOGIES = ("chain", "grid", "waxman")
ENDPOINTS = ("random", "ends")
SCHEMES = ("single-click", "barrett-kok", "midpoint-source")
WAXMAN_RANGE = 1.0  # alpha L of the Waxman probability, in units of --km: links of about 2 km on average
WAXMAN_MEAN_DEGREE = 4.0
MIN_LINK_KM = 0.1


def _name(i: int) -> str:
    return f"n{i}"


def build_topology(topology: str, nodes: int, km: float, rng: np.random.Generator) -> nx.Graph:
    """The graph of ``nodes`` nodes named ``n0``... whose edges carry ``length_km``."""
    if topology not in TOPOLOGIES:
        raise ValueError(f"topology must be one of {', '.join(TOPOLOGIES)}, got {topology!r}")
    if nodes < 2:
        raise ValueError(f"--nodes must be at least 2, got {nodes}")
    if not km > 0:
        raise ValueError(f"--km must be positive, got {km}")
    graph = nx.Graph()
    graph.add_nodes_from(_name(i) for i in range(nodes))
    if topology == "chain":
        graph.add_edges_from(((_name(i), _name(i + 1)) for i in range(nodes - 1)), length_km=km)
    elif topology == "grid":
        width = math.isqrt(nodes)
        for i in range(nodes):
            if (i + 1) % width and i + 1 < nodes:
                graph.add_edge(_name(i), _name(i + 1), length_km=km)
            if i + width < nodes:
                graph.add_edge(_name(i), _name(i + width), length_km=km)
    else:
        _add_waxman_links(graph, nodes, km, rng)
    return graph


def _add_waxman_links(graph: nx.Graph, nodes: int, km: float, rng: np.random.Generator) -> None:
    side = km * math.sqrt(nodes)
    position = rng.uniform(0.0, side, size=(nodes, 2))
    distance = np.sqrt(((position[:, None, :] - position[None, :, :]) ** 2).sum(axis=-1))
    upper = np.triu(np.ones((nodes, nodes), dtype=bool), k=1)
    weight = np.exp(-distance / (WAXMAN_RANGE * km))
    # beta so that the expected number of links is nodes * mean degree / 2
    beta = min(1.0, WAXMAN_MEAN_DEGREE * nodes / 2 / weight[upper].sum())
    draws = rng.random((nodes, nodes))
    for i, j in zip(*np.nonzero(upper & (draws < beta * weight)), strict=True):
        graph.add_edge(_name(int(i)), _name(int(j)), length_km=max(MIN_LINK_KM, float(distance[i, j])))
    components = sorted((sorted(int(n[1:]) for n in c) for c in nx.connected_components(graph)), key=lambda c: c[0])
    joined = components[0]
    for component in components[1:]:
        # the shortest link from this component to the nodes joined so far
        between = distance[np.ix_(component, joined)]
        i, j = np.unravel_index(int(np.argmin(between)), between.shape)
        a, b = component[int(i)], joined[int(j)]
        graph.add_edge(_name(a), _name(b), length_km=max(MIN_LINK_KM, float(distance[a, b])))
        joined = joined + component


def circuit_ends(graph: nx.Graph, circuits: int, endpoints: str, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(head, tail) of each circuit: distinct random node pairs, or all between the first and last node."""
    names = list(graph.nodes)
    if endpoints == "ends":
        return [(names[0], names[-1])] * circuits
    if endpoints != "random":
        raise ValueError(f"endpoints must be one of {', '.join(ENDPOINTS)}, got {endpoints!r}")
    possible = len(names) * (len(names) - 1) // 2
    if circuits > possible:
        raise ValueError(f"{circuits} circuits between distinct node pairs need more than {len(names)} nodes")
    chosen: list[tuple[str, str]] = []
    seen: set[frozenset[str]] = set()
    while len(chosen) < circuits:
        a, b = (int(i) for i in rng.choice(len(names), size=2, replace=False))
        if frozenset((a, b)) not in seen:
            seen.add(frozenset((a, b)))
            chosen.append((names[a], names[b]))
    return chosen


def build_scenario(
    *,
    topology: str,
    nodes: int,
    km: float,
    circuits: int,
    pairs: int,
    sim_time_s: float,
    endpoints: str = "random",
    scheme: str = "barrett-kok",
    qubits: int = 4,
    t2_ns: int | None = 1_000_000_000,
    seed: int = 1,
    pairs_per_request: int = 1,
) -> Scenario:
    """The benchmark's scenario (validated like a scenario file); topology and
    circuit ends are drawn from ``seed``, and the run's streams seeded with it."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if circuits < 1 or pairs < 1:
        raise ValueError("--circuits and --pairs must be at least 1")
    if not sim_time_s > 0:
        raise ValueError(f"--sim-time-s must be positive, got {sim_time_s}")
    if pairs_per_request < 1:
        raise ValueError(f"--pairs-per-request must be at least 1, got {pairs_per_request}")
    rng = np.random.default_rng(seed)
    graph = build_topology(topology, nodes, km, rng)
    ends = circuit_ends(graph, circuits, endpoints, rng)
    hardware = {"memory": {"num_qubits": qubits, "t2_ns": t2_ns}}
    ids: dict[str, int] = {}
    applications = []
    for head, tail in ends:
        request_id = ids[head] = ids.get(head, -1) + 1
        request = {"kind": "pairs", "remote_node": tail, "number": pairs, "request_id": request_id}
        applications.append({"node": head, "request": request})
    return parse_scenario(
        {
            "name": f"network-benchmark-{topology}-{nodes}",
            "seed": seed,
            "nodes": [{"name": name, "hardware": hardware} for name in graph.nodes],
            "links": [{"a": a, "b": b, "length_km": data["length_km"], "scheme": scheme} for a, b, data in graph.edges(data=True)],
            "implementations": {"physical": "model-heralding", "link": "fast-forward-egp", "network": "swap-asap"},
            "applications": applications,
            "stop": {"max_time_ns": round(sim_time_s * 1e9), "max_events": None},
            # swap-asap's own option, given only when it differs from its default
            **(
                {"network": {"policy": "swap-asap", "policy_options": {"pairs_per_request": pairs_per_request}}}
                if pairs_per_request > 1
                else {}
            ),
        }
    )


def _network_layer(policy: str) -> Any:
    """The network layer running ``policy``: the registered swap-asap layer for its own policy."""
    if policy not in POLICIES:
        raise ValueError(f"unknown network policy {policy!r}; registered: {', '.join(sorted(POLICIES))}")
    if policy == "swap-asap":
        return "swap-asap"
    return type(f"NetworkNode_{policy}", (NetworkNode,), {"POLICY": policy})


def run(
    scenario: Scenario, policy: str = "swap-asap", repeat: int = 1, topology: str = "", wall_limit_s: float | None = None
) -> dict[str, Any]:
    """Assemble and run ``scenario`` ``repeat`` times (identical runs: same seed); the
    figures of the module docstring, with the fastest run's times. ``wall_limit_s``
    cuts each run after that much wall-clock time (it then ends ``stalled``, reason
    ``wall_limit``)."""
    network_layer = _network_layer(policy)
    best: tuple[float, float, float] = (math.inf, math.inf, math.inf)
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        simulation = assemble(scenario, {"network": network_layer})
        assembled = time.perf_counter()
        result = simulation.run(wall_limit_s=wall_limit_s)
        ran = time.perf_counter()
        if ran - start < best[0]:
            best = (ran - start, assembled - start, ran - assembled)
    states = [a.state for a in result.applications]
    delivered = result.pairs.count if result.pairs else 0
    hops = [len(a.path) - 1 for a in result.applications if a.path]
    return {
        "topology": topology,
        "nodes": len(scenario.nodes),
        "links": len(scenario.links),
        "km": sorted({link.length_km for link in scenario.links})[0] if topology != "waxman" else None,
        "mean_link_km": sum(link.length_km for link in scenario.links) / len(scenario.links),
        "scheme": scenario.links[0].scheme,
        "policy": policy,
        "seed": scenario.seed,
        "circuits": len(scenario.applications),
        "pairs_requested": sum(a.request.number for a in scenario.applications),
        "pairs_delivered": delivered,
        "mean_hops": sum(hops) / len(hops) if hops else None,
        "status": result.status,
        "reason": result.end.reason,
        "detail": result.end.detail,
        "partial": result.partial,
        "requests_done": states.count("done"),
        "requests_failed": states.count("failed") + states.count("refused"),
        "requests_open": states.count("stalled") + states.count("open"),
        "mean_goodness": result.pairs.mean_goodness if result.pairs else None,
        "mean_oracle_fidelity": result.pairs.mean_oracle_fidelity if result.pairs else None,
        "stderr_oracle_fidelity": result.pairs.stderr_oracle_fidelity if result.pairs else None,
        "events": result.events,
        "counters": result.counters,
        "sim_time_ns": result.sim_time_ns,
        "wall_s": best[0],
        "assembly_s": best[1],
        "run_s": best[2],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux reports KiB
    }


def _summary(r: dict[str, Any]) -> str:
    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    return "\n".join(
        [
            f"{r['topology']}: {r['nodes']} nodes, {r['links']} links (mean {r['mean_link_km']:.3g} km), {r['scheme']}, "
            f"{r['policy']} (seed {r['seed']})",
            f"  run ended             {r['status']} ({r['reason']}: {r['detail']})",
            f"  requests              {r['circuits']}: {r['requests_done']} done, {r['requests_failed']} failed, {r['requests_open']} open",
            f"  pairs delivered       {r['pairs_delivered']} of {r['pairs_requested']}   (mean {fmt(r['mean_hops'], '.3g')} hops per circuit)",
            f"  mean goodness         {fmt(r['mean_goodness'], '.5f')}",
            f"  mean oracle fidelity  {fmt(r['mean_oracle_fidelity'], '.5f')} ± {fmt(r['stderr_oracle_fidelity'], '.2g')}",
            f"  simulated time        {r['sim_time_ns'] / 1e6:.3f} ms   ({r['events']} events)",
            f"  wall time             {r['wall_s']:.3f} s (assembly {r['assembly_s']:.3f} s, run {r['run_s']:.3f} s)",
            f"  peak RSS              {r['peak_rss_mb']:.0f} MB",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", choices=TOPOLOGIES, default="chain")
    parser.add_argument("--nodes", type=int, default=9, help="nodes (stations not counted)")
    parser.add_argument("--km", type=float, default=10.0, help="link length (km); waxman: the mean spacing of nodes")
    parser.add_argument("--circuits", type=int, default=1, help="pairs requests, all submitted at time 0")
    parser.add_argument("--pairs", type=int, default=100, help="end-to-end pairs each request asks for")
    parser.add_argument("--endpoints", choices=ENDPOINTS, default="random", help="random node pairs, or the first and last node")
    parser.add_argument("--sim-time-s", type=float, default=1.0, help="stop at this simulated time (s) if requests are still open")
    parser.add_argument("--policy", choices=sorted(POLICIES), default="swap-asap", help="the network layer's policy")
    parser.add_argument("--scheme", choices=SCHEMES, default="barrett-kok")
    parser.add_argument("--qubits", type=int, default=4, help="memory qubits per node")
    parser.add_argument("--t2-ns", type=int, default=1_000_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pairs-per-request", type=int, default=1, help="swap-asap over repeaters: link pairs one CREATE asks for (its pairs_per_request)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="run this many times, report the fastest")
    parser.add_argument("--wall-limit-s", type=float, default=None, help="cut each run after this many seconds of wall-clock time")
    parser.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
    args = parser.parse_args(argv)
    try:
        scenario = build_scenario(
            topology=args.topology,
            nodes=args.nodes,
            km=args.km,
            circuits=args.circuits,
            pairs=args.pairs,
            sim_time_s=args.sim_time_s,
            endpoints=args.endpoints,
            scheme=args.scheme,
            qubits=args.qubits,
            t2_ns=args.t2_ns,
            seed=args.seed,
            pairs_per_request=args.pairs_per_request,
        )
    except ValueError as exc:  # ScenarioError is a ValueError
        parser.error(str(exc))
    if args.wall_limit_s is not None and not args.wall_limit_s > 0:
        parser.error("--wall-limit-s must be a positive number of seconds")
    result = run(scenario, args.policy, args.repeat, args.topology, args.wall_limit_s)
    print(json.dumps(result, sort_keys=True) if args.json else _summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
