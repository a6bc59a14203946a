"""What photon counting at heralding stations costs: the same runs with it on and off.

Usage::

    python benchmarks/photon_counting.py --rounds 7 [--scenario examples/teleport-chain.yaml] [--pairs 60]

Two workloads, each assembled and run ``--rounds`` times with counting on and
``--rounds`` times with it off, alternating (on, off, on, off, ...) so that
drift of a shared machine falls on both alike; the medians are printed:

* ``--scenario`` (default ``examples/teleport-chain.yaml``), as its file says;
* a two-node midpoint-source link (SPDC source, μ = 0.05, 1 km) making
  ``--pairs`` pairs attempt by attempt (``single-click-egp``), the case where
  every failed attempt draws its click pattern.

"Off" replaces the station's pattern counter by none and leaves the report's
photon-statistics section empty; "on" is the code as it runs. The time is the
process's CPU time (``time.process_time``) around assembly, run and report
(imports excluded): on a machine shared with other work, wall time mostly
measures the neighbours.
Same seed, so both modes run the same events (the counter draws from a stream
of its own).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from qnetstack.physical.backends import heralding_backend
from qnetstack.stack import report
from qnetstack.stack.assembler import assemble
from qnetstack.stack.scenario import Scenario, load_scenario, parse_scenario


def spdc_link(pairs: int) -> Scenario:
    node = {"memory": {"num_qubits": 2}, "emission_efficiency": 0.75}
    return parse_scenario(
        {
            "name": "spdc-per-attempt",
            "seed": 3,
            "nodes": [{"name": "alice", "hardware": node}, {"name": "bob", "hardware": node}],
            "links": [
                {
                    "a": "alice",
                    "b": "bob",
                    "length_km": 1.0,
                    "scheme": "midpoint-source",
                    "detector": {"efficiency": 0.8, "dark_count_probability": 1e-4},
                    "scheme_params": {"source": {"mean_pair_number": 0.05}},
                }
            ],
            "implementations": {"physical": "model-heralding", "link": "single-click-egp"},
            "applications": [{"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": pairs}}],
        }
    )


def timed(scenario: Scenario, counting: bool) -> tuple[float, Any]:
    counter, section = heralding_backend.pattern_counter, report._photon_statistics
    if not counting:
        heralding_backend.pattern_counter = lambda station: None  # type: ignore[assignment]
        report._photon_statistics = lambda network: []  # type: ignore[assignment]
    try:
        start = time.process_time()
        result = assemble(scenario).run()
        return time.process_time() - start, result
    finally:
        heralding_backend.pattern_counter, report._photon_statistics = counter, section


def compare(name: str, make: Callable[[], Scenario], rounds: int) -> None:
    scenario = make()
    timed(scenario, True)  # warm caches (instruments, imports inside the run)
    on, off = [], []
    for _ in range(rounds):
        t_on, r_on = timed(scenario, True)
        t_off, r_off = timed(scenario, False)
        assert r_on.links == r_off.links and r_on.events == r_off.events, "counting changed the run"
        on.append(t_on)
        off.append(t_off)
    m_on, m_off = statistics.median(on), statistics.median(off)
    attempts = sum(s.attempts for s in r_on.links)
    print(
        f"{name}: {attempts} attempts, {r_on.events} events; median of {rounds} alternating runs: "
        f"counting on {m_on:.3f} s CPU, off {m_off:.3f} s, difference {100 * (m_on - m_off) / m_off:+.1f}% "
        f"(on: {', '.join(f'{t:.3f}' for t in on)}; off: {', '.join(f'{t:.3f}' for t in off)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scenario", default="examples/teleport-chain.yaml")
    parser.add_argument("--pairs", type=int, default=60)
    args = parser.parse_args()
    compare(args.scenario, lambda: load_scenario(args.scenario), args.rounds)
    compare(f"midpoint-source, {args.pairs} pairs attempt by attempt", lambda: spdc_link(args.pairs), args.rounds)


if __name__ == "__main__":
    main()
