"""Cutoffs: a link pair that waits too long at a repeater is discarded, and its hop makes a new one.

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

Both ends must agree which pair died. A policy with a cutoff runs circuits of
at most two links, where every link has exactly one repeater end and the
repeater alone decides: an end (head or tail) delivers a pair only after the
repeater's ``SwapRecord`` for it, and the repeater never sends one for a pair
it discarded, so no end can have used a pair the repeater cut off. (On longer
paths two repeaters share a link: one can swap its half while the other cuts
its half off, which breaks a chain that is already partly swapped. Handling
that takes telling the broken chain's ends, and repeaters that may already
have finished; not done yet, so such circuits are refused at the head.)

Memory stays within the reservation: the discarded pair is no longer asked
for (the creator counts one fewer pair asked, so the pacing of
:mod:`qnetstack.network.node` lets exactly one new pair be asked), and the end
frees its half when ``PairDiscarded`` arrives, which is before the new pair's
CREATE can reach it (both leave the creator at the same instant, the discard
first, or the discard reaches the creator from the repeater before it asks).

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

__all__ = ["MAX_HOPS", "Cutoffs", "mean_wait_slots", "simulate_wait_slots"]

MAX_HOPS = 2  # the longest path a cutoff is applied on (see the module docstring)


class Cutoffs:
    """One node's cutoff: which held link pairs are too old, and the timers that find them.

    A timer is set for every link pair a repeater files (:meth:`start`) and cancelled once
    the pair is used (:meth:`cancel_used`, after the node's swaps) or cut off."""

    def __init__(self, cutoff_ns: int) -> None:
        self.cutoff_ns = cutoff_ns
        self._timers: dict[HopKey, dict[Any, int]] = {}  # hop -> pair key -> timer id

    @staticmethod
    def refusal(hops: int) -> str | None:
        """Why a circuit over ``hops`` links cannot run with a cutoff, if it cannot."""
        if hops > MAX_HOPS:
            return f"a policy with a cutoff runs circuits of at most {MAX_HOPS} links; this path has {hops}"
        return None

    @staticmethod
    def applies(circuit: Circuit) -> bool:
        """The cutoff is kept by the repeater of a two-link circuit (its only repeater)."""
        return isinstance(circuit, CircuitAtRepeater) and circuit.hops <= MAX_HOPS

    def expires_ns(self, pair: LinkPair) -> int:
        """The first time at which ``pair`` is older than the cutoff."""
        return pair.ok.goodness_time_ns + self.cutoff_ns + 1

    def expired(self, circuit: Circuit, pairs: PairStore, now_ns: int) -> list[LinkPair]:
        """The held link pairs of ``circuit`` that are older than the cutoff at ``now_ns``."""
        return [pair for hop in circuit.hop_keys for pair in pairs.held(hop) if now_ns >= self.expires_ns(pair)]

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
