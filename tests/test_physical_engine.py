"""The quantum-state engine (physical.engines.world) and the fibre formulas (physical.params).

Statistical checks state their sample size and allow 5 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import qutip
from hypothesis import given, settings
from hypothesis import strategies as st

from qnetstack.physical.components.memory_noise import memory_kraus
from qnetstack.physical.engines.world import (
    QuantumWorld,
    UnknownQubitError,
    WorldError,
    _expand,
    basis_projectors,
    bell_ket,
    bell_vector,
    bloch_ket,
    bloch_vector,
)
from qnetstack.physical.params import SPEED_OF_LIGHT_KM_PER_S, FibreParams, fibre_delay_ns
from qnetstack.physical.service import Basis, BellState

H = qutip.Qobj(np.array([[1, 1], [1, -1]]) / math.sqrt(2))
X = qutip.sigmax()
CNOT = qutip.Qobj(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]), dims=[[2, 2], [2, 2]])


def five_se(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------ fibre


@pytest.mark.parametrize("length_km", [0.0, 1.0, 25.0, 50.0, 123.4])
def test_fibre_transmittance_is_beer_lambert_in_db(length_km):
    """T = 10^(-α L / 10) with α in dB/km (Beer-Lambert law; e.g. Agrawal,
    Fiber-Optic Communication Systems, 4th ed., 2010, eq. 2.5.3)."""
    fibre = FibreParams(db_per_km=0.2)
    assert fibre.transmittance(length_km) == pytest.approx(10 ** (-0.2 * length_km / 10), rel=1e-12)
    # 50 km at 0.2 dB/km is 10 dB: a tenth of the light survives
    assert FibreParams().transmittance(50.0) == pytest.approx(0.1, rel=1e-12)


@pytest.mark.parametrize("length_km, n", [(1.0, 1.468), (10.0, 1.468), (100.0, 1.5)])
def test_fibre_delay_is_length_over_group_velocity(length_km, n):
    """Delay = L / (c / n) (light in a medium of group index n)."""
    expected_ns = length_km / (SPEED_OF_LIGHT_KM_PER_S / n) * 1e9
    assert abs(fibre_delay_ns(length_km, n) - expected_ns) <= 0.5
    assert FibreParams(refractive_index=n).delay_ns(length_km) == fibre_delay_ns(length_km, n)
    # 1 km of standard fibre takes about 4.9 µs
    assert fibre_delay_ns(1.0) == 4897


# ------------------------------------------------------------------ basics


def test_new_qubit_starts_in_ground_state_and_alone():
    w = QuantumWorld()
    q = w.new_qubit(0)
    assert np.allclose(w.reduced_state([q], 0).full(), [[1, 0], [0, 0]])
    assert w.group_of(q) == [q]
    q3 = w.new_qubit(0, dim=3)
    assert w.dim(q3) == 3
    assert w.reduced_state([q3], 0).full()[0, 0] == pytest.approx(1.0)


def test_unknown_measured_and_discarded_qubits_raise():
    w = QuantumWorld()
    rng = np.random.default_rng(0)
    with pytest.raises(UnknownQubitError):
        w.apply_unitary([42], X, 0)
    a, b = w.new_qubit(0), w.new_qubit(0)
    w.measure(a, Basis.Z, rng, 0)
    with pytest.raises(UnknownQubitError):
        w.measure(a, Basis.Z, rng, 0)  # measurement is destructive
    with pytest.raises(KeyError):  # a KeyError subclass, as promised
        w.reduced_state([a], 0)
    w.discard(b)
    with pytest.raises(UnknownQubitError, match="does not exist"):
        w.apply_unitary([b], X, 0)
    with pytest.raises(UnknownQubitError):
        w.discard(b)
    assert len(w) == 0


def test_malformed_operations_are_refused():
    w = QuantumWorld()
    a, b = w.new_qubit(0), w.new_qubit(0)
    with pytest.raises(WorldError, match="twice"):
        w.apply_unitary([a, a], CNOT, 0)
    with pytest.raises(WorldError, match="4x4"):
        w.apply_unitary([a, b], X, 0)
    with pytest.raises(WorldError, match="not unitary"):
        w.apply_unitary([a], qutip.Qobj(np.diag([1.0, 0.5])), 0)
    with pytest.raises(WorldError, match="trace preserving"):
        w.apply_kraus([a], [qutip.Qobj(np.diag([1.0, 0.5]))], 0)
    with pytest.raises(WorldError, match="identity"):
        w.measure_povm([a], [qutip.Qobj(np.diag([1.0, 0.0]))], np.random.default_rng(0), 0)
    with pytest.raises(WorldError, match="2\\*T1"):
        w.new_qubit(0, t1_ns=100, t2_ns=300)
    with pytest.raises(WorldError, match="backwards"):
        w.apply_unitary([a], X, 10)
        w.apply_unitary([a], X, 5)
    # nothing above corrupted the state of b
    assert np.allclose(w.reduced_state([b], 10).full(), [[1, 0], [0, 0]])


def test_qubit_order_of_a_joint_operation_is_respected():
    """CNOT(control, target) on |1>|0> flips the target only (definition of CNOT)."""
    w = QuantumWorld()
    a, b = w.new_qubit(0), w.new_qubit(0)
    w.apply_unitary([a], X, 0)
    w.apply_unitary([b, a], CNOT, 0)  # control b = |0>: nothing happens
    assert w.fidelity_to_pure([a, b], qutip.tensor(qutip.basis(2, 1), qutip.basis(2, 0)), 0) == pytest.approx(1)
    w.apply_unitary([a, b], CNOT, 0)  # control a = |1>: b flips
    assert w.fidelity_to_pure([a, b], qutip.tensor(qutip.basis(2, 1), qutip.basis(2, 1)), 0) == pytest.approx(1)
    c = w.new_qubit(0)
    w.apply_unitary([c], H, 0)
    # reduced states come back in the order asked for, across groups
    target = qutip.tensor(qutip.basis(2, 1), bloch_ket(math.pi / 2, 0), qutip.basis(2, 1))
    assert w.fidelity_to_pure([b, c, a], target, 0) == pytest.approx(1)


def test_numpy_partial_trace_and_tensor_match_qutip():
    """The engine's fast tensor/partial trace agree with qutip.tensor and Qobj.ptrace/permute."""
    w = QuantumWorld()
    rho = qutip.rand_dm([2, 3, 2], seed=11)
    q = w.new_qubits(rho, 0)
    for sel in ([0], [2], [1, 2], [2, 0], [2, 1, 0]):
        ref = rho.ptrace(sorted(sel))
        if sorted(sel) != sel:
            ref = ref.permute([sorted(sel).index(s) for s in sel])
        got = w.reduced_state([q[s] for s in sel], 0)
        assert got.dims == ref.dims
        assert np.allclose(got.full(), ref.full(), atol=1e-12)
    sigma = qutip.rand_dm([2], seed=3)
    r = w.new_qubits(sigma, 0)[0]
    w.apply_unitary([q[2], r], qutip.tensor(qutip.qeye(2), qutip.qeye(2)), 0)  # forces a merge
    assert w.group_of(r) == q + [r]
    ref = qutip.tensor(rho, sigma).ptrace([1, 3])
    assert np.allclose(w.reduced_state([q[1], r], 0).full(), ref.full(), atol=1e-12)


