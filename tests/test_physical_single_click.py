"""The single-click scheme: optics as operators (physical.schemes.single_click) against
its closed forms, and the sampled success rate against the analytic one.

Statistical checks state their sample size and allow 5 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import qutip

from qnetstack.physical.engines.world import QuantumWorld, bell_ket
from qnetstack.physical.params import DetectorParams
from qnetstack.physical.schemes.single_click import (
    HERALD_BELL_STATES,
    HERALD_FAIL,
    HERALD_MINUS,
    HERALD_PLUS,
    beam_splitter_unitary,
    decohere_pair,
    emission_state,
    fidelity_at_detection,
    herald_fidelity,
    herald_povm,
    herald_probability,
    post_herald_state,
    success_probability,
)
from qnetstack.physical.service import BellState


def fock2(i: int, j: int) -> qutip.Qobj:
    return qutip.tensor(qutip.basis(3, i), qutip.basis(3, j))


def one_attempt_world(alpha_a, alpha_b, eta_a, eta_b):
    """Both spin-photon pairs emitted and attenuated, photons not yet detected."""
    w = QuantumWorld()
    sa, pa = w.new_qubits(emission_state(alpha_a, eta_a), 0)
    sb, pb = w.new_qubits(emission_state(alpha_b, eta_b), 0)
    return w, (sa, pa), (sb, pb)


# ------------------------------------------------------------------ optics


def test_beam_splitter_interferes_single_photons_and_bunches_pairs():
    """a† -> (c†+d†)/√2, b† -> (c†-d†)/√2, and two photons leave together:
    |1,1> -> (|2,0> - |0,2>)/√2 (Hong, Ou & Mandel, PRL 59, 2044 (1987))."""
    u = beam_splitter_unitary()
    s = 1 / math.sqrt(2)
    cases = [
        (fock2(0, 0), fock2(0, 0)),
        (fock2(1, 0), s * (fock2(1, 0) + fock2(0, 1))),
        (fock2(0, 1), s * (fock2(1, 0) - fock2(0, 1))),
        (fock2(1, 1), s * (fock2(2, 0) - fock2(0, 2))),
    ]
    for inp, out in cases:
        assert np.allclose((u * inp).full(), out.full(), atol=1e-12)
    # unitary on the <= 2-photon sector the simulation uses
    low = [fock2(i, j) for i in range(3) for j in range(3) if i + j <= 2]
    v = np.hstack([k.full() for k in low])
    w = u.full() @ v
    assert np.allclose(w.conj().T @ w, np.eye(len(low)), atol=1e-12)


@pytest.mark.parametrize("eff, p_dc", [(1.0, 0.0), (0.8, 0.0), (0.5, 0.1), (0.0, 0.3)])
def test_herald_povm_is_a_povm(eff, p_dc):
    """Three positive elements summing to the identity (a POVM, N&C 2000, §2.2.6)."""
    povm = herald_povm(DetectorParams(efficiency=eff, dark_count_probability=p_dc))
    assert len(povm) == 3
    for e in povm:
        assert e.dims == [[2, 2], [2, 2]]
        assert np.linalg.eigvalsh(e.full()).min() >= -1e-12
    assert np.allclose(sum(e.full() for e in povm), np.eye(4), atol=1e-12)
    assert herald_povm(DetectorParams(efficiency=eff, dark_count_probability=p_dc)) is povm  # cached


@pytest.mark.parametrize("eff, p_dc", [(1.0, 0.0), (0.7, 0.0), (0.7, 0.05)])
def test_herald_povm_click_probabilities(eff, p_dc):
    """Threshold detectors: no click with probability (1-p)(1-η_d)^n for n photons.
    One photon from either side reaches c with probability 1/2; two photons
    bunch (HOM), both in c with probability 1/2."""
    plus, minus, fail = herald_povm(DetectorParams(efficiency=eff, dark_count_probability=p_dc))

    def prob(e, i, j):
        k = qutip.tensor(qutip.basis(2, i), qutip.basis(2, j))
        return float(np.real(k.dag() * e * k))  # <ij|E|ij>

    q = 1 - p_dc  # no dark count in a given detector
    no_click_1 = q * (1 - eff)  # a detector hit by one photon stays silent
    no_click_2 = q * (1 - eff) ** 2  # ... by two photons
    assert prob(plus, 0, 0) == pytest.approx(p_dc * q)  # a dark count in c only
    # one photon: to c (1/2) and c clicks, d silent; or to d (1/2), d silent, dark count in c
    one = 0.5 * (1 - no_click_1) * q + 0.5 * p_dc * no_click_1
    assert prob(plus, 1, 0) == pytest.approx(one)
    assert prob(plus, 0, 1) == pytest.approx(one)
    assert prob(minus, 0, 1) == pytest.approx(one)
    # two photons bunch: both to c (1/2), or both to d (1/2)
    two = 0.5 * (1 - no_click_2) * q + 0.5 * p_dc * no_click_2
    assert prob(plus, 1, 1) == pytest.approx(two)
    assert prob(minus, 1, 1) == pytest.approx(two)
    assert prob(fail, 1, 1) == pytest.approx(1 - 2 * two)


# ------------------------------------------------------------------ simulation = closed form

CASES = [
    # alpha_a, alpha_b, eta_a (emission x fibre), eta_b, detector efficiency, p_dc
    (0.1, 0.1, 0.5, 0.5, 1.0, 0.0),
    (0.3, 0.3, 0.9, 0.9, 0.8, 0.0),
    (0.2, 0.2, 0.3, 0.7, 0.8, 0.0),  # asymmetric losses
    (0.1, 0.1, 0.4, 0.4, 0.9, 0.01),  # dark counts
    (0.25, 0.25, 0.05, 0.6, 0.6, 0.2),  # asymmetric, strong dark counts
    (0.3, 0.1, 0.9, 0.2, 0.7, 0.05),  # different α at the two ends
    (0.0, 0.0, 0.5, 0.5, 0.8, 0.1),  # no emission: dark counts only
]


@pytest.mark.parametrize("alpha_a, alpha_b, eta_a, eta_b, eff, p_dc", CASES)
@pytest.mark.parametrize("outcome", [HERALD_PLUS, HERALD_MINUS])
def test_simulated_attempt_reproduces_closed_form_state(alpha_a, alpha_b, eta_a, eta_b, eff, p_dc, outcome):
    """World + herald POVM (detector efficiency inside the POVM) gives exactly the
    closed-form post-herald state with η_d folded into the transmittances
    (derivation in physical/schemes/single_click.py; scheme: Humphreys et al., Nature
    558, 268 (2018); analysis: Rozpędek et al., PRA 99, 052330 (2019))."""
    povm = herald_povm(DetectorParams(efficiency=eff, dark_count_probability=p_dc))
    bell = HERALD_BELL_STATES[outcome]
    w, (sa, pa), (sb, pb) = one_attempt_world(alpha_a, alpha_b, eta_a, eta_b)
    p = w.postselect([pa, pb], povm[outcome], 0)
    rho = w.reduced_state([sa, sb], 0).full()
    ea, eb = eta_a * eff, eta_b * eff
    assert p == pytest.approx(herald_probability(alpha_a, ea, eb, p_dc, alpha_b), abs=1e-12)
    assert np.allclose(rho, post_herald_state(alpha_a, ea, eb, p_dc, bell, alpha_b), atol=1e-9)
    fid = w.fidelity_to_pure([sa, sb], bell_ket(bell), 0)
    assert fid == pytest.approx(herald_fidelity(alpha_a, ea, eb, p_dc, alpha_b), abs=1e-9)


@pytest.mark.parametrize("alpha_a, alpha_b, eta_a, eta_b, eff, p_dc", CASES)
def test_failure_probability_completes_the_closed_form(alpha_a, alpha_b, eta_a, eta_b, eff, p_dc):
    """P(fail) = 1 - p_succ, computed from the POVM's third element."""
    povm = herald_povm(DetectorParams(efficiency=eff, dark_count_probability=p_dc))
    w, (_, pa), (_, pb) = one_attempt_world(alpha_a, alpha_b, eta_a, eta_b)
    p_fail = w.postselect([pa, pb], povm[HERALD_FAIL], 0)
    assert p_fail == pytest.approx(1 - success_probability(alpha_a, eta_a * eff, eta_b * eff, p_dc, alpha_b), abs=1e-12)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1, 0.3, 0.5])
