"""Faults in the scenario model (issue 12 item 7): links cut and repaired, nodes that crash
and restart, classical messages lost or delayed.

Every run here is judged the same way once it settles: each application request ended
(``AppDone`` or a typed ``AppError``), no node's device holds a memory qubit, and no
network entity keeps memory set aside (its ``MemoryBook`` holds no reservation and no
waiting set-up). The runs use the model-driven backend on a 3x3 grid of 2 km links with
four qubits per node; three requests cross the grid so that every fault below hits at
least one open circuit (each test checks that it did, so a fault that misses cannot pass
for one that was survived).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest

from qnetstack.application.apps import BasicApps
from qnetstack.application.service import AppDone, AppError, PairResult
from qnetstack.network.service import NetRequest
from qnetstack.physical.backends.heralding_backend import HeraldingModelBackend
from qnetstack.stack import ScenarioError, assemble, load_scenario, parse_scenario
from qnetstack.stack.assembler import AssemblyError
from qnetstack.stack.conform import run_conformance
from tests import broken_networks

GRID = [f"n{r}{c}" for r in range(3) for c in range(3)]
CROSSING = [
    {"node": "n00", "request": {"kind": "pairs", "remote_node": "n22", "number": 30}},
    {"node": "n20", "request": {"kind": "pairs", "remote_node": "n02", "number": 30}},
    {"node": "n01", "request": {"kind": "pairs", "remote_node": "n21", "number": 30}},
]


def grid(faults: dict[str, Any], applications: list[dict[str, Any]] = CROSSING, physical: str = "model-heralding", **fields: Any) -> dict:
    links = [{"a": f"n{r}{c}", "b": f"n{r}{c + 1}", "length_km": 2} for r in range(3) for c in range(2)]
    links += [{"a": f"n{r}{c}", "b": f"n{r + 1}{c}", "length_km": 2} for r in range(2) for c in range(3)]
    hardware = {"memory": {"num_qubits": 4}}
    return {
        "seed": 1,
        "nodes": [{"name": n, "hardware": hardware} for n in GRID],
        "links": links,
        "implementations": {"physical": physical},
        "applications": applications,
        "faults": faults,
        **fields,
    }


def run(data: dict) -> tuple[Any, Any]:
    simulation = assemble(parse_scenario(data))
    return simulation, simulation.run()


def ends(network: Any) -> dict[tuple[str, int], Any]:
    """How each request ended: its AppDone or AppError (the last one, there is one)."""
    closed: dict[tuple[str, int], Any] = {}
    for _, node, msg in network.user_messages:
        if isinstance(msg, (AppDone, AppError)):
            assert (node, msg.request_id) not in closed, f"request {node}#{msg.request_id} ended twice"
            closed[(node, msg.request_id)] = msg
    return closed


def assert_settled(simulation: Any, result: Any) -> None:
    """Every request ended; no qubit held at any device; no memory set aside anywhere."""
    network = simulation.network
    asked = {(a.node, a.request.request_id) for a in simulation.scenario.applications}
    assert set(ends(network)) == asked, f"open requests at the end: {asked - set(ends(network))} (run {result.status})"
    held = {node: layers["physical"].held_handles() for node, layers in network.entities.items() if node in GRID}
    assert not any(held.values()), f"qubits still held: {held}"
    for node in GRID:
        layer = network.entities[node]["network"]
        if node in (network.faults.down if network.faults else ()):
            continue  # crashed and not restarted: nothing runs there (its device was checked above)
        book = layer.memory
        assert len(book) == 0 and not list(book.waiting()), f"{node} still sets memory aside"


def test_a_run_without_faults_builds_none_and_a_rule_that_never_fires_changes_nothing():
    quiet, _ = run(grid({}))
    assert quiet.network.faults is None
    harmless, _ = run(grid({"classical": [{"loss_probability": 0.0, "delay_probability": 0.0}]}))
    assert harmless.network.faults is not None
    assert harmless.network.user_messages == quiet.network.user_messages
    assert harmless.network.kernel.events_processed == quiet.network.kernel.events_processed


def test_a_link_cut_mid_run_moves_its_circuits_to_other_paths_and_frees_everything():
    baseline, _ = run(grid({}))
    on_cut = {path for path in baseline.network.paths.values() if any({a, b} == {"n01", "n11"} for a, b in zip(path, path[1:]))}
    assert on_cut, "the cut link must carry a circuit, or the test proves nothing"
    simulation, result = run(grid({"link_cuts": [{"link": ["n11", "n01"], "at_ns": 1_000_000}]}))
    assert_settled(simulation, result)
    closed = ends(simulation.network)
    # the grid has other paths: every circuit on the cut link moved to one (tests/test_reroute.py)
    assert all(isinstance(msg, AppDone) for msg in closed.values()), closed
    counts = simulation.network.trace.counts
    assert counts["network.reroute"] >= len(on_cut)
    assert counts["fault.link_cut"] == 1 and counts["link.down"] >= 2  # both ends of the link ended requests on it


def test_a_cut_link_that_is_repaired_serves_requests_made_after_the_repair():
    late = {"node": "n01", "at_ns": 4_000_000, "request": {"kind": "pairs", "remote_node": "n11", "number": 5, "request_id": 9}}
    simulation, result = run(grid({"link_cuts": [{"link": ["n01", "n11"], "at_ns": 1_000_000, "repair_ns": 3_000_000}]}, [*CROSSING, late]))
    assert_settled(simulation, result)
    assert isinstance(ends(simulation.network)[("n01", 9)], AppDone)
    network = simulation.network
    (made,) = [net for net, user in network.net_requests.items() if user == ("n01", 9)]
    assert network.paths[made] == ("n01", "n11")
    assert simulation.network.trace.counts["fault.link_repaired"] == 1


def test_a_request_made_at_an_end_of_a_link_that_is_down_goes_around_it():
    during = {"node": "n01", "at_ns": 2_000_000, "request": {"kind": "pairs", "remote_node": "n11", "number": 5, "request_id": 9}}
    simulation, result = run(grid({"link_cuts": [{"link": ["n01", "n11"], "at_ns": 1_000_000}]}, [*CROSSING, during]))
    assert_settled(simulation, result)
    assert isinstance(ends(simulation.network)[("n01", 9)], AppDone)
    network = simulation.network
    (made,) = [net for net, user in network.net_requests.items() if user == ("n01", 9)]
    assert network.paths[made] != ("n01", "n11") and len(network.paths[made]) == 4  # around a square of the grid


@pytest.mark.parametrize("restart_ns", [None, 4_000_000])
def test_a_repeater_that_crashes_ends_the_circuits_through_it_and_frees_everything(restart_ns):
    crash: dict[str, Any] = {"node": "n11", "at_ns": 2_000_000}
    if restart_ns is not None:
        crash["restart_ns"] = restart_ns
    simulation, result = run(grid({"node_crashes": [crash]}))
    assert_settled(simulation, result)
    counts = simulation.network.trace.counts
    assert counts["fault.crash"] == 1 and counts["link.down"] >= 1
    # no request ends at n11: the circuits through it move to paths around it
    assert counts["network.reroute"] >= 1, "the crash must hit a circuit"
    assert all(isinstance(msg, AppDone) for msg in ends(simulation.network).values())


def test_a_restarted_node_runs_fresh_entities_that_serve_new_requests():
    after = {"node": "n11", "at_ns": 5_000_000, "request": {"kind": "pairs", "remote_node": "n12", "number": 5, "request_id": 4}}
    # n01-n11 carried n01 -> n21 before the crash: the neighbour's attempt count went on while
    # n11's fresh link layer starts from nothing, and both ends must agree again after the repair
    used = {"node": "n01", "at_ns": 5_000_000, "request": {"kind": "pairs", "remote_node": "n11", "number": 5, "request_id": 4}}
    simulation, result = run(
        grid({"node_crashes": [{"node": "n11", "at_ns": 2_000_000, "restart_ns": 4_000_000}]}, [*CROSSING, after, used])
    )
    assert_settled(simulation, result)
    assert isinstance(ends(simulation.network)[("n11", 4)], AppDone)
    assert isinstance(ends(simulation.network)[("n01", 4)], AppDone)
    results = [m for _, node, m in simulation.network.user_messages if isinstance(m, PairResult) and m.pair_id.head == "n11"]
    assert len(results) == 5


def test_a_multiplexing_link_agrees_again_with_a_neighbour_that_restarted():
    """Four qubits and one link each: the multiplexing EGP keeps four attempts in flight, once
    both ends have said so (PeerMultiplex at start). The restarted end starts over not knowing
    its neighbour's number; both say it again at the repair, else the ends would keep different
    numbers of attempts in flight and fall out of step."""
    hardware = {"memory": {"num_qubits": 4}}
    pair = {
        "seed": 4,
        "nodes": [{"name": "a", "hardware": hardware}, {"name": "b", "hardware": hardware}],
        "links": [{"a": "a", "b": "b", "length_km": 5}],
        "implementations": {"physical": "model-heralding", "link": "multiplexed-egp"},
        "applications": [
            {"node": "a", "request": {"kind": "pairs", "remote_node": "b", "number": 20}},
            {"node": "a", "at_ns": 3_000_000, "request": {"kind": "pairs", "remote_node": "b", "number": 20}},
        ],
        "faults": {"node_crashes": [{"node": "b", "at_ns": 100_000, "restart_ns": 2_000_000}]},
    }
    simulation = assemble(parse_scenario(pair))
    simulation.run()
    network = simulation.network
    assert isinstance(ends(network)[("a", 1)], AppDone)
    assert network.entities["b"]["link"]._links["a"].peer_limit == 4


def test_a_head_that_crashes_ends_its_own_requests_and_its_set_ups_are_released():
    simulation, result = run(grid({"node_crashes": [{"node": "n00", "at_ns": 2_000_000}]}))
    assert_settled(simulation, result)
    error = ends(simulation.network)[("n00", 0)]
    assert isinstance(error, AppError) and "crashed" in error.detail


def test_a_request_handed_to_a_node_that_is_down_ends_at_once():
    while_down = {"node": "n11", "at_ns": 3_000_000, "request": {"kind": "pairs", "remote_node": "n12", "number": 5, "request_id": 4}}
    simulation, result = run(grid({"node_crashes": [{"node": "n11", "at_ns": 2_000_000}]}, [*CROSSING, while_down]))
    assert_settled(simulation, result)
    error = ends(simulation.network)[("n11", 4)]
    assert isinstance(error, AppError) and "down" in error.detail


def test_a_crash_under_the_qutip_backend_frees_the_qubits_of_attempts_in_flight():
    chain = {
        "seed": 3,
        "nodes": [{"name": n} for n in ("alice", "r", "bob")],
        "links": [{"a": "alice", "b": "r", "length_km": 5}, {"a": "r", "b": "bob", "length_km": 5}],
        "applications": [{"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": 20}}],
        "faults": {"node_crashes": [{"node": "r", "at_ns": 300_000, "restart_ns": 600_000}]},
    }
    simulation = assemble(parse_scenario(chain))
    result = simulation.run()
    network = simulation.network
    assert set(ends(network)) == {("alice", 0)}, result.status
    assert all(not network.entities[n]["physical"].held_handles() for n in ("alice", "r", "bob"))
    assert network.trace.counts["physical.crash"] == 1


class _DeadlineContext:
    """An application's context that gives every NetRequest a deadline (user requests
    have no ``max_time_ns``; the network service has)."""

    def __init__(self, ctx: Any, max_time_ns: int) -> None:
        self._ctx = ctx
        self._max_time_ns = max_time_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def send_down(self, msg: Any) -> None:
        if isinstance(msg, NetRequest):
            msg = msg.model_copy(update={"max_time_ns": self._max_time_ns})
        self._ctx.send_down(msg)


class DeadlineApps(BasicApps):
    """The reference applications, asking the network for pairs within 20 ms."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(cast(Any, _DeadlineContext(ctx, 20_000_000)))


