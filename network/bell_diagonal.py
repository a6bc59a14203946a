"""Bell-diagonal goodness of a chain of swapped link pairs, with memory decoherence.

Theory of operation
-------------------
A pair is described here by its Bell-basis diagonal *relative to its tracked
frame*: four weights in the order of :class:`~qnetstack.physical.service.BellState`,
the weight of ``frame.compose(b)`` for each ``b``, so the first weight is the
fidelity to the frame (Bennett, DiVincenzo, Smolin & Wootters, PRA 54, 3824,
1996: Bell-diagonal states). Everything a chain does to such weights is
simplest in their Walsh–Hadamard transform, the *correlations*

    c_X = Σ_k (-1)^z(k) w_k,   c_Y = Σ_k (-1)^(x(k)+z(k)) w_k,   c_Z = Σ_k (-1)^x(k) w_k

where ``(x, z)`` are the Pauli bits of Bell state ``k`` (``|B(x, z)> = (I ⊗ X^x Z^z)|Φ+>``).
They are the expectations of ``X⊗X``, ``-Y⊗Y`` and ``Z⊗Z`` in the frame, all 1
for a perfect pair, and ``w_k = (1 + Σ_P χ_P(k) c_P) / 4`` gives the weights back.

* **Swapping** with frame tracking (Dür, Briegel, Cirac & Zoller, PRA 59, 169,
  1999): the pair made of two pairs has relative weights the XOR-convolution
  of theirs (the errors relative to the frames compose by XOR, as the frames
  themselves do), so its correlations are the *products* of theirs.
* **Memory decoherence** (Nielsen & Chuang 2000, §8.3.5-8.3.6): a qubit left
  alone for ``t`` with T1, T2 keeps its X and Y components times ``e^{-t/T2}``
  and its Z component times ``e^{-t/T1}`` (plus, for amplitude damping, a
  shift towards |0>). Twirled into a Pauli channel (the shift dropped), each
  half of a pair multiplies ``c_X`` and ``c_Y`` by ``e^{-t/T2}`` and ``c_Z`` by
  ``e^{-t/T1}``. Written as *exponents* ``(t/T2, t/T2, t/T1)``, decoherence adds.

Since products commute, a chain's correlations are the product of its link
pairs' correlations at their herald times and ``exp(-E)``, with ``E`` the sum
of every half's exponents over the time it was held: a repeater's half until
its swap, an end's half until the time the estimate is for. The order of the
swaps does not matter, which is what lets each repeater report only what it
knows (specs/network.md NET-GOOD-1..4).

Why the diagonal is enough (specs/network.md §NET-GOOD). The fidelity of the
chain's pair to its frame, *averaged over the swap outcomes* with their
probabilities, is ``tr[W (ρ_1 ⊗ ... ⊗ ρ_n)]`` for an operator ``W`` (Bell
projectors of the swaps times the projector on the outcome-dependent frame)
that is invariant under the bilateral Pauli twirl of each input pair: a Pauli
on a measured qubit only relabels the outcome, which the frame follows. So
that average reads each link state only through its Bell diagonal. Single
pairs may differ (a state's off-diagonal Bell coherences make some outcomes
likelier and better than others); the mean over pairs does not. What the
twirl does change is the memory channel: amplitude damping is not a Pauli
channel, and the dropped shift couples to the local polarisation ``<Z⊗I>``
of a pair, so with finite T1 the estimate is off by terms of order
``(1 - e^{-t/T1}) <Z⊗I>`` (zero when T1 is infinite).

* **Distillation** (Bennett, DiVincenzo, Smolin & Wootters, PRA 54, 3824,
  1996, Sec. III): the bilateral CNOT maps the frames ``(x1, z1)`` of the
  source and ``(x2, z2)`` of the target to ``(x1, z1 ⊕ z2)`` and
  ``(x1 ⊕ x2, z2)``; the readouts of the target agree exactly when
  ``x1 = x2``. So for weights relative to Φ+ the round succeeds with
  ``p = Σ_x (Σ_z w1(x, z)) (Σ_z w2(x, z))`` and keeps the source with
  ``w'(x, z) = Σ_{z1 ⊕ z2 = z} w1(x, z1) w2(x, z2) / p``
  (:func:`parity_check`), again a Bell-diagonal state.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from qnetstack.physical.service import MemoryDecoherence

__all__ = [
    "NO_DECAY",
    "Correlations",
    "Exponents",
    "Weights",
    "add",
    "chain_fidelity",
    "correlations",
    "decayed",
    "exponents",
    "parity_check",
    "weights",
    "werner",
]

Weights = tuple[float, float, float, float]
Correlations = tuple[float, float, float]  # (c_X, c_Y, c_Z)
Exponents = tuple[float, float, float]  # decay exponents of (c_X, c_Y, c_Z)

NO_DECAY: Exponents = (0.0, 0.0, 0.0)


def correlations(w: Sequence[float]) -> Correlations:
    """The correlations ``(c_X, c_Y, c_Z)`` of relative weights ``w`` (module docstring)."""
    w0, w1, w2, w3 = w  # (x, z) = 00, 01, 10, 11
    return (w0 - w1 + w2 - w3, w0 - w1 - w2 + w3, w0 + w1 - w2 - w3)


def weights(c: Correlations) -> Weights:
    """The relative weights of correlations ``c``, the inverse of :func:`correlations`."""
    cx, cy, cz = c
    return (
        (1 + cx + cy + cz) / 4,
        (1 - cx - cy + cz) / 4,
        (1 + cx - cy - cz) / 4,
        (1 - cx + cy - cz) / 4,
    )


def exponents(memory: MemoryDecoherence | None, held_ns: float) -> Exponents:
    """Decay exponents of a half held ``held_ns`` in ``memory`` (``None``: none known, no decay)."""
    if memory is None or held_ns <= 0:
        return NO_DECAY
    dephase = 0.0 if memory.t2_ns is None else held_ns / memory.t2_ns
    relax = 0.0 if memory.t1_ns is None else held_ns / memory.t1_ns
    return (dephase, dephase, relax)


def add(a: Exponents, b: Exponents) -> Exponents:
    """Exponents of two decays one after the other (the channels' factors multiply)."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def chain_fidelity(link_weights: Iterable[Sequence[float]], decay: Exponents) -> float:
    """Fidelity to the chain's frame of link pairs ``link_weights`` swapped together, every
    half decohered by the total exponents ``decay``: the product of the correlations."""
    cx, cy, cz = math.exp(-decay[0]), math.exp(-decay[1]), math.exp(-decay[2])
    for w in link_weights:
        lx, ly, lz = correlations(w)
        cx, cy, cz = cx * lx, cy * ly, cz * lz
    return min(1.0, max(0.0, (1 + cx + cy + cz) / 4))


def werner(fidelity: float) -> Weights:
    """The weights of the Werner state of ``fidelity``: the rest spread evenly."""
    rest = (1.0 - fidelity) / 3.0
    return (fidelity, rest, rest, rest)


def decayed(w: Sequence[float], decay: Exponents) -> Weights:
    """Weights ``w`` after both halves decohered by the total exponents ``decay``,
    clipped to [0, 1] against rounding."""
    cx, cy, cz = correlations(w)
    out = weights((cx * math.exp(-decay[0]), cy * math.exp(-decay[1]), cz * math.exp(-decay[2])))
    return (_clip(out[0]), _clip(out[1]), _clip(out[2]), _clip(out[3]))


def parity_check(source: Sequence[float], target: Sequence[float]) -> tuple[float, Weights]:
    """(probability of success, weights of the kept source) of one distillation round's
    bilateral CNOT and parity check on pairs of weights ``source`` and ``target``, both
    relative to Φ+ (module docstring). The weights are those of a zero pair when the round
    can never succeed."""
    p0, p1, p2, p3 = source  # (x, z) = 00, 01, 10, 11
    q0, q1, q2, q3 = target
    kept = (p0 * q0 + p1 * q1, p0 * q1 + p1 * q0, p2 * q2 + p3 * q3, p2 * q3 + p3 * q2)
    probability = sum(kept)
    if probability <= 0.0:
        return 0.0, (0.0, 0.0, 0.0, 0.0)
    w = tuple(_clip(k / probability) for k in kept)
    return probability, (w[0], w[1], w[2], w[3])


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))
