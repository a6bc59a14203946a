"""The Barrett–Kok scheme (physical.schemes.barrett_kok): closed forms against the
published ones, the Fock-space simulation against the closed forms, validity of
every branch state, and parameter validation.

Statistical checks state their sample size and allow 5 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from qnetstack.physical.params import DetectorParams, FibreParams, NodeHardware
from qnetstack.physical.schemes.barrett_kok import (
    CLICK_PATTERNS,
    PATTERN_BELL_STATES,
    ROUND_BOTH,
    ROUND_C,
    ROUND_D,
    BarrettKokLinkParams,
    BarrettKokModel,
    herald_fidelity,
    round_instrument,
    success_probability,
    unnormalised_pattern_state,
)
from qnetstack.physical.schemes.model import HeraldingModel, branch_fidelity, sample_success
from qnetstack.physical.service import BellState


def model(length_km=10.0, emission_a=0.75, emission_b=0.75, efficiency=0.8, p_dc=0.0, visibility=0.9, db_per_km=0.2):
    params = BarrettKokLinkParams(
        length_km=length_km,
        fibre=FibreParams(db_per_km=db_per_km),
        detector=DetectorParams(efficiency=efficiency, dark_count_probability=p_dc),
        two_photon_visibility=visibility,
    )
    return BarrettKokModel(params, NodeHardware(emission_efficiency=emission_a), NodeHardware(emission_efficiency=emission_b))


# ------------------------------------------------------------------ (a) closed forms vs the published ones


@pytest.mark.parametrize("visibility", [0.0, 0.3, 0.6, 0.9, 1.0])
@pytest.mark.parametrize("eta_a, eta_b", [(1.0, 1.0), (0.5, 0.5), (0.05, 0.05), (0.2, 0.7), (1e-3, 0.4)])
def test_success_probability_and_fidelity_vs_visibility(visibility, eta_a, eta_b):
    """Without dark counts: p_succ = η_A η_B / 2 (Barrett & Kok, PRA 71,
    060310(R) (2005)) whatever V, and F = (1 + V)/2 whatever η — the
    distinguishability limit of the NV experiments (Bernien et al., Nature 497,
    86 (2013), SI; Hensen et al., Nature 526, 682 (2015), Methods). The Bell
    state the other sign would name gets the rest, (1 - V)/2."""
    assert success_probability(eta_a, eta_b, visibility) == pytest.approx(eta_a * eta_b / 2, rel=1e-12)
    assert herald_fidelity(eta_a, eta_b, visibility) == pytest.approx((1 + visibility) / 2, rel=1e-12)
    for bell, other in ((BellState.PSI_PLUS, BellState.PSI_MINUS), (BellState.PSI_MINUS, BellState.PSI_PLUS)):
        rho = unnormalised_pattern_state(eta_a, eta_b, visibility, 0.0, bell)
        rho = rho / np.trace(rho).real
        assert branch_fidelity(rho, other) == pytest.approx((1 - visibility) / 2, abs=1e-12)
        # the π pulse filters out the |11> term of single-click: no |00>, |11> at all
        assert rho[0, 0] == 0 and rho[3, 3] == 0


def test_model_uses_emission_fibre_and_detector_efficiency():
    """η = emission × 10^(-αL/20) (fibre over L/2, Beer–Lambert in dB) × η_d, and
    p_succ = η_A η_B / 2, F = (1+V)/2 (Barrett & Kok 2005; Bernien et al. 2013)."""
    m = model(length_km=50, emission_a=0.6, emission_b=0.3, efficiency=0.9, visibility=0.8)
    assert isinstance(m, HeraldingModel)
    eta_a = 0.6 * 10 ** (-0.2 * 25 / 10) * 0.9
    eta_b = 0.3 * 10 ** (-0.2 * 25 / 10) * 0.9
    assert m.success_probability() == pytest.approx(eta_a * eta_b / 2, rel=1e-12)
    branches = m.branches()
    assert [b.bell_state for b in branches] == [PATTERN_BELL_STATES[p] for p in CLICK_PATTERNS]
    for b in branches:
        assert b.probability == pytest.approx(eta_a * eta_b / 8, rel=1e-12)
        assert b.fidelity == pytest.approx(0.9, rel=1e-12)


def test_same_detector_twice_heralds_psi_plus_different_detectors_psi_minus():
    """Barrett & Kok (2005); Bernien et al. (2013): with the project's frames
    Ψ± = (|01> ± |10>)/√2 (physical.engines.world.bell_ket), c c and d d give Ψ+, c d
    and d c give Ψ-. With V = 1 and no dark counts the state is exactly that
    Bell state, in the simulation too."""
    assert PATTERN_BELL_STATES[(ROUND_C, ROUND_C)] is BellState.PSI_PLUS
    assert PATTERN_BELL_STATES[(ROUND_D, ROUND_D)] is BellState.PSI_PLUS
    assert PATTERN_BELL_STATES[(ROUND_C, ROUND_D)] is BellState.PSI_MINUS
    assert PATTERN_BELL_STATES[(ROUND_D, ROUND_C)] is BellState.PSI_MINUS
    m = model(visibility=1.0)
    for pattern in CLICK_PATTERNS:
        b = m.pattern_branch(pattern)
        assert b.fidelity == pytest.approx(1.0, abs=1e-12)


def test_dark_counts_alone_herald_unentangled_states():
    """With no light (η = 0) a pattern needs one dark count in exactly one
    detector in each round: probability (p(1-p))² per pattern, 4 of them; the
    spins (|++> after dark-count-only rounds) hold no Ψ coherence, F = 1/4."""
    p = 0.1
    assert success_probability(0.0, 0.0, 0.9, p) == pytest.approx(4 * (p * (1 - p)) ** 2, rel=1e-12)
    assert herald_fidelity(0.0, 0.0, 0.9, p) == pytest.approx(0.25, rel=1e-12)
    with pytest.raises(ValueError, match="never heralds"):
        herald_fidelity(0.0, 0.0, 0.9, 0.0)


def test_dark_counts_lower_the_fidelity_more_at_long_distance():
    """A dark count in one round with the photon lost heralds a wrong state; its
    weight relative to the signal grows as η falls, so F drops below (1+V)/2
    and falls with distance (Barrett & Kok 2005 discuss dark counts as the
    residual error)."""
    distances = (2, 50, 100, 200)
    fids = [model(length_km=km, p_dc=1e-4).branches()[0].fidelity for km in distances]
    assert fids[0] < 0.95  # (1 + V)/2 with V = 0.9
    assert all(a > b for a, b in zip(fids, fids[1:]))
    for km in distances:  # the same links without dark counts sit at the limit
        assert model(length_km=km).branches()[0].fidelity == pytest.approx(0.95, rel=1e-12)


def test_simulated_round_shows_hong_ou_mandel_bunching():
    """Both spins bright, no loss, perfect detectors: the photons end in
    different detectors with probability (1 - V)/2 (Hong, Ou & Mandel, PRL 59,
    2044 (1987)); with one spin bright the photon goes either way, 1/2 each."""
    for v in (0.0, 0.5, 0.9, 1.0):
        gram = round_instrument(1.0, 1.0, v, 1.0, 0.0)
        assert gram[ROUND_BOTH][3, 3].real == pytest.approx((1 - v) / 2, abs=1e-12)
        assert gram[ROUND_C][3, 3].real == pytest.approx((1 + v) / 4, abs=1e-12)
        for one_bright in (1, 2):
            assert gram[ROUND_C][one_bright, one_bright].real == pytest.approx(0.5, abs=1e-12)
            assert gram[ROUND_D][one_bright, one_bright].real == pytest.approx(0.5, abs=1e-12)


# ------------------------------------------------------------------ (b) simulation vs closed form

CASES = [
    # length_km, emission_a, emission_b, detector efficiency, p_dc, visibility
    (2.0, 0.75, 0.75, 0.8, 0.0, 0.9),
    (25.0, 0.9, 0.3, 0.7, 0.0, 0.5),  # asymmetric ends
    (10.0, 0.5, 0.5, 0.9, 0.02, 0.8),  # dark counts
    (100.0, 0.6, 0.8, 0.6, 0.01, 0.0),  # fully distinguishable, dark counts dominate
    (5.0, 1.0, 1.0, 1.0, 0.3, 1.0),  # strong dark counts, ideal photons
    (50.0, 0.2, 0.9, 0.5, 1e-5, 0.95),
]


@pytest.mark.parametrize("length_km, emission_a, emission_b, efficiency, p_dc, visibility", CASES)
def test_simulated_conditional_states_equal_the_closed_form(length_km, emission_a, emission_b, efficiency, p_dc, visibility):
    """Exact, no statistics: for each click pattern the Fock-space simulation
    (detector efficiency in the POVM, internal modes, loss modes) gives the
    pattern's probability and conditional state of the closed form (derived in
    physical/schemes/barrett_kok.py; scheme: Barrett & Kok, PRA 71, 060310(R) (2005))."""
    m = model(length_km, emission_a, emission_b, efficiency, p_dc, visibility)
    for pattern, analytic in zip(CLICK_PATTERNS, m.branches()):
        simulated = m.pattern_branch(pattern)
        assert simulated.bell_state is analytic.bell_state
        assert simulated.probability == pytest.approx(analytic.probability, rel=1e-10)
        assert np.allclose(simulated.state, analytic.state, atol=1e-12)


def test_round_instrument_is_trace_preserving():
    """The four outcomes of a round form a complete measurement: Σ_k G_k has
    ones on the diagonal, so Σ_k Tr(G_k ∘ ρ) = Tr ρ for every ρ."""
    gram = round_instrument(0.4, 0.7, 0.8, 0.9, 0.05)
    assert np.allclose(np.diagonal(gram.sum(axis=0)), 1.0, atol=1e-12)


def test_attempt_by_attempt_success_rate_and_states_match_the_model():
    """N = 20000 simulated attempts (seed 2024) at 2 km with efficient hardware
    (p ≈ 0.30): the success fraction is within 5 binomial standard errors
    sqrt(p(1-p)/N) ≈ 0.0032 of the closed form, Ψ+ is half of the successes
    (5 s.e.), and every success carries exactly the closed-form state of its
    Bell state (Barrett & Kok 2005: the patterns of one Bell state leave the
    same state)."""
    m = model(length_km=2, emission_a=0.9, emission_b=0.9, efficiency=0.9, p_dc=0.01, visibility=0.85)
    expected = {b.bell_state: b.state for b in m.branches()}
    p = m.success_probability()
    rng = np.random.default_rng(2024)
    n = 20_000
    successes = [b for b in (m.simulate_attempt(rng) for _ in range(n)) if b is not None]
    assert abs(len(successes) / n - p) <= 5 * math.sqrt(p * (1 - p) / n)
    plus = sum(b.bell_state is BellState.PSI_PLUS for b in successes)
    assert abs(plus / len(successes) - 0.5) <= 5 * math.sqrt(0.25 / len(successes))
    for b in successes:
        assert np.allclose(b.state, expected[b.bell_state], atol=1e-12)
        assert b.probability == pytest.approx(p / 4, rel=1e-10)


def test_fast_forward_sampling_accepts_the_model():
    """sample_success draws a geometric number of attempts with mean 1/p;
    n = 2000 draws, 5 standard errors sqrt(1-p)/p/sqrt(n) (geometric law)."""
    m = model(length_km=25)
    p = m.success_probability()
    rng = np.random.default_rng(7)
    n = 2000
    attempts = np.array([sample_success(m, rng)[0] for _ in range(n)])
    assert abs(attempts.mean() - 1 / p) < 5 * math.sqrt(1 - p) / p / math.sqrt(n)


def test_pattern_branch_refuses_failures():
    m = model()
    with pytest.raises(ValueError, match="does not herald"):
        m.pattern_branch((ROUND_C, ROUND_BOTH))
    with pytest.raises(ValueError, match="probability 0"):
        model(emission_a=0.0).pattern_branch((ROUND_C, ROUND_C))


# ------------------------------------------------------------------ (c) every branch state is a state


@settings(max_examples=60, deadline=None)
@given(
    length_km=st.floats(0.01, 300.0),
    emission_a=st.floats(0.01, 1.0),
    emission_b=st.floats(0.01, 1.0),
    efficiency=st.floats(0.01, 1.0),
    p_dc=st.floats(0.0, 0.5),
    visibility=st.floats(0.0, 1.0),
)
def test_every_branch_state_is_a_density_matrix(length_km, emission_a, emission_b, efficiency, p_dc, visibility):
    """Hermitian, positive semidefinite, trace one (Nielsen & Chuang 2000, §2.4.1),
    for the closed-form branches and the simulated ones; probabilities in [0, 1]."""
    m = model(length_km, emission_a, emission_b, efficiency, p_dc, visibility)
    assert 0.0 <= m.success_probability() <= 1.0
    for pattern, b in zip(CLICK_PATTERNS, m.branches()):
        for state in (b.state, m.pattern_branch(pattern).state):
            assert np.allclose(state, state.conj().T, atol=1e-12)
            assert np.trace(state).real == pytest.approx(1.0, abs=1e-10)
            assert np.linalg.eigvalsh(state).min() >= -1e-12


# ------------------------------------------------------------------ (d) bad input


@pytest.mark.parametrize(
    "kwargs, field_name",
    [
        ({"length_km": 0.0}, "length_km"),
        ({"length_km": -5.0}, "length_km"),
        ({"length_km": 10.0, "two_photon_visibility": 1.2}, "two_photon_visibility"),
        ({"length_km": 10.0, "two_photon_visibility": -0.1}, "two_photon_visibility"),
        ({"length_km": 10.0, "detector": {"efficiency": 1.5}}, "efficiency"),
        ({"length_km": 10.0, "detector": {"dark_count_probability": -1e-3}}, "dark_count_probability"),
        ({"length_km": 10.0, "visibility": 0.9}, "visibility"),  # typo of a field name: extra fields are forbidden
    ],
)
def test_bad_parameters_raise_validation_error_naming_the_field(kwargs, field_name):
    with pytest.raises(ValidationError, match=field_name):
        BarrettKokLinkParams(**kwargs)


def test_bad_closed_form_inputs_raise():
    with pytest.raises(ValueError, match="eta_a"):
        success_probability(1.5, 0.5, 0.9)
    with pytest.raises(ValueError, match="visibility"):
        herald_fidelity(0.5, 0.5, -0.1)
    with pytest.raises(ValueError, match="PSI_PLUS or PSI_MINUS"):
        unnormalised_pattern_state(0.5, 0.5, 0.9, 0.0, BellState.PHI_PLUS)
