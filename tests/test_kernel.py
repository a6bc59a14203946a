"""The discrete-event kernel and the runtime's random streams."""

from __future__ import annotations

import pytest

from qnetstack.entity.kernel import Kernel, KernelError
from qnetstack.stack.runtime import entity_rng


def test_events_run_in_time_order_and_simultaneous_ones_in_insertion_order():
    kernel = Kernel()
    seen = []
    kernel.schedule(30, seen.append, "c")
    kernel.schedule(10, seen.append, "a1")
    kernel.schedule(10, seen.append, "a2")
    kernel.schedule(20, seen.append, "b")
    kernel.schedule(10, seen.append, "a3")
    kernel.run()
    assert seen == ["a1", "a2", "a3", "b", "c"]
    assert kernel.now_ns == 30 and kernel.events_processed == 5


def test_events_scheduled_during_a_run_use_the_current_time():
    kernel = Kernel()
    times = []

    def tick(n):
        times.append(kernel.now_ns)
        if n:
            kernel.schedule(7, tick, n - 1)

    kernel.schedule(5, tick, 3)
    kernel.run()
    assert times == [5, 12, 19, 26]


def test_cancelled_events_do_not_run():
    kernel = Kernel()
    seen = []
    keep = kernel.schedule(1, seen.append, "keep")
    drop = kernel.schedule(2, seen.append, "drop")
    kernel.cancel(drop)
    kernel.run()
    assert seen == ["keep"] and keep != drop


def test_run_stops_at_until_and_at_max_events():
    kernel = Kernel()
    seen = []
    for t in (10, 20, 30, 40):
        kernel.schedule(t, seen.append, t)
    kernel.run(until_ns=25)
    assert seen == [10, 20] and kernel.now_ns == 25
    kernel.run(max_events=1)
    assert seen == [10, 20, 30]
    kernel.run()
    assert seen == [10, 20, 30, 40]


def test_scheduling_into_the_past_is_an_error():
    with pytest.raises(KernelError, match="past"):
        Kernel().schedule(-1, print)


def test_entity_streams_are_reproducible_and_independent():
    a1 = entity_rng(7, "alice", "link").random(4)
    a2 = entity_rng(7, "alice", "link").random(4)
    b = entity_rng(7, "bob", "link").random(4)
    other_layer = entity_rng(7, "alice", "network").random(4)
    other_seed = entity_rng(8, "alice", "link").random(4)
    assert (a1 == a2).all()
    assert not (a1 == b).any() and not (a1 == other_layer).any() and not (a1 == other_seed).any()
