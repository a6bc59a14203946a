"""Request priorities through the whole stack: a circuit of a smaller ``priority`` value waits
ahead of larger ones for memory at the nodes of its path (network/memory.py's fairness rule)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qnetstack.application.service import AppDone, PairsRequest
from qnetstack.network.service import NetRequest
from qnetstack.stack import assemble
from qnetstack.stack.scenario import parse_scenario


def three_requests(second: int, third: int) -> dict:
    """alice -> r -> bob with two qubits at r: one circuit over r at a time. Request 1 starts
    first; requests 2 and 3 come while it runs, with priorities ``second`` and ``third``."""
    request = {"kind": "pairs", "remote_node": "bob", "number": 6}
    return {
        "name": "priorities",
        "seed": 3,
        "nodes": [
            {"name": "alice", "hardware": {"memory": {"num_qubits": 6}}},
            {"name": "r", "hardware": {"memory": {"num_qubits": 2}}},
            {"name": "bob", "hardware": {"memory": {"num_qubits": 6}}},
        ],
        "links": [{"a": "alice", "b": "r", "length_km": 5}, {"a": "r", "b": "bob", "length_km": 5}],
        "applications": [
            {"node": "alice", "request": {**request, "request_id": 1}},
            {"node": "alice", "request": {**request, "request_id": 2, "priority": second}, "at_ns": 1_000},
            {"node": "alice", "request": {**request, "request_id": 3, "priority": third}, "at_ns": 2_000},
        ],
    }


def finishing_order(second: int, third: int) -> list[int]:
    sim = assemble(parse_scenario(three_requests(second, third)))
    assert sim.run().status == "done"
    done = [m for _, _, m in sim.network.user_messages if isinstance(m, AppDone)]
    assert all(m.completed == 6 for m in done)
    return [m.request_id for m in done]


@pytest.mark.parametrize(("second", "third", "order"), [(0, 0, [1, 2, 3]), (1, 2, [1, 2, 3]), (2, 1, [1, 3, 2]), (3, 0, [1, 3, 2])])
def test_a_later_request_of_a_smaller_priority_value_is_served_first(second, third, order):
    """The running circuit is not pre-empted (request 1 ends first); of the two waiting at r, the
    one with the smaller priority value gets r's memory next, whatever the arrival order."""
    assert finishing_order(second, third) == order


def test_a_priority_outside_the_levels_is_refused_naming_the_field():
    with pytest.raises(ValidationError, match="priority"):
        PairsRequest(remote_node="bob", priority=4)
    with pytest.raises(ValidationError, match="priority"):
        NetRequest(request_id=0, remote_node="bob", priority=-1)
