"""Pauli-frame algebra and the goodness estimate of a chain of swapped link pairs.

Theory of operation
-------------------
An end-to-end pair made by entanglement swapping is never corrected here: its
Bell state is *tracked* as a Pauli frame (the bookkeeping of QNP's TRACK
message, Kozlowski et al., CoNEXT 2020). Writing ``|B(x, z)> = (I ⊗ X^x Z^z)|Φ+>``,
swapping a pair in ``B(a)`` with one in ``B(c)`` when the Bell measurement gives
``B(m)`` leaves the outer qubits in ``B(a ⊕ m ⊕ c)`` (Żukowski, Zeilinger, Horne
& Ekert, PRL 71, 4287, 1993). So a chain's frame is the XOR of every link
pair's frame and every swap outcome, whatever the order.

Goodness composes the link pairs' Bell-diagonal estimates, each half
decohered in its node's memory until it was swapped or until the delivery
(:mod:`~qnetstack.network.bell_diagonal`, specs/network.md NET-GOOD): a
repeater puts in its ``SwapRecord`` what only it knows (:func:`swap_estimates`:
the two pairs' estimates and times, the memory holding each far half, the
decay of its own two halves until the swap), and an end composes the records
of its chain at the delivery time (:func:`chain_estimate`). When a link gave no
Bell-diagonal estimate, every link pair is taken as a Werner state of its link
goodness instead: swapping Werner states of fidelities F1, F2 gives
F1·F2 + (1−F1)(1−F2)/3 (Dür, Briegel, Cirac & Zoller, PRA 59, 169, 1999). The
fold runs along the path from the head's link, so the same chain gives the
same float at both ends.

For type M the tail flips its outcome so that both ends report outcomes as if
the pair were Φ+; :func:`outcome_flips` says when (specs/network.md §3).

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from qnetstack.link.service import LinkOkKeep
from qnetstack.network import bell_diagonal as bd
from qnetstack.network.peer import PairEstimate, SwapRecord
from qnetstack.physical.service import Basis, BellState, MemoryDecoherence, PhysicalCapabilities

__all__ = [
    "chain_estimate",
    "chain_frame",
    "chain_goodness",
    "correctable",
    "outcome_flips",
    "swap_estimates",
    "werner_swap_fidelity",
]


def werner_swap_fidelity(f1: float, f2: float) -> float:
    """Fidelity after swapping two Werner states (Dür et al. 1999)."""
    return f1 * f2 + (1.0 - f1) * (1.0 - f2) / 3.0


def chain_frame(link_states: Iterable[BellState], swap_outcomes: Iterable[BellState]) -> BellState:
    """The Bell state of a chain: the XOR of its link pairs' frames and its swap outcomes."""
    frame = BellState.PHI_PLUS
    for state in link_states:
        frame = frame.compose(state)
    for outcome in swap_outcomes:
        frame = frame.compose(outcome)
    return frame


def chain_goodness(link_goodness: Iterable[float]) -> float:
    """Werner estimate of a chain's fidelity, from its links' goodness in path order (head first)."""
    goodness: float | None = None
    for g in link_goodness:
        goodness = g if goodness is None else werner_swap_fidelity(goodness, g)
    if goodness is None:
        raise ValueError("a chain has at least one link")
    return goodness


def swap_estimates(
    up: LinkOkKeep, down: LinkOkKeep, upstream: str, downstream: str, swap_time_ns: int, capabilities: PhysicalCapabilities
) -> dict[str, Any]:
    """The goodness fields of a ``SwapRecord`` for link pairs ``up`` (with ``upstream``)
    and ``down`` (with ``downstream``) swapped at ``swap_time_ns``: empty when either
    link gave no Bell-diagonal estimate (the ends then use the Werner fallback)."""
    if up.bell_diagonal is None or down.bell_diagonal is None:
        return {}
    own = capabilities.memory
    decay = bd.add(bd.exponents(own, swap_time_ns - up.goodness_time_ns), bd.exponents(own, swap_time_ns - down.goodness_time_ns))
    return {
        "upstream_estimate": PairEstimate.trusted(
            weights=up.bell_diagonal, time_ns=up.goodness_time_ns, far_memory=_neighbour_memory(capabilities, upstream)
        ),
        "downstream_estimate": PairEstimate.trusted(
            weights=down.bell_diagonal, time_ns=down.goodness_time_ns, far_memory=_neighbour_memory(capabilities, downstream)
        ),
        "swap_decay": decay,
        "swap_time_ns": swap_time_ns,
    }


def _neighbour_memory(capabilities: PhysicalCapabilities, neighbour: str) -> MemoryDecoherence | None:
    link = capabilities.links.get(neighbour)
    return None if link is None else link.neighbour_memory


def chain_estimate(records: Sequence[SwapRecord], time_ns: int) -> float:
    """Goodness at ``time_ns`` of the pair made by ``records`` (sorted by position, chained
    head to tail): the Bell-diagonal composition when every record carries estimates,
    else the Werner composition of the link goodnesses."""
    first, last = records[0].upstream_estimate, records[-1].downstream_estimate
    downstream = [r.downstream_estimate for r in records]
    decays = [r.swap_decay for r in records]
    if first is None or last is None or any(e is None for e in downstream) or any(d is None for d in decays):
        return chain_goodness([records[0].upstream_goodness, *(r.downstream_goodness for r in records)])
    decay = bd.add(bd.exponents(first.far_memory, time_ns - first.time_ns), bd.exponents(last.far_memory, time_ns - last.time_ns))
    for d in decays:
        assert d is not None
        decay = bd.add(decay, d)
    return bd.chain_fidelity([first.weights, *(e.weights for e in downstream if e is not None)], decay)


def correctable(basis: Basis) -> bool:
    """Can a type-M outcome in ``basis`` be corrected for any frame by flipping it?

    A Pauli frame turns (Z ± X)/√2 into (Z ∓ X)/√2 up to sign, which no flip
    undoes; the Pauli bases map onto themselves."""
    return basis.is_pauli


def outcome_flips(frame: BellState, basis: Basis) -> bool:
    """Does the frame anti-correlate outcomes in this basis relative to PHI_PLUS?

    For (I ⊗ X^x Z^z)|Φ+>: Z outcomes flip when x = 1, X outcomes when z = 1,
    and Y outcomes when exactly one of them is 1 (YY is anti-correlated for
    Φ+ itself, which the tail's outcome already reflects, so only the frame's
    change is applied).
    """
    x, z = frame.pauli_bits
    if basis is Basis.Z:
        return bool(x)
    if basis is Basis.X:
        return bool(z)
    if basis is Basis.Y:
        return bool(x ^ z)
    raise ValueError(f"no outcome flip corrects a Pauli frame in basis {basis.value}")
