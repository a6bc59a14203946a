"""Quantum memories (physical.components.memories): the closed-form fidelity of a waiting Bell
pair against the engine's Kraus channel, and the error models' validity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import qutip
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from qnetstack.physical.components.memories import (
    AFC_ENSEMBLE,
    MEMORY_PRESETS,
    NV_CARBON,
    NV_ELECTRON,
    TRAPPED_ION,
    CoherenceTimes,
    MemoryModel,
    bell_fidelity_after_wait,
    depolarising_kraus,
    memory_preset,
)
from qnetstack.physical.engines.world import QuantumWorld, bell_ket
from qnetstack.physical.params import MemoryParams
from qnetstack.physical.service import BellState

# (T1, T2) in ns: pure dephasing, T2 at its bound 2·T1, T2 < T1, T2 << T1, no noise
COHERENCE_CASES = [(None, 1000.0), (1000.0, 2000.0), (2000.0, 1000.0), (500.0, 50.0), (None, None)]
WAITS_NS = [0, 100, 1000, 5000]


def engine_fidelity(bell: BellState, noise_a, noise_b) -> float:
    """Fidelity from the reference engine: a Bell pair, each qubit sent through
    the Kraus channel of MemoryModel.kraus for its own waiting time."""
    world = QuantumWorld()
    qa, qb = world.new_qubits(bell_ket(bell), 0)
    for qid, (wait, t1, t2) in ((qa, noise_a), (qb, noise_b)):
        model = MemoryModel(t1_ns=t1, t2_ns=t2)
        world.apply_kraus([qid], model.kraus(wait), 0)
    return world.fidelity_to_pure([qa, qb], bell_ket(bell), 0)


# ------------------------------------------------------------------ closed form vs engine


@pytest.mark.parametrize("t1, t2", COHERENCE_CASES)
@pytest.mark.parametrize("both_wait", [False, True])
def test_bell_pair_fidelity_matches_the_engine_with_lazy_memory_noise(t1, t2, both_wait):
    """The closed forms F_Φ, F_Ψ (derived in physical.components.memories from the
    amplitude- and phase-damping channels of Nielsen & Chuang 2000, §8.3.5-8.3.6)
    against the engine's own lazy T1/T2 noise: a pair created at t = 0 in
    memories with these times (one, or both) and read at t."""
    model = MemoryModel(t1_ns=t1, t2_ns=t2)
    for bell in BellState:
        for t in WAITS_NS:
            world = QuantumWorld()
            noise = (t1, t2)
            qa, qb = world.new_qubits(bell_ket(bell), 0, noise=[noise, noise if both_wait else (None, None)])
            simulated = world.fidelity_to_pure([qa, qb], bell_ket(bell), t)
            closed = model.bell_pair_fidelity(t, both_wait=both_wait, bell_state=bell)
            assert closed == pytest.approx(simulated, abs=1e-12), (bell, t)


def test_closed_form_matches_kraus_channels_with_different_memories_and_waits():
    """Qubits in different memories waiting different times: F_Φ / F_Ψ against
    MemoryModel.kraus applied through the engine (Nielsen & Chuang 2000, §8.3)."""
    cases = [
        ((300.0, 1000.0, 500.0), (700.0, None, 2000.0)),
        ((50.0, 100.0, 200.0), (2000.0, 1000.0, 30.0)),
        ((1e4, None, 3e3), (0.0, 10.0, 1.0)),
    ]
    for noise_a, noise_b in cases:
        for bell in BellState:
            expected = engine_fidelity(bell, noise_a, noise_b)
            assert bell_fidelity_after_wait(bell, noise_a, noise_b) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("t", [0.0, 10.0, 250.0, 1e3, 1e4])
def test_textbook_special_cases(t):
    """Pure dephasing (Nielsen & Chuang 2000, §8.3.6) of |Φ+>: one qubit waiting,
    F = (1 + e^{-t/T2})/2; both waiting, F = (1 + e^{-2t/T2})/2. One qubit with
    amplitude damping too (§8.3.5): F = (1 + e^{-t/T1} + 2 e^{-t/T2})/4."""
    t1, t2 = 800.0, 300.0
    dephasing = MemoryModel(t1_ns=None, t2_ns=t2)
    assert dephasing.bell_pair_fidelity(t) == pytest.approx((1 + math.exp(-t / t2)) / 2, rel=1e-12)
    assert dephasing.bell_pair_fidelity(t, both_wait=True) == pytest.approx((1 + math.exp(-2 * t / t2)) / 2, rel=1e-12)
    both = MemoryModel(t1_ns=t1, t2_ns=t2)
    one_waits = (1 + math.exp(-t / t1) + 2 * math.exp(-t / t2)) / 4
    for bell in BellState:
        assert both.bell_pair_fidelity(t, bell_state=bell) == pytest.approx(one_waits, rel=1e-12)


def test_storage_qubits_use_their_own_coherence_times():
    """NV carbon storage qubit (T2 = 60 s, Bradley et al., PRX 9, 031045 (2019))
    outlives the electron (T2 = 1 s): after 1 s a stored half-pair keeps
    F = (1 + e^{-1/60})/2 (pure dephasing, nuclear T1 = ∞), and the engine agrees."""
    t = 1e9
    assert NV_CARBON.coherence(storage=True) == (None, 6e10)
    assert NV_CARBON.coherence(storage=False) == (NV_CARBON.t1_ns, NV_CARBON.t2_ns)
    assert NV_ELECTRON.coherence(storage=True) == NV_ELECTRON.coherence()  # no storage times: same
    stored = NV_CARBON.bell_pair_fidelity(t, storage=True)
    assert stored == pytest.approx((1 + math.exp(-1 / 60)) / 2, rel=1e-12)
    assert stored > NV_CARBON.bell_pair_fidelity(t)
    world = QuantumWorld()
    qa, qb = world.new_qubits(bell_ket(BellState.PHI_PLUS), 0)
    world.apply_kraus([qa], NV_CARBON.kraus(t, storage=True), 0)
    assert world.fidelity_to_pure([qa, qb], bell_ket(BellState.PHI_PLUS), 0) == pytest.approx(stored, abs=1e-12)


# ------------------------------------------------------------------ monotonicity


coherence_times = st.tuples(
    st.floats(min_value=1.0, max_value=1e6),  # T1
    st.floats(min_value=0.01, max_value=1.0),  # T2 / (2 T1)
    st.booleans(),  # T1 finite?
)


@settings(max_examples=300, deadline=None)
@given(
    times=coherence_times,
    t_early=st.floats(min_value=0.0, max_value=1e7),
    dt=st.floats(min_value=0.0, max_value=1e7),
    bell=st.sampled_from(list(BellState)),
    both_wait=st.booleans(),
)
def test_fidelity_never_increases_with_waiting_where_it_must_not(times, t_early, dt, bell, both_wait):
    """F(t) is non-increasing when one qubit waits (every Bell state), for Ψ±
    whatever waits, and for pure dephasing: each term of F_Φ / F_Ψ is then a
    product of decaying exponentials (module docstring of physical.components.memories)."""
    t1_value, ratio, t1_finite = times
    t1 = t1_value if t1_finite else None
    t2 = ratio * 2 * t1_value
    if both_wait and bell in (BellState.PHI_PLUS, BellState.PHI_MINUS) and t1 is not None:
        t1 = None  # Φ± with two relaxing qubits is not monotone: see the next test
    model = MemoryModel(t1_ns=t1, t2_ns=t2)
    early = model.bell_pair_fidelity(t_early, both_wait=both_wait, bell_state=bell)
    late = model.bell_pair_fidelity(t_early + dt, both_wait=both_wait, bell_state=bell)
    assert late <= early + 1e-15
    assert 0.0 <= late <= 1.0


def test_phi_pair_with_both_qubits_relaxing_recovers_towards_one_half():
    """Both qubits of |Φ+> relax to |00>, which has overlap 1/2 with |Φ+>: with
    T2 << T1 the fidelity falls to [1 + a² + (1-a)²]/4 = 3/8 at a = e^{-t/T1} = 1/2
    and climbs back to 1/2 (closed form of physical.components.memories; the engine agrees).
    Ψ± relaxes to |00> too but has no overlap with it: F_Ψ → 0."""
    model = MemoryModel(t1_ns=1000.0, t2_ns=10.0)
    t_half = 1000.0 * math.log(2)
    f_min = model.bell_pair_fidelity(t_half, both_wait=True)
    f_late = model.bell_pair_fidelity(20_000.0, both_wait=True)
    assert f_min == pytest.approx(3 / 8, abs=1e-12)
    assert f_late == pytest.approx(1 / 2, abs=1e-8)
    for t, f in ((t_half, f_min), (20_000.0, f_late)):
        assert engine_fidelity(BellState.PHI_PLUS, (t, 1000.0, 10.0), (t, 1000.0, 10.0)) == pytest.approx(f, abs=1e-12)
    assert model.bell_pair_fidelity(20_000.0, both_wait=True, bell_state=BellState.PSI_PLUS) < 1e-8


# ------------------------------------------------------------------ gate, readout, measurement errors


def random_states(num_qubits: int, count: int) -> list[qutip.Qobj]:
    return [qutip.rand_dm([2] * num_qubits, seed=seed).to("dense") for seed in range(count)]


def assert_valid_state(mat: np.ndarray) -> None:
    assert abs(np.trace(mat) - 1) < 1e-12
    assert np.allclose(mat, mat.conj().T, atol=1e-12)
    assert np.linalg.eigvalsh(mat).min() > -1e-12


@pytest.mark.parametrize("num_qubits, fidelity", [(1, 1.0), (1, 0.99), (1, 0.5), (2, 0.999), (2, 0.9), (2, 0.25)])
def test_depolarising_channels_keep_states_valid_and_have_the_stated_fidelity(num_qubits, fidelity):
    """Σ K†K = I; random states stay density matrices (trace one, Hermitian, PSD);
    every pure input keeps fidelity F = λ + (1-λ)/d, the average gate fidelity
    of the depolarising channel (Nielsen & Chuang 2000, §8.3.4; Nielsen,
    Phys. Lett. A 303, 249 (2002))."""
    kraus = [k.full() for k in depolarising_kraus(fidelity, num_qubits)]
    d = 2**num_qubits
    assert np.allclose(sum(k.conj().T @ k for k in kraus), np.eye(d), atol=1e-12)
    states = random_states(num_qubits, 5)
    for rho in states:
        assert_valid_state(sum(k @ rho.full() @ k.conj().T for k in kraus))
    for seed in range(5):
        psi = qutip.rand_ket(d, seed=seed).full().ravel()
        out = sum(k @ np.outer(psi, psi.conj()) @ k.conj().T for k in kraus)
        assert np.real(psi.conj() @ out @ psi) == pytest.approx(fidelity, abs=1e-12)


def test_memory_error_models_run_in_the_engine_and_keep_states_valid():
    """The trapped-ion preset's gate, readout and waiting channels through the
    engine (which itself refuses non-trace-preserving channels): the pair stays
    a density matrix; the measurement POVM is complete and correct with
    probability measurement_fidelity for |0> and |1>."""
    model = TRAPPED_ION.model_copy(update={"readout_fidelity": 0.95})
    world = QuantumWorld()
    (mixed,) = random_states(2, 1)
    qa, qb = world.new_qubits(mixed, 0)
    world.apply_kraus([qa], model.single_qubit_gate_kraus(), 0)
    world.apply_kraus([qa, qb], model.two_qubit_gate_kraus(), 0)
    world.apply_kraus([qb], model.readout_kraus(), 0)
    world.apply_kraus([qb], model.kraus(1e9), 0)
    assert_valid_state(world.reduced_state([qa, qb], 0).full())
    e0, e1 = model.measurement_povm()
    assert np.allclose(e0.full() + e1.full(), np.eye(2))
    assert min(np.linalg.eigvalsh(e0.full()).min(), np.linalg.eigvalsh(e1.full()).min()) >= 0
    for bit in (0, 1):
        ket = qutip.basis(2, bit)
        correct = (e0, e1)[bit]
        assert qutip.expect(correct, ket) == pytest.approx(model.measurement_fidelity, rel=1e-12)
    outcome = world.measure_povm([qa], model.measurement_povm(), np.random.default_rng(0), 0)
    assert outcome in (0, 1)
    assert_valid_state(world.reduced_state([qb], 0).full())


def test_unsupported_operations_are_refused():
    with pytest.raises(ValueError, match="two_qubit_gate_fidelity=None"):
        AFC_ENSEMBLE.two_qubit_gate_kraus()
    with pytest.raises(ValueError, match="measurement_fidelity=None"):
        AFC_ENSEMBLE.measurement_povm()


def test_readout_efficiency_decays_exponentially_with_storage_time():
    """AFC: efficiency η·e^{-t/τ} with τ = 0.53 s (Holzäpfel et al., New J. Phys.
    22, 063009 (2020)); the stored qubit itself does not dephase."""
    assert AFC_ENSEMBLE.readout_efficiency_after(0.0) == AFC_ENSEMBLE.readout_efficiency
    assert AFC_ENSEMBLE.readout_efficiency_after(5.3e8) == pytest.approx(0.2 / math.e, rel=1e-12)
    assert AFC_ENSEMBLE.bell_pair_fidelity(1e9, both_wait=True) == 1.0
    assert NV_ELECTRON.readout_efficiency_after(1e9) == NV_ELECTRON.readout_efficiency


# ------------------------------------------------------------------ validation and conversion


def test_t2_beyond_twice_t1_is_rejected_naming_the_fields_and_the_bound():
    """T2 <= 2·T1 (Nielsen & Chuang 2000, §8.3.6)."""
    with pytest.raises(ValidationError, match=r"t2_ns=3000\.0 exceeds 2\*t1_ns=2000\.0.*T2 <= 2\*T1"):
        MemoryModel(t1_ns=1000.0, t2_ns=3000.0)
    with pytest.raises(ValidationError, match=r"storage_coherence[\s\S]*t2_ns=3\.0 exceeds 2\*t1_ns=2\.0"):
        MemoryModel(storage_coherence={"t1_ns": 1.0, "t2_ns": 3.0})
    with pytest.raises(ValidationError, match="t2_ns=None"):
        MemoryModel(t1_ns=1000.0, t2_ns=None)
    with pytest.raises(ValidationError, match="t2_ns=None"):
        CoherenceTimes(t1_ns=5.0)
    MemoryModel(t1_ns=1000.0, t2_ns=2000.0)  # the bound itself is allowed


@pytest.mark.parametrize(
    "field, value",
    [
        ("t1_ns", -1.0),
        ("t2_ns", 0.0),
        ("readout_efficiency", 1.5),
        ("readout_fidelity", 0.3),
        ("single_qubit_gate_fidelity", 0.4),
        ("two_qubit_gate_fidelity", 1.01),
        ("measurement_fidelity", 0.2),
        ("two_qubit_gate_duration_ns", -1.0),
        ("num_storage_qubits", -1),
        ("efficiency_lifetime_ns", 0.0),
    ],
)
def test_bad_memory_parameters_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValidationError) as err:
        MemoryModel(**{field: value})
    assert field in str(err.value)


def test_a_memory_needs_at_least_one_qubit_and_presets_need_known_names():
    with pytest.raises(ValidationError, match="num_communication_qubits \\+ num_storage_qubits = 0"):
        MemoryModel(num_communication_qubits=0, num_storage_qubits=0)
    with pytest.raises(ValidationError, match="nv_electron.*afc_ensemble"):
        memory_preset("quantum_dot")
    assert memory_preset("NV_Electron") is NV_ELECTRON
    assert set(MEMORY_PRESETS) == {"nv_electron", "nv_carbon", "rb_atom", "trapped_ion", "siv", "afc_ensemble"}


def test_to_memory_params_keeps_qubit_count_and_communication_coherence():
    params = NV_CARBON.to_memory_params()
    assert isinstance(params, MemoryParams)
    assert params.num_qubits == 2
    assert (params.t1_ns, params.t2_ns) == (3_600_000_000_000, 1_000_000_000)
    # rounding to whole ns must not break T2 <= 2*T1 (1.4 -> 1, 2.8 -> 3 > 2)
    assert MemoryModel(t1_ns=1.4, t2_ns=2.8).to_memory_params().t2_ns == 2
    # the operation figures travel with it, for the device (None: the platform cannot)
    assert (params.single_qubit_gate_fidelity, params.two_qubit_gate_fidelity, params.measurement_fidelity) == (0.999, 0.99, 0.97)
    assert MEMORY_PRESETS["rb_atom"].to_memory_params().two_qubit_gate_fidelity is None
    durations = (params.single_qubit_gate_duration_ns, params.two_qubit_gate_duration_ns, params.measurement_duration_ns)
    assert durations == (100, 500_000, 3_700)
    for preset in MEMORY_PRESETS.values():
        converted = preset.to_memory_params()
        if preset.t2_ns is not None:
            assert converted.t2_ns == pytest.approx(preset.t2_ns, rel=1e-9)