# Classical loss and delay of the link and network layers' messages, every network
# request with a deadline. Those messages have no retransmission, so a lost one can leave
# a circuit without its next step; the deadline must still end every request (NET-TIMEOUT-1).
@pytest.mark.parametrize(
    "rule, counter",
    [
        ({"loss_probability": 0.01}, "lost"),
        ({"loss_probability": 0.05}, "lost"),
        ({"delay_probability": 0.2, "extra_delay_ns": 50_000}, "delayed"),
    ],
)
def test_lost_or_delayed_classical_messages_do_not_hang_requests_with_deadlines(rule, counter):
    data = grid({"classical": [{**rule, "layers": ["link", "network"]}]})
    simulation = assemble(parse_scenario(data), {"application": DeadlineApps})
    result = simulation.run()
    assert set(ends(simulation.network)) == {(a["node"], 0) for a in CROSSING}, result.status
    assert getattr(simulation.network.faults, counter) > 0, "no message was touched: the test proves nothing"
    again = assemble(parse_scenario(data), {"application": DeadlineApps})
    again.run()
    assert again.network.user_messages == simulation.network.user_messages  # same seed, same run


def test_lost_messages_without_deadlines_end_the_run_as_stalled_with_its_cause():
    simulation, result = run(grid({"classical": [{"loss_probability": 0.05}]}))
    assert simulation.network.faults.lost > 0
    # an honest end: the stall watch stops the run and names what each open request waits for
    assert result.status == "stalled", result.status
    still_open = [app for app in result.applications if app.state == "stalled"]
    assert still_open and all(app.waits for app in still_open)