@pytest.mark.parametrize(
    "dims, pos",
    [([2, 2], [1]), ([2, 2], [1, 0]), ([2, 3, 2], [2, 0]), ([3, 2, 2, 2], [1, 3]), ([2, 2, 2, 2], [3, 0, 2]), ([2, 3], [0, 1])],
)
def test_numpy_operator_lift_is_qutip_expand_operator_to_the_last_bit(dims, pos):
    """_expand (the world's own lift of an operator onto a group) gives exactly
    the matrix qutip.expand_operator gives, entry for entry, in any target order:
    same-seed runs depend on it."""
    op_dims = [dims[p] for p in pos]
    op = qutip.rand_unitary(op_dims, seed=sum(dims) + len(pos)).full()
    expected = qutip.expand_operator(qutip.Qobj(op, dims=[op_dims, op_dims]), dims, pos).full()
    assert np.array_equal(_expand(op, dims, pos), expected)


def test_numpy_constants_are_the_qutip_built_states_to_the_last_bit():
    """The Bell vectors, Bloch vectors and basis projectors the world now builds
    with numpy are bitwise the ones it built with QuTiP before (the same
    constructions written with qutip.basis/tensor/sigmax/sigmaz), and the Qobj
    forms handed to users hold the same numbers."""
    zero, one = qutip.basis(2, 0), qutip.basis(2, 1)
    phi_plus = (qutip.tensor(zero, zero) + qutip.tensor(one, one)).unit()
    for bell in BellState:
        x, z = bell.pauli_bits
        frame = (qutip.sigmax() ** x) * (qutip.sigmaz() ** z)
        ket = qutip.tensor(qutip.qeye(2), frame) * phi_plus
        built = ket.full().ravel()
        assert np.array_equal(bell_vector(bell), built)
        assert np.array_equal(bell_ket(bell).full().ravel(), built)
        assert bell_ket(bell).dims == ket.dims
    for theta, phi in ((0.3, 1.1), (math.pi, -2.0)):
        built = qutip.Qobj(np.array([[math.cos(theta / 2)], [np.exp(1j * phi) * math.sin(theta / 2)]]), dims=[[2], [1]]).full().ravel()
        assert np.array_equal(bloch_vector(theta, phi), built)
        assert np.array_equal(bloch_ket(theta, phi).full().ravel(), built)
    for basis in Basis:
        p0, p1 = basis_projectors(basis)
        assert basis_projectors(basis) is basis_projectors(basis)  # one list: the world checks a POVM once per list
        assert np.allclose((p0 + p1).full(), np.eye(2), atol=1e-15)
        ket = bloch_ket(*basis.bloch_angles)
        assert float(np.real(qutip.expect(p0, ket))) == pytest.approx(1.0, abs=1e-12)


