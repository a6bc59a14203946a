"""Distillation in closed form (physical/engines/distillation.py) against the circuit it stands for.

The reference here is an independent simulation: the two pairs as one 16x16
density matrix (qubits A1 B1 A2 B2), the local gates and the CNOTs as
matrices, the parity check as a projector. The closed forms must agree with
it to rounding error, and with the formulas as the 1996 papers print them.
"""

from __future__ import annotations

import numpy as np
import pytest

from qnetstack.physical.engines.bell_diagonal import BellDiagonal
from qnetstack.physical.engines.distillation import bbpssw, bilateral_cnot, dejmps, dejmps_rotation

I2 = np.eye(2)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Z = np.diag([1.0, -1.0]).astype(complex)
PHI_PLUS = np.array([1, 0, 0, 1], dtype=complex) / np.sqrt(2)
# Bell kets in weight order 2x + z, from the convention |B(x, z)> = (I ⊗ X^x Z^z)|Φ+>
BELL = [np.kron(I2, np.linalg.matrix_power(X, x) @ np.linalg.matrix_power(Z, z)) @ PHI_PLUS for x in (0, 1) for z in (0, 1)]


def kron(*ops: np.ndarray) -> np.ndarray:
    out = np.eye(1)
    for op in ops:
        out = np.kron(out, op)
    return out


def rx(angle: float) -> np.ndarray:
    return np.cos(angle / 2) * I2 - 1j * np.sin(angle / 2) * X


def cnot(control: int, target: int, n: int = 4) -> np.ndarray:
    """CNOT on n qubits, qubit 0 the most significant."""
    dim = 2**n
    out = np.zeros((dim, dim))
    for i in range(dim):
        bits = [(i >> (n - 1 - k)) & 1 for k in range(n)]
        if bits[control]:
            bits[target] ^= 1
        out[sum(b << (n - 1 - k) for k, b in enumerate(bits)), i] = 1
    return out


def density(weights: np.ndarray) -> np.ndarray:
    return sum(w * np.outer(b, b.conj()) for w, b in zip(weights, BELL))


def simulate(w1: np.ndarray, w2: np.ndarray, rotate: bool) -> tuple[float, np.ndarray, float]:
    """The circuit on qubits A1 B1 A2 B2: success probability, the kept pair's
    Bell weights, and the largest Bell-basis coherence of the kept pair."""
    # ρ1 ⊗ ρ2 is ordered A1 B1 A2 B2 already
    rho = np.kron(density(w1), density(w2))
    if rotate:  # node A applies Rx(π/2) to A1 and A2, node B Rx(−π/2) to B1 and B2
        u = kron(rx(np.pi / 2), rx(-np.pi / 2), rx(np.pi / 2), rx(-np.pi / 2))
        rho = u @ rho @ u.conj().T
    gates = cnot(0, 2) @ cnot(1, 3)
    rho = gates @ rho @ gates.T
    agree = kron(I2, I2, np.diag([1.0, 0.0]), np.diag([1.0, 0.0])) + kron(I2, I2, np.diag([0.0, 1.0]), np.diag([0.0, 1.0]))
    kept = agree @ rho @ agree
    probability = float(np.trace(kept).real)
    pair = np.einsum("ajbj->ab", kept.reshape(4, 4, 4, 4)) / probability  # trace out A2 B2
    in_bell = np.array([[b.conj() @ pair @ c for c in BELL] for b in BELL])
    coherence = float(np.max(np.abs(in_bell - np.diag(np.diag(in_bell)))))
    return probability, np.diag(in_bell).real, coherence


# 40 random Bell-diagonal pairs (Dirichlet weights), seeded: every weight pattern is exercised
RNG = np.random.default_rng(20261203)
RANDOM_PAIRS = [(RNG.dirichlet(np.ones(4)), RNG.dirichlet(np.ones(4))) for _ in range(40)]


@pytest.mark.parametrize("w1, w2", RANDOM_PAIRS[:20])
def test_bilateral_cnot_matches_the_circuit(w1, w2):
    probability, weights, coherence = simulate(w1, w2, rotate=False)
    result = bilateral_cnot(BellDiagonal(w1), BellDiagonal(w2))
    assert result.success_probability == pytest.approx(probability, abs=1e-12)
    assert result.state is not None
    np.testing.assert_allclose(result.state.weights, weights, atol=1e-12)
    assert coherence < 1e-12  # the kept pair is Bell-diagonal, as the closed form assumes


