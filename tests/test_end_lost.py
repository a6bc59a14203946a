"""A crashed end of a request does not leave the other end waiting (issue 12 item 7).

The surviving end learns it from its network layer (``NetError`` END_LOST, specs/network.md
NET-FAULT-3): its application ends the request (head: ``AppError`` REMOTE_LOST) and frees
every half it kept for it (specs/application.md APP-FAULT-1). Each run below crashes an end
at an instant chosen so that the other end holds a half waiting for the crashed end's
message (checked before the run goes on, so a crash that misses the window cannot pass for
one that was survived), then checks that every request ended and no qubit is held anywhere.

The chain is alice - bob - carol with 20 km links (100 us of classical delay per link): a
``HeldPair`` from alice takes 200 us to reach carol, and carol's ``Release`` as long back.
"""

from __future__ import annotations

from typing import Any

import pytest

from qnetstack.application.apps import BasicApps
from qnetstack.application.service import AppDone, AppError, AppErrorCode
from qnetstack.network.service import NetError, NetErrorCode
from qnetstack.network.swap_asap import SwapAsap
from qnetstack.stack import assemble, parse_scenario
from qnetstack.stack.conform import run_conformance
from tests.test_faults import grid

CHAIN = ("alice", "bob", "carol")


def chain(kind: str, faults: dict[str, Any], number: int = 30) -> dict[str, Any]:
    return {
        "seed": 1,
        "nodes": [{"name": n, "hardware": {"memory": {"num_qubits": 4}}} for n in CHAIN],
        "links": [{"a": "alice", "b": "bob", "length_km": 20}, {"a": "bob", "b": "carol", "length_km": 20}],
        "implementations": {"physical": "model-heralding"},
        "applications": [{"node": "alice", "request": {"kind": kind, "remote_node": "carol", "number": number}}],
        "faults": faults,
    }


def held(network: Any, nodes: tuple[str, ...] = CHAIN) -> dict[str, list[int]]:
    return {n: list(network.entities[n]["physical"].held_handles()) for n in nodes if network.entities[n]["physical"].held_handles()}


def run_past_crash(data: dict[str, Any], at_ns: int) -> Any:
    """Run to just before the crash; the caller checks the window and runs on."""
    simulation = assemble(parse_scenario(data))
    network = simulation.network
    network.start()
    network.run(until_ns=at_ns - 1)
    return simulation


def closed(network: Any) -> dict[tuple[str, int], Any]:
    return {(node, m.request_id): m for _, node, m in network.user_messages if isinstance(m, (AppDone, AppError))}


@pytest.mark.parametrize("restart_ns", [None, 3_000_000])
def test_a_tail_that_crashes_while_the_head_keeps_a_half_ends_the_request_remote_lost_and_frees_it(restart_ns):
    crash: dict[str, Any] = {"node": "carol", "at_ns": 2_400_000}
    if restart_ns is not None:
        crash["restart_ns"] = restart_ns
    simulation = run_past_crash(chain("pairs", {"node_crashes": [crash]}), 2_400_000)
    network = simulation.network
    head = network.entities["alice"]["application"]
    assert any(session.held for session in head._heads.values()), "alice must keep a half for carol's report when carol crashes"
    network.run()
    error = closed(network)[("alice", 0)]
    assert isinstance(error, AppError) and error.code is AppErrorCode.REMOTE_LOST, error
    assert "END_LOST" in error.detail
    assert held(network) == {}


@pytest.mark.parametrize("kind", ["pairs", "teleport"])
@pytest.mark.parametrize("restart_ns", [None, 3_000_000])
def test_a_head_that_crashes_while_the_tail_keeps_a_half_frees_it_there(kind, restart_ns):
    crash: dict[str, Any] = {"node": "alice", "at_ns": 2_300_000}
    if restart_ns is not None:
        crash["restart_ns"] = restart_ns
    simulation = run_past_crash(chain(kind, {"node_crashes": [crash]}), 2_300_000)
    network = simulation.network
    # the pair whose swap record was on its way to carol when alice crashed reaches carol after
    # it; the probe of alice goes unanswered 800 us after carol's circuit failed
    network.run(until_ns=2_500_000)
    tail = network.entities["carol"]["application"]
    assert any(session.pair is not None for session in tail._tails.values()), "carol must hold a half waiting for alice's message"
    network.run()
    error = closed(network)[("alice", 0)]  # the user at alice went down with it (stack.faults)
    assert isinstance(error, AppError) and error.code is AppErrorCode.ABORTED
    assert network.trace.counts["network.end_lost"] == 1  # carol's network said it
    assert held(network) == {}
    assert not tail._tails