def test_arrays_and_qobj_inputs_give_the_same_states():
    """Every world operation takes numpy arrays as well as Qobj and gives
    bitwise the same states and draws for the same numbers and seed."""
    rho = qutip.rand_dm([2, 2], seed=21)
    unitary = qutip.rand_unitary([2, 2], seed=22)
    kraus = qutip.rand_kraus_map([2], seed=23)
    element = qutip.Qobj(np.diag([0.7, 0.2]))
    povm = [element, qutip.qeye(2) - element]
    states = []
    for as_array in (False, True):

        def given(obj):
            return obj.full() if as_array else obj  # noqa: B023 - used inside this pass only

        w = QuantumWorld()
        rng = np.random.default_rng(5)
        a, b = w.new_qubits(given(rho), 0, [(40_000.0, 30_000.0), (None, 50_000.0)])
        c, d = w.new_qubits(given(bell_ket(BellState.PSI_MINUS)), 0)
        w.apply_unitary([b, c], given(unitary), 100)
        w.apply_kraus([d], [given(k) for k in kraus], 200)
        outcome = w.measure_povm([a], [given(e) for e in povm], rng, 300)
        fidelity = w.fidelity_to_pure([d, b], given(bell_ket(BellState.PHI_PLUS)), 400)
        states.append((outcome, fidelity, w.reduced_state([b, c, d], 500).full()))
    (o1, f1, r1), (o2, f2, r2) = states
    assert (o1, f1) == (o2, f2)
    assert np.array_equal(r1, r2)


def test_writable_arrays_are_read_afresh_and_read_only_ones_are_cached():
    """The world caches what it derives from a state or operator by the object's
    identity only for a Qobj or a read-only array: a writable array changed
    between two calls is read again (state, operator lifted onto a group, ket)."""
    w = QuantumWorld()
    state = np.diag([1.0, 0.0, 0.0, 0.0]).astype(complex)
    a, b = w.new_qubits(state, 0)
    state[:] = np.diag([0.0, 0.0, 0.0, 1.0])
    c, d = w.new_qubits(state, 0)
    assert w.reduced_state([c, d], 0).full()[3, 3] == 1.0
    flip = np.array([[0, 1], [1, 0]], dtype=complex)
    w.apply_unitary([b], flip, 0)  # b is half of a two-qubit group: the lifted form is built
    flip[:] = np.eye(2)
    w.apply_unitary([b], flip, 0)  # now the identity: b stays |1>
    assert w.reduced_state([a, b], 0).full()[1, 1] == 1.0
    target = np.array([1, 0, 0, 0], dtype=complex)
    assert w.fidelity_to_pure([c, d], target, 0) == 0.0
    target[:] = [0, 0, 0, 1]
    assert w.fidelity_to_pure([c, d], target, 0) == 1.0
    frozen = np.diag([0.0, 1.0]).astype(complex)
    frozen.setflags(write=False)
    w.new_qubits(frozen, 0)
    assert any(entry[0] is frozen for entry in w._checked_states.values())


