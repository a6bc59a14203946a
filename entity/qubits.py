"""Reference states for the harnesses' truth: state vectors, gates, bases, Bell pairs.

The harnesses check what an implementation did to qubits against what the
device service promises (``specs/physical.md``), so they need the states
themselves: the Bloch state ``cos(θ/2)|0> + e^{iφ} sin(θ/2)|1>``, the gates
the device offers, the eigenbases of the measurement bases and the Bell states
in the project's Pauli-frame convention ``|B(x, z)> = (I ⊗ X^x Z^z)|Φ+>``
(``qnetstack.physical.service.BellState``). Gates and bases are keyed by their
names (``"H"``, ``"ZX_PLUS"``); the service's ``Gate`` and ``Basis`` are string
enums, so their members are keys as well. Nothing here imports a layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["GATE_MATRICES", "BASIS_VECTORS", "bloch_vector", "bloch_angles", "bell_vector", "overlap", "werner"]

_S = 1 / math.sqrt(2)
GATE_MATRICES = {
    "I": np.array([[1, 0], [0, 1]], dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
    "H": np.array([[_S, _S], [_S, -_S]], dtype=complex),
    "S": np.array([[1, 0], [0, 1j]], dtype=complex),
}
# +1 and -1 eigenvectors of each basis's observable: outcome 0 and outcome 1
BASIS_VECTORS = {
    "Z": (np.array([1, 0], dtype=complex), np.array([0, 1], dtype=complex)),
    "X": (np.array([_S, _S], dtype=complex), np.array([_S, -_S], dtype=complex)),
    "Y": (np.array([_S, 1j * _S], dtype=complex), np.array([_S, -1j * _S], dtype=complex)),
    # (Z ± X)/√2 (Basis.ZX_PLUS / ZX_MINUS): +1 eigenvector cos(π/8)|0> ± sin(π/8)|1>
    "ZX_PLUS": (
        np.array([math.cos(math.pi / 8), math.sin(math.pi / 8)], dtype=complex),
        np.array([math.sin(math.pi / 8), -math.cos(math.pi / 8)], dtype=complex),
    ),
    "ZX_MINUS": (
        np.array([math.cos(math.pi / 8), -math.sin(math.pi / 8)], dtype=complex),
        np.array([math.sin(math.pi / 8), math.cos(math.pi / 8)], dtype=complex),
    ),
}


def bloch_vector(theta: float, phi: float) -> np.ndarray:
    """``cos(θ/2)|0> + e^{iφ} sin(θ/2)|1>``."""
    return np.array([math.cos(theta / 2), np.exp(1j * phi) * math.sin(theta / 2)], dtype=complex)


def bloch_angles(vector: np.ndarray) -> tuple[float, float]:
    """(θ, φ) with ``cos(θ/2)|0> + e^{iφ} sin(θ/2)|1>`` equal to ``vector`` up to a global phase."""
    a, b = complex(vector[0]), complex(vector[1])
    norm = math.sqrt(abs(a) ** 2 + abs(b) ** 2)
    theta = 2 * math.acos(min(1.0, abs(a) / norm))
    phi = 0.0 if abs(a) < 1e-12 or abs(b) < 1e-12 else (np.angle(b) - np.angle(a)) % (2 * math.pi)
    return theta, float(phi)


def bell_vector(state: Any) -> np.ndarray:
    """``(I ⊗ X^x Z^z)|Φ+>`` on (first, second) qubit, basis order |00>,|01>,|10>,|11>,
    for a Bell state given by its Pauli frame bits ``state.pauli_bits = (x, z)``."""
    x, z = state.pauli_bits
    frame = np.linalg.matrix_power(GATE_MATRICES["X"], x) @ np.linalg.matrix_power(GATE_MATRICES["Z"], z)
    phi_plus = np.array([1, 0, 0, 1], dtype=complex) * _S
    return np.kron(GATE_MATRICES["I"], frame) @ phi_plus


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """``|<a|b>|²``."""
    return float(abs(np.vdot(a, b)) ** 2)


def werner(state: Any, fidelity: float) -> np.ndarray:
    """``F|B><B| + (1-F)/3 (1 - |B><B|)``: fidelity F to the Bell state B, depolarised otherwise
    (Werner 1989; the form used by Dür, Briegel, Cirac & Zoller, PRA 59, 169, 1999)."""
    v = bell_vector(state)
    projector = np.outer(v, v.conj())
    return fidelity * projector + (1 - fidelity) / 3 * (np.eye(4) - projector)