@pytest.mark.parametrize("w1, w2", RANDOM_PAIRS[20:])
def test_dejmps_matches_the_circuit_with_its_rotations(w1, w2):
    probability, weights, coherence = simulate(w1, w2, rotate=True)
    result = dejmps(BellDiagonal(w1), BellDiagonal(w2))
    assert result.success_probability == pytest.approx(probability, abs=1e-12)
    assert result.state is not None
    np.testing.assert_allclose(result.state.weights, weights, atol=1e-12)
    assert coherence < 1e-12


@pytest.mark.parametrize("w", [RANDOM_PAIRS[k][0] for k in range(10)])
def test_dejmps_on_two_equal_pairs_is_the_papers_map(w):
    # Deutsch et al., PRL 77, 2818 (1996): A, B, C, D are the weights of Φ+, Ψ−, Ψ+, Φ−
    a, b, c, d = w[0], w[3], w[2], w[1]
    n = (a + b) ** 2 + (c + d) ** 2
    result = dejmps(BellDiagonal(w), BellDiagonal(w))
    assert result.success_probability == pytest.approx(n, abs=1e-12)
    assert result.state is not None
    got = result.state.weights
    assert (got[0], got[3], got[2], got[1]) == pytest.approx(
        ((a * a + b * b) / n, 2 * c * d / n, (c * c + d * d) / n, 2 * a * b / n), abs=1e-12
    )


@pytest.mark.parametrize("fidelity", [0.3, 0.5, 0.6, 0.75, 0.9, 0.99])
def test_bbpssw_is_the_papers_map(fidelity):
    # Bennett et al., PRL 76, 722 (1996), for two Werner inputs of fidelity F
    f, e = fidelity, (1 - fidelity) / 3
    p = f * f + 2 * f * (1 - f) / 3 + 5 * e * e
    result = bbpssw(BellDiagonal.werner(f), BellDiagonal.werner(f))
    assert result.success_probability == pytest.approx(p, abs=1e-12)
    assert result.state is not None
    np.testing.assert_allclose(result.state.weights, BellDiagonal.werner((f * f + e * e) / p).weights, atol=1e-12)


def test_bbpssw_twirls_what_it_is_given():
    # a non-Werner input is treated as the Werner state of its fidelity: the
    # result depends on the fidelities alone
    skewed = BellDiagonal([0.8, 0.2, 0.0, 0.0])
    assert bbpssw(skewed, skewed) == bbpssw(BellDiagonal.werner(0.8), BellDiagonal.werner(0.8))


def test_bbpssw_improves_exactly_above_one_half():
    for f in np.linspace(0.51, 0.99, 25):
        out = bbpssw(BellDiagonal.werner(f), BellDiagonal.werner(f)).state
        assert out is not None and out.fidelity() > f
    for f in np.linspace(0.26, 0.5, 13):
        out = bbpssw(BellDiagonal.werner(f), BellDiagonal.werner(f)).state
        assert out is not None and out.fidelity() <= f + 1e-12


def test_dejmps_rounds_converge_to_phi_plus_and_beat_bbpssw():
    # Deutsch et al. 1996 show convergence for any start with fidelity above 1/2;
    # from a Werner 0.7 both protocols improve, DEJMPS faster
    dejmps_state = bbpssw_state = BellDiagonal.werner(0.7)
    for _ in range(6):
        d = dejmps(dejmps_state, dejmps_state).state
        b = bbpssw(bbpssw_state, bbpssw_state).state
        assert d is not None and b is not None
        assert d.fidelity() >= b.fidelity() - 1e-12
        dejmps_state, bbpssw_state = d, b
    assert dejmps_state.fidelity() > 0.999
    assert bbpssw_state.fidelity() < dejmps_state.fidelity()


def test_a_round_that_can_never_succeed_returns_no_state():
    # control Φ+ (x = 0) and target Ψ+ (x = 1): the outcomes always differ
    result = bilateral_cnot(BellDiagonal.pure(), BellDiagonal([0, 0, 1, 0]))
    assert result == (0.0, None)


def test_the_rotation_is_an_involution_that_keeps_phi_plus_and_psi_plus():
    w = RANDOM_PAIRS[0][0]
    rotated = dejmps_rotation(BellDiagonal(w)).weights
    np.testing.assert_allclose(rotated, [w[0], w[3], w[2], w[1]], atol=1e-15)
    np.testing.assert_allclose(dejmps_rotation(dejmps_rotation(BellDiagonal(w))).weights, w, atol=1e-15)
