"""The Bell-diagonal state engine (physical.engines.bell_diagonal) against the density-matrix reference.

Agreement checks compare a BellDiagonal operation, converted to a density
matrix, with the same physics done on density matrices — through
physical.engines.world.QuantumWorld (the project's reference) or explicit numpy
projectors — to atol 1e-10.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import qutip
from hypothesis import given, settings
from hypothesis import strategies as st

from qnetstack.physical.backends import device
from qnetstack.physical.components.memory_noise import memory_kraus
from qnetstack.physical.engines.bell_diagonal import BellDiagonal, NotBellDiagonalError, choose_engine
from qnetstack.physical.engines.world import QuantumWorld, basis_projectors, bell_ket
from qnetstack.physical.service import Basis, BellState

ATOL = 1e-10
BELLS = list(BellState)
I2 = np.eye(2, dtype=complex)
PAULI = {
    "I": I2,
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}

# ------------------------------------------------------------------ strategies

_unit = st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)


@st.composite
def prob_vectors(draw) -> tuple[float, float, float, float]:
    raw = draw(st.lists(_unit, min_size=4, max_size=4).filter(lambda v: sum(v) > 1e-3))
    total = sum(raw)
    return tuple(x / total for x in raw)


bell_diagonals = prob_vectors().map(BellDiagonal.from_weights)
qubits = st.sampled_from(["A", "B"])


def on(qubit: str, op: np.ndarray) -> np.ndarray:
    return np.kron(op, I2) if qubit == "A" else np.kron(I2, op)


def apply_in_world(state: BellDiagonal, qubit: str, kraus: list[np.ndarray]) -> np.ndarray:
    """The reference: the pair as two qubits of a QuantumWorld, the channel via apply_kraus."""
    world = QuantumWorld()
    qa, qb = world.new_qubits(state.to_qobj(), 0)
    target = qa if qubit == "A" else qb
    world.apply_kraus([target], [qutip.Qobj(k, dims=[[2], [2]]) for k in kraus], 0)
    return world.reduced_state([qa, qb], 0).full()


def ket(b: BellState) -> np.ndarray:
    return bell_ket(b).full().ravel()


# ------------------------------------------------------------------ construction and validation


def test_frame_convention_matches_bell_state_and_engine_bell_ket():
    """Weights are ordered as the BellState enum, and pure(b) is |b><b| with
    bell_ket(b) = (I ⊗ X^x Z^z)|Φ+> for b.pauli_bits = (x, z)."""
    phi_plus = np.array([1, 0, 0, 1], dtype=complex) / math.sqrt(2)
    for k, b in enumerate(BellState):
        x, z = b.pauli_bits
        frame = np.linalg.matrix_power(PAULI["X"], x) @ np.linalg.matrix_power(PAULI["Z"], z)
        expected = np.kron(I2, frame) @ phi_plus
        assert np.allclose(ket(b), expected, atol=1e-15)
        pure = BellDiagonal.pure(b)
        assert pure.weights[k] == 1.0 and pure.fidelity(b) == 1.0
        assert np.allclose(pure.to_density_matrix(), np.outer(expected, expected.conj()), atol=1e-15)
        assert pure.to_qobj().dims == [[2, 2], [2, 2]]
    assert BellDiagonal.pure(BellState.PSI_MINUS).relabel(BellState.PSI_MINUS) == BellDiagonal.pure(BellState.PHI_PLUS)
    for b1 in BELLS:
        for b2 in BELLS:
            assert BellDiagonal.pure(b1).relabel(b2) == BellDiagonal.pure(b1.compose(b2))


def test_constructors_and_validation():
    w = BellDiagonal.werner(0.7, BellState.PSI_PLUS)
    assert w.fidelity(BellState.PSI_PLUS) == pytest.approx(0.7)
    assert w.fidelity(BellState.PHI_PLUS) == pytest.approx(0.1)
    assert w.dominant() is BellState.PSI_PLUS
    assert BellDiagonal.from_weights({BellState.PHI_MINUS: 0.25, BellState.PSI_MINUS: 0.75}).as_dict() == {
        BellState.PHI_PLUS: 0.0,
        BellState.PHI_MINUS: 0.25,
        BellState.PSI_PLUS: 0.0,
        BellState.PSI_MINUS: 0.75,
    }
    # rounding-level negatives are clipped
    assert BellDiagonal.from_weights([1.0 + 1e-13, -1e-13, 0, 0]).weights.min() == 0.0
    with pytest.raises(ValueError, match="PHI_MINUS .* < 0"):
        BellDiagonal.from_weights([1.1, -0.1, 0, 0])
    with pytest.raises(ValueError, match="sum to 1"):
        BellDiagonal.from_weights([0.5, 0.4, 0, 0])
    with pytest.raises(ValueError, match="4 numbers"):
        BellDiagonal.from_weights([0.5, 0.5])
    with pytest.raises(ValueError, match="finite"):
        BellDiagonal.from_weights([math.nan, 0, 0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        BellDiagonal.werner(1.2)
    with pytest.raises(ValueError, match="qubit"):
        w.depolarise(0.1, "C")
    with pytest.raises(ValueError, match="sum to 1"):
        w.pauli_channel(0.5, 0.1, 0.1, 0.1, "A")


def test_values_are_immutable():
    w = BellDiagonal.werner(0.9)
    with pytest.raises(AttributeError):
        w._w = np.zeros(4)  # type: ignore[misc]
    with pytest.raises(ValueError):
        w.weights[0] = 0.5
    before = w.weights.copy()
    w.depolarise(0.5, "A").swap(w, BellState.PSI_PLUS).relabel(BellState.PHI_MINUS)
    assert np.array_equal(w.weights, before)
    assert pickle.loads(pickle.dumps(w)) == w and hash(w) == hash(BellDiagonal.werner(0.9))


def test_from_density_matrix_refuses_non_bell_diagonal_states_naming_the_element():
    # |00><00|: in the Bell basis, <Φ+|ρ|Φ-> = 1/2
    with pytest.raises(NotBellDiagonalError, match=r"<PHI_PLUS\|rho\|PHI_MINUS> = 0\.5"):
        BellDiagonal.from_density_matrix(np.diag([1.0, 0, 0, 0]))
    # a Werner state plus a small coherence 0.01 (|00><01| + h.c.): that is
    # <Φ+|ρ|Ψ+> = 0.005 in the Bell basis, named with its size
    rho = BellDiagonal.werner(0.9).to_density_matrix()
    rho[0, 1] += 0.01
    rho[1, 0] += 0.01
    with pytest.raises(
        ValueError,
        match=r"not Bell-diagonal.*<PHI_PLUS\|rho\|PSI_PLUS> .*\|\.\| = 0\.005 > atol",
    ):
        BellDiagonal.from_density_matrix(rho)
    assert BellDiagonal.from_density_matrix(rho, atol=0.01).fidelity() == pytest.approx(0.9)
    # T1 amplitude damping on one half of Φ+ leaves the Bell-diagonal set
    # (|1> -> |0> on B unbalances |10><10| against |01><01|: <Ψ+|ρ|Ψ-> ≠ 0)
    amp = [k.full() for k in memory_kraus(1000.0, 2000.0, 3000.0)]
    phi = BellDiagonal.pure().to_density_matrix()
    damped = sum(on("B", k) @ phi @ on("B", k).conj().T for k in amp)
    with pytest.raises(NotBellDiagonalError, match=r"<PSI_PLUS\|rho\|PSI_MINUS>"):
        BellDiagonal.from_density_matrix(damped)
    with pytest.raises(ValueError, match="dims"):
        BellDiagonal.from_density_matrix(qutip.qeye(4) / 4)
    with pytest.raises(ValueError, match="unit trace"):
        BellDiagonal.from_density_matrix(np.eye(4) / 2)


@given(bell_diagonals)
@settings(max_examples=50, deadline=None)
def test_round_trip_through_density_matrices_is_identity(state):
    rho = state.to_density_matrix()
    assert np.allclose(rho, rho.conj().T, atol=1e-15)
    assert np.trace(rho).real == pytest.approx(1.0, abs=1e-12)
    back = BellDiagonal.from_density_matrix(rho)
    assert np.allclose(back.weights, state.weights, atol=1e-12)
    assert np.allclose(
        BellDiagonal.from_density_matrix(state.to_qobj()).weights,
        state.weights,
        atol=1e-12,
    )
    # the fidelity is <B|ρ|B> of the density matrix
    for b in BELLS:
        assert state.fidelity(b) == pytest.approx(float(np.real(ket(b).conj() @ rho @ ket(b))), abs=1e-12)


# ------------------------------------------------------------------ properties


@given(
    bell_diagonals,
    bell_diagonals,
    prob_vectors(),
    st.floats(0, 1),
    st.floats(0, 1),
    qubits,
    st.sampled_from(BELLS),
)
@settings(max_examples=50, deadline=None)
def test_every_operation_keeps_a_probability_vector(s1, s2, probs, p, f, qubit, outcome):
    results = [
        s1.pauli_channel(*probs, qubit=qubit),
        s1.depolarise(p, qubit),
        s1.dephase(p, qubit),
        s1.memory_noise(p * 1e6, None, 1e5, qubit),
        s1.swap(s2, outcome),
        s1.relabel(outcome),
        BellDiagonal.werner(f, outcome),
    ]
    for r in results:
        w = r.weights
        assert w.shape == (4,) and w.min() >= 0.0 and abs(w.sum() - 1.0) <= 1e-12
        for b in BELLS:
            assert 0.0 <= r.fidelity(b) <= 1.0
        BellDiagonal.from_weights(w)  # passes validation


# ------------------------------------------------------------------ agreement with the reference


@given(bell_diagonals, prob_vectors(), qubits)
@settings(max_examples=40, deadline=None)
def test_pauli_channel_agrees_with_kraus_on_density_matrix(state, probs, qubit):
    """Same Kraus set {√p_I I, √p_X X, √p_Y Y, √p_Z Z} (Nielsen & Chuang 2000, §8.3)
    applied by QuantumWorld.apply_kraus and by explicit numpy."""
    p_i, p_x, p_y, p_z = probs
    kraus = [math.sqrt(p) * PAULI[name] for name, p in zip("IXYZ", probs)]
    rho = state.to_density_matrix()
    explicit = sum(on(qubit, k) @ rho @ on(qubit, k).conj().T for k in kraus)
    fast = state.pauli_channel(p_i, p_x, p_y, p_z, qubit).to_density_matrix()
    assert np.allclose(fast, explicit, atol=ATOL, rtol=0)
    assert np.allclose(fast, apply_in_world(state, qubit, kraus), atol=ATOL, rtol=0)


@given(bell_diagonals, st.floats(0, 1), qubits)
@settings(max_examples=30, deadline=None)
def test_depolarise_and_dephase_agree_with_their_textbook_forms(state, p, qubit):
    """Depolarising ρ -> (1-p)ρ + p Tr_q(ρ) ⊗ I/2 on one qubit; phase flip
    ρ -> (1-p)ρ + p ZρZ (Nielsen & Chuang 2000, §8.3.3-8.3.4)."""
    rho = state.to_density_matrix()
    t = rho.reshape(2, 2, 2, 2)
    if qubit == "A":
        rest = np.einsum("ajak->jk", t)
        replaced = np.kron(I2 / 2, rest)
    else:
        rest = np.einsum("iaja->ij", t)
        replaced = np.kron(rest, I2 / 2)
    assert np.allclose(
        state.depolarise(p, qubit).to_density_matrix(),
        (1 - p) * rho + p * replaced,
        atol=ATOL,
    )
    z = on(qubit, PAULI["Z"])
    assert np.allclose(
        state.dephase(p, qubit).to_density_matrix(),
        (1 - p) * rho + p * z @ rho @ z,
        atol=ATOL,
    )


@given(bell_diagonals, st.integers(0, 5_000_000), st.floats(1e3, 1e7), st.floats(1e3, 1e7))
@settings(max_examples=40, deadline=None)
def test_memory_dephasing_agrees_with_the_world_and_memory_kraus(state, wait_ns, t2_a, t2_b):
    """T2-only memory noise: BellDiagonal.memory_noise against QuantumWorld's lazy
    memory noise, i.e. physical.components.memory_noise.memory_kraus(elapsed_ns, t1_ns=None, t2_ns)
    on each qubit (phase damping, Nielsen & Chuang 2000, §8.3.6)."""
    world = QuantumWorld()
    qa, qb = world.new_qubits(state.to_qobj(), 0, noise=[(None, t2_a), (None, t2_b)])
    ref = world.reduced_state([qa, qb], wait_ns).full()
    fast = state.memory_noise(wait_ns, None, t2_a, "A").memory_noise(wait_ns, None, t2_b, "B")
    assert np.allclose(fast.to_density_matrix(), ref, atol=ATOL, rtol=0)
    # and directly against memory_kraus on one qubit
    for qubit, t2 in (("A", t2_a), ("B", t2_b)):
        kraus = [k.full() for k in memory_kraus(float(wait_ns), None, t2)]
        rho = state.to_density_matrix()
        explicit = sum(on(qubit, k) @ rho @ on(qubit, k).conj().T for k in kraus)
        one = state.memory_noise(float(wait_ns), None, t2, qubit).to_density_matrix()
        assert np.allclose(one, explicit, atol=ATOL, rtol=0)


def test_memory_noise_with_t1_is_refused_and_sends_to_density_matrices():
    state = BellDiagonal.werner(0.95)
    assert not BellDiagonal.supports_memory(1e6) and BellDiagonal.supports_memory(None)
    assert BellDiagonal.supports_memory(math.inf)
    with pytest.raises(NotBellDiagonalError, match="amplitude damping.*density-matrix"):
        state.memory_noise(100.0, 1e6, 1e6, "A")
    assert state.memory_noise(0.0, None, 1e3, "A") == state
    assert state.memory_noise(1e3, None, None, "B") == state
    with pytest.raises(ValueError, match="elapsed"):
        state.memory_noise(-1.0, None, 1e3, "A")
    # choose_engine: the automatic rule
    assert choose_engine(None, False) == "bell-diagonal"
    assert choose_engine(math.inf, False) == "bell-diagonal"
    assert choose_engine(1e9, False) == "density-matrix"
    assert choose_engine(None, True) == "density-matrix"
    with pytest.raises(ValueError, match="t1_ns"):
        choose_engine(-5.0, False)


def _swap_reference(s1: BellDiagonal, s2: BellDiagonal, outcome: BellState) -> tuple[float, np.ndarray]:
    """Explicit 4-qubit computation: ρ_AB ⊗ ρ_CD, project (B, C) on |outcome>
    (B first), trace out B and C, renormalise. Returns (probability, ρ_AD)."""
    rho = np.kron(s1.to_density_matrix(), s2.to_density_matrix())
    m = ket(outcome)
    proj = np.kron(np.kron(I2, np.outer(m, m.conj())), I2)
    post = (proj @ rho @ proj).reshape([2] * 8)  # indices a b c d, a' b' c' d'
    rho_ad = np.einsum("abcdebcf->adef", post).reshape(4, 4)
    p = float(np.trace(rho_ad).real)
    return p, rho_ad / p


@given(bell_diagonals, bell_diagonals)
@settings(max_examples=25, deadline=None)
def test_swap_agrees_with_explicit_bell_measurement_for_every_outcome(s1, s2):
    for outcome in BELLS:
        p, ref = _swap_reference(s1, s2, outcome)
        assert p == pytest.approx(0.25, abs=1e-12)  # Bell-diagonal inputs: outcomes uniform
        assert np.allclose(s1.swap(s2, outcome).to_density_matrix(), ref, atol=ATOL, rtol=0)


def test_swap_of_pure_pairs_composes_frames_as_bell_state_compose():
    for b1 in BELLS:
        for b2 in BELLS:
            for m in BELLS:
                out = BellDiagonal.pure(b1).swap(BellDiagonal.pure(b2), m)
                assert out == BellDiagonal.pure(b1.compose(m).compose(b2))


def test_swap_outcome_labels_match_the_device_bell_measurement():
    """The device's BellMeasure (backends.device: CNOT(a->b), H on a, Z-measure both,
    outcome from_bits(x=m_b, z=m_a)) reports the outcome label swap() expects."""
    rotation = device._BELL_ROTATION  # the very unitary the device applies
    s1 = BellDiagonal.from_weights([0.7, 0.1, 0.15, 0.05])
    s2 = BellDiagonal.from_weights([0.6, 0.05, 0.05, 0.3])
    z0, z1 = basis_projectors(Basis.Z)
    for m_a in (0, 1):
        for m_b in (0, 1):
            world = QuantumWorld()
            qa, qb = world.new_qubits(s1.to_qobj(), 0)
            qc, qd = world.new_qubits(s2.to_qobj(), 0)
            world.apply_unitary([qb, qc], rotation, 0)
            p = world.postselect([qb], (z0, z1)[m_a], 0) * world.postselect([qc], (z0, z1)[m_b], 0)
            assert p == pytest.approx(0.25, abs=1e-12)
            outcome = BellState.from_bits(x=m_b, z=m_a)
            ref = world.reduced_state([qa, qd], 0).full()
            assert np.allclose(s1.swap(s2, outcome).to_density_matrix(), ref, atol=ATOL, rtol=0)


@given(st.floats(0, 1), st.floats(0, 1), st.sampled_from(BELLS))
@settings(max_examples=50, deadline=None)
def test_swap_of_werner_states_is_werner_with_the_textbook_fidelity(f1, f2, outcome):
    """F = F1 F2 + (1-F1)(1-F2)/3 (Dür, Briegel, Cirac, Zoller, PRA 59, 169 (1999),
    Sec. III; Bennett et al., PRA 54, 3824 (1996)); the output is again Werner,
    in the frame PHI_PLUS ⊕ outcome ⊕ PHI_PLUS = outcome."""
    out = BellDiagonal.werner(f1).swap(BellDiagonal.werner(f2), outcome)
    f = f1 * f2 + (1 - f1) * (1 - f2) / 3
    assert out.fidelity(outcome) == pytest.approx(f, abs=1e-12)
    assert np.allclose(out.weights, BellDiagonal.werner(f, outcome).weights, atol=1e-12)
    assert np.allclose(out.relabel(outcome).weights, BellDiagonal.werner(f).weights, atol=1e-12)


def test_sample_bell_measurement_follows_the_weights():
    """10^4 samples; each frequency within 5 standard errors of its weight."""
    state = BellDiagonal.from_weights([0.6, 0.25, 0.15, 0.0])
    rng = np.random.default_rng(7)
    n = 10_000
    counts = {b: 0 for b in BELLS}
    for _ in range(n):
        counts[state.sample_bell_measurement(rng)] += 1
    for b in BELLS:
        w = state.fidelity(b)
        assert abs(counts[b] / n - w) <= 5 * math.sqrt(w * (1 - w) / n) + 1e-12
    assert counts[BellState.PSI_MINUS] == 0


def test_a_repeater_chain_gives_the_same_fidelities_in_both_engines():
    """Three links with T2-only memories, waiting, depolarising gate noise and two
    swaps (outcomes sampled by the world): the density-matrix world and the
    Bell-diagonal engine report the same fidelity to every Bell state."""
    rng = np.random.default_rng(11)
    t2 = [2e6, 5e5, 1e6, 3e6, 8e5, 1.5e6]  # per qubit: a0 b0 a1 b1 a2 b2
    links = [
        BellDiagonal.werner(0.97),
        BellDiagonal.werner(0.93, BellState.PSI_PLUS),
        BellDiagonal.werner(0.9),
    ]
    world = QuantumWorld()
    qids = []
    for k, link in enumerate(links):
        qids += world.new_qubits(link.to_qobj(), 0, noise=[(None, t2[2 * k]), (None, t2[2 * k + 1])])
    depolarise = [math.sqrt(1 - 3 * 0.02 / 4) * I2] + [math.sqrt(0.02 / 4) * PAULI[p] for p in "XYZ"]
    now = 400_000
    fast = [links[k].memory_noise(now, None, t2[2 * k], "A").memory_noise(now, None, t2[2 * k + 1], "B") for k in range(3)]
    # gate noise on the repeater qubits, then Bell measurements of (b0, a1) and (b1, a2)
    bell_povm = [qutip.ket2dm(bell_ket(b)) for b in BELLS]
    pair = fast[0]
    for k in (1, 2):
        left, right = qids[2 * k - 1], qids[2 * k]
        world.apply_kraus([left], [qutip.Qobj(m) for m in depolarise], now)
        outcome = BELLS[world.measure_povm([left, right], bell_povm, rng, now)]
        pair = pair.depolarise(0.02, "B").swap(fast[k], outcome)
    ref = world.reduced_state([qids[0], qids[5]], now).full()
    for b in BELLS:
        assert pair.fidelity(b) == pytest.approx(float(np.real(ket(b).conj() @ ref @ ket(b))), abs=ATOL)
    assert np.allclose(pair.to_density_matrix(), ref, atol=ATOL, rtol=0)
