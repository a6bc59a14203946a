"""Every run ends in a state it states: done, failed (with where and why) or stalled
(with what each open request waits for), with exit codes 0, 1 and 2.

The stalls are deadlocks for memory that the reference network layer reached
before it reserved memory for its circuits (memory full of link pairs that wait
for partners that need that memory). The reference now completes those runs
(tested below), so the stall watch is tested on ``ReservesNothing``
(tests/broken_networks.py), the reference with its reservations taken out,
which reaches them still; the tests
also pin the explanation the layers' ``describe_waits`` give. Run lengths are
asserted in events, which do not depend on the machine's speed.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from qnetstack.application.apps import BasicApps
from qnetstack.entity import DescribesWaits, Wait
from qnetstack.entity.kernel import Kernel
from qnetstack.link.egp import SingleClickEgp
from qnetstack.network.swap_asap import SwapAsap, SwapRecord
from qnetstack.physical.service import FreeQubit
from qnetstack.stack import assemble, parse_scenario, runner
from qnetstack.stack.cli import main
from tests.broken_networks import ReservesNothing

FAST = {"physical": "model-heralding", "link": "fast-forward-egp"}


def chain_crossing(**stop) -> dict:
    """alice - r - bob with two qubits per node; alice asks bob and bob asks alice for 10
    pairs each. r takes one link pair of each circuit, on different links, and is full:
    each circuit's second pair at r needs a qubit the other one holds."""
    hardware = {"memory": {"num_qubits": 2}}
    return {
        "name": "crossing",
        "nodes": [{"name": n, "hardware": hardware} for n in ("alice", "r", "bob")],
        "links": [{"a": "alice", "b": "r", "length_km": 5}, {"a": "r", "b": "bob", "length_km": 5}],
        "applications": [
            {"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": 10}},
            {"node": "bob", "request": {"kind": "pairs", "remote_node": "alice", "number": 10}},
        ],
        "implementations": FAST,
        "stop": {"max_events": None, **stop},
    }


def grid(applications: list[dict]) -> dict:
    """A 3x3 grid n00..n22 of 5 km links, four qubits per node (the default), fast-forward."""
    nodes = [{"name": f"n{i}{j}"} for i in range(3) for j in range(3)]
    links = [{"a": f"n{i}{j}", "b": f"n{i}{j + 1}", "length_km": 5} for i in range(3) for j in range(2)]
    links += [{"a": f"n{i}{j}", "b": f"n{i + 1}{j}", "length_km": 5} for i in range(2) for j in range(3)]
    return {"name": "grid", "nodes": nodes, "links": links, "applications": applications, "implementations": FAST}


def by_label(result):
    return {app.label: app for app in result.applications}


# the reference without its memory reservations (tests/broken_networks.py): it deadlocks for memory
UNRESERVED = {"network": ReservesNothing}


class ForgetsTheReceiver(BasicApps):
    """The reference teleportation as it was before it told the receiver about the pairs it
    skips after NO_QUBIT: the receiver keeps their halves for ever (a leak the runner must
    report, whoever's layer has it)."""

    def _skip(self, session: Any, pair: Any) -> None:
        self.ctx.device.execute(FreeQubit(handle=pair.handle))


LEAKY = {**UNRESERVED, "application": ForgetsTheReceiver}


# ------------------------------------------------------------------ stalls


def test_crossing_requests_on_a_two_qubit_chain_end_stalled_with_the_memory_named():
    """Without the stall watch this run spun for 10 million events (over two minutes)
    and ended with exit code 0. ``max_events: null``: the watch alone ends it."""
    result = assemble(parse_scenario(chain_crossing()), UNRESERVED).run()
    assert result.status == "stalled" and result.end.reason == "stall" and result.exit_code == 1
    assert result.partial and result.events < 100_000  # the default spans: about 42 000 events here
    apps = by_label(result)
    assert {label: app.state for label, app in apps.items()} == {"alice#0": "stalled", "bob#0": "stalled"}
    assert apps["alice#0"].path == ["alice", "r", "bob"] and apps["bob#0"].path == ["bob", "r", "alice"]
    memory = "waiting for memory at r (2/2 qubits held by requests alice#0, bob#0)"
    assert any(line.startswith("link r–bob") and line.endswith(memory) for line in apps["alice#0"].waits), apps["alice#0"].waits
    assert any(line.startswith("link alice–r") and line.endswith(memory) for line in apps["bob#0"].waits), apps["bob#0"].waits
    assert result.status_line().startswith("STALLED: 2 of 2 requests open, no request progressed for ")