def test_a_per_link_rule_covers_only_messages_between_its_two_nodes():
    simulation, _ = run(grid({"classical": [{"link": ["n00", "n01"], "loss_probability": 1.0}]}, CROSSING[1:]))
    # n20 -> n02 and n01 -> n21 never send a message between n00 and n01 on their paths' own sessions
    lost = simulation.network.trace.counts["fault.lost"]
    baseline, _ = run(grid({}, CROSSING[1:]))
    touches = any({"n00", "n01"} <= set(path) for path in baseline.network.paths.values())
    assert (lost > 0) == touches


# ------------------------------------------------------------------ bad input


def _problem(data: dict) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    assert "\n" not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    "faults, field, problem",
    [
        ({"link_cuts": [{"link": ["n00", "n22"], "at_ns": 5}]}, "faults.link_cuts.0.link", "no link joins 'n00' and 'n22'"),
        ({"link_cuts": [{"link": ["n00", "mallory"], "at_ns": 5}]}, "faults.link_cuts.0.link.1", "unknown node 'mallory'"),
        ({"link_cuts": [{"link": ["n00"], "at_ns": 5}]}, "faults.link_cuts.0.link", "at least 2 items"),
        ({"link_cuts": [{"link": ["n00", "n01"], "at_ns": 5, "repair_ns": 5}]}, "faults.link_cuts.0.repair_ns", "must be after at_ns"),
        (
            {"link_cuts": [{"link": ["n00", "n01"], "at_ns": 5, "repair_ns": 50}, {"link": ["n01", "n00"], "at_ns": 20}]},
            "faults.link_cuts.1.at_ns",
            "falls while faults.link_cuts.0 is still in effect",
        ),
        ({"node_crashes": [{"node": "mallory", "at_ns": 5}]}, "faults.node_crashes.0.node", "unknown node 'mallory'"),
        ({"node_crashes": [{"node": "n11", "at_ns": 9, "restart_ns": 3}]}, "faults.node_crashes.0.restart_ns", "must be after at_ns"),
        ({"classical": [{"loss_probability": 1.5}]}, "faults.classical.0.loss_probability", "less than or equal to 1"),
        ({"classical": [{"loss_probability": 0.1}, {"delay_probability": 0.1}]}, "faults.classical.1", "faults.classical.0 already covers"),
        ({"classical": [{"link": ["n00", "n11"], "loss_probability": 0.1}]}, "faults.classical.0.link", "no link joins"),
        ({"link_cut": {"link": ["n00", "n01"], "at_ns": 5}}, "faults.link_cut", "Extra inputs are not permitted"),
    ],
)
def test_a_fault_that_names_what_does_not_exist_is_one_line_naming_the_field(faults, field, problem):
    error = _problem(grid(faults))
    assert error.field == field and problem in error.problem, str(error)


