"""Cutoffs: a link pair that waits too long at a repeater is discarded, and its hop makes a new one;
an end-to-end pair whose oldest link pair is too old is discarded, and its chain is made anew.

Theory of operation
-------------------
A memory qubit decoheres while its link pair waits at a repeater for a pair
on the other side. A *cutoff* bounds that wait (Collins, Jenkins, Kuzmich &
Kennedy, PRL 98, 060502 (2007); Brand, Coopmans & Elkouss, IEEE JSAC 38, 619
(2020)): a link pair whose age, counted from its ``goodness_time_ns`` (the
herald), exceeds ``cutoff_ns`` is never swapped. The repeater frees its
qubit, tells the other end of the hop with ``PairDiscarded`` (naming the pair
by ``ent_id``) so that end frees its half too, and the node that issues the
hop's CREATEs asks the link for a new pair.

Both ends of every link must agree which pairs died, and so must both ends
of the circuit. Every repeater of a path keeps the cutoff of its own link
pairs, so the two repeaters at the ends of an inner link decide each alone:
one may have swapped its half already when the other cuts its half off. The
swap cannot be undone, so the chain it belongs to is broken: the *segment*
of swapped link pairs from the cutting repeater to the node that holds the
segment's far half. The protocol discards the whole segment:

* ``PairDiscarded`` says "link pair P is dead, my half of it is gone". The
  cutting repeater sends it to the other end of P's hop. A node that gets it
  and holds P frees its half (an end also drops the swap records chained from
  P). A node that swapped P with Q *voids* that swap: it counts one swap
  fewer, and sends ``PairDiscarded`` for Q to the other end of Q's hop; so
  the notice follows the segment, swap by swap, to its far half, which is
  freed. A node that has neither (the notice crossed one from the other
  side, or the circuit ended here) stops it. Each node of the segment hears
  of every link pair it held a half of, so both ends of every link agree.
* The node that issues a hop's CREATEs (upstream) asks exactly one new pair
  per dead one, and only once the downstream end has *settled* it: the
  downstream end sends ``PairDiscarded`` for P upstream exactly once, when it
  learns P is dead (it cut P, was told by the upstream end, or voided its swap
  of P from its other side), with ``hop_freed_void`` set if it had swapped P
  and said so with ``HopFreed``, which the upstream node then takes back. So
  the upstream node's counts of pairs asked and used at each end drop
  together, in one event, and the pacing of :mod:`qnetstack.network.node`
  (the next pair once both ends of the hop hold none) stays exact even when
  the hop's next pair was asked before P was found dead (both ends had
  swapped P). The tail never swaps, so a pair into the tail is settled when
  the notice is sent (the tail frees its half on receipt, before the new
  pair's CREATE can reach it), and a tail never answers: on two links the
  messages are those of the protocol before it covered longer paths.
* No end delivers a pair built on a dead link pair: an end delivers only with
  a swap record for every link of the chain, and the node that cut a pair off
  never swaps it, so that chain never completes.
* A repeater's swaps could be voided until the chain through them is
  delivered, so with a cutoff on a path of three links or more it does not
  end the circuit after ``number`` swaps: it waits for ``CircuitDone``, which
  the tail sends every repeater once it has all its pairs. It swaps again as
  often as swaps are voided. The first repeater cannot swap again before it
  hears that its swap is void (the head's half of the segment is freed only
  after the notice passed the first repeater, or, with a per-circuit cutoff,
  the head asks its next pair only once the first repeater settled the old
  one), so its swap count, the index of the end-to-end pair, still numbers the
  delivered pairs 0, 1, 2, ...

On a path of two links the only repeater's neighbours are the ends, which
never swap: a pair is cut off only where it is held at both ends, and the
protocol reduces to the first step (the repeater ends the circuit itself after
``number`` swaps, as without a cutoff).

Memory stays within the reservation: a dead pair's replacement is asked for
only after both its halves are gone (settled by the downstream end, or sent to
the tail ahead of the new pair's CREATE).

Per-circuit cutoff
------------------
``circuit_cutoff_ns`` bounds the age of an end-to-end pair when its chain
completes: the time of the last swap of its chain minus the herald time of its
oldest link pair (cutoffs of this and other kinds in repeater chains are
compared by Li, Coopmans & Elkouss, IEEE Trans. Quantum Eng. 2, 2021). Every
swap record carries the herald times of the two link pairs it joined and the
swap time, so both ends compute the age from the same records and decide
alike, with no message between them. A pair
over the bound is freed at both ends and not delivered (traced as
``network.circuit_cutoff``); the head then sends ``PairDiscarded`` for its own
link pair, which voids every swap of the chain (as above), and each hop makes
a new pair. A one-link circuit has no swaps and is never cut off this way.

Waiting time of a two-link repeater
-----------------------------------
:func:`mean_wait_slots` is the closed form the stack is tested against
(tests/test_cutoff.py). Both links attempt in lock-step slots, each attempt
succeeding with probability ``p``; a link that holds a pair stops attempting.
Without a cutoff the wait is the larger of two geometric variables,
``E[max(N1, N2)] = 2/p - 1/(1 - (1-p)^2) = (3 - 2p) / (p (2 - p))``
(the waiting times of repeater chains are studied by Collins et al. 2007 and,
over more links, by Shchukin, Schmidt & van Loock, PRA 100, 032322 (2019)).
With a cutoff of ``c`` slots a pair made in slot ``t`` may be swapped with a
partner made in slots ``t .. t + c``; if none comes, it is discarded after
slot ``t + c`` and its link attempts again from slot ``t + c + 1``. This is
the two-link case of the cutoff protocol whose waiting-time distribution
Brand, Coopmans & Elkouss (2020) compute (they start both links afresh after
a discard; the link still attempting has made no pair, and attempts are
memoryless, so that is the same in distribution). Its mean follows from a
renewal argument, derived here. Starting with no pair held, the first
slot where some link succeeds is geometric with
``q = 1 - (1-p)^2 = p (2 - p)``; both succeed there with probability
``p^2 / q`` (done), else one link holds a pair (probability
``r = 2 p (1-p) / q``). From there the other link succeeds within ``c`` slots
with probability ``1 - s``, ``s = (1-p)^c``, after ``E[min(J, c)] = (1 - s) / p``
slots on average (``J`` geometric), or the pair is discarded and the process
starts over. With ``E0`` the mean from no pair held and ``E1`` from one:

    E0 = 1/q + r E1,        E1 = (1 - s)/p + s E0,

so ``E0 = (1/q + r (1 - s)/p) / (1 - r s)``: ``(3 - 2p) / (p (2 - p))`` as
``c -> inf`` and ``1 / p^2`` at ``c = 0`` (both links must succeed in the
same slot).

A link cannot restart in the very slot after the discard in the stack: the
link layer agrees a start ``2 x (classical delay) + 1 ns`` after a CREATE
(specs/link.md), so with no classical delay and 1 ns attempts the discarded
link sits out one slot (``restart_slots=1``) while the other link attempts
alone. If that lone attempt succeeds, that link now holds a fresh pair and
the first link attempts against it (one pair held again), else no pair is
held. So ``E1 = (1 - s)/p + s (1 + p E1 + (1 - p) E0)``, solved with the same
``E0 = 1/q + r E1``. The stack is tested against this variant, the
independent simulation (:func:`simulate_wait_slots`) against both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from qnetstack.network.circuit import Circuit, CircuitAtRepeater
from qnetstack.network.pairs import HopKey, LinkPair, PairStore
from qnetstack.network.peer import SwapRecord

__all__ = ["Cutoffs", "mean_wait_slots", "simulate_wait_slots"]


class Cutoffs:
    """One node's cutoffs: which held link pairs are too old (per link, ``cutoff_ns``), which
    complete chains are too old (per circuit, ``circuit_cutoff_ns``), and the timers that find
    the pairs. A timer is set for every link pair a repeater files (:meth:`start`) and
    cancelled once the pair is used (:meth:`cancel_used`, after the node's swaps) or cut off."""

    def __init__(self, cutoff_ns: int | None, circuit_cutoff_ns: int | None = None) -> None:
        self.cutoff_ns = cutoff_ns
        self.circuit_cutoff_ns = circuit_cutoff_ns
        self._timers: dict[HopKey, dict[Any, int]] = {}  # hop -> pair key -> timer id

    def applies(self, circuit: Circuit) -> bool:
        """The per-link cutoff is kept by every repeater of a circuit."""
        return self.cutoff_ns is not None and isinstance(circuit, CircuitAtRepeater)

    def voidable(self, circuit: Circuit) -> bool:
        """Whether a swap of ``circuit`` can be voided after it was made: on paths of three links
        or more with a per-link cutoff, on any path with repeaters with a per-circuit one."""
        if self.circuit_cutoff_ns is not None:
            return circuit.hops >= 2
        return circuit.hops >= 3

    def expires_ns(self, pair: LinkPair) -> int:
        """The first time at which ``pair`` is older than the cutoff."""
        assert self.cutoff_ns is not None
        return pair.ok.goodness_time_ns + self.cutoff_ns + 1

    def expired(self, circuit: Circuit, pairs: PairStore, now_ns: int) -> list[LinkPair]:
        """The held link pairs of ``circuit`` that are older than the cutoff at ``now_ns``."""
        return [pair for hop in circuit.hop_keys for pair in pairs.held(hop) if now_ns >= self.expires_ns(pair)]

    def too_old(self, records: list[SwapRecord]) -> int | None:
        """The age of the end-to-end pair ``records`` (sorted, head to tail) make, when it is
        over the per-circuit cutoff: the last swap's time minus the oldest herald time."""
        if self.circuit_cutoff_ns is None or not records:
            return None
        heralds = [t for r in records if r.herald_ns is not None for t in r.herald_ns]
        swaps = [r.swapped_ns for r in records if r.swapped_ns is not None]
        if len(heralds) < 2 * len(records) or len(swaps) < len(records):
            raise ValueError("a swap record without its herald and swap times: the per-circuit cutoff cannot be judged")
        age = max(swaps) - min(heralds)
        return age if age > self.circuit_cutoff_ns else None

    def start(self, pair: LinkPair, now_ns: int, set_timer: Callable[[int, Any], int], tag: Any) -> None:
        """Set the timer that finds ``pair`` once it is older than the cutoff."""
        self._timers.setdefault(pair.hop, {})[pair.key] = set_timer(max(0, self.expires_ns(pair) - now_ns), tag)

    def fired(self, hop: HopKey, key: Any) -> None:
        """The timer of the pair ``key`` on ``hop`` has run."""
        self._forget(hop, key)

    def stop(self, pair: LinkPair, cancel_timer: Callable[[int], None]) -> None:
        """``pair`` is cut off (or used): its timer, if still set, is not needed."""
        timer = self._forget(pair.hop, pair.key)
        if timer is not None:
            cancel_timer(timer)

    def cancel_used(self, circuit: Circuit, pairs: PairStore, cancel_timer: Callable[[int], None]) -> None:
        """Cancel the timers of ``circuit``'s pairs that are no longer held (swapped just now)."""
        for hop in circuit.hop_keys:
            timers = self._timers.get(hop)
            if not timers:
                continue
            for key in [k for k in timers if pairs.find(hop, k) is None]:
                cancel_timer(timers.pop(key))
            if not timers:
                del self._timers[hop]

    def _forget(self, hop: HopKey, key: Any) -> int | None:
        timers = self._timers.get(hop)
        if timers is None:
            return None
        timer = timers.pop(key, None)
        if not timers:
            del self._timers[hop]
        return timer

    def __len__(self) -> int:
        """Timers set and not yet run or cancelled."""
        return sum(len(t) for t in self._timers.values())


def mean_wait_slots(p: float, cutoff_slots: int | None, restart_slots: int = 0) -> float:
    """Mean number of attempt slots until both links of a two-link repeater hold a pair
    (the module docstring derives it); ``cutoff_slots=None``: no cutoff; ``restart_slots``
    (0 or 1): slots a link sits out after its pair was discarded."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    q = p * (2.0 - p)
    if cutoff_slots is None:
        return (3.0 - 2.0 * p) / q
    if cutoff_slots < 0:
        raise ValueError(f"cutoff_slots must be >= 0, got {cutoff_slots}")
    r = 2.0 * (1.0 - p) / (2.0 - p)
    s = (1.0 - p) ** cutoff_slots
    if restart_slots == 0:
        return (1.0 / q + r * (1.0 - s) / p) / (1.0 - r * s)
    if restart_slots == 1:
        # E1 (1 - s p - s (1 - p) r) = (1 - s)/p + s + s (1 - p)/q, then E0 = 1/q + r E1
        e1 = ((1.0 - s) / p + s + s * (1.0 - p) / q) / (1.0 - s * p - s * (1.0 - p) * r)
        return 1.0 / q + r * e1
    raise ValueError(f"restart_slots must be 0 or 1, got {restart_slots}")


def simulate_wait_slots(p: float, cutoff_slots: int | None, samples: int, rng: np.random.Generator, restart_slots: int = 0) -> np.ndarray:
    """The same protocol slot by slot (an independent check of :func:`mean_wait_slots`):
    ``samples`` waiting times, each counted from a start with no pair held."""
    waits = np.empty(samples, dtype=np.int64)
    for i in range(samples):
        slot = 0
        age = [-1, -1]  # slots each link's pair has waited; -1: no pair
        idle = [0, 0]  # slots each link still sits out after a discard
        while True:
            slot += 1
            for link in (0, 1):
                if idle[link]:
                    idle[link] -= 1
                elif age[link] < 0 and rng.random() < p:
                    age[link] = 0
                elif age[link] >= 0:
                    age[link] += 1
            if age[0] >= 0 and age[1] >= 0:
                break
            for link in (0, 1):
                if cutoff_slots is not None and age[link] >= cutoff_slots:
                    # waited cutoff_slots slots after its own without a partner: discarded
                    age[link] = -1
                    idle[link] = restart_slots
        waits[i] = slot
    return waits
