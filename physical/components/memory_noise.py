"""The idle channel of a memory qubit: T1 amplitude damping, then T2 dephasing.

A qubit left alone for ``t`` undergoes amplitude damping with
``γ = 1 - e^{-t/T1}`` followed by phase damping chosen so that the coherence
ρ01 decays by ``e^{-t/T2}`` in total (Nielsen & Chuang, *Quantum Computation
and Quantum Information*, 2000, §8.3.5 amplitude damping, §8.3.6 phase
damping). This is a property of the memory, so it lives with the component
models; the engines apply it (:class:`qnetstack.physical.engines.world.QuantumWorld`
lazily, elementwise, from :func:`memory_factors`) and the scheme and memory
models derive their closed forms from :func:`memory_kraus_arrays` (numpy) or
:func:`memory_kraus` (the same operators as QuTiP ``Qobj``, imported on first use).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from qnetstack.physical.lazy_qutip import as_qobj

if TYPE_CHECKING:
    from qutip import Qobj

__all__ = ["memory_kraus", "memory_kraus_arrays", "memory_factors"]


def memory_kraus(elapsed_ns: float, t1_ns: float | None, t2_ns: float | None) -> list[Qobj]:
    """Kraus operators of a memory qubit left alone for ``elapsed_ns``.

    Amplitude damping (γ = 1 - e^{-t/T1}) followed by phase damping with
    coherence factor ``f = e^{-t/T2 + t/(2 T1)}``, so that ρ01 decays by
    e^{-t/T2} overall while ρ11 decays by e^{-t/T1}
    (Nielsen & Chuang 2000, §8.3.5 amplitude damping, §8.3.6 phase damping).
    Composing the two two-operator sets gives three non-zero operators.
    ``None`` means no decay of that kind; T2 must not exceed 2·T1.
    """
    return [as_qobj(op, [[2], [2]]) for op in memory_kraus_arrays(elapsed_ns, t1_ns, t2_ns)]


def memory_kraus_arrays(elapsed_ns: float, t1_ns: float | None, t2_ns: float | None) -> list[np.ndarray]:
    """:func:`memory_kraus`'s operators as 2x2 complex numpy arrays."""
    gamma, coherence, dephase = memory_factors(elapsed_ns, t1_ns, t2_ns)
    ops = [np.diag([1.0, coherence])]
    if dephase > 0:
        ops.append(np.diag([0.0, math.sqrt(dephase)]))
    if gamma > 0:
        ops.append(np.array([[0.0, math.sqrt(gamma)], [0.0, 0.0]]))
    return [op.astype(complex) for op in ops]


def memory_factors(elapsed_ns: float, t1_ns: float | None, t2_ns: float | None) -> tuple[float, float, float]:
    """(γ, coherence, dephase): the numbers behind :func:`memory_kraus`'s three operators
    ``diag(1, coherence)``, ``diag(0, √dephase)`` and ``√γ |0><1|``.

    ``ValueError`` for a negative wait."""
    if elapsed_ns < 0:
        raise ValueError(f"elapsed time must be >= 0, got {elapsed_ns}")
    gamma = 0.0 if t1_ns is None else -math.expm1(-elapsed_ns / t1_ns)
    coherence = 1.0 if t2_ns is None else math.exp(-elapsed_ns / t2_ns)
    keep = 1.0 - gamma
    # phase-damping factor f with f^2 (1-γ) = coherence^2; clipped against rounding
    f2 = min(1.0, coherence * coherence / keep) if keep > 0 else 0.0
    return gamma, coherence, (1.0 - f2) * keep