def test_the_cli_says_stalled_and_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    path = tmp_path / "crossing.yaml"
    path.write_text(yaml.safe_dump(chain_crossing()), encoding="utf-8")
    unreserved = ["--impl", "network=tests.broken_networks:ReservesNothing"]
    assert main(["run", str(path), *unreserved]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines()[-1].startswith("STALLED: 2 of 2 requests open")
    assert "waits: link r–bob waiting for memory at r" in out.out
    assert "\r" not in out.err  # no progress line when stderr is not a terminal
    assert main(["run", str(path), "--json", *unreserved]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "stalled" and report["end"]["reason"] == "stall" and report["partial"] is True
    assert main(["run", str(path), "--wall-limit", "0"]) == 2  # bad input
    assert capsys.readouterr().err == "qnetstack: error: --wall-limit: must be a positive number of seconds\n"


def test_three_requests_crossing_a_grid_end_stalled_with_the_holder_named():
    """n00 -> n22 pairs and n22 -> n00 teleport take the same four-hop path in opposite
    directions (n10 -> n12 crosses it at the centre). The teleport's sender runs out of
    memory for its input state (NO_QUBIT) but its circuit goes on taking link pairs, and
    fills n00, where the pairs request needs memory for its next link pair."""
    apps = [
        {"node": "n10", "request": {"kind": "pairs", "remote_node": "n12", "number": 20}},
        {"node": "n00", "request": {"kind": "pairs", "remote_node": "n22", "number": 20}},
        {"node": "n22", "request": {"kind": "teleport", "remote_node": "n00", "number": 20}},
    ]
    result = assemble(parse_scenario(grid(apps)), LEAKY).run()
    assert result.status == "stalled" and result.exit_code == 1
    assert result.events < 300_000  # the default spans: about 235 000 events here
    states = {label: (app.state, app.error_code) for label, app in by_label(result).items()}
    assert states == {"n10#0": ("done", None), "n00#0": ("stalled", None), "n22#0": ("failed", "NO_QUBIT")}
    stalled = by_label(result)["n00#0"]
    assert 0 < stalled.results < 20 and stalled.mean_oracle_fidelity is not None and stalled.first_result_ns is not None
    assert "link n00–n01 waiting for memory at n00 (4/4 qubits held by requests n22#0)" in stalled.waits
    assert result.status_line().startswith("STALLED: 1 of 3 requests open")


def busy_three_nodes() -> dict:
    """120 requests of 3 pairs at once on a - b - c with four qubits per node: a <-> c over the
    repeater b, a -> b and b -> c on one hop; every third one a teleportation."""
    hardware = {"memory": {"num_qubits": 4}}
    ends = [("a", "c"), ("c", "a"), ("a", "b"), ("b", "c")]
    apps = [
        {"node": ends[i % 4][0], "request": {"kind": "teleport" if i % 3 == 0 else "pairs", "remote_node": ends[i % 4][1], "number": 3}}
        for i in range(120)
    ]
    return {
        "name": "busy",
        "nodes": [{"name": n, "hardware": hardware} for n in "abc"],
        "links": [{"a": "a", "b": "b", "length_km": 5}, {"a": "b", "b": "c", "length_km": 5}],
        "applications": apps,
        "implementations": FAST,
    }


def test_120_concurrent_requests_on_three_nodes_end_quickly_and_each_has_a_state():
    result = assemble(parse_scenario(busy_three_nodes()), UNRESERVED).run()
    assert result.status in ("stalled", "done") and result.events < 200_000
    assert len(result.applications) == 120 and all(app.state != "open" for app in result.applications)
    assert all(app.waits for app in result.applications if app.state == "stalled")


def test_a_slow_healthy_link_is_not_taken_for_a_stall():
    """100 km of fibre: about 1.2 % success per attempt, half a millisecond per attempt,
    so about 41 ms per pair, and 200 pairs (some 3500 events: the watch looks every
    1000). The default spans follow the link, so the run completes; spans of a few
    times the mean wait would cut it (the longest of 200 exponential waits is about
    ln 200 = 5.3 times the mean)."""
    scenario = {
        "name": "long",
        "nodes": [{"name": "a"}, {"name": "b"}],
        "links": [{"a": "a", "b": "b", "length_km": 100}],
        "applications": [{"node": "a", "request": {"kind": "pairs", "remote_node": "b", "number": 200}}],
        "implementations": FAST,
    }
    result = assemble(parse_scenario(scenario)).run()
    assert result.status == "done" and result.status_line() == "done: the request is done"
    assert result.events > 3 * runner.CHUNK_EVENTS  # the watch looked at the run


def test_stop_limits_with_requests_open_end_stalled_and_say_which_limit():
    result = assemble(parse_scenario(chain_crossing(max_time_ns=1_000_000)), UNRESERVED).run()
    assert result.status == "stalled" and result.end.reason == "max_time" and result.sim_time_ns == 1_000_000
    result = assemble(parse_scenario(chain_crossing(max_events=5000)), UNRESERVED).run()
    assert result.status == "stalled" and result.end.reason == "max_events" and result.events == 5000
    result = assemble(parse_scenario(chain_crossing(stall_after_events=3000)), UNRESERVED).run()
    assert result.status == "stalled" and result.end.reason == "stall" and result.events < 10_000


def test_a_request_no_link_can_serve_fails_and_exits_1(tmp_path, capsys):
    """Each hop would have to beat the fidelity a 1 km link gives: the network refuses the
    request at admission (NET-ADMIT-1), the run says so."""
    scenario = {
        "name": "too-strict",
        "nodes": [{"name": n} for n in ("a", "b", "c")],
        "links": [{"a": "a", "b": "b", "length_km": 1}, {"a": "b", "b": "c", "length_km": 1}],
        "applications": [{"node": "a", "request": {"kind": "pairs", "remote_node": "c", "number": 2, "min_fidelity": 0.9999}}],
        "implementations": FAST,
    }
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    assert main(["run", str(path)]) == 1
    out = capsys.readouterr().out
    assert "min_fidelity 0.9999 is out of reach" in out
    assert out.splitlines()[-1] == "FAILED: a#0 REJECTED; 0 of 1 requests done (1 failed)"


def test_a_request_to_an_unreachable_node_is_refused_before_the_run(tmp_path, capsys):
    scenario = {
        "name": "islands",
        "nodes": [{"name": n} for n in ("a", "b", "c", "d")],
        "links": [{"a": "a", "b": "b", "length_km": 1}, {"a": "c", "b": "d", "length_km": 1}],
        "applications": [{"node": "a", "request": {"kind": "pairs", "remote_node": "c", "number": 2}}],
        "implementations": FAST,
    }
    path = tmp_path / "islands.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "qnetstack: error: applications.0: request a#0: no chain of links joins 'a' and 'c'\n"


def test_a_teleport_from_a_node_with_one_qubit_is_refused_before_the_run(tmp_path, capsys):
    scenario = {
        "name": "one-qubit-sender",
        "nodes": [{"name": "alice", "hardware": {"memory": {"num_qubits": 1}}}, {"name": "bob"}],
        "links": [{"a": "alice", "b": "bob", "length_km": 5}],
        "applications": [{"node": "alice", "request": {"kind": "teleport", "remote_node": "bob", "number": 5}}],
        "implementations": FAST,
    }
    path = tmp_path / "one-qubit.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "qnetstack: error: applications.0: request alice#0: a teleport sender needs 2 memory qubits "
        "(the state and its half of a pair); 'alice' has 1\n"
    )
    # the receiver needs only one: bob -> alice is served
    scenario["applications"] = [{"node": "bob", "request": {"kind": "teleport", "remote_node": "alice", "number": 5}}]
    assert assemble(parse_scenario(scenario)).run().status == "done"


def test_a_request_submitted_late_is_not_a_stall_in_the_quiet_before_it():
    """Nothing happens for 5 s of simulated time (far beyond the spans of a 1 km link)
    before the only request is submitted; the run waits for it."""
    scenario = {
        "name": "late",
        "nodes": [{"name": "a"}, {"name": "b"}],
        "links": [{"a": "a", "b": "b", "length_km": 1}],
        "applications": [{"node": "a", "at_ns": 5_000_000_000, "request": {"kind": "pairs", "remote_node": "b", "number": 3}}],
        "implementations": FAST,
    }
    result = assemble(parse_scenario(scenario)).run()
    assert result.status == "done" and result.applications[0].first_result_ns > 5_000_000_000


class NetworkThatDoesNotSay(ReservesNothing):
    describe_waits = None  # as if the method were not there


def test_a_layer_without_describe_waits_still_gets_its_requests_reported_stalled():
    result = assemble(parse_scenario(chain_crossing()), {"network": NetworkThatDoesNotSay}).run()
    assert result.status == "stalled"
    for app in result.applications:
        assert app.state == "stalled"
        assert app.waits[-1] == "the network layer at alice, bob, r does not describe what it waits for"


@pytest.mark.slow
def test_a_run_whose_layers_go_on_after_every_request_closed_is_cut_and_says_so():
    """The teleport from n01 runs out of memory for its input state (NO_QUBIT) and is
    closed, but its circuit goes on and its tail n21 keeps the pairs it was delivered
    (the sender no longer sends their outcomes): n21 fills up and the circuit waits for
    memory there for ever."""
    apps = [
        {"node": "n00", "request": {"kind": "pairs", "remote_node": "n22", "number": 20}},
        {"node": "n22", "request": {"kind": "pairs", "remote_node": "n00", "number": 20}},
        {"node": "n01", "request": {"kind": "teleport", "remote_node": "n21", "number": 20}},
    ]
    result = assemble(parse_scenario(grid(apps)), LEAKY).run()
    assert result.status == "failed" and result.end.reason == "busy" and result.exit_code == 1
    teleport = by_label(result)["n01#0"]
    assert teleport.state == "failed" and teleport.error_code == "NO_QUBIT"
    assert "link n11–n21 waiting for memory at n21 (4/4 qubits held by requests n01#0)" in teleport.waits
    assert result.status_line().endswith("(cut: every request had closed, yet the layers went on for 341.024 ms of simulated time)")


# ------------------------------------------------------------------ the same runs with reservations


def assert_settled(sim) -> None:
    """No node's network layer keeps a reservation, a waiting set-up, a circuit or a link pair,
    and no memory qubit is taken (teardown freed everything)."""
    for node, layers in sim.network.entities.items():
        if "network" not in layers:
            continue  # a heralding station
        net = layers["network"]
        assert net._circuits == {} and len(net._pairs) == 0, node
        assert net._memory is None or (len(net._memory) == 0 and net._memory.waiting() == []), node
        assert layers["physical"].held_handles() == [], node


def test_crossing_requests_on_a_two_qubit_chain_complete_one_circuit_at_a_time():
    """r has room for one circuit (two qubits, one per side): bob's set-up waits at r until
    alice's circuit has ended there, and both requests get all their pairs."""
    sim = assemble(parse_scenario(chain_crossing()))
    result = sim.run()
    assert result.status == "done" and result.exit_code == 0
    assert {label: (app.state, app.results) for label, app in by_label(result).items()} == {"alice#0": ("done", 10), "bob#0": ("done", 10)}
    first, second = sorted(by_label(result).values(), key=lambda app: app.first_result_ns)
    assert first.last_result_ns < second.first_result_ns  # one circuit at a time through r
    assert_settled(sim)


def test_three_requests_crossing_a_grid_complete():
    apps = [
        {"node": "n10", "request": {"kind": "pairs", "remote_node": "n12", "number": 20}},
        {"node": "n00", "request": {"kind": "pairs", "remote_node": "n22", "number": 20}},
        {"node": "n22", "request": {"kind": "teleport", "remote_node": "n00", "number": 20}},
    ]
    sim = assemble(parse_scenario(grid(apps)))
    result = sim.run()
    assert result.status == "done"
    assert {label: (app.state, app.results) for label, app in by_label(result).items()} == {
        "n10#0": ("done", 20),
        "n00#0": ("done", 20),
        "n22#0": ("done", 20),
    }
    assert_settled(sim)


def test_120_concurrent_requests_on_three_nodes_all_complete():
    sim = assemble(parse_scenario(busy_three_nodes()))
    result = sim.run()
    assert result.status == "done" and len(result.applications) == 120
    assert all(app.state == "done" and app.results == 3 for app in result.applications)
    assert_settled(sim)


def test_three_requests_on_a_nine_node_chain_with_four_qubits_deliver_60_of_60():
    """n0 - n1 - ... - n8, 5 km links, four qubits per node: n0 -> n8 and n8 -> n0 cross over the
    whole chain and n1 -> n7 over most of it; each repeater has room for two circuits at once."""
    names = [f"n{i}" for i in range(9)]
    scenario = {
        "name": "chain9",
        "nodes": [{"name": n, "hardware": {"memory": {"num_qubits": 4}}} for n in names],
        "links": [{"a": a, "b": b, "length_km": 5} for a, b in itertools.pairwise(names)],
        "applications": [
            {"node": "n0", "request": {"kind": "pairs", "remote_node": "n8", "number": 20}},
            {"node": "n8", "request": {"kind": "pairs", "remote_node": "n0", "number": 20}},
            {"node": "n1", "request": {"kind": "pairs", "remote_node": "n7", "number": 20}},
        ],
        "implementations": FAST,
    }
    sim = assemble(parse_scenario(scenario))
    result = sim.run()
    assert result.status == "done" and sum(app.results for app in result.applications) == 60
    assert_settled(sim)
    # without reservations the same run deadlocks for memory part way
    unreserved = assemble(parse_scenario(scenario), UNRESERVED).run()
    assert unreserved.status == "stalled" and sum(app.results for app in unreserved.applications) < 60


# ------------------------------------------------------------------ errors with context


class RaisesOnThirdSwapRecord(SwapAsap):
    def handle_peer(self, sender, msg):
        if isinstance(msg, SwapRecord) and msg.swap_index == 2:
            raise ValueError(f"no use for swap record {msg.swap_index}")
        super().handle_peer(sender, msg)


def teleport_chain(number: int = 20) -> dict:
    return {
        "name": "chain",
        "nodes": [{"name": n} for n in ("alice", "r", "bob")],
        "links": [{"a": "alice", "b": "r", "length_km": 5}, {"a": "r", "b": "bob", "length_km": 5}],
        "applications": [{"node": "alice", "request": {"kind": "teleport", "remote_node": "bob", "number": number}}],
        "implementations": FAST,
    }


def test_a_layer_that_raises_ends_the_run_failed_with_node_layer_time_and_message():
    result = assemble(parse_scenario(teleport_chain()), {"network": RaisesOnThirdSwapRecord}).run()
    error = result.end.error
    assert result.status == "failed" and result.end.reason == "error" and result.exit_code == 1 and result.partial
    assert (error.node, error.layer, error.handler) == ("alice", "network", "handle_peer")
    assert error.implementation == f"{__name__}.RaisesOnThirdSwapRecord"
    assert error.error == "ValueError: no use for swap record 2" and error.error_type == "ValueError"
    assert error.message.startswith("handle_peer('r', SwapRecord(") and "swap_index=2" in error.message
    assert 0 < error.time_ns == result.sim_time_ns
    # the user's frame is shown, the kernel's and the runner's are not
    assert 'in handle_peer\n    raise ValueError(f"no use for swap record {msg.swap_index}")' in error.traceback
    assert "kernel.py" not in error.traceback and "runner.py" not in error.traceback
    (app,) = result.applications
    assert app.state == "open" and app.results == 2
    assert result.status_line().startswith("FAILED: ValueError: no use for swap record 2, raised by the network layer")


def test_the_cli_shows_the_error_block_and_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(teleport_chain()), encoding="utf-8")
    assert main(["run", str(path), "--impl", f"network={__name__}:RaisesOnThirdSwapRecord"]) == 1
    out = capsys.readouterr().out
    assert "PARTIAL" in out.splitlines()[0]
    assert "  handling: handle_peer('r', SwapRecord(" in out
    assert "Traceback (most recent call last; the stack's own frames left out):" in out
    assert out.splitlines()[-1].startswith("FAILED: ValueError: no use for swap record 2")


