"""The default stall span reads each link's success probability at the per-link fidelity
the network layer's admission asks for, not at the old ``F ** (1/hops)``.

On decohering memories admission asks each link for more than the ``hops``-th root of the
end-to-end target (the pairs decay while they wait for their partners), which can move a
single-click link to a slower operating point: a span from the old rule would then be
shorter than the link's real pace and could take a slow, healthy run for a stall.
"""

from __future__ import annotations

import math
from typing import Any

from qnetstack.link.service import LinkCreate
from qnetstack.stack import assemble, parse_scenario, runner

NODES = ("a", "r", "b")
TARGET = 0.85
# T2 of 20 ms: the two links' expected wait for each other decoheres the pairs enough that
# admission asks each link for 0.928, above the old rule's sqrt(0.85) = 0.922, and the
# single-click links' announced operating points (fidelity 0.925, then 0.945, ...) lie between.
T2_NS = 20_000_000


def _chain(min_fidelity: float) -> dict[str, Any]:
    memory = {"num_qubits": 2, "t2_ns": T2_NS}
    return {
        "seed": 1,
        "nodes": [{"name": n, "hardware": {"memory": memory}} for n in NODES],
        "links": [{"a": "a", "b": "r", "length_km": 5}, {"a": "r", "b": "b", "length_km": 5}],
        "implementations": {"physical": "model-heralding"},
        "applications": [{"node": "a", "request": {"kind": "pairs", "remote_node": "b", "number": 2, "min_fidelity": min_fidelity}}],
    }


def _span_at(network: Any, target: float) -> int:
    """The time span the runner's rule gives with every link's probability taken at ``target``."""
    time_ns = 0.0
    for a, b in (("a", "r"), ("r", "b")):
        link = network.entities[a]["physical"].capabilities().links[b]
        time_ns += 2 * link.classical_delay_ns + link.attempt_period_ns / runner._success_probability(link, target)
    return max(runner.MIN_STALL_NS, math.ceil(runner.STALL_FACTOR * time_ns))


def test_the_span_uses_the_per_link_target_the_network_actually_asks_for():
    simulation = assemble(parse_scenario(_chain(TARGET)))
    network = simulation.network
    target = runner.strictest_link_target(network, simulation.scenario)
    old_rule = TARGET ** (1 / 2)
    points = sorted(s.fidelity for s in network.entities["a"]["physical"].capabilities().links["r"].alpha_settings)
    # the case this test is for: an operating point lies between the two rules' targets
    assert old_rule < points[0] < target < points[1], (old_rule, target, points[:2])
    stall_ns, _ = runner.default_stall_spans(network, simulation.scenario)
    assert stall_ns == _span_at(network, target)
    assert stall_ns > _span_at(network, old_rule)  # the slower operating point: a longer span

    # ... and that target is what the network layer asks the links for in the run
    asked: list[float] = []
    for node in NODES:
        link = network.entities[node]["link"]

        def spy(msg: Any, forward: Any = link.handle_above) -> None:
            if isinstance(msg, LinkCreate):
                asked.append(msg.min_fidelity)
            forward(msg)

        link.handle_above = spy
    assert simulation.run().status == "done"
    assert asked and all(math.isclose(value, target, rel_tol=1e-12) for value in asked), (asked, target)


def test_requests_without_a_target_or_that_admission_refuses_ask_nothing_of_the_links():
    quiet = assemble(parse_scenario(_chain(0.0)))
    assert runner.strictest_link_target(quiet.network, quiet.scenario) == 0.0
    # out of reach on these links (their best point is below 0.999): refused, so no link waits at it
    refused = assemble(parse_scenario(_chain(0.999)))
    assert runner.strictest_link_target(refused.network, refused.scenario) == 0.0
