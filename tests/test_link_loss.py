"""The link layer's messages lost or delayed (issue 12 item 7): with ``link: {reliable: true}``
every request ends with its pairs, and nothing is held after (specs/link.md LINK-REL-1, LINK-REL-2).

The runs are the 3x3 grid of tests/test_faults.py (2 km links, four qubits per node, three
crossing requests of 30 pairs each, no deadlines, seed 1), with the classical faults naming
only the link layer. The strongest check is that losses change nothing the user sees: with
the channel on, a message either arrives before the instant the two ends agreed on or the
channel gives up on it, so a lossy run delivers the same pairs at the same times as a run
that loses nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from qnetstack.application.service import AppDone
from qnetstack.entity.reliable import MAX_TRIES, RETRANSMIT_MARGIN_NS
from qnetstack.link.conformance.suite import SUITE as LINK_SUITE
from qnetstack.link.egp import SingleClickEgp
from qnetstack.link.peer import PeerCreate
from qnetstack.stack import assemble, parse_scenario
from qnetstack.stack.assembler import AssemblyError
from tests.test_faults import CROSSING, assert_settled, ends, grid, run


def link_faults(rule: dict[str, Any]) -> dict[str, Any]:
    return {"classical": [{**rule, "layers": ["link"]}]}


def lossy(loss: float, **fields: Any) -> dict:
    return grid(link_faults({"loss_probability": loss}), link={"reliable": True}, **fields)


def every_request_done(simulation: Any) -> None:
    asked = {(a["node"], 0): a["request"]["number"] for a in CROSSING}
    closed = ends(simulation.network)
    assert {key: msg.completed for key, msg in closed.items() if isinstance(msg, AppDone)} == asked


def test_without_the_channel_a_lost_link_message_leaves_a_request_attempting_alone():
    # the grid below is a test of the channel only if it fails without it: a lost PeerCreate leaves
    # its origin attempting with no partner, every attempt incomplete at the station, for ever
    simulation, result = run(grid(link_faults({"loss_probability": 0.05})))
    assert result.status == "stalled", result.status
    assert simulation.network.faults.lost > 0
    assert simulation.network.trace.counts["station.attempt_incomplete"] > 0
    assert len([msg for msg in ends(simulation.network).values() if isinstance(msg, AppDone)]) < len(CROSSING)


@pytest.mark.parametrize("loss", [0.05, 0.2])
def test_with_the_channel_lost_link_messages_change_no_delivery(loss):
    quiet, _ = run(grid({}, link={"reliable": True}))
    simulation, result = run(lossy(loss))
    assert result.status == "done", result.status
    assert_settled(simulation, result)
    every_request_done(simulation)
    # the faults hit, and the channel sent the lost messages again
    counts = simulation.network.trace.counts
    assert simulation.network.faults.lost > 0
    assert counts["link.retransmit"] > 0
    assert counts["link.reliable_gave_up"] == 0
    # every agreed instant was kept, so both ends stayed in step: the very same run for the user
    assert counts["station.attempt_incomplete"] == 0
    assert simulation.network.user_messages == quiet.network.user_messages


def test_link_messages_held_back_past_the_timeout_and_lost_change_no_delivery():
    # a 2 km hop is 9.8 us one way, so an Ack is awaited 2 x 9.8 + 1 = 20.6 us: a message held back
    # 30 us is sent again (its receiver gets a copy it has) and may be overtaken by later ones
    quiet, _ = run(grid({}, link={"reliable": True}))
    rule = {"loss_probability": 0.2, "delay_probability": 0.3, "extra_delay_ns": 30_000}
    simulation, result = run(grid(link_faults(rule), link={"reliable": True}))
    assert result.status == "done", result.status
    assert_settled(simulation, result)
    assert simulation.network.faults.delayed > 0
    assert simulation.network.trace.counts["link.duplicate"] > 0
    assert simulation.network.user_messages == quiet.network.user_messages


def test_with_both_layers_lossy_and_both_channels_on_every_request_gets_its_pairs():
    faults = {"classical": [{"loss_probability": 0.2, "layers": ["link", "network"]}]}
    simulation, result = run(grid(faults, link={"reliable": True}, network={"reliable": True}))
    assert result.status == "done", result.status
    assert_settled(simulation, result)
    every_request_done(simulation)
    counts = simulation.network.trace.counts
    assert counts["link.retransmit"] > 0 and counts["network.retransmit"] > 0


def test_a_crash_and_a_cut_under_link_losses_leave_every_request_done_and_nothing_held():
    # the circuits moved off the cut link and the crashed repeater withdraw their link requests
    # (LinkCancel): the PeerCancel and its agreed stop instant travel over the lossy channel too
    crash = {"node": "n11", "at_ns": 2_000_000, "restart_ns": 4_000_000}
    cut = {"link": ["n01", "n02"], "at_ns": 1_000_000, "repair_ns": 3_000_000}
    faults = {"node_crashes": [crash], "link_cuts": [cut], "classical": [{"loss_probability": 0.2, "layers": ["link"]}]}
    simulation, result = run(grid(faults, link={"reliable": True}))
    assert result.status == "done", result.status
    assert_settled(simulation, result)
    every_request_done(simulation)
    counts = simulation.network.trace.counts
    assert counts["fault.crash"] == 1 and counts["fault.link_cut"] == 5  # the cut, and the four of the crashed node
    assert counts["link.cancel"] > 0 and counts["link.retransmit"] > 0


def test_the_channel_puts_the_agreed_start_a_worst_delivery_each_way_after_the_create():
    simulation = assemble(parse_scenario(grid({}, link={"reliable": True})))
    simulation.run()
    egp = simulation.network.entities["n00"]["link"]
    delay = egp.capabilities.links["n01"].classical_delay_ns
    # the last of MAX_TRIES sendings leaves MAX_TRIES - 1 timeouts after the first, and takes one delay
    worst = (MAX_TRIES - 1) * (2 * delay + RETRANSMIT_MARGIN_NS) + delay
    assert egp._lead_ns("n01") == worst
    plain = assemble(parse_scenario(grid({})))
    plain.run()
    assert plain.network.entities["n00"]["link"]._lead_ns("n01") == delay


def test_without_the_switch_the_link_layer_is_built_as_before():
    simulation = assemble(parse_scenario(grid({})))
    assert simulation.network.entities["n00"]["link"]._reliable is None


class _NoReliable(SingleClickEgp):
    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)


def test_a_link_layer_that_takes_no_reliable_argument_is_refused_naming_the_field():
    with pytest.raises(AssemblyError) as caught:
        assemble(parse_scenario(grid({}, link={"reliable": True})), {"link": _NoReliable})
    assert "link.reliable" in str(caught.value)


# ------------------------------------------------------------ the conformance clause


class _Deaf(SingleClickEgp):
    """Takes the switch and ignores it: its messages go out unnumbered and its agreed
    instants stay one delay off, so a lost PeerCreate leaves its origin attempting alone."""

    def __init__(self, ctx: Any, reliable: bool = False) -> None:
        super().__init__(ctx)


def clause_status(impl: Any) -> str:
    report = LINK_SUITE.run(impl, select=["LINK-REL-1"])
    (clause,) = report.clauses
    return clause.status


# a layer without the switch is not judged: no lossy network was promised
@pytest.mark.parametrize(
    "impl, status", [(SingleClickEgp, "pass"), (_Deaf, "fail"), (_NoReliable, "not_applicable")], ids=["reference", "deaf", "no-reliable"]
)
def test_the_link_suite_passes_the_reference_under_lost_messages_and_catches_a_layer_that_ignores_the_switch(impl, status):
    """One item per layer, so that two workers share the suite's runs."""
    assert clause_status(impl) == status


def test_with_the_channel_a_peer_create_that_comes_after_its_start_is_refused_not_attempted_alone():
    # it can only be stale: sent to an incarnation of the node that crashed since, or given up on
    simulation = assemble(parse_scenario(grid({}, link={"reliable": True})))
    simulation.run()
    network = simulation.network
    responder = network.entities["n01"]["link"]
    late = PeerCreate(
        create_id=99, origin_node="n00", purpose_id=0, number=1, min_fidelity=0.0, type="K", basis="Z",
        start_ns=network.kernel.now_ns - 1, deadline_ns=None,
    )  # fmt: skip
    before = network.trace.counts["link.refused"]
    responder.handle_peer("n00", late)  # a channel's message handed on, as received() hands it
    assert ("n00", 99) not in responder._requests
    assert network.trace.counts["link.refused"] == before + 1
