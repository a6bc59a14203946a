"""Memory reservations of one node: which circuits have qubits set aside, and which wait.

Theory of operation
-------------------
A circuit over repeaters holds link pairs at every node of its path while it
waits for their partners. If nothing bounded that, circuits crossing at a node
could fill its memory with pairs that each wait for a pair that needs that
very memory (specs/network.md §1.2). So before a circuit's link requests
start, each node of its path sets aside the memory qubits the circuit's policy
can hold there (:meth:`~qnetstack.network.policy.Policy.qubits_held`), and the
node never lets the circuit hold more.

:class:`MemoryBook` keeps that account for one node:

* ``capacity`` is the node's number of memory qubits;
* a circuit's *reservation* is granted when the qubits not yet reserved cover
  it, and lasts until the circuit ends here (done, failed, deadline) or its
  set-up is released;
* a set-up that does not fit *waits* in a queue ordered by the request's
  ``priority`` (0 first), first come, first served within a priority. When a
  reservation ends, the queue is served from its front for as long as the
  front one fits. A set-up never overtakes one of its own or a smaller
  priority value that came before it, even when it would fit: so a circuit
  that needs more qubits is not starved by a stream of smaller ones of its
  priority (the fairness rule). A set-up of a smaller priority value goes
  ahead of every waiting one of a larger value, and is granted at once when
  it fits and none of its own or a smaller value waits: strict priority, as
  the link layer's scheduler serves it (so a stream of urgent circuits can
  hold back less urgent ones for as long as it lasts).

A reservation that can never fit (more qubits than the node has) is not
queued: the caller refuses it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["CircuitKey", "MemoryBook", "WaitingSetUp"]

CircuitKey = tuple[str, int]  # (head, serial): a circuit's network-wide name


@dataclass(frozen=True)
class WaitingSetUp:
    """A set-up queued at this node: circuit ``key`` needs ``qubits`` here."""

    key: CircuitKey
    qubits: int
    request: tuple[str, int]  # (head, request_id) of the request it serves
    priority: int = 0  # the request's; 0 is served first


class MemoryBook:
    """The memory qubits a node has set aside per circuit, and the set-ups waiting for some."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._reserved: dict[CircuitKey, int] = {}
        self._total = 0  # sum of the reservations
        self._waiting: deque[WaitingSetUp] = deque()

    @property
    def free(self) -> int:
        """Qubits no circuit has reserved."""
        return self.capacity - self._total

    def reserved(self, key: CircuitKey) -> int:
        return self._reserved.get(key, 0)

    def holds(self, key: CircuitKey) -> bool:
        """Whether ``key`` has a reservation here or waits for one."""
        return key in self._reserved or any(w.key == key for w in self._waiting)

    def ask(self, setup: WaitingSetUp) -> bool:
        """Reserve for ``setup`` now (True) or queue it (False). The caller has checked that it fits
        the capacity at all (:meth:`never_fits`)."""
        if self.holds(setup.key):
            raise ValueError(f"circuit {setup.key} asked twice for a reservation")
        ahead = sum(1 for w in self._waiting if w.priority <= setup.priority)
        if ahead == 0 and setup.qubits <= self.free:
            self._grant(setup)
            return True
        # after every waiting set-up of its priority or a smaller value, before the rest
        # (the queue is kept in that order, so those are exactly the first ``ahead``)
        self._waiting.insert(ahead, setup)
        return False

    def never_fits(self, qubits: int) -> bool:
        return qubits > self.capacity

    def release(self, key: CircuitKey) -> list[WaitingSetUp]:
        """Drop ``key``'s reservation or its place in the queue; returns the set-ups granted
        because of it, in queue order."""
        qubits = self._reserved.pop(key, None)
        if qubits is not None:
            self._total -= qubits
        else:
            kept = [w for w in self._waiting if w.key != key]
            if len(kept) == len(self._waiting):
                return []
            self._waiting = deque(kept)
        return self._serve()

    def _serve(self) -> list[WaitingSetUp]:
        granted = []
        while self._waiting and self._waiting[0].qubits <= self.free:
            setup = self._waiting.popleft()
            self._grant(setup)
            granted.append(setup)
        return granted

    def _grant(self, setup: WaitingSetUp) -> None:
        self._reserved[setup.key] = setup.qubits
        self._total += setup.qubits

    def waiting(self) -> list[WaitingSetUp]:
        return list(self._waiting)

    def __len__(self) -> int:
        """Circuits with a reservation here."""
        return len(self._reserved)