def test_array_states_take_their_dims_or_qubits():
    w = QuantumWorld()
    qutrit_qubit = np.diag([0.5, 0.0, 0.0, 0.0, 0.5, 0.0]).astype(complex)
    a, b = w.new_qubits(qutrit_qubit, 0, dims=[3, 2])
    assert (w.dim(a), w.dim(b)) == (3, 2)
    assert [w.dim(q) for q in w.new_qubits(np.eye(8) / 8, 0)] == [2, 2, 2]
    with pytest.raises(WorldError, match="not over qubits"):
        w.new_qubits(qutrit_qubit, 0)
    with pytest.raises(WorldError, match="do not fit"):
        w.new_qubits(np.eye(4) / 4, 0, dims=[2, 3])
    with pytest.raises(WorldError, match="shape"):
        w.new_qubits(np.zeros((2, 3)), 0)
    with pytest.raises(WorldError, match="numpy array or a Qobj"):
        w.new_qubits([[1, 0], [0, 0]], 0)  # type: ignore[arg-type]
    with pytest.raises(WorldError, match="dims are given by the Qobj"):
        w.new_qubits(qutip.basis(2, 0), 0, dims=[2])
    with pytest.raises(WorldError, match="ket of dimension 2"):
        w.fidelity_to_pure([b], np.array([1, 0, 0]), 0)
    assert w.fidelity_to_pure([a], np.array([1, 0, 0]), 0) == pytest.approx(0.5, abs=1e-15)  # Tr(ρ_a |0><0|), ρ_a = diag(1/2, 0, 1/2)
    with pytest.raises(WorldError, match="2x2 array or Qobj"):
        w.apply_unitary([b], np.eye(3), 0)


def test_whole_group_oracle_and_discard_shortcuts_match_qutip():
    """The shortcuts for a two-subsystem group (the usual link pair): the oracle
    fidelity read in either subsystem order, and the partial trace when one half
    is discarded, agree with QuTiP's ptrace/permute and a direct <ψ|ρ|ψ>, with
    memory noise on (T1 and T2, so the cached channel factors are used twice)."""
    for dims, seed in (([2, 2], 5), ([2, 3], 6), ([3, 2], 7)):
        rho = qutip.rand_dm(dims, seed=seed)
        psi = qutip.rand_ket(dims, seed=seed + 100)
        swapped = psi.permute([1, 0])
        w = QuantumWorld()
        # noise only on 2-level subsystems (the world refuses it for others)
        noise = [(40_000.0, 30_000.0) if d == 2 else (None, None) for d in dims]
        a, b = w.new_qubits(rho, 0, noise)
        expected = w.reduced_state([a, b], 7_000)  # general path, both halves caught up to t = 7 us
        direct = float(np.real(qutip.expect(expected, psi)))
        w2 = QuantumWorld()
        a2, b2 = w2.new_qubits(rho, 0, noise)
        assert w2.fidelity_to_pure([b2, a2], swapped, 7_000) == pytest.approx(direct, abs=1e-12)
        assert w2.fidelity_to_pure([a2, b2], psi, 7_000) == pytest.approx(direct, abs=1e-12)
        for gone, kept in ((a2, b2), (b2, a2)):
            w3 = QuantumWorld()
            q = dict(zip((a2, b2), w3.new_qubits(rho, 0, noise)))
            w3.discard(q[gone], 0)
            ref = rho.ptrace([0 if kept == a2 else 1])
            assert np.allclose(w3.reduced_state([q[kept]], 0).full(), ref.full(), atol=1e-12)


