"""Photon sources (physical.components.sources): pair-number laws, multi-pair visibility against
Fock-space and Monte-Carlo computations, emitters, weak coherent pulses, validation.

Statistical checks use fixed seeds, state their sample size and allow 5 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from qnetstack.physical.components.sources import EmitterSource, SpdcSource, WeakCoherentSource, spdc_visibility

# ------------------------------------------------------------------ pair-number laws


@pytest.mark.parametrize(
    "statistics, purity, mu",
    [("thermal", 1.0, 0.05), ("thermal", 1.0, 0.8), ("thermal", 0.4, 0.3), ("poisson", 1.0, 0.3)],
)
def test_pair_number_law_is_normalised_with_mean_mu_and_multimode_variance(statistics, purity, mu):
    """Σ P(n) = 1, mean μ, variance μ + μ²/K with K = 1/purity (K → ∞ for Poisson):
    the multimode thermal law of Avenhaus et al., PRL 101, 053601 (2008);
    g2 = 1 + 1/K, Christ et al., NJP 13, 033027 (2011)."""
    src = SpdcSource(mean_pair_number=mu, statistics=statistics, spectral_purity=purity)
    p = src.pair_number_distribution(300)
    n = np.arange(p.size)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert src.truncation_error(300) < 1e-12
    mean = float((n * p).sum())
    assert mean == pytest.approx(mu, rel=1e-10)
    k = src.schmidt_number
    expected_var = mu + (0.0 if k is None else mu * mu / k)
    assert float((n * n * p).sum()) - mean**2 == pytest.approx(expected_var, rel=1e-9)
    assert src.multi_pair_probability() == pytest.approx(1 - p[0] - p[1], abs=1e-15)


def test_single_mode_thermal_entangled_source_total_pair_law():
    """Two K = 1 processes give P(n) = (n+1) μ^n / (1+μ)^(n+2) in total
    (Ma, Fung & Lo, PRA 76, 012307 (2007), Eq. (1), their λ = our μ)."""
    mu = 0.3
    src = SpdcSource(mean_pair_number=mu)
    total = src.pair_number_distribution(12, entangled=True)
    expected = [(n + 1) * mu**n / (1 + mu) ** (n + 2) for n in range(13)]
    assert np.allclose(total, expected, rtol=1e-12, atol=0)


def test_pair_rate_and_zero_mu():
    src = SpdcSource(mean_pair_number=0.02, repetition_rate_hz=5e8)
    assert src.pair_rate_hz == pytest.approx(1e7)
    zero = SpdcSource(mean_pair_number=0.0)
    assert list(zero.pair_number_distribution(3)) == [1.0, 0.0, 0.0, 0.0]
    assert zero.visibility() == 1.0


# ------------------------------------------------------------------ multi-pair visibility


def _fock_coincidence_moment(mu: float, phi: float, max_pairs: int) -> float:
    """<n_AH n_Bφ> for two single-mode two-mode squeezers (HH and VV), computed on
    a truncated Fock space (total pairs ≤ max_pairs, renormalised).

    Side A keeps mode H (polariser at 0), side B the mode
    b_φ = cos φ b_H + sin φ b_V (polariser at φ). With at most max_pairs
    photons on each side, a cutoff of max_pairs + 1 per mode makes the
    ladder operators exact on the states used.
    """
    d = max_pairs + 1
    c = np.array([math.sqrt(mu**n / (1 + mu) ** (n + 1)) for n in range(d)])
    psi = np.zeros((d, d, d, d))  # axes: a_H, a_V, b_H, b_V
    for nh in range(d):
        for nv in range(d - nh):
            psi[nh, nv, nh, nv] = c[nh] * c[nv]
    psi /= np.linalg.norm(psi)
    lower = np.diag(np.sqrt(np.arange(1, d)), 1)  # annihilation operator, cutoff d
    num = lower.T @ lower
    eye = np.eye(d)
    b_phi = math.cos(phi) * np.kron(lower, eye) + math.sin(phi) * np.kron(eye, lower)
    n_b = b_phi.conj().T @ b_phi  # on (b_H, b_V)
    n_a = np.kron(num, eye)  # n of a_H on (a_H, a_V)
    vec = psi.reshape(d * d, d * d)
    return float(np.trace(vec.T @ n_a @ vec @ n_b.T))


@pytest.mark.parametrize("mu", [0.01, 0.1, 0.4])
def test_single_mode_visibility_matches_fock_space(mu):
    """Closed form V = (1+μ)/(1+3μ) for a single-mode thermal source at low detection
    efficiency (Takesue & Shimizu, Opt. Commun. 283, 276 (2010)) against the
    coincidence moments of a truncated Fock-space state. Truncating at 16
    total pairs leaves out a weight ≤ 17·(μ/(1+μ))^16 < 1e-8 for μ ≤ 0.4,
    so 1e-6 is a safe tolerance."""
    src = SpdcSource(mean_pair_number=mu, statistics="thermal", spectral_purity=1.0)
    c_max = _fock_coincidence_moment(mu, 0.0, 16)
    c_min = _fock_coincidence_moment(mu, math.pi / 2, 16)
    simulated = (c_max - c_min) / (c_max + c_min)
    assert simulated == pytest.approx(src.visibility(), abs=1e-6)
    assert src.visibility() == pytest.approx((1 + mu) / (1 + 3 * mu), abs=1e-12)
    # fringe shape: C(φ) = C_min + (C_max - C_min) cos² φ, checked at φ = π/3
    assert _fock_coincidence_moment(mu, math.pi / 3, 16) == pytest.approx(c_min + (c_max - c_min) * 0.25, rel=1e-6)


def test_poisson_visibility_matches_monte_carlo_of_independent_pairs():
    """V = 1/(1+2μ) for Poisson (many-mode) statistics (Takesue & Shimizu 2010).
    Monte-Carlo: N ~ Poisson(2μ) independent |HH>+|VV> pairs per pulse; the A
    photon passes the 0° polariser with probability 1/2, the B photon then
    passes the φ polariser with cos²φ (H) or sin²φ (V); coincidences at low
    efficiency ∝ E[n_A n_B]. n = 400 000 pulses per angle; the visibility's
    standard error comes from the delta method on the two independent means;
    5 standard errors allowed."""
    mu = 0.25
    rng = np.random.default_rng(2024)
    n = 400_000

    def moment_samples(phi: float) -> np.ndarray:
        pairs = rng.poisson(2 * mu, n)
        h = rng.binomial(pairs, 0.5)  # pairs whose A photon passes (polarisation H)
        n_b = rng.binomial(h, math.cos(phi) ** 2) + rng.binomial(pairs - h, math.sin(phi) ** 2)
        return (h * n_b).astype(float)

    x, y = moment_samples(0.0), moment_samples(math.pi / 2)
    mx, my = x.mean(), y.mean()
    v = (mx - my) / (mx + my)
    grad_x, grad_y = 2 * my / (mx + my) ** 2, -2 * mx / (mx + my) ** 2
    se = math.sqrt(grad_x**2 * x.var() / n + grad_y**2 * y.var() / n)
    src = SpdcSource(mean_pair_number=mu, statistics="poisson")
    assert src.visibility() == pytest.approx(1 / (1 + 2 * mu))
    assert abs(v - src.visibility()) < 5 * se


def test_visibility_interpolates_between_single_mode_and_poisson():
    """More Schmidt modes (lower purity) move the visibility from (1+μ)/(1+3μ) down to 1/(1+2μ)."""
    mu = 0.1
    values = [SpdcSource(mean_pair_number=mu, spectral_purity=p).visibility() for p in (1.0, 0.5, 0.1, 0.01)]
    assert values == sorted(values, reverse=True)
    assert values[0] == pytest.approx((1 + mu) / (1 + 3 * mu))
    assert values[-1] > 1 / (1 + 2 * mu)
    assert spdc_visibility(mu, 1e9) == pytest.approx(1 / (1 + 2 * mu), rel=1e-8)
    with pytest.raises(ValueError, match="mean_pairs_per_mode"):
        spdc_visibility(-0.1, 1.0)


# ------------------------------------------------------------------ emitters


def test_emitter_photon_efficiency_is_the_product_of_its_stages():
    e = EmitterSource(zero_phonon_line_fraction=0.03, collection_efficiency=0.2, excitation_probability=0.5)
    assert e.photon_efficiency() == pytest.approx(0.03 * 0.2 * 0.5)
    assert EmitterSource(zero_phonon_line_fraction=0.0).photon_efficiency() == 0.0


# ------------------------------------------------------------------ weak coherent pulses


def test_weak_coherent_sampling_follows_choice_probabilities_and_poisson_means():
    """n = 200 000 pulses: each intensity is chosen with its probability
    (binomial, 5 standard errors) and its photon numbers have mean μ_i
    (Poisson: standard error sqrt(μ_i / n_i), 5 of them)."""
    src = WeakCoherentSource(intensities=(0.6, 0.15, 0.0), probabilities=(0.7, 0.2, 0.1))
    rng = np.random.default_rng(7)
    n = 200_000
    index, photons = src.sample_many(rng, n)
    for i, (mu, p) in enumerate(zip(src.intensities, src.probabilities)):
        chosen = index == i
        assert abs(chosen.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
        if mu == 0:
            assert photons[chosen].max() == 0
        else:
            assert abs(photons[chosen].mean() - mu) < 5 * math.sqrt(mu / chosen.sum())
    one = src.sample(np.random.default_rng(1))
    assert one[0] in (0, 1, 2) and one[1] >= 0
    assert src.photon_number_probability(0, 2) == pytest.approx(math.exp(-0.6) * 0.36 / 2)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"mean_pair_number": -0.1}, "mean_pair_number"),
        ({"spectral_purity": 0.0}, "spectral_purity"),
        ({"spectral_purity": 1.2}, "spectral_purity"),
        ({"heralding_efficiency": 1.5}, "heralding_efficiency"),
        ({"statistics": "sub-poissonian"}, "statistics"),
        ({"repetition_rate_hz": 0.0}, "repetition_rate_hz"),
    ],
)
def test_spdc_rejects_bad_parameters(kwargs, field):
    with pytest.raises(ValidationError, match=field):
        SpdcSource(**kwargs)


def test_emitter_rejects_efficiencies_outside_unit_interval():
    with pytest.raises(ValidationError, match="zero_phonon_line_fraction"):
        EmitterSource(zero_phonon_line_fraction=1.1)
    with pytest.raises(ValidationError, match="indistinguishability"):
        EmitterSource(indistinguishability=-0.1)


@pytest.mark.parametrize(
    "intensities, probabilities, message",
    [
        ((0.5, 0.1), (0.5, 0.4), "sum to 1"),
        ((0.5, -0.1), (0.5, 0.5), r"intensities\[1\]"),
        ((0.5, 0.1), (1.0,), "differ in length"),
        ((0.5, 0.1), (1.2, -0.2), r"probabilities\[0\]"),
    ],
)
def test_weak_coherent_rejects_bad_choices(intensities, probabilities, message):
    with pytest.raises(ValidationError, match=message):
        WeakCoherentSource(intensities=intensities, probabilities=probabilities)