@pytest.mark.parametrize("eta", [0.01, 0.2, 0.9, 1.0])
def test_closed_form_symmetric_no_dark_counts(alpha, eta):
    """p_succ = 2αη(1 - αη/2) and F = (1-α)/(1 - αη/2) for equal η and no dark
    counts; the textbook forms p ≈ 2αη, F ≈ 1-α are the αη -> 0 limits
    (Humphreys et al., Nature 558, 268 (2018), Methods)."""
    p_expected = 2 * alpha * eta * (1 - alpha * eta / 2)
    assert success_probability(alpha, eta, eta, 0.0) == pytest.approx(p_expected, rel=1e-12)
    assert herald_fidelity(alpha, eta, eta, 0.0) == pytest.approx((1 - alpha) / (1 - alpha * eta / 2), rel=1e-12)
    # the state is Ψ± mixed with |11> only (no dark counts)
    rho = post_herald_state(alpha, eta, eta, 0.0, BellState.PSI_MINUS)
    f = herald_fidelity(alpha, eta, eta, 0.0)
    assert rho[3, 3].real == pytest.approx(1 - f, rel=1e-12)
    assert rho[0, 0] == 0


def test_textbook_limit_small_alpha_eta():
    """For αη << 1: p_succ / (2αη) -> 1 and F -> 1 - α (Humphreys et al. 2018)."""
    alpha, eta = 0.05, 1e-4
    assert success_probability(alpha, eta, eta) / (2 * alpha * eta) == pytest.approx(1, abs=1e-5)
    assert herald_fidelity(alpha, eta, eta) == pytest.approx(1 - alpha, abs=1e-5)


