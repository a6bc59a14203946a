"""The network layer's reliable channel (qnetstack.network.reliable; issue 12 item 7): peer
messages numbered, acknowledged, sent again until they arrive, handed on once and in order.

Through the stack: on the 3x3 grid of tests/test_faults.py, with the network layer's
messages lost, requests without deadlines still end with all their pairs and leave nothing
held or reserved. Alone: the channel against a recording context, message by message.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import networkx as nx
import pytest

from qnetstack.application.service import AppDone
from qnetstack.network.node import NetworkNode
from qnetstack.network.peer import Ack, HopFreed, Sequenced
from qnetstack.network.reliable import RETRANSMIT, RETRANSMIT_MARGIN_NS, ReliableContext
from qnetstack.stack import assemble, parse_scenario
from qnetstack.stack.assembler import AssemblyError
from tests.test_faults import CROSSING, assert_settled, ends, grid, run

# ------------------------------------------------------------ through the stack


def lossy(loss: float) -> dict[str, Any]:
    return grid({"classical": [{"loss_probability": loss, "layers": ["network"]}]}, network={"reliable": True})


@pytest.mark.parametrize("loss", [0.05, 0.2])
def test_with_lost_network_messages_every_request_without_a_deadline_gets_all_its_pairs(loss):
    simulation, result = run(lossy(loss))
    assert result.status == "done", result.status
    assert_settled(simulation, result)
    closed = ends(simulation.network)
    asked = {(a["node"], 0): a["request"]["number"] for a in CROSSING}
    assert {key: msg.completed for key, msg in closed.items() if isinstance(msg, AppDone)} == asked
    counts = simulation.network.trace.counts
    # the faults hit: messages were lost, and the channel sent them again
    assert counts["fault.lost"] > 0
    assert counts["network.retransmit"] > 0
    assert counts["network.reliable_gave_up"] == 0


def test_messages_held_back_past_the_timeout_and_lost_still_end_every_request_with_its_pairs():
    # a 2 km hop is 9.8 us one way, so a neighbour's Ack is awaited 2 x 9.8 + 1 = 20.6 us: a message
    # held back 30 us is sent again (its receiver gets a copy it has) and overtaken by later ones
    rule = {"loss_probability": 0.2, "delay_probability": 0.3, "extra_delay_ns": 30_000, "layers": ["network"]}
    simulation, result = run(grid({"classical": [rule]}, network={"reliable": True}))
    assert result.status == "done", result.status
    assert_settled(simulation, result)
    assert all(isinstance(msg, AppDone) and msg.completed == 30 for msg in ends(simulation.network).values())
    counts = simulation.network.trace.counts
    assert simulation.network.faults.delayed > 0
    assert counts["network.duplicate"] > 0


def test_a_repeater_that_crashes_and_restarts_under_losses_leaves_every_request_done_and_nothing_held():
    # the restarted repeater's streams start again under a new epoch; what was sent to it while it
    # was down is given up on (its Down entity answers nothing)
    crash = {"node": "n11", "at_ns": 2_000_000, "restart_ns": 4_000_000}
    faults = {"node_crashes": [crash], "classical": [{"loss_probability": 0.1, "layers": ["network"]}]}
    simulation, result = run(grid(faults, network={"reliable": True}))
    assert result.status == "done", result.status
    assert_settled(simulation, result)
    assert all(isinstance(msg, AppDone) and msg.completed == 30 for msg in ends(simulation.network).values())
    counts = simulation.network.trace.counts
    assert counts["fault.crash"] == 1 and counts["network.reroute"] >= 1
    assert counts["network.reliable_gave_up"] > 0


def test_a_lossy_run_with_the_channel_is_the_same_run_twice():
    first, _ = run(lossy(0.2))
    again, _ = run(lossy(0.2))
    assert first.network.user_messages == again.network.user_messages
    assert first.network.kernel.events_processed == again.network.kernel.events_processed
    assert first.network.trace.counts == again.network.trace.counts


def test_the_same_losses_without_the_channel_leave_the_requests_open():
    # the grid above is a test of the channel only if it fails without it
    simulation, result = run(grid({"classical": [{"loss_probability": 0.05, "layers": ["network"]}]}))
    assert result.status == "stalled", result.status
    assert len(ends(simulation.network)) < len(CROSSING)


def test_on_a_lossless_network_the_channel_changes_no_delivery():
    # every message arrives at the time it would without the channel, so the user sees the same
    # run; the channel's acknowledgements are extra events, which is why it is not on by default
    plain, _ = run(grid({}))
    reliable, _ = run(grid({}, network={"reliable": True}))
    assert reliable.network.user_messages == plain.network.user_messages
    assert reliable.network.kernel.events_processed > plain.network.kernel.events_processed
    assert reliable.network.trace.counts["network.retransmit"] == 0


def test_the_option_is_off_by_default_and_passed_only_when_set():
    simulation = assemble(parse_scenario(grid({})))
    assert simulation.network.entities["n00"]["network"]._reliable is None
    simulation = assemble(parse_scenario(grid({}, network={"reliable": True})))
    assert isinstance(simulation.network.entities["n00"]["network"].ctx, ReliableContext)


class _NoReliable(NetworkNode):
    def __init__(self, ctx: Any, topology: nx.Graph) -> None:
        super().__init__(ctx, topology)


def test_a_network_layer_that_takes_no_reliable_argument_is_refused_naming_the_field():
    with pytest.raises(AssemblyError) as caught:
        assemble(parse_scenario(grid({}, network={"reliable": True})), {"network": _NoReliable})
    assert "network.reliable" in str(caught.value)


# ------------------------------------------------------------ the channel alone


class Recording:
    """A context that records what the channel sends and the timers it sets."""

    def __init__(self, node: str, now_ns: int = 0) -> None:
        self.node = node
        self.now_ns = now_ns
        self.sent: list[tuple[str, Any]] = []
        self.timers: dict[int, tuple[int, Hashable]] = {}
        self.cancelled: list[int] = []
        self.traced: list[tuple[str, dict[str, Any]]] = []
        self._next_timer = 0

    rng: Any = None
    device: Any = None

    def send_up(self, msg: Any) -> None:
        raise AssertionError("the channel sends nothing up")

    def send_down(self, msg: Any) -> None:
        raise AssertionError("the channel sends nothing down")

    def send_peer(self, node: str, msg: Any) -> None:
        self.sent.append((node, msg))

    def set_timer(self, delay_ns: int, tag: Hashable) -> int:
        self._next_timer += 1
        self.timers[self._next_timer] = (delay_ns, tag)
        return self._next_timer

    def cancel_timer(self, timer_id: int) -> None:
        self.cancelled.append(timer_id)

    def trace(self, event: str, **fields: Any) -> None:
        self.traced.append((event, fields))

    def request_device(self, op: Any, tag: Hashable) -> None:
        raise AssertionError("the channel uses no device")


def chain() -> nx.Graph:
    """a - b - c, the first link with an announced delay, the second with a length only."""
    graph = nx.Graph()
    graph.add_edge("a", "b", length_km=2.0, classical_delay_ns=10_000)
    graph.add_edge("b", "c", length_km=1.0)
    return graph


def message(n: int) -> HopFreed:
    return HopFreed(head="a", circuit=n)


def test_each_message_is_numbered_per_receiver_and_timed_for_a_round_trip():
    ctx = Recording("a")
    channel = ReliableContext(ctx, chain())
    channel.send_peer("b", message(0))
    channel.send_peer("c", message(1))
    channel.send_peer("b", message(2))
    assert [(node, msg.seq, msg.base, msg.inner) for node, msg in ctx.sent] == [
        ("b", 0, 0, message(0)),
        ("c", 0, 0, message(1)),
        ("b", 1, 0, message(2)),
    ]
    # a-b is announced at 10 us one way; b-c has only its length: 1 km of fibre, 4.9 us
    to_c = 2 * (10_000 + 4_897) + RETRANSMIT_MARGIN_NS
    assert [timer for timer, _ in ctx.timers.values()] == [20_000 + RETRANSMIT_MARGIN_NS, to_c, 20_000 + RETRANSMIT_MARGIN_NS]
    assert [tag for _, tag in ctx.timers.values()] == [(RETRANSMIT, "b", 0), (RETRANSMIT, "c", 0), (RETRANSMIT, "b", 1)]


def test_an_ack_ends_the_retransmissions_of_its_message_and_one_for_another_epoch_changes_nothing():
    ctx = Recording("a")
    channel = ReliableContext(ctx, chain())
    channel.send_peer("b", message(0))
    channel.send_peer("b", message(1))
    assert channel.received("b", Ack(epoch=7, seq=0)) == []  # an earlier incarnation's answer
    assert ctx.cancelled == []
    assert channel.received("b", Ack(epoch=0, seq=0)) == []
    assert ctx.cancelled == [1]
    channel.timer((RETRANSMIT, "b", 0))  # fired in the instant its Ack came: nothing to resend
    assert len(ctx.sent) == 2
    channel.timer((RETRANSMIT, "b", 1))
    (node, resent) = ctx.sent[-1]
    assert (node, resent.seq, resent.base, resent.inner) == ("b", 1, 1, message(1))
    assert channel.retransmissions == 1


def test_a_duplicate_is_acknowledged_again_and_handed_on_once():
    ctx = Recording("b")
    channel = ReliableContext(ctx, chain())
    envelope = Sequenced(epoch=0, seq=0, base=0, inner=message(0))
    assert channel.received("a", envelope) == [message(0)]
    assert channel.received("a", envelope) == []
    assert ctx.sent == [("a", Ack(epoch=0, seq=0)), ("a", Ack(epoch=0, seq=0))]
    assert channel.duplicates == 1


def test_messages_that_arrive_out_of_order_are_handed_on_in_order():
    ctx = Recording("b")
    channel = ReliableContext(ctx, chain())
    assert channel.received("a", Sequenced(epoch=0, seq=2, base=0, inner=message(2))) == []
    assert channel.received("a", Sequenced(epoch=0, seq=1, base=0, inner=message(1))) == []
    assert channel.received("a", Sequenced(epoch=0, seq=1, base=0, inner=message(1))) == []  # held: a duplicate
    assert channel.received("a", Sequenced(epoch=0, seq=0, base=0, inner=message(0))) == [message(0), message(1), message(2)]
    # every copy was acknowledged as it came, the held ones included (so they are not sent again)
    assert [ack.seq for _, ack in ctx.sent] == [2, 1, 1, 0]
    assert channel.duplicates == 1


def test_the_sender_gives_up_after_max_tries_and_the_receiver_then_stops_waiting_for_it():
    ctx = Recording("a")
    channel = ReliableContext(ctx, chain(), max_tries=3)
    channel.send_peer("b", message(0))
    for _ in range(3):
        channel.timer((RETRANSMIT, "b", 0))
    assert [msg.seq for _, msg in ctx.sent] == [0, 0, 0]  # sent, and sent again twice
    assert channel.gave_up == 1 and channel.retransmissions == 2
    assert [event for event, _ in ctx.traced] == ["network.retransmit", "network.retransmit", "network.reliable_gave_up"]
    channel.send_peer("b", message(1))
    _, next_one = ctx.sent[-1]
    assert (next_one.seq, next_one.base) == (1, 1)
    # a receiver that got message 2 ahead of the lost one hands both on once base passes the gap
    receiver = ReliableContext(Recording("b"), chain())
    assert receiver.received("a", Sequenced(epoch=0, seq=0, base=0, inner=message(0))) == [message(0)]
    assert receiver.received("a", Sequenced(epoch=0, seq=2, base=1, inner=message(2))) == []
    assert receiver.received("a", Sequenced(epoch=0, seq=3, base=3, inner=message(3))) == [message(2), message(3)]


def test_a_restarted_sender_starts_a_new_stream_and_its_old_one_is_dropped():
    ctx = Recording("b")
    channel = ReliableContext(ctx, chain())
    assert channel.received("a", Sequenced(epoch=0, seq=0, base=0, inner=message(0))) == [message(0)]
    assert channel.received("a", Sequenced(epoch=0, seq=2, base=0, inner=message(2))) == []
    # the sender crashed and came back at 5 us: its numbers start again from 0
    assert channel.received("a", Sequenced(epoch=5_000, seq=0, base=0, inner=message(10))) == [message(10)]
    assert channel.received("a", Sequenced(epoch=0, seq=1, base=0, inner=message(1))) == []  # the old stream
    assert ctx.traced[-1][0] == "network.reliable_stale"
    assert [ack for _, ack in ctx.sent] == [Ack(epoch=0, seq=0), Ack(epoch=0, seq=2), Ack(epoch=5_000, seq=0)]


def test_a_restarted_receiver_waits_for_nothing_below_the_senders_base():
    fresh = ReliableContext(Recording("b", now_ns=9_000), chain())
    assert fresh.received("a", Sequenced(epoch=0, seq=41, base=40, inner=message(41))) == []
    assert fresh.received("a", Sequenced(epoch=0, seq=40, base=40, inner=message(40))) == [message(40), message(41)]
    assert fresh.received("a", Sequenced(epoch=0, seq=12, base=40, inner=message(12))) == []  # long acknowledged


def test_max_tries_below_one_is_refused():
    with pytest.raises(ValueError, match="max_tries"):
        ReliableContext(Recording("a"), chain(), max_tries=0)