# ------------------------------------------------------------------ measurement


@pytest.mark.parametrize(
    "prep, basis, outcome",
    [
        ([], Basis.Z, 0),
        ([X], Basis.Z, 1),
        ([H], Basis.X, 0),
        ([X, H], Basis.X, 1),
        ([H, qutip.Qobj(np.diag([1, 1j]))], Basis.Y, 0),  # S H |0> = |+i>
        ([X, H, qutip.Qobj(np.diag([1, 1j]))], Basis.Y, 1),  # S H |1> = |-i>
    ],
)
def test_eigenstates_give_their_eigenvalue(prep, basis, outcome):
    """Born rule on an eigenstate of the measured Pauli: certain outcome."""
    for seed in range(5):
        w = QuantumWorld()
        q = w.new_qubit(0)
        for u in prep:
            w.apply_unitary([q], u, 0)
        assert w.measure(q, basis, np.random.default_rng(seed), 0) == outcome
        assert q not in w


def test_born_rule_frequencies():
    """|<1|ψ>|^2 = sin^2(θ/2) for ψ = Ry(θ)|0> (Born rule); N = 4000, 5 s.e."""
    theta = 1.1
    p1 = math.sin(theta / 2) ** 2
    rng = np.random.default_rng(2024)
    n = 4000
    ones = 0
    ry = (-1j * theta / 2 * qutip.sigmay()).expm()
    for _ in range(n):
        w = QuantumWorld()
        q = w.new_qubit(0)
        w.apply_unitary([q], ry, 0)
        ones += w.measure(q, Basis.Z, rng, 0)
    assert abs(ones / n - p1) <= five_se(p1, n)


@pytest.mark.parametrize("basis", [Basis.Z, Basis.X, Basis.Y])
def test_measuring_half_a_bell_pair_collapses_the_other(basis):
    """Φ+ is perfectly correlated in Z and X and anti-correlated in Y
    (Nielsen & Chuang 2000, §2.6 / Box 2.7)."""
    for seed in range(8):
        rng = np.random.default_rng(seed)
        w = QuantumWorld()
        a, b = w.new_qubit(0), w.new_qubit(0)
        w.apply_unitary([a], H, 0)
        w.apply_unitary([a, b], CNOT, 0)
        m = w.measure(a, basis, rng, 0)
        expected = m ^ (1 if basis is Basis.Y else 0)
        proj = basis_projectors(basis)[expected]
        assert w.group_of(b) == [b]
        assert np.real((proj * w.reduced_state([b], 0)).tr()) == pytest.approx(1.0)


def test_povm_post_state_is_partial_trace_of_e_rho():
    """Post-measurement state of the rest: Tr_m[(E_k ⊗ I) ρ] / p_k with p_k = Tr[E_k ρ_m]
    (Nielsen & Chuang 2000, §2.2.6 and §2.4.3), computed independently with QuTiP."""
    rho = qutip.rand_dm([2, 2, 2], seed=5)
    e0 = qutip.Qobj(np.diag([0.9, 0.2, 0.3, 0.0]), dims=[[2, 2], [2, 2]])
    povm = [e0, qutip.qeye([2, 2]) - e0]
    for k in (0, 1):
        w = QuantumWorld()
        q = w.new_qubits(rho, 0)
        p = w.postselect([q[2], q[0]], povm[k], 0)
        lifted = qutip.expand_operator(povm[k], [2, 2, 2], [2, 0])
        ref = (lifted * rho).ptrace([1])
        assert p == pytest.approx(np.real(ref.tr()), abs=1e-12)
        assert np.allclose(w.reduced_state([q[1]], 0).full(), (ref / ref.tr()).full(), atol=1e-12)


