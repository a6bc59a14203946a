"""A teleport sender's input qubit is part of what the network sets aside at the head
(``NetRequest.head_qubits``; specs/application.md §4, specs/network.md §1.2).

Before, the sender took a qubit for each input state wherever it found one, outside the
reservations: on a one-hop circuit the link, asked for every pair at once, filled a
two-qubit memory with pairs and the sender ended with ``NO_QUBIT`` at its first pair;
next to another request of the node the same happened. Two qubits at the head are enough
for pair + input, so neither run should fail.
"""

from __future__ import annotations

from typing import Any

import pytest

from qnetstack.application.service import AppDone, AppError, TeleportResult
from qnetstack.network.service import NetRequest
from qnetstack.stack import assemble, parse_scenario
from tests.broken_networks import ReservesNothing


def two_qubit_chain(nodes: int, applications: list[dict[str, Any]], link: str | None = None) -> dict[str, Any]:
    names = [f"n{i}" for i in range(nodes)]
    return {
        "seed": 1,
        "nodes": [{"name": n, "hardware": {"memory": {"num_qubits": 2}}} for n in names],
        "links": [{"a": a, "b": b, "length_km": 5} for a, b in zip(names, names[1:])],
        "implementations": {"physical": "model-heralding", **({"link": link} if link else {})},
        "applications": applications,
    }


def teleport(node: str, remote: str, number: int = 20, request_id: int = 0) -> dict[str, Any]:
    return {"node": node, "request": {"kind": "teleport", "remote_node": remote, "number": number, "request_id": request_id}}


def settled(simulation: Any) -> dict[tuple[str, int], Any]:
    network = simulation.network
    held = {n: layers["physical"].held_handles() for n, layers in network.entities.items() if "~" not in n}
    assert not any(held.values()), f"qubits still held: {held}"
    return {(node, m.request_id): m for _, node, m in network.user_messages if isinstance(m, (AppDone, AppError))}


@pytest.mark.parametrize("link", [None, "multiplexed-egp"])
def test_a_teleport_over_one_hop_of_two_qubit_memories_teleports_every_state(link):
    simulation = assemble(parse_scenario(two_qubit_chain(2, [teleport("n0", "n1")], link)))
    result = simulation.run()
    assert result.status == "done", result.status_line()
    ends = settled(simulation)
    assert isinstance(ends[("n0", 0)], AppDone) and ends[("n0", 0)].completed == 20
    results = [m for _, _, m in simulation.network.user_messages if isinstance(m, TeleportResult)]
    assert sorted(m.index for m in results) == list(range(20))


def test_a_teleport_next_to_another_request_of_its_node_is_set_aside_its_input_and_completes():
    """n0 has two qubits and two requests over one hop each: pairs to n1 and a teleport to n2.
    The teleport's reservation (pair + input) waits until the pairs' circuit ends, then runs."""
    scenario = {
        "seed": 1,
        "nodes": [{"name": "n0", "hardware": {"memory": {"num_qubits": 2}}}, {"name": "n1"}, {"name": "n2"}],
        "links": [{"a": "n0", "b": "n1", "length_km": 5}, {"a": "n0", "b": "n2", "length_km": 5}],
        "applications": [
            {"node": "n0", "request": {"kind": "pairs", "remote_node": "n1", "number": 20}},
            teleport("n0", "n2", request_id=1),
        ],
    }
    simulation = assemble(parse_scenario(scenario))
    assert simulation.run().status == "done"
    ends = settled(simulation)
    assert all(isinstance(m, AppDone) for m in ends.values()), ends


def test_the_sender_asks_for_its_input_and_the_head_reserves_it_with_the_circuit():
    simulation = assemble(parse_scenario(two_qubit_chain(3, [teleport("n0", "n2", number=2)])))
    network = simulation.network
    asked: list[NetRequest] = []
    head = network.entities["n0"]["network"]
    forward = head.handle_above

    def spy(msg: Any) -> None:
        asked.append(msg)
        forward(msg)

    head.handle_above = spy
    network.start()
    network.run(until_ns=200_000)  # the set-up is under way
    assert [m.head_qubits for m in asked] == [1]
    (circuit,) = [c for c in head._circuits.values() if c.head == "n0"]
    assert circuit.needs == {"n0": 2, "n1": 2, "n2": 1}  # at the head: its link qubit and the input


def test_a_network_that_reserves_nothing_still_sets_nothing_aside():
    """A policy that holds nothing reserves nothing, the input included (the stall tests rely on
    such a network to show deadlocks for memory)."""
    simulation = assemble(parse_scenario(two_qubit_chain(3, [teleport("n0", "n2", number=2)])), {"network": ReservesNothing})
    network = simulation.network
    network.start()
    network.run(until_ns=200_000)
    head = network.entities["n0"]["network"]
    (circuit,) = [c for c in head._circuits.values() if c.head == "n0"]
    assert circuit.needs == {} and len(head.memory) == 0
