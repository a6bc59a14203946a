"""Deterministic discrete-event kernel.

Time is an integer count of nanoseconds. Events sit in a binary heap ordered by
(time, insertion number), so events scheduled for the same instant run in the
order they were scheduled: the run is a pure function of the scenario and the
seed. Cancelled events stay in the heap and are skipped when popped (cheaper
than removing them).

Most events are for the instant they are scheduled in (a message handed to
the layer above or below on the same node), and those never go through the
heap: they wait in a first-in first-out queue of this instant's events, in the
order scheduled. The queue holds the same ``(time, insertion number)`` keys as
the heap, already sorted (time does not go back, numbers only grow), and the
next event is the smaller of the queue's first and the heap's top, so events
run in exactly the order one heap would give them.

:meth:`Kernel.run` says why it returned (:data:`StopReason`), so a runner can
run in chunks of events and look at the run between them without adding
events of its own. When a callback raises, the exception goes on unchanged
and the event it was handling is kept in :attr:`Kernel.failed_event`, for a
runner to name the entity and message in its report.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

__all__ = ["Kernel", "KernelError", "FailedEvent", "StopReason"]

# "idle": no event left; "until": the next event is after until_ns; "budget": max_events ran
StopReason = Literal["idle", "until", "budget"]


class KernelError(RuntimeError):
    pass


class FailedEvent(NamedTuple):
    """The event whose callback raised: when it ran, what it called and with what."""

    time_ns: int
    callback: Callable[..., None]
    args: tuple[Any, ...]


class Kernel:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._now: deque[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = deque()  # events of this instant
        self._next_id = 0
        self._cancelled: set[int] = set()
        self.now_ns = 0
        self.events_processed = 0
        self.failed_event: FailedEvent | None = None

    def schedule(self, delay_ns: int, callback: Callable[..., None], *args: Any) -> int:
        """Run ``callback(*args)`` ``delay_ns`` from now; returns the event id."""
        if delay_ns < 0:
            raise KernelError(f"cannot schedule an event in the past (delay_ns={delay_ns})")
        event_id = self._next_id
        self._next_id = event_id + 1
        if delay_ns:
            _heappush(self._heap, (self.now_ns + int(delay_ns), event_id, callback, args))
        else:
            self._now.append((self.now_ns, event_id, callback, args))
        return event_id

    def cancel(self, event_id: int) -> None:
        self._cancelled.add(event_id)

    def cancel_where(self, doomed: Callable[[Callable[..., None]], bool]) -> int:
        """Cancel every pending event whose callback ``doomed`` picks; returns how many.
        It walks the whole heap, so it is for rare moments (a node that crashes)."""
        cancelled = self._cancelled
        count = 0
        for _, event_id, callback, _ in [*self._now, *self._heap]:
            if event_id not in cancelled and doomed(callback):
                cancelled.add(event_id)
                count += 1
        return count

    @property
    def pending(self) -> int:
        return len(self._now) + len(self._heap) - len(self._cancelled)

    def run(self, until_ns: int | None = None, max_events: int | None = None, *, advance_to_until: bool = True) -> StopReason:
        """Process events until none are left, time passes ``until_ns``, or
        ``max_events`` have run; returns which of the three it was.

        Stopped by ``until_ns``, the clock is set to it, unless
        ``advance_to_until`` is false: then it stays at the last event's time
        (a runner that merely looks at the run leaves the clock alone).

        An exception raised by a callback (or by a signal handler while one
        runs) propagates unchanged; :attr:`failed_event` then names the event.
        The failed event is not counted in :attr:`events_processed`."""
        heap = self._heap
        now = self._now
        cancelled = self._cancelled
        budget = -1 if max_events is None else max(0, max_events)  # -1: no limit
        processed = 0
        callback: Callable[..., None] | None = None
        time_ns, args = self.now_ns, ()
        try:
            while now or heap:
                # (time, insertion number) keys are unique, so the comparison never reaches the callbacks
                from_now = bool(now) and (not heap or now[0] < heap[0])
                entry = now[0] if from_now else heap[0]
                if until_ns is not None and entry[0] > until_ns:
                    if advance_to_until:
                        self.now_ns = until_ns
                    return "until"
                if processed == budget:
                    return "budget"
                if from_now:
                    now.popleft()
                else:
                    _heappop(heap)
                time_ns, event_id, callback, args = entry
                if cancelled and event_id in cancelled:
                    cancelled.discard(event_id)
                    continue
                self.now_ns = time_ns
                callback(*args)
                processed += 1
            return "idle"
        except BaseException:
            # Only a callback (or a signal landing in one) can raise here: the heap
            # holds unique (time, id) keys, so the loop's own steps do not fail. A
            # signal landing between two events is told apart by the traceback.
            self.failed_event = None if callback is None else FailedEvent(time_ns, callback, args)
            raise
        finally:
            # counted once per run rather than per event: the loop is the hot path
            self.events_processed += processed


_heappush = heapq.heappush
_heappop = heapq.heappop
