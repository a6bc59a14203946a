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

Goodness treats every link pair as a Werner state of its link goodness:
swapping Werner states of fidelities F1, F2 gives F1·F2 + (1−F1)(1−F2)/3 (Dür,
Briegel, Cirac & Zoller, PRA 59, 169, 1999). The fold runs along the path from
the head's link, so the same chain gives the same float at both ends.

For type M the tail flips its outcome so that both ends report outcomes as if
the pair were Φ+; :func:`outcome_flips` says when (specs/network.md §3).

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable

from qnetstack.physical.service import Basis, BellState

__all__ = ["chain_frame", "chain_goodness", "correctable", "outcome_flips", "werner_swap_fidelity"]


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