class FailsToStart(SwapAsap):
    def start(self):
        if self.ctx.node == "r":
            raise RuntimeError("no routing table")


def test_a_layer_that_raises_in_start_is_named_too():
    result = assemble(parse_scenario(teleport_chain()), {"network": FailsToStart}).run()
    error = result.end.error
    assert result.status == "failed" and (error.node, error.layer, error.handler, error.time_ns) == ("r", "network", "start", 0)
    assert error.error == "RuntimeError: no routing table" and result.events == 0


class LoopsAfterAMillisecond(SingleClickEgp):
    def handle_below(self, msg):
        while self.ctx.now_ns > 1_000_000:
            pass
        super().handle_below(msg)


def test_a_layer_that_loops_forever_is_cut_by_the_wall_limit_and_named(monkeypatch):
    monkeypatch.setattr(runner, "WALL_GRACE_S", 0.2)
    result = assemble(parse_scenario(teleport_chain()), {"link": LoopsAfterAMillisecond}).run(wall_limit_s=0.3)
    error = result.end.error
    assert result.status == "failed" and result.end.reason == "wall_limit" and result.exit_code == 1
    assert error.error_type == "WallLimitReached" and error.layer == "link" and error.handler == "handle_below"
    assert error.error == "wall-clock limit of 0.3 s reached" and error.time_ns > 1_000_000
    assert "in handle_below\n    while self.ctx.now_ns > 1_000_000:" in error.traceback