def test_a_link_cut_that_leaves_both_ends_alive_is_not_taken_for_a_lost_end():
    """bob - carol cut for good: no other path, so the request ends LINK_FAILURE (ABORTED), as
    before; both ends answer each other, so neither says END_LOST, and nothing stays held."""
    simulation = assemble(parse_scenario(chain("pairs", {"link_cuts": [{"link": ["bob", "carol"], "at_ns": 2_400_000}]})))
    result = simulation.run()
    network = simulation.network
    error = closed(network)[("alice", 0)]
    assert isinstance(error, AppError) and error.code is AppErrorCode.ABORTED, error
    assert result.status == "failed" and "network.end_lost" not in network.trace.counts
    assert held(network) == {}


def test_a_tail_that_crashes_while_its_set_up_waits_for_it_ends_the_request_instead_of_stalling():
    """n02 crashes at 1.5 ms while n20 -> n02 is set up again around an earlier failure and waits for
    n02's answer to its reservation. n02 is no neighbour of n20, so no link of n20 goes down: before,
    the set-up waited for ever and the run stalled. Now n20 probes n02 once its view has every link
    of n02 down, gets no answer, and ends the request REMOTE_LOST."""
    simulation = assemble(parse_scenario(grid({"node_crashes": [{"node": "n02", "at_ns": 1_500_000}]})))
    result = simulation.run()
    network = simulation.network
    assert result.status == "failed", result.status_line()
    ends = closed(network)
    assert set(ends) == {("n00", 0), ("n20", 0), ("n01", 0)}
    assert isinstance(ends[("n20", 0)], AppError) and ends[("n20", 0)].code is AppErrorCode.REMOTE_LOST
    assert isinstance(ends[("n00", 0)], AppDone) and isinstance(ends[("n01", 0)], AppDone)
    nodes = tuple(n for n in network.entities if "~" not in n)
    assert held(network, nodes) == {}
    assert "REMOTE_LOST" in result.status_line()  # the report says why


class IgnoresLostEnds(BasicApps):
    """Takes END_LOST for any other NetError, as the applications did before it existed: the
    head waits for the lost tail's reports, the tail drops its copy and keeps its halves."""

    def handle_below(self, msg: Any) -> None:
        if isinstance(msg, NetError) and msg.code is NetErrorCode.END_LOST:
            msg = msg.model_copy(update={"code": NetErrorCode.LINK_FAILURE})
        super().handle_below(msg)


def test_the_reference_application_passes_the_lost_end_clause():
    assert run_conformance("application", select=["APP-FAULT-1"]).failed_clauses() == []


def test_an_application_that_waits_for_a_lost_end_fails_app_fault_1():
    report = run_conformance("application", IgnoresLostEnds, select=["APP-FAULT-1"])
    assert report.failed_clauses() == ["APP-FAULT-1"], report.to_text()


class _EndLostAsLinkFailure:
    """A context that passes everything on but reports END_LOST as LINK_FAILURE."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def send_up(self, msg: Any) -> None:
        if isinstance(msg, NetError) and msg.code is NetErrorCode.END_LOST:
            msg = msg.model_copy(update={"code": NetErrorCode.LINK_FAILURE})
        self._ctx.send_up(msg)


class NeverSaysEndLost(SwapAsap):
    """Tells the layer above of a lost end as of a broken path (LINK_FAILURE), as before END_LOST
    existed: an application then cannot tell that it must wait for nothing more."""

    def __init__(self, ctx: Any, topology: Any) -> None:
        super().__init__(_EndLostAsLinkFailure(ctx), topology)


def test_the_reference_network_passes_the_lost_end_clause():
    assert run_conformance("network", select=["NET-FAULT-3"]).failed_clauses() == []


def test_a_network_that_never_says_end_lost_fails_net_fault_3():
    report = run_conformance("network", NeverSaysEndLost, select=["NET-FAULT-3"])
    assert report.failed_clauses() == ["NET-FAULT-3"], report.to_text()