class _NoFaults(HeraldingModelBackend):
    PROVIDES = frozenset(HeraldingModelBackend.PROVIDES - {"physical:faults"})


def test_a_backend_that_does_not_take_faults_is_refused_at_assembly():
    with pytest.raises(AssemblyError) as caught:
        assemble(parse_scenario(grid({"link_cuts": [{"link": ["n00", "n01"], "at_ns": 5}]})), {"physical": _NoFaults})
    assert caught.value.field == "faults.link_cuts" and "physical:faults" in caught.value.problem
    # classical faults need nothing of the physical layer
    assemble(parse_scenario(grid({"classical": [{"loss_probability": 0.1}]})), {"physical": _NoFaults})


def test_every_fault_kind_is_traced():
    simulation, _ = run(
        grid(
            {
                "link_cuts": [{"link": ["n00", "n01"], "at_ns": 1_000_000, "repair_ns": 2_000_000}],
                "node_crashes": [{"node": "n11", "at_ns": 3_000_000, "restart_ns": 4_000_000}],
            }
        )
    )
    counts = Counter({k: v for k, v in simulation.network.trace.counts.items() if k.startswith("fault.")})
    assert counts["fault.crash"] == 1 and counts["fault.restart"] == 1
    # the cut link twice over (cut, repaired) and n11's four links while it was down
    assert counts["fault.link_cut"] == 5 and counts["fault.link_repaired"] == 5