def test_dark_counts_alone_herald_at_rate_2p_1_minus_p():
    """With no photon (α = 0 or η = 0), a success needs a dark count in exactly
    one detector: probability 2p(1-p), and the spins hold no entanglement."""
    for p in (0.0, 1e-3, 0.2):
        assert success_probability(0.0, 0.5, 0.5, p) == pytest.approx(2 * p * (1 - p))
        assert success_probability(0.2, 0.0, 0.0, p) == pytest.approx(2 * p * (1 - p))
    assert herald_fidelity(0.2, 0.0, 0.0, 0.01) == pytest.approx(0.2 * 0.8)  # |10>,|01> each give 1/2
    with pytest.raises(ValueError, match="probability 0"):
        post_herald_state(0.0, 0.5, 0.5, 0.0, BellState.PSI_PLUS)


def test_closed_form_rejects_bad_inputs():
    with pytest.raises(ValueError, match="alpha"):
        success_probability(1.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="PSI_PLUS or PSI_MINUS"):
        post_herald_state(0.1, 0.5, 0.5, 0.0, BellState.PHI_PLUS)


@pytest.mark.slow
@pytest.mark.parametrize("alpha, eta_a, eta_b, eff, p_dc", [(0.1, 0.4, 0.4, 0.8, 0.0), (0.3, 0.2, 0.6, 0.9, 0.05)])
def test_sampled_success_fraction_matches_closed_form(alpha, eta_a, eta_b, eff, p_dc):
    """N = 4000 sampled attempts (seed 12345): the success fraction is within
    5 s.e. of success_probability, and D+ / D- are equally likely (each p/2)."""
    povm = herald_povm(DetectorParams(efficiency=eff, dark_count_probability=p_dc))
    rng = np.random.default_rng(12345)
    n = 4000
    counts = [0, 0, 0]
    w = QuantumWorld()
    for _ in range(n):
        sa, pa = w.new_qubits(emission_state(alpha, eta_a), 0)
        sb, pb = w.new_qubits(emission_state(alpha, eta_b), 0)
        counts[w.measure_povm([pa, pb], povm, rng, 0)] += 1
        w.discard(sa)
        w.discard(sb)
        assert len(w) == 0
    p = success_probability(alpha, eta_a * eff, eta_b * eff, p_dc)
    assert abs((counts[HERALD_PLUS] + counts[HERALD_MINUS]) / n - p) <= 5 * math.sqrt(p * (1 - p) / n)
    for k in (HERALD_PLUS, HERALD_MINUS):
        assert abs(counts[k] / n - p / 2) <= 5 * math.sqrt(p / 2 * (1 - p / 2) / n)


def test_fidelity_at_detection_includes_memory_noise_during_flight():
    """Spins dephasing while the photons fly: the Ψ coherence |10><01| decays by
    e^{-t/T2} per spin (N&C 2000, §8.3.6), so F = F_0 - c (1 - e^{-2t/T2}) where
    c = Re<10|ρ|01> of the fresh state; checked against the world simulation."""
    alpha, eta, t, t2 = 0.2, 0.5, 40_000, 100_000
    rho0 = post_herald_state(alpha, eta, eta, 0.0, BellState.PSI_PLUS)
    coherence = rho0[2, 1].real
    expected = herald_fidelity(alpha, eta, eta) - coherence * (1 - math.exp(-2 * t / t2))
    got = fidelity_at_detection(alpha, alpha, eta, eta, 0.0, BellState.PSI_PLUS, (t, None, t2), (t, None, t2))
    assert got == pytest.approx(expected, abs=1e-12)
    # the world, with noisy spins and the herald at time t, agrees
    w = QuantumWorld()
    sa, pa = w.new_qubits(emission_state(alpha, eta), 0, [(None, t2), (None, None)])
    sb, pb = w.new_qubits(emission_state(alpha, eta), 0, [(None, t2), (None, None)])
    w.postselect([pa, pb], herald_povm(DetectorParams(efficiency=1.0))[HERALD_PLUS], t)
    assert w.fidelity_to_pure([sa, sb], bell_ket(BellState.PSI_PLUS), t) == pytest.approx(got, abs=1e-12)
    # with T1 too, decohere_pair is the world's memory channel (different noise per spin,
    # and an intermediate read of one spin changes nothing)
    noise_a, noise_b = (60_000, t2), (90_000, 150_000)
    w = QuantumWorld()
    sa, sb = w.new_qubits(qutip.Qobj(rho0, dims=[[2, 2], [2, 2]]), 0, [noise_a, noise_b])
    w.reduced_state([sb], t // 2)
    expected_rho = decohere_pair(rho0, (t, *noise_a), (t, *noise_b))
    assert np.allclose(w.reduced_state([sa, sb], t).full(), expected_rho, atol=1e-12)
    assert not np.allclose(expected_rho, rho0, atol=1e-3)  # the noise is visible
