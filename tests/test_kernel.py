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


def _heap_only_order(seed: int, chunks: list[dict]) -> tuple[list[int], list[str]]:
    """The order events run in, by a kernel that keeps every event in one heap of
    (time, insertion number): the definition the kernel's queue of this instant's
    events must keep to. Returns the labels run and why each chunk stopped."""
    import heapq

    import numpy as np

    rng = np.random.default_rng(seed)
    heap: list[tuple[int, int, int]] = []
    cancelled: set[int] = set()
    state = {"now": 0, "next": 0, "label": 0}
    seen: list[int] = []

    def schedule(delay: int) -> int:
        event_id = state["next"]
        state["next"] += 1
        state["label"] += 1
        heapq.heappush(heap, (state["now"] + delay, event_id, state["label"]))
        return event_id

    def react() -> None:
        # each event schedules 0-2 more, half of them for this instant, and sometimes cancels one
        for _ in range(int(rng.integers(0, 3))):
            last = schedule(int(rng.choice([0, 0, 1, 5])))
            if rng.random() < 0.1:
                cancelled.add(last - int(rng.integers(0, 3)))

    for _ in range(20):
        schedule(int(rng.integers(0, 4)))
    reasons = []
    for chunk in chunks:
        processed = 0
        while True:
            if not heap:
                reasons.append("idle")
                break
            if chunk.get("until_ns") is not None and heap[0][0] > chunk["until_ns"]:
                state["now"] = chunk["until_ns"]
                reasons.append("until")
                break
            if processed == chunk.get("max_events", -1):
                reasons.append("budget")
                break
            time_ns, event_id, label = heapq.heappop(heap)
            if event_id in cancelled:
                continue
            state["now"] = time_ns
            seen.append(label)
            processed += 1
            react()
    return seen, reasons


def _kernel_order(seed: int, chunks: list[dict]) -> tuple[list[int], list[str]]:
    """What :func:`_heap_only_order` returns, from the kernel, with the same draws."""
    import numpy as np

    rng = np.random.default_rng(seed)
    kernel = Kernel()
    seen: list[int] = []
    label = [0]

    def schedule(delay: int) -> int:
        label[0] += 1
        return kernel.schedule(delay, event, label[0])

    def event(name: int) -> None:
        seen.append(name)
        for _ in range(int(rng.integers(0, 3))):
            last = schedule(int(rng.choice([0, 0, 1, 5])))
            if rng.random() < 0.1:
                kernel.cancel(last - int(rng.integers(0, 3)))

    for _ in range(20):
        schedule(int(rng.integers(0, 4)))
    reasons: list[str] = [kernel.run(**chunk) for chunk in chunks]
    assert kernel.events_processed == len(seen)
    return seen, reasons


def test_events_of_the_current_instant_run_in_the_order_one_heap_gives():
    """The kernel keeps events for the instant they are scheduled in out of its heap; the
    order must stay that of a single heap of (time, insertion number), whatever mix of
    delays, cancellations and chunked runs (stopped by a time or an event budget)."""
    chunks = [{"max_events": 7}, {"until_ns": 3}, {"max_events": 1}, {"until_ns": 9, "max_events": 40}, {}]
    for seed in range(30):
        expected = _heap_only_order(seed, chunks)
        assert _kernel_order(seed, chunks) == expected
        assert len(expected[0]) > 20