@pytest.mark.slow
def test_povm_sampling_frequencies():
    """Outcome k is drawn with probability Tr[E_k ρ]; N = 4000, 5 s.e. per outcome."""
    rho = qutip.rand_dm([2], seed=9)
    povm = [qutip.Qobj(np.diag([0.5, 0.1])), qutip.Qobj(np.diag([0.5, 0.9]))]
    expected = [float(np.real((e * rho).tr())) for e in povm]
    rng = np.random.default_rng(77)
    n = 4000
    counts = [0, 0]
    for _ in range(n):
        w = QuantumWorld()
        counts[w.measure_povm(w.new_qubits(rho, 0), povm, rng, 0)] += 1
    for k in (0, 1):
        assert abs(counts[k] / n - expected[k]) <= five_se(expected[k], n)


def test_postselecting_an_impossible_outcome_raises():
    w = QuantumWorld()
    q = w.new_qubit(0)
    with pytest.raises(WorldError, match="probability 0"):
        w.postselect([q], basis_projectors(Basis.Z)[1], 0)


# ------------------------------------------------------------------ memory noise


@pytest.mark.parametrize("t_ns", [0, 100, 1_000, 2_500])
@pytest.mark.parametrize("t1_ns", [None, 2_000])
def test_plus_state_fidelity_decays_with_t2(t_ns, t1_ns):
    """F(|+>) after t = (1 + e^{-t/T2})/2: amplitude + phase damping leave the
    off-diagonal element at e^{-t/T2} (Nielsen & Chuang 2000, §8.3.5-8.3.6)."""
    t2 = 1_000
    w = QuantumWorld()
    q = w.new_qubit(0, t1_ns=t1_ns, t2_ns=t2)
    w.apply_unitary([q], H, 0)
    expected = (1 + math.exp(-t_ns / t2)) / 2
    assert w.fidelity_to_pure([q], bloch_ket(math.pi / 2, 0), t_ns) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("t_ns", [0, 300, 1_000, 5_000])
def test_excited_population_decays_with_t1(t_ns):
    """<1|ρ|1> after t = e^{-t/T1} (amplitude damping, Nielsen & Chuang 2000, §8.3.5)."""
    t1 = 1_000
    w = QuantumWorld()
    q = w.new_qubit(0, t1_ns=t1, t2_ns=1_500)
    w.apply_unitary([q], X, 0)
    assert w.reduced_state([q], t_ns).full()[1, 1].real == pytest.approx(math.exp(-t_ns / t1), abs=1e-12)


def test_lazy_noise_composes_over_intermediate_reads():
    """Reading at t1 then t2 gives the same state as reading at t2 only
    (the memory channels form a semigroup: Λ(s) Λ(t) = Λ(s + t))."""
    states = []
    for reads in ([700, 1_900], [1_900]):
        w = QuantumWorld()
        q = w.new_qubit(0, t1_ns=3_000, t2_ns=2_000)
        w.apply_unitary([q], qutip.rand_unitary(2, seed=4), 0)
        for t in reads:
            rho = w.reduced_state([q], t)
        states.append(rho.full())
    assert np.allclose(states[0], states[1], atol=1e-12)


def test_noise_applies_to_each_qubit_of_a_pair():
    """Φ+ with both qubits dephasing (T1 = ∞): F = (1 + e^{-2t/T2})/2, since the
    |00><11| coherence picks up e^{-t/T2} from each qubit (N&C 2000, §8.3.6)."""
    t2, t = 5_000, 3_000
    w = QuantumWorld()
    a = w.new_qubit(0, t2_ns=t2)
    b = w.new_qubit(0, t2_ns=t2)
    w.apply_unitary([a], H, 0)
    w.apply_unitary([a, b], CNOT, 0)
    expected = (1 + math.exp(-2 * t / t2)) / 2
    assert w.fidelity_to_pure([a, b], bell_ket(BellState.PHI_PLUS), t) == pytest.approx(expected, abs=1e-12)
    # a noiseless photon-like mode beside them does not change that
    c = w.new_qubit(0)
    assert w.fidelity_to_pure([c], qutip.basis(2, 0), t) == pytest.approx(1.0)


