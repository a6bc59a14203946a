"""The midpoint-source (MS) scheme (physical.schemes.midpoint_source): limiting closed
forms, the Fock-space optics against the closed forms, attempt-by-attempt
simulation against the model, validity of every branch state, and parameter
validation.

Statistical checks state their sample size and allow 5 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from qnetstack.physical.components.sources import SpdcSource
from qnetstack.physical.params import DetectorParams, FibreParams, NodeHardware
from qnetstack.physical.schemes.midpoint_source import (
    LINK_PATTERNS,
    NODE_PATTERN_BELL_STATES,
    MidpointSourceLinkParams,
    MidpointSourceModel,
    ideal_fidelity,
    node_instrument,
    single_pair_success_probability,
    unnormalised_pattern_state,
)
from qnetstack.physical.schemes.model import HeraldingModel, branch_fidelity, sample_success
from qnetstack.physical.service import BellState


def model(
    length_km=10.0,
    mu=0.01,
    emission_a=0.75,
    emission_b=0.75,
    coupling=0.8,
    efficiency=0.8,
    p_dc=0.0,
    visibility=0.9,
    db_per_km=0.2,
    statistics="thermal",
):
    params = MidpointSourceLinkParams(
        length_km=length_km,
        fibre=FibreParams(db_per_km=db_per_km),
        detector=DetectorParams(efficiency=efficiency, dark_count_probability=p_dc),
        source=SpdcSource(mean_pair_number=mu, heralding_efficiency=coupling, statistics=statistics),
        photon_indistinguishability=visibility,
    )
    return MidpointSourceModel(params, NodeHardware(emission_efficiency=emission_a), NodeHardware(emission_efficiency=emission_b))


def ideal(mu=0.01, visibility=1.0, emission=1.0):
    """No loss anywhere, perfect detectors, no dark counts."""
    return model(
        length_km=1e-9, mu=mu, emission_a=emission, emission_b=emission, coupling=1.0, efficiency=1.0, visibility=visibility, db_per_km=0.0
    )


def normalised(rho):
    return rho / np.trace(rho).real


# ------------------------------------------------------------------ (a) limiting closed forms


@pytest.mark.parametrize("visibility", [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("etas", [(1.0, 1.0, 1.0, 1.0), (0.5, 0.2, 0.7, 0.1), (1e-3, 0.4, 0.9, 0.05)])
def test_one_pair_closed_form_rate_and_fidelity_limits(visibility, etas):
    """Without dark counts and with one pair: each of the 16 pattern pairs has
    probability P(1) η_A η_B / 64, so p_succ = P(1) η_A η_B (1/2)² (two linear-optics
    BSMs, each at most 1/2: Lütkenhaus, Calsamiglia & Suominen, PRA 59, 3295
    (1999)); the fidelity is (1 + V²)/2 whatever the loss (a Z error of
    probability (1-V)/2 per BSM, Hong–Ou–Mandel overlap; derived in the module)."""
    m_a, s_a, m_b, s_b = etas
    total = 0.0
    for bell in (BellState.PHI_PLUS, BellState.PHI_MINUS):
        rho = unnormalised_pattern_state(0.0, 1.0, m_a, s_a, m_b, s_b, visibility, 0.0, bell)
        assert np.trace(rho).real == pytest.approx(m_a * s_a * m_b * s_b / 64, rel=1e-12)
        assert branch_fidelity(normalised(rho), bell) == pytest.approx(ideal_fidelity(visibility), rel=1e-12)
        total += 8 * np.trace(rho).real  # 8 pattern pairs per announced state
    assert total == pytest.approx(single_pair_success_probability(1.0, m_a * s_a, m_b * s_b), rel=1e-12)


def test_model_rate_at_low_mu_is_one_pair_rate():
    """At μ = 1e-4 the rate is P(1) η_A η_B / 4 (Lütkenhaus et al. 1999 for the
    1/2 per BSM), η_X = (emission × η_d)(coupling × 10^(-αL/20) × η_d), up to the
    two-pair term, of relative order μ; fidelity (1+V²)/2 up to the same order."""
    m = model(length_km=40, mu=1e-4, emission_a=0.6, emission_b=0.3, coupling=0.9, efficiency=0.85, visibility=0.8)
    assert isinstance(m, HeraldingModel)
    fibre = 10 ** (-0.2 * 20 / 10)
    eta_a = (0.6 * 0.85) * (0.9 * fibre * 0.85)
    eta_b = (0.3 * 0.85) * (0.9 * fibre * 0.85)
    p1 = m.pair_probabilities()[1]
    assert m.success_probability() == pytest.approx(p1 * eta_a * eta_b / 4, rel=2e-3)
    for b in m.branches():
        assert b.fidelity == pytest.approx((1 + 0.8**2) / 2, abs=2e-3)


def test_bsm_outcomes_compose_with_the_source_frame():
    """Entanglement swapping (Żukowski et al., PRL 71, 4287 (1993)) with the Ψ±
    patterns of a linear-optics BSM (Braunstein & Mann, PRA 51, R1727 (1995)):
    equal node outcomes give Φ+, different ones Φ- (BellState.compose). The
    Fock-space optics, one pair, V = 1, no dark counts, give exactly that Bell state."""
    m = model(visibility=1.0)
    for pattern_a, pattern_b in LINK_PATTERNS:
        expected = BellState.PHI_PLUS.compose(NODE_PATTERN_BELL_STATES[pattern_a]).compose(NODE_PATTERN_BELL_STATES[pattern_b])
        same = NODE_PATTERN_BELL_STATES[pattern_a] is NODE_PATTERN_BELL_STATES[pattern_b]
        assert expected is (BellState.PHI_PLUS if same else BellState.PHI_MINUS)
        rho = normalised(m.fock_pattern_state(pattern_a, pattern_b, 1))
        assert branch_fidelity(rho, expected) == pytest.approx(1.0, abs=1e-12)


def test_two_pair_term_with_ideal_hardware():
    """Closed form derived in the module docstring (three photons per beam
    splitter, Kok & Braunstein, PRA 61, 042304 (2000) two-pair state): each
    pattern pair heralds with probability 3/128 and state
    [5,4,4,5 diagonal, ±4 coherence]/18, fidelity 1/2."""
    m = ideal()
    for pattern_a, pattern_b in LINK_PATTERNS:
        rho = m.fock_pattern_state(pattern_a, pattern_b, 2)
        assert np.trace(rho).real == pytest.approx(3 / 128, rel=1e-12)
        bell = BellState.PHI_PLUS.compose(NODE_PATTERN_BELL_STATES[pattern_a]).compose(NODE_PATTERN_BELL_STATES[pattern_b])
        sign = 1.0 if bell is BellState.PHI_PLUS else -1.0
        expected = np.diag([5.0, 4.0, 4.0, 5.0]).astype(complex)
        expected[0, 3] = expected[3, 0] = 4.0 * sign
        assert np.allclose(normalised(rho), expected / 18, atol=1e-12)
        assert branch_fidelity(normalised(rho), bell) == pytest.approx(0.5, abs=1e-12)


def test_two_pair_term_without_memory_photons():
    """Memory photons all lost (η_m = 0), no dark counts: only the HV·HV part of
    the two-pair state can make both polarisations click, with probability
    (1/3)(η_s,A²/4)(η_s,B²/4) per pattern pair and the spins untouched (I/4);
    zero and one pair never herald (derived in the module docstring)."""
    m = model(emission_a=0.0, emission_b=0.0, coupling=0.9, efficiency=0.7)
    _, eta_s_a, _, eta_s_b = m.efficiencies()
    for pattern_a, pattern_b in LINK_PATTERNS:
        rho = m.fock_pattern_state(pattern_a, pattern_b, 2)
        assert np.trace(rho).real == pytest.approx(eta_s_a**2 * eta_s_b**2 / 48, rel=1e-12)
        assert np.allclose(normalised(rho), np.eye(4) / 4, atol=1e-12)
        for n in (0, 1):
            assert np.trace(m.fock_pattern_state(pattern_a, pattern_b, n)).real == pytest.approx(0.0, abs=1e-15)


def test_fidelity_falls_with_mean_pair_number():
    """Multi-pair emission is the main error of SPDC-based swapping (Jones et al.,
    NJP 18, 083015 (2016), Sec. 4; Guha et al., PRA 92, 022357 (2015)): at fixed
    hardware the fidelity falls as μ grows, from the one-pair (1+V²)/2. The first
    step (μ = 1e-4 -> 1e-3) is larger than the worst-case effect 2ε/p_branch of
    the neglected > 2 pairs, so the fall is not an artefact of the cutoff (for
    larger μ that worst-case bound is loose, see MidpointSourceModel.truncation_error)."""
    mus = (1e-4, 1e-3, 1e-2, 3e-2, 0.1)
    models = [model(length_km=1, mu=mu, emission_a=0.9, emission_b=0.9, coupling=0.9, efficiency=0.9, visibility=0.95) for mu in mus]
    fids = [m.branches()[0].fidelity for m in models]
    assert fids[0] == pytest.approx(ideal_fidelity(0.95), abs=1e-3)
    assert all(f > f_next for f, f_next in zip(fids, fids[1:]))
    assert fids[-1] < ideal_fidelity(0.95) - 0.05  # a visible effect at μ = 0.1
    bound = 2 * models[1].truncation_error() / models[1].branches()[0].probability
    assert fids[0] - fids[1] > bound


def test_dark_counts_herald_with_no_pairs():
    """μ = 0 and η = 0 (no light at all): a pattern needs two dark counts at each
    node, (p²(1-p)²)² per pattern pair, unentangled I/4 (threshold detectors with
    independent dark counts; the same model as physical.schemes.barrett_kok)."""
    p = 0.05
    m = model(mu=0.0, emission_a=0.0, emission_b=0.0, coupling=0.0, p_dc=p)
    for b in m.branches():
        assert b.probability == pytest.approx((p * p * (1 - p) ** 2) ** 2, rel=1e-12)
        assert np.allclose(b.state, np.eye(4) / 4, atol=1e-12)


# ------------------------------------------------------------------ (b) Fock-space optics vs closed form

CASES = [
    # length_km, mu, emission_a, emission_b, coupling, detector efficiency, p_dc, visibility
    (2.0, 0.01, 0.75, 0.75, 0.8, 0.8, 0.0, 0.9),
    (25.0, 0.05, 0.9, 0.3, 0.7, 0.7, 0.0, 0.5),  # asymmetric ends
    (10.0, 0.1, 0.5, 0.5, 0.9, 0.9, 0.02, 0.8),  # dark counts
    (100.0, 0.02, 0.6, 0.8, 0.6, 0.6, 0.01, 0.0),  # fully distinguishable
    (5.0, 0.3, 1.0, 1.0, 1.0, 1.0, 0.3, 1.0),  # strong dark counts, ideal photons
]


@pytest.mark.parametrize("length_km, mu, emission_a, emission_b, coupling, efficiency, p_dc, visibility", CASES)
def test_fock_space_zero_and_one_pair_terms_equal_the_closed_form(
    length_km, mu, emission_a, emission_b, coupling, efficiency, p_dc, visibility
):
    """Exact, no statistics: for each of the 16 pattern pairs the Fock-space
    optics (detector efficiency in the POVM, internal modes, polarised loss
    modes) reproduce the N ≤ 1 closed form derived in physical/schemes/midpoint_source.py
    (scheme: Jones et al., NJP 18, 083015 (2016))."""
    m = model(length_km, mu, emission_a, emission_b, coupling, efficiency, p_dc, visibility)
    p0, p1, _ = m.pair_probabilities()
    for pattern_a, pattern_b in LINK_PATTERNS:
        fock = p0 * m.fock_pattern_state(pattern_a, pattern_b, 0) + p1 * m.fock_pattern_state(pattern_a, pattern_b, 1)
        closed = m.closed_form_state(pattern_a, pattern_b)
        assert np.allclose(fock, closed, rtol=1e-10, atol=1e-15 * max(1.0, np.abs(closed).max()))
        full = m.pattern_branch(pattern_a, pattern_b)
        model_branch = m.branches()[LINK_PATTERNS.index((pattern_a, pattern_b))]
        assert full.probability == pytest.approx(model_branch.probability, rel=1e-10)
        assert np.allclose(full.state, model_branch.state, atol=1e-12)


@pytest.mark.parametrize("n_photons", [0, 1, 2])
def test_node_instrument_is_trace_preserving(n_photons):
    """The 16 click patterns of a node form a complete measurement on the node's
    input (memory photon polarisation × source Fock states): Σ_k G_k = identity."""
    gram = node_instrument(0.6, 0.3, 0.7, 0.8, 0.05, n_photons)
    size = 2 * (n_photons + 1)
    assert np.allclose(gram.sum(axis=0).reshape(size, size), np.eye(size), atol=1e-12)


def test_hong_ou_mandel_dip_in_the_node_instrument():
    """Memory photon H and one source photon H, no loss: they leave by different
    ports with probability (1-V)/2 (Hong, Ou & Mandel, PRL 59, 2044 (1987))."""
    for v in (0.0, 0.4, 1.0):
        gram = node_instrument(1.0, 1.0, v, 1.0, 0.0, 1)
        c_h_and_d_h = gram[0b0101, 0, 0, 0, 0].real  # clicks cH and dH; s = H, source |1_H 0_V>
        assert c_h_and_d_h == pytest.approx((1 - v) / 2, abs=1e-12)


# ------------------------------------------------------------------ (c) attempt-by-attempt simulation


def test_attempt_by_attempt_simulation_matches_the_model():
    """N = 20000 simulated attempts (seed 2024), μ = 0.1 so two-pair events are
    frequent, dark counts and V < 1: the success fraction is within 5 binomial
    standard errors sqrt(p(1-p)/N) of the model's p (≈ 0.018, s.e. ≈ 9e-4), and
    every success carries exactly the model's state and probability for its
    pattern pair (N ≤ 1 from the closed form, N = 2 from the optics). The model
    and the simulation share the 2-pair cutoff, so ε plays no role here."""
    m = model(length_km=2, mu=0.1, emission_a=0.9, emission_b=0.8, coupling=0.9, efficiency=0.9, p_dc=0.005, visibility=0.85)
    p = m.success_probability()
    rng = np.random.default_rng(2024)
    n = 20_000
    successes = [b for b in (m.simulate_attempt(rng) for _ in range(n)) if b is not None]
    assert abs(len(successes) / n - p) <= 5 * math.sqrt(p * (1 - p) / n)
    assert len(successes) > 100
    for b in successes:
        # the branch of the sampled pattern pair: same Bell state, probability and state
        assert any(
            b.bell_state is ref.bell_state
            and b.probability == pytest.approx(ref.probability, rel=1e-10)
            and np.allclose(b.state, ref.state, atol=1e-12)
            for ref in m.branches()
        )
    plus = sum(b.bell_state is BellState.PHI_PLUS for b in successes)
    share = sum(b.probability for b in m.branches() if b.bell_state is BellState.PHI_PLUS) / p
    assert abs(plus / len(successes) - share) <= 5 * math.sqrt(share * (1 - share) / len(successes))


def test_fast_forward_sampling_accepts_the_model():
    """sample_success draws a geometric number of attempts with mean 1/p;
    n = 2000 draws, 5 standard errors sqrt(1-p)/p/sqrt(n) (geometric law)."""
    m = model(length_km=5, mu=0.05, emission_a=0.9, emission_b=0.9, coupling=0.9, efficiency=0.9)
    p = m.success_probability()
    rng = np.random.default_rng(7)
    n = 2000
    attempts = np.array([sample_success(m, rng)[0] for _ in range(n)])
    assert abs(attempts.mean() - 1 / p) < 5 * math.sqrt(1 - p) / p / math.sqrt(n)


def test_truncation_bound_is_below_the_tolerances_where_the_model_is_compared():
    """The > 2-pair mass ε (Ma, Fung & Lo, PRA 76, 012307 (2007), Eq. (1) for the
    pair law, ε ≈ 4μ³) moves a branch state by at most 2ε/p_branch in trace
    distance. At μ = 1e-4 (test_model_rate_at_low_mu_is_one_pair_rate, tolerance
    2e-3) that is below 2.5e-4, an order of magnitude under it; at the default μ = 0.01, ε < 1e-5. The
    simulation-vs-model test shares the cutoff, so there ε does not enter."""
    low = model(length_km=40, mu=1e-4, emission_a=0.6, emission_b=0.3, coupling=0.9, efficiency=0.85, visibility=0.8)
    assert 2 * low.truncation_error() / min(b.probability for b in low.branches()) < 2.5e-4
    default = model()
    assert default.truncation_error() == pytest.approx(1 - sum(default.pair_probabilities()), abs=1e-15)
    assert 0 < default.truncation_error() < 1e-5


# ------------------------------------------------------------------ (d) every branch state is a state


@settings(max_examples=40, deadline=None)
@given(
    length_km=st.floats(0.01, 200.0),
    mu=st.floats(0.0, 0.5),
    emission_a=st.floats(0.0, 1.0),
    emission_b=st.floats(0.0, 1.0),
    efficiency=st.floats(0.01, 1.0),
    p_dc=st.floats(0.0, 0.3),
    visibility=st.floats(0.0, 1.0),
    statistics=st.sampled_from(["thermal", "poisson"]),
)
def test_every_branch_state_is_a_density_matrix(length_km, mu, emission_a, emission_b, efficiency, p_dc, visibility, statistics):
    """Hermitian, positive semidefinite, trace one (Nielsen & Chuang 2000, §2.4.1),
    for every branch of the model; probabilities in [0, 1]."""
    m = model(length_km, mu, emission_a, emission_b, 0.8, efficiency, p_dc, visibility, statistics=statistics)
    assert 0.0 <= m.success_probability() <= 1.0
    for b in m.branches():
        if b.probability <= 1e-300:
            continue
        assert 0.0 <= b.probability <= 1.0
        assert np.allclose(b.state, b.state.conj().T, atol=1e-12)
        assert np.trace(b.state).real == pytest.approx(1.0, abs=1e-10)
        assert np.linalg.eigvalsh(b.state).min() >= -1e-10


# ------------------------------------------------------------------ (e) bad input


@pytest.mark.parametrize(
    "kwargs, field_name",
    [
        ({"length_km": 0.0}, "length_km"),
        ({"length_km": -5.0}, "length_km"),
        ({"length_km": 10.0, "photon_indistinguishability": 1.2}, "photon_indistinguishability"),
        ({"length_km": 10.0, "photon_indistinguishability": -0.1}, "photon_indistinguishability"),
        ({"length_km": 10.0, "detector": {"efficiency": 1.5}}, "efficiency"),
        ({"length_km": 10.0, "detector": {"dark_count_probability": -1e-3}}, "dark_count_probability"),
        ({"length_km": 10.0, "source": {"mean_pair_number": -0.1}}, "mean_pair_number"),
        ({"length_km": 10.0, "source": {"heralding_efficiency": 2.0}}, "heralding_efficiency"),
        ({"length_km": 10.0, "visibility": 0.9}, "visibility"),  # unknown field: extra fields are forbidden
    ],
)
def test_bad_parameters_raise_validation_error_naming_the_field(kwargs, field_name):
    with pytest.raises(ValidationError, match=field_name):
        MidpointSourceLinkParams(**kwargs)


def test_bad_closed_form_inputs_raise():
    with pytest.raises(ValueError, match="eta_memory_a"):
        unnormalised_pattern_state(0.9, 0.1, 1.5, 0.5, 0.5, 0.5, 0.9, 0.0, BellState.PHI_PLUS)
    with pytest.raises(ValueError, match="PHI_PLUS or PHI_MINUS"):
        unnormalised_pattern_state(0.9, 0.1, 0.5, 0.5, 0.5, 0.5, 0.9, 0.0, BellState.PSI_PLUS)
    with pytest.raises(ValueError, match="visibility"):
        ideal_fidelity(-0.1)
    with pytest.raises(ValueError, match="do not herald"):
        model().pattern_branch(("cH", "dH"), ("cH", "cV"))
