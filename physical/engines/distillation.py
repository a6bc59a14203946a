"""Entanglement distillation of Bell-diagonal pairs: the recurrence protocols in closed form.

Theory of operation
-------------------
Two pairs shared by the same two nodes are turned into one better pair, or
none. Both recurrence protocols of 1996 run the same circuit on two
Bell-diagonal pairs, a *control* and a *target*: each node applies a CNOT from
its control qubit to its target qubit (the *bilateral CNOT*), both nodes
measure their target qubits in Z and tell each other the outcomes; the
control pair is kept if the outcomes agree and discarded if they differ.

In the project's frame convention, ``|B(x, z)> = (I ⊗ X^x Z^z)|Φ+>`` (see
:mod:`.bell_diagonal`), the bilateral CNOT maps the frames of control and
target, ``(x1, z1)`` and ``(x2, z2)``, to ``(x1, z1 ⊕ z2)`` and
``(x1 ⊕ x2, z2)``: bit flips travel from control to target, phase flips from
target to control (Bennett, DiVincenzo, Smolin & Wootters, PRA 54, 3824
(1996), Sec. III). The target's outcomes agree exactly when
``x1 = x2``, so for Bell-diagonal inputs with weights ``w1``, ``w2`` (indexed
by ``2x + z``)::

    p_success   = Σ_x (Σ_z w1(x, z)) (Σ_z w2(x, z))
    w'(x, z)    = Σ_{z1 ⊕ z2 = z} w1(x, z1) w2(x, z2) / p_success

and the kept pair is again Bell-diagonal (:func:`bilateral_cnot`).

* **BBPSSW** (Bennett, Brassard, Popescu, Schumacher, Smolin & Wootters,
  PRL 76, 722 (1996)) first twirls both inputs into Werner states of their
  fidelity F to Φ+ and twirls the kept pair again, so every round maps Werner
  states onto a Werner state. For two inputs of fidelity F::

      p_success = F² + 2F(1−F)/3 + 5((1−F)/3)²
      F'        = (F² + ((1−F)/3)²) / p_success

  which exceeds F for every F in (1/2, 1) (:func:`bbpssw`).
* **DEJMPS** (Deutsch, Ekert, Jozsa, Macchiavello, Popescu & Sanpera, PRL 77,
  2818 (1996)) replaces the twirl by a local rotation before the CNOTs: one
  node applies ``Rx(π/2)`` to both of its qubits, the other ``Rx(−π/2)``.
  That rotation leaves Φ+ and Ψ+ alone and exchanges Φ− with Ψ−. With the
  paper's names A, B, C, D for the weights of Φ+, Ψ−, Ψ+, Φ− of two equal
  inputs::

      N  = (A + B)² + (C + D)²
      A' = (A² + B²)/N,  B' = 2CD/N,  C' = (C² + D²)/N,  D' = 2AB/N

  with ``N`` the probability of success (:func:`dejmps`). It converges faster
  than BBPSSW and keeps the state Bell-diagonal without twirling.

*Entanglement pumping* (Dür, Briegel, Cirac & Zoller, PRA 59, 169 (1999)) is
these functions applied again and again with a fresh elementary pair as the
target; nothing more is needed here for it.

Operations are perfect here: gate and measurement errors, and the time the
classical outcomes take to travel, belong to the device and the protocol that
uses these maps. The device service offers the circuit (CNOT, the rotations
from its single-qubit gates, readouts; a test runs DEJMPS through it against
these maps); no protocol runs it yet, and this module is the closed form that
a distillation policy of the network layer, and its tests, are held to.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from qnetstack.physical.engines.bell_diagonal import BellDiagonal

__all__ = ["Distilled", "bbpssw", "bilateral_cnot", "dejmps", "dejmps_rotation"]

# Weights are indexed 2x + z: PHI_PLUS 0, PHI_MINUS 1, PSI_PLUS 2, PSI_MINUS 3.
_PHI_MINUS, _PSI_MINUS = 1, 3


class Distilled(NamedTuple):
    """The result of one distillation round.

    ``success_probability`` is the probability that the measured outcomes
    agree; ``state`` is the kept pair given that they do (``None`` when they
    never can: the round always fails).
    """

    success_probability: float
    state: BellDiagonal | None


def bilateral_cnot(control: BellDiagonal, target: BellDiagonal) -> Distilled:
    """The bilateral CNOT, Z measurement of the target and parity check on two
    Bell-diagonal pairs, with no twirl and no rotation (the shared step of
    BBPSSW and DEJMPS, Bennett et al., PRA 54, 3824 (1996), Sec. III)."""
    w1 = control.weights.reshape(2, 2)  # [x, z]
    w2 = target.weights.reshape(2, 2)
    kept = np.empty((2, 2))
    for x in (0, 1):
        kept[x, 0] = w1[x, 0] * w2[x, 0] + w1[x, 1] * w2[x, 1]
        kept[x, 1] = w1[x, 0] * w2[x, 1] + w1[x, 1] * w2[x, 0]
    probability = float(kept.sum())
    if probability <= 0.0:
        return Distilled(0.0, None)
    return Distilled(probability, BellDiagonal.from_weights(kept.reshape(4) / probability))


def dejmps_rotation(state: BellDiagonal) -> BellDiagonal:
    """The pair after DEJMPS's local rotations, ``Rx(π/2) ⊗ Rx(−π/2)``:
    the weights of Φ− and Ψ− exchanged (Deutsch et al., PRL 77, 2818 (1996))."""
    w = state.weights.copy()
    w[_PHI_MINUS], w[_PSI_MINUS] = w[_PSI_MINUS], w[_PHI_MINUS]
    return BellDiagonal.from_weights(w)


def dejmps(control: BellDiagonal, target: BellDiagonal) -> Distilled:
    """One round of DEJMPS on two Bell-diagonal pairs (Deutsch et al. 1996)."""
    return bilateral_cnot(dejmps_rotation(control), dejmps_rotation(target))


def bbpssw(control: BellDiagonal, target: BellDiagonal) -> Distilled:
    """One round of BBPSSW (Bennett et al., PRL 76, 722 (1996)): both pairs
    twirled to Werner states of their fidelity to Φ+, the bilateral CNOT, and
    the kept pair twirled to the Werner state of its fidelity."""
    result = bilateral_cnot(BellDiagonal.werner(control.fidelity()), BellDiagonal.werner(target.fidelity()))
    if result.state is None:
        return result
    return Distilled(result.success_probability, BellDiagonal.werner(result.state.fidelity()))
