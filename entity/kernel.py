"""Deterministic discrete-event kernel.

Time is an integer count of nanoseconds. Events sit in a binary heap ordered by
(time, insertion number), so events scheduled for the same instant run in the
order they were scheduled: the run is a pure function of the scenario and the
seed. Cancelled events stay in the heap and are skipped when popped (cheaper
than removing them).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

__all__ = ["Kernel", "KernelError"]


class KernelError(RuntimeError):
    pass


class Kernel:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._next_id = 0
        self._cancelled: set[int] = set()
        self.now_ns = 0
        self.events_processed = 0

    def schedule(self, delay_ns: int, callback: Callable[..., None], *args: Any) -> int:
        """Run ``callback(*args)`` ``delay_ns`` from now; returns the event id."""
        if delay_ns < 0:
            raise KernelError(f"cannot schedule an event in the past (delay_ns={delay_ns})")
        event_id = self._next_id
        self._next_id = event_id + 1
        _heappush(self._heap, (self.now_ns + int(delay_ns), event_id, callback, args))
        return event_id

    def cancel(self, event_id: int) -> None:
        self._cancelled.add(event_id)

    @property
    def pending(self) -> int:
        return len(self._heap) - len(self._cancelled)

    def run(self, until_ns: int | None = None, max_events: int | None = None) -> None:
        """Process events until none are left, time passes ``until_ns``, or
        ``max_events`` have run."""
        heap = self._heap
        cancelled = self._cancelled
        budget = -1 if max_events is None else max(0, max_events)  # -1: no limit
        processed = 0
        try:
            while heap:
                entry = heap[0]
                if until_ns is not None and entry[0] > until_ns:
                    self.now_ns = until_ns
                    return
                if processed == budget:
                    return
                _heappop(heap)
                time_ns, event_id, callback, args = entry
                if cancelled and event_id in cancelled:
                    cancelled.discard(event_id)
                    continue
                self.now_ns = time_ns
                callback(*args)
                processed += 1
        finally:
            # counted once per run rather than per event: the loop is the hot path
            self.events_processed += processed


_heappush = heapq.heappush
_heappop = heapq.heappop