def test_a_wall_limit_between_events_ends_the_run_stalled_with_the_waits():
    result = assemble(parse_scenario(chain_crossing()), UNRESERVED).run(wall_limit_s=1e-6)
    assert result.status == "stalled" and result.end.reason == "wall_limit" and result.end.error is None
    assert result.events <= runner.CHUNK_EVENTS  # cut at the first look
    assert all(app.waits for app in result.applications)


# ------------------------------------------------------------------ same numbers


def test_the_watch_changes_no_number_of_a_run_that_completes():
    """The chunked, watched run and one plain kernel run give the same events, time and results."""
    watched_sim = assemble(parse_scenario(teleport_chain(8)))
    watched = watched_sim.run()
    plain = assemble(parse_scenario(teleport_chain(8)))
    plain.network.start()
    plain.network.run(max_events=10_000_000)
    assert watched.status == "done"
    assert (watched.events, watched.sim_time_ns) == (plain.network.kernel.events_processed, plain.network.kernel.now_ns)
    assert watched_sim.network.user_messages == plain.network.user_messages


def test_asking_the_layers_what_they_wait_for_changes_nothing():
    """describe_waits is asked between every two chunks of one run and never in the other."""
    asked = assemble(parse_scenario(chain_crossing(stall_after_events=20_000)), UNRESERVED)
    answers = []

    def ask(_):
        for layers in asked.network.entities.values():
            for entity in layers.values():
                if isinstance(entity, DescribesWaits):
                    answers.extend(entity.describe_waits())

    first = asked.run(on_progress=ask)
    second = assemble(parse_scenario(chain_crossing(stall_after_events=20_000)), UNRESERVED).run()
    assert answers and all(isinstance(a, Wait) for a in answers)
    assert first.to_json() == second.to_json()