# ------------------------------------------------------------------ conformance


@pytest.mark.conformance
def test_a_network_layer_that_loses_requests_on_a_cut_link_fails_the_fault_clauses():
    """LosesCutRequests drops the ERR DOWN of its link requests and the LinkState notice: the
    circuits over the cut link never end (NET-FAULT-1) and keep the memory they reserved, so a
    later request over links still up starves (NET-FAULT-2). The controls pass."""
    controls = {"NET-REQ-1", "NET-END-1", "NET-RES-3", "NET-TIMEOUT-1"}
    expected = {"NET-FAULT-1", "NET-FAULT-2"}
    report = run_conformance("network", broken_networks.LosesCutRequests, select=sorted(expected | controls))
    assert set(report.failed_clauses()) == expected, report.to_text()
    assert all(clause.detail for clause in report.clauses if clause.status == "fail")
    reference = run_conformance("network", select=sorted(expected))
    assert not reference.failed_clauses(), reference.to_text()


# ------------------------------------------------------------------ rerouting


def test_new_requests_avoid_a_link_the_head_has_heard_is_down_and_use_it_again_when_there_is_no_other_way():
    first = {"node": "n00", "request": {"kind": "pairs", "remote_node": "n22", "number": 30}}
    again = {"node": "n00", "at_ns": 5_000_000, "request": {"kind": "pairs", "remote_node": "n22", "number": 3, "request_id": 1}}
    baseline, _ = run(grid({}, [first]))
    (path,) = baseline.network.paths.values()
    cut = [path[2], path[3]]  # a link two hops from the head: only a failure notice can tell the head of it
    simulation, result = run(grid({"link_cuts": [{"link": cut, "at_ns": 1_000_000}]}, [first, again]))
    assert_settled(simulation, result)
    network = simulation.network
    closed = ends(network)
    # the first request's circuit moved off the cut link (tests/test_reroute.py), the second avoids it from the start
    assert isinstance(closed[("n00", 0)], AppDone) and isinstance(closed[("n00", 1)], AppDone)
    (made,) = [net for net, user in network.net_requests.items() if user == ("n00", 1)]
    rerouted = network.paths[made]
    assert not any({a, b} == set(cut) for a, b in zip(rerouted, rerouted[1:])), rerouted
    # without a head that has heard of the cut, the same request takes the old route and fails
    assert path != rerouted


