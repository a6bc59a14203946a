"""Sparse Fock states of a few optical modes, for building linear-optics instruments.

A state is a dict from occupation numbers (one per mode) to amplitudes.
:func:`create` applies a superposition of creation operators
``Σ_k c_k a_k†`` with the bosonic factor ``a†|n> = √(n+1)|n+1>``
(e.g. Gerry & Knight, *Introductory Quantum Optics*, 2005, §2.1). The
Barrett–Kok and midpoint-source schemes build each photon as such a
superposition over detector, internal and loss modes.
"""

from __future__ import annotations

import math

__all__ = ["FockState", "create"]

FockState = dict[tuple[int, ...], complex]


def create(state: FockState, terms: list[tuple[int, float]]) -> FockState:
    """Apply ``Σ_k amp_k a_k†`` to ``state``; ``terms`` lists ``(mode, amp_k)``."""
    out: FockState = {}
    for occupation, amplitude in state.items():
        for mode, coefficient in terms:
            if coefficient == 0.0:
                continue
            n = occupation[mode]
            new = occupation[:mode] + (n + 1,) + occupation[mode + 1 :]
            out[new] = out.get(new, 0.0) + amplitude * coefficient * math.sqrt(n + 1)
    return out