def test_the_progress_line_is_drawn_and_cleared():
    from io import StringIO

    from qnetstack.stack.cli import _ProgressLine

    out = StringIO()
    line = _ProgressLine(out, every_s=0.0)
    line(runner.RunProgress(events=12345, sim_time_ns=2_500_000, requests=3, requests_done=1, requests_closed=1, results=7, wall_s=0.5))
    assert out.getvalue() == "\r12,345 events  simulated 2.500 ms  requests 1/3 done  results 7  wall 0.5 s"
    width = len(out.getvalue()) - 1
    line.clear()
    assert out.getvalue().endswith("\r" + " " * width + "\r")


# ------------------------------------------------------------------ the kernel


def test_the_kernel_says_why_it_returned_and_names_the_event_that_raised():
    kernel = Kernel()
    kernel.schedule(5, print, "never")
    assert kernel.run(until_ns=2) == "until"
    assert kernel.run(max_events=0) == "budget"
    assert kernel.run() == "idle"

    def boom(x):
        raise KeyError(x)

    kernel.schedule(3, boom, "k")
    with pytest.raises(KeyError):  # the exception goes on unchanged
        kernel.run()
    assert kernel.failed_event == (8, boom, ("k",)) and kernel.events_processed == 1


def test_a_teleport_closed_with_no_qubit_leaves_no_half_held_at_its_receiver():
    """alice has two qubits and two requests over one hop each. The reference network sets
    the teleport's input qubit aside with its circuit (tests/test_teleport_input.py), so
    there both complete; a network that reserves nothing lets the pairs' link and halves
    take alice's memory, and her teleport finds no qubit for its input state (NO_QUBIT).
    The sender tells the receiver about every pair it skips, so bob frees his halves and
    the run settles with nothing held; a sender that does not (ForgetsTheReceiver) leaves
    them taken at bob."""
    scenario = {
        "name": "no-qubit",
        "nodes": [{"name": "alice", "hardware": {"memory": {"num_qubits": 2}}}, {"name": "bob"}, {"name": "carol"}],
        "links": [{"a": "alice", "b": "bob", "length_km": 5}, {"a": "alice", "b": "carol", "length_km": 5}],
        "applications": [
            {"node": "alice", "request": {"kind": "pairs", "remote_node": "carol", "number": 20}},
            {"node": "alice", "request": {"kind": "teleport", "remote_node": "bob", "number": 20}},
        ],
    }
    reserved = assemble(parse_scenario(scenario))
    assert reserved.run().status == "done"
    assert_settled(reserved)
    sim = assemble(parse_scenario(scenario), UNRESERVED)
    result = sim.run()
    states = {label: (app.state, app.error_code) for label, app in by_label(result).items()}
    assert states == {"alice#0": ("done", None), "alice#1": ("failed", "NO_QUBIT")}
    assert result.status == "failed" and result.end.reason != "busy"
    assert_settled(sim)
    leaky = assemble(parse_scenario(scenario), LEAKY)
    leaky.run()
    assert leaky.network.entities["bob"]["physical"].held_handles() != []


def test_a_single_teleport_prints_its_fidelity_without_a_standard_error(tmp_path, capsys):
    # One sample has no standard error; the table must say so, not fail formatting None.
    data = yaml.safe_load(Path("examples/teleport-chain.yaml").read_text())
    data["applications"][0]["request"]["number"] = 1
    scenario = tmp_path / "one.yaml"
    scenario.write_text(yaml.safe_dump(data))
    assert main(["run", str(scenario)]) == 0
    out = capsys.readouterr().out
    assert "teleport: 1 done" in out and "one sample: no s.e." in out