def test_a_route_that_only_a_down_link_joins_is_still_tried_and_ends_with_a_typed_error_instead_of_retrying():
    line = {
        "seed": 1,
        "nodes": [{"name": n} for n in ("a", "b", "c")],
        "links": [{"a": "a", "b": "b", "length_km": 2}, {"a": "b", "b": "c", "length_km": 2}],
        "implementations": {"physical": "model-heralding"},
        "applications": [
            {"node": "a", "request": {"kind": "pairs", "remote_node": "c", "number": 200}},
            {"node": "a", "at_ns": 2_000_000, "request": {"kind": "pairs", "remote_node": "c", "number": 2}},
        ],
        "faults": {"link_cuts": [{"link": ["b", "c"], "at_ns": 500_000}]},
    }
    simulation = assemble(parse_scenario({**line, "keep_trace": True}))
    simulation.run()
    network = simulation.network
    closed = ends(network)
    assert all(isinstance(closed[("a", i)], AppError) for i in (0, 1))
    assert "LINK_FAILURE" in closed[("a", 1)].detail
    # b asks its link layer for the pair with c after the set-up; that link request ends after one
    # attempt (2 x delay + 1 ns to the agreed start, one 20 us attempt period on 2 km), and the
    # failure reaches a within a few hop delays: well under 200 us, where a retrying link never ends
    (asked_at,) = [
        r["time_ns"] for r in network.trace.records if r["event"] == "link.create" and r["node"] == "b" and r["time_ns"] > 2_000_000
    ]
    ended_at = next(t for t, node, msg in network.user_messages if node == "a" and msg is closed[("a", 1)])
    assert asked_at < ended_at < asked_at + 200_000


def test_the_faults_example_runs_to_an_honest_end_with_nothing_held():
    simulation = assemble(load_scenario(Path(__file__).resolve().parent.parent / "examples" / "grid-faults.yaml"))
    result = simulation.run()
    # the circuits broken by the cut and the crash move to other paths and finish; none stalled
    assert result.status == "done"
    assert simulation.network.trace.counts["network.reroute"] >= 1
    assert_settled(simulation, result)
    after = [app for app in result.applications if app.request_id == 1]
    assert len(after) == 2 and all(app.outcome == "done" for app in after)


def test_a_fast_forward_run_in_flight_when_the_fibre_is_cut_is_lost_with_it():
    """In fast-forward the link asks for a run of up to 100 000 attempts at once (at 20 km,
    ~0.1 ms each, p ~ 0.07: a run lasts 1.3 ms on average, up to seconds). Cut during a run,
    the run is answered link_down at that instant at both ends, not when the station's draw
    would have ended it, so the link is free for requests after the repair."""
    pair = {
        "seed": 2,
        "nodes": [{"name": "a"}, {"name": "b"}],
        "links": [{"a": "a", "b": "b", "length_km": 20}],
        "implementations": {"physical": "model-heralding", "link": "fast-forward-egp"},
        "applications": [
            {"node": "a", "request": {"kind": "pairs", "remote_node": "b", "number": 1000}},
            {"node": "a", "at_ns": 3_000_000, "request": {"kind": "pairs", "remote_node": "b", "number": 2}},
        ],
        "faults": {"link_cuts": [{"link": ["a", "b"], "at_ns": 1_000_000, "repair_ns": 2_000_000}]},
    }
    simulation = assemble(parse_scenario(pair))
    network = simulation.network
    network.start()
    links = {n: network.entities[n]["link"]._links[other] for n, other in (("a", "b"), ("b", "a"))}
    network.run(until_ns=1_000_000 - 1)
    assert all(link.flights for link in links.values()), "a run must be in flight when the fibre is cut"
    network.run(until_ns=1_000_000)
    assert not any(link.flights for link in links.values()), "the run in flight was not answered at the cut"
    network.run()
    closed = ends(network)
    assert isinstance(closed[("a", 0)], AppError) and isinstance(closed[("a", 1)], AppDone)
    assert all(not network.entities[n]["physical"].held_handles() for n in ("a", "b"))