def test_memory_kraus_is_trace_preserving_and_matches_closed_form():
    """Σ K†K = I; ρ11 -> e^{-t/T1} ρ11 and ρ01 -> e^{-t/T2} ρ01 (N&C 2000, §8.3)."""
    t, t1, t2 = 1234.0, 3000.0, 4000.0
    ks = memory_kraus(t, t1, t2)
    assert np.allclose(sum((k.dag() * k).full() for k in ks), np.eye(2), atol=1e-14)
    rho = qutip.rand_dm(2, seed=1)
    out = sum(k * rho * k.dag() for k in ks).full()
    r = rho.full()
    assert out[1, 1] == pytest.approx(r[1, 1] * math.exp(-t / t1))
    assert out[0, 1] == pytest.approx(r[0, 1] * math.exp(-t / t2))


# ------------------------------------------------------------------ properties


def _assert_physical(world: QuantumWorld) -> None:
    for qids, rho in world.groups():
        m = rho.full()
        assert m.shape == (rho.shape[0], rho.shape[0])
        assert np.allclose(m, m.conj().T, atol=1e-10), "not Hermitian"
        assert np.linalg.eigvalsh(m).min() >= -1e-9, "not positive semidefinite"
        assert abs(np.trace(m) - 1) <= 1e-9, "trace is not 1"
        assert rho.dims[0] == [world.dim(q) for q in qids]


_ACTIONS = ["new", "unitary", "kraus", "measure", "povm", "discard", "wait"]
_step = st.tuples(st.sampled_from(_ACTIONS), st.integers(0, 2**31 - 1))


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(st.lists(_step, min_size=1, max_size=25), st.integers(0, 2**31 - 1))
def test_random_operations_keep_every_state_a_density_matrix(steps, seed):
    """Unitaries, CPTP maps, measurements and POVMs map density matrices to
    density matrices (Hermitian, positive, unit trace; N&C 2000, §2.4 and §8.2)."""
    rng = np.random.default_rng(seed)
    w = QuantumWorld()
    now = 0
    live: list[int] = [w.new_qubit(0, t1_ns=5_000, t2_ns=4_000), w.new_qubit(0, dim=3)]
    for action, s in steps:
        pick = np.random.default_rng(s)
        if action == "new" or not live:
            noisy = pick.random() < 0.5
            live.append(w.new_qubit(now, t1_ns=5_000 if noisy else None, t2_ns=4_000 if noisy else None))
            continue
        k = int(pick.integers(1, min(3, len(live)) + 1))
        targets = [live[i] for i in pick.choice(len(live), size=k, replace=False)]
        dims = [w.dim(q) for q in targets]
        if action == "unitary":
            w.apply_unitary(targets, qutip.rand_unitary(dims, seed=s), now)
        elif action == "kraus":
            w.apply_kraus(targets, qutip.rand_kraus_map(dims, seed=s), now)
        elif action == "measure":
            q = next((q for q in targets if w.dim(q) == 2), None)
            if q is not None:
                w.measure(q, Basis(pick.choice(["Z", "X", "Y"])), rng, now)
                live.remove(q)
        elif action == "povm":
            a = qutip.rand_dm(dims, seed=s)
            a = a / (a.eigenenergies().max() + 1e-3)  # 0 <= a < I
            w.measure_povm(targets, [a, qutip.qeye(dims) - a], rng, now)
            for q in targets:
                live.remove(q)
        elif action == "discard":
            w.discard(targets[0])
            live.remove(targets[0])
        elif action == "wait":
            now += int(pick.integers(0, 3_000))
            for q in live:
                w.reduced_state([q], now)  # brings the noise up to date
        _assert_physical(w)
    assert sorted(live) == sorted(q for qids, _ in w.groups() for q in qids)


@settings(max_examples=30, deadline=None)
@given(st.floats(0, math.pi), st.floats(-math.pi, math.pi), st.integers(0, 10**6))
def test_fidelity_to_pure_is_a_probability(theta, phi, t_ns):
    """0 <= <ψ|ρ|ψ> <= 1 for any state and target, and = 1 for the state itself."""
    w = QuantumWorld()
    q = w.new_qubits(bloch_ket(theta, phi), 0, [(None, 10**6)])[0]
    assert w.fidelity_to_pure([q], bloch_ket(theta, phi), 0) == pytest.approx(1.0, abs=1e-12)
    f = w.fidelity_to_pure([q], bloch_ket(math.pi - theta, phi + 1.0), t_ns)
    assert 0.0 <= f <= 1.0
