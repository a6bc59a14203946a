"""Single-photon detectors (physical.components.detectors): closed forms against their sources,
and the time-resolved simulator against the closed forms.

Statistical checks use fixed seeds, state their sample size and allow 5
standard errors (a correct model fails such a check with probability < 1e-6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from qnetstack.physical.components.detectors import (
    FWHM_PER_SIGMA,
    INGAAS_APD,
    SNSPD,
    Detector,
    detector_preset,
)
from qnetstack.physical.params import DetectorParams
from qnetstack.physical.schemes.single_click import detector_no_click

# ------------------------------------------------------------------ dark counts


def test_dark_counts_in_fixed_windows_have_poisson_mean_and_variance():
    """Dark counts are a Poisson process (Hadfield, Nature Photonics 3, 696 (2009)),
    so counts in disjoint windows of length τ are i.i.d. Poisson(r·τ): mean =
    variance = λ, and P(≥1) = 1 - e^{-λ}.

    N = 20 000 windows with λ = 1. SE of the mean sqrt(λ/N); SE of the sample
    variance sqrt((μ4 - σ⁴)/N) = sqrt((λ + 2λ²)/N) for a Poisson law
    (μ4 = λ + 3λ²); SE of the fraction with a count sqrt(p(1-p)/N). 5 SE each.
    """
    window_ns, n_windows = 10_000.0, 20_000
    det = Detector(dark_count_rate_hz=1e5)  # λ = 1e5/s × 10 µs = 1
    lam = det.dark_count_mean(window_ns)
    assert lam == pytest.approx(1.0)
    clicks = det.simulate_clicks([], window_ns * n_windows, np.random.default_rng(1))
    counts = np.bincount((clicks // window_ns).astype(int), minlength=n_windows)
    assert counts.size == n_windows
    assert abs(counts.mean() - lam) < 5 * math.sqrt(lam / n_windows)
    assert abs(counts.var(ddof=1) - lam) < 5 * math.sqrt((lam + 2 * lam**2) / n_windows)
    p = det.dark_count_probability(window_ns)
    assert p == pytest.approx(1 - math.exp(-1.0), rel=1e-12)
    assert abs((counts > 0).mean() - p) < 5 * math.sqrt(p * (1 - p) / n_windows)


def test_dead_time_gives_the_non_paralysable_rate():
    """Non-paralysable dead time τ: recorded rate m = n / (1 + nτ) for a Poisson
    input of rate n (Müller, Nucl. Instrum. Methods 112, 47 (1973); Knoll,
    Radiation Detection and Measurement, 4th ed. 2010, §4.VII).

    n = 1e6 /s, τ = 500 ns (nτ = 0.5), T = 0.1 s (~1e5 input events). The
    recorded clicks form a renewal process with interval τ + Exp(n), mean
    μ = τ + 1/n, variance s² = 1/n², so Var(count) ≈ T s²/μ³ (renewal central
    limit theorem, Cox, Renewal Theory, 1962) — a rate SE of ~0.26%.
    5 SE; the paralysable formula n·e^{-nτ} (9% lower) is excluded by the same test.
    """
    rate_hz, dead_ns, duration_ns = 1e6, 500.0, 1e8
    det = Detector(dark_count_rate_hz=rate_hz, dead_time_ns=dead_ns)
    clicks = det.simulate_clicks([], duration_ns, np.random.default_rng(2))
    measured = clicks.size / (duration_ns * 1e-9)
    n, tau, t = rate_hz, dead_ns * 1e-9, duration_ns * 1e-9
    expected = n / (1 + n * tau)
    mu, s2 = tau + 1 / n, 1 / n**2
    se = math.sqrt(t * s2 / mu**3) / t
    assert abs(measured - expected) < 5 * se
    assert abs(measured - n * math.exp(-n * tau)) > 5 * se  # not the paralysable model
    assert np.diff(clicks).min() >= dead_ns


def test_events_inside_the_dead_time_are_lost_and_do_not_extend_it():
    """Non-paralysable: a photon at 30 ns (inside the 40 ns dead time of the click
    at 0) is lost and does not extend the dead time, so one at 45 ns clicks
    (Knoll 2010, §4.VII); a paralysable detector would stay dead until 70 ns."""
    det = Detector(efficiency=1.0, dead_time_ns=40.0)
    clicks = det.simulate_clicks([0.0, 30.0, 45.0, 60.0], 1000.0, np.random.default_rng(0))
    assert clicks.tolist() == [0.0, 45.0]


# ------------------------------------------------------------------ efficiency and jitter


def test_efficiency_thins_the_photons():
    """Each photon is detected with probability η (Kelley & Kleiner, Phys. Rev. 136,
    A316 (1964)). N = 100 000 photons 1 µs apart, η = 0.3: click fraction
    within 5 binomial SE, sqrt(η(1-η)/N) ≈ 0.0014."""
    n, eta = 100_000, 0.3
    det = Detector(efficiency=eta)
    clicks = det.simulate_clicks(np.arange(n) * 1000.0 + 500.0, n * 1000.0, np.random.default_rng(3))
    assert abs(clicks.size / n - eta) < 5 * math.sqrt(eta * (1 - eta) / n)


def test_jitter_spread_matches_the_fwhm():
    """Gaussian jitter with σ = FWHM / (2√(2 ln 2)) ≈ FWHM/2.355, and a Gaussian has
    P(|x| < FWHM/2) = erf(√(ln 2)) ≈ 0.761 (definition of the FWHM).

    N = 20 000 photons, η = 1, FWHM 150 ps (the SNSPD of Marsili et al.,
    Nature Photonics 7, 210 (2013)). SE of the sample standard deviation
    σ/sqrt(2(N-1)); of the mean σ/√N; of the fraction, binomial. 5 SE each.
    """
    n = 20_000
    det = SNSPD.model_copy(update={"efficiency": 1.0, "dark_count_rate_hz": 0.0})
    sigma = 0.150 / 2.3548200450309493
    assert det.jitter_sigma_ns == pytest.approx(sigma, rel=1e-12)
    assert FWHM_PER_SIGMA == pytest.approx(2.3548200450309493, rel=1e-12)
    arrivals = np.arange(n) * 1000.0 + 500.0  # 1 µs apart: far beyond the 40 ns dead time
    clicks = det.simulate_clicks(arrivals, n * 1000.0, np.random.default_rng(4))
    assert clicks.size == n
    offsets = clicks - arrivals
    assert abs(offsets.std(ddof=1) - sigma) < 5 * sigma / math.sqrt(2 * (n - 1))
    assert abs(offsets.mean()) < 5 * sigma / math.sqrt(n)
    inside = (np.abs(offsets) < 0.150 / 2).mean()
    p = math.erf(math.sqrt(math.log(2)))
    assert abs(inside - p) < 5 * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------ click probability


@pytest.mark.parametrize("n_photons", [0, 1, 2])
def test_simulated_click_probability_matches_the_threshold_formula(n_photons):
    """P(click | n) = 1 - (1-p_dc)(1-η)^n with p_dc = 1 - e^{-rτ} (threshold
    detector; the no-click element of Humphreys et al., Nature 558, 268 (2018),
    Methods). N = 20 000 windows of 100 ns, 1 µs apart, n photons at each
    window's centre, r = 1e6/s, dead time 40 ns (shorter than the time from a
    window's start to its photons, so dead time never hides a click the formula
    counts). Binomial SE, 5 SE."""
    n_windows, window_ns, period_ns = 20_000, 100.0, 1000.0
    det = Detector(efficiency=0.6, dark_count_rate_hz=1e6, dead_time_ns=40.0)
    starts = np.arange(n_windows) * period_ns
    arrivals = np.repeat(starts + 50.0, n_photons)
    clicks = det.simulate_clicks(arrivals, n_windows * period_ns, np.random.default_rng(5 + n_photons))
    in_window = clicks[(clicks % period_ns) < window_ns]
    fraction = np.unique((in_window // period_ns).astype(int)).size / n_windows
    p = det.click_probability(n_photons, window_ns)
    assert p == pytest.approx(1 - math.exp(-0.1) * 0.4**n_photons, rel=1e-12)
    assert abs(fraction - p) < 5 * math.sqrt(p * (1 - p) / n_windows)


def test_no_click_probability_is_the_heralding_povm_element():
    """The detector's window model is the one the single-click scheme uses:
    diag((1-p)(1-η)^n) of physical.schemes.single_click.detector_no_click."""
    det = INGAAS_APD
    params = det.to_detector_params(window_ns=1000.0)
    assert isinstance(params, DetectorParams)
    assert params.efficiency == det.efficiency
    assert params.dark_count_probability == pytest.approx(1 - math.exp(-1e3 * 1e-6), rel=1e-12)
    element = detector_no_click(params.efficiency, params.dark_count_probability).full().diagonal().real
    assert element == pytest.approx([det.no_click_probability(n, 1000.0) for n in range(3)], rel=1e-12)


# ------------------------------------------------------------------ photon-number resolution


@pytest.mark.parametrize("n, eta, rate_hz", [(0, 0.5, 0.0), (3, 0.7, 0.0), (5, 0.93, 2e5), (2, 0.2, 3e6)])
def test_pnr_distribution_is_binomial_plus_poisson_dark_counts(n, eta, rate_hz):
    """Binomial(n, η) detected photons (Kelley & Kleiner 1964) plus Poisson(λ) dark
    counts: the vector sums to 1, has mean nη + λ, equals the binomial law
    C(n,k) η^k (1-η)^(n-k) without dark counts, and P(0) is the threshold
    no-click probability (1-p_dc)(1-η)^n."""
    window_ns = 1000.0
    det = Detector(kind="pnr", efficiency=eta, dark_count_rate_hz=rate_hz)
    dist = det.pnr_distribution(n, window_ns)
    lam = rate_hz * window_ns * 1e-9
    assert dist.min() >= 0
    assert dist.sum() == pytest.approx(1.0, abs=1e-12)
    assert (np.arange(dist.size) * dist).sum() == pytest.approx(n * eta + lam, abs=1e-10)
    assert dist[0] == pytest.approx(det.no_click_probability(n, window_ns), rel=1e-12)
    if rate_hz == 0:
        binomial = [math.comb(n, k) * eta**k * (1 - eta) ** (n - k) for k in range(n + 1)]
        assert dist[: n + 1] == pytest.approx(binomial, abs=1e-15)
        assert dist[n + 1 :].sum() == pytest.approx(0.0, abs=1e-15)


def test_pnr_distribution_lumps_the_tail_into_its_last_entry():
    det = Detector(kind="pnr", efficiency=0.5, dark_count_rate_hz=1e6)
    dist = det.pnr_distribution(4, 1000.0, max_count=2)
    full = det.pnr_distribution(4, 1000.0)
    assert dist.size == 3
    assert dist[:2] == pytest.approx(full[:2], rel=1e-12)
    assert dist[2] == pytest.approx(full[2:].sum(), rel=1e-12)


# ------------------------------------------------------------------ after-pulsing


def test_afterpulses_follow_their_click_after_the_dead_time_with_geometric_count():
    """Simplified after-pulsing model (module docstring; Zhang et al., Light Sci.
    Appl. 4, e286 (2015)): each click is followed by another exactly one dead
    time later with probability P, so clicks per detected photon are geometric
    with mean 1/(1-P) and variance P/(1-P)².

    N = 20 000 photons 10 µs apart (a cascade longer than 10 µs / 100 ns = 100
    clicks has probability 0.2^100), η = 1, P = 0.2. 5 SE of the mean."""
    n, dead_ns, p_ap = 20_000, 100.0, 0.2
    det = Detector(efficiency=1.0, dead_time_ns=dead_ns, afterpulse_probability=p_ap)
    arrivals = np.arange(n) * 10_000.0
    clicks = det.simulate_clicks(arrivals, n * 10_000.0, np.random.default_rng(6))
    per_photon = np.bincount((clicks // 10_000.0).astype(int), minlength=n)
    assert per_photon.min() == 1
    assert abs(per_photon.mean() - 1 / (1 - p_ap)) < 5 * math.sqrt(p_ap / (1 - p_ap) ** 2 / n)
    follow = (clicks % 10_000.0)[(clicks % 10_000.0) > 0]
    assert np.allclose(follow / dead_ns, np.round(follow / dead_ns))  # at multiples of the dead time


# ------------------------------------------------------------------ validation and presets


@pytest.mark.parametrize(
    "field, value",
    [
        ("efficiency", 1.5),
        ("efficiency", -0.1),
        ("dark_count_rate_hz", -1.0),
        ("dead_time_ns", -5.0),
        ("jitter_fwhm_ps", -1.0),
        ("afterpulse_probability", 1.0),
        ("kind", "spad"),
    ],
)
def test_bad_detector_parameters_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValidationError) as err:
        Detector(**{field: value})
    assert field in str(err.value)


def test_bad_window_and_photon_number_are_rejected():
    with pytest.raises(ValueError, match="window_ns"):
        SNSPD.dark_count_probability(-1.0)
    with pytest.raises(ValueError, match="n_photons"):
        SNSPD.click_probability(-1, 10.0)
    with pytest.raises(ValueError, match="n_photons"):
        SNSPD.pnr_distribution(1.5, 10.0)


def test_presets_carry_the_cited_figures_and_unknown_names_are_rejected():
    """SNSPD: Marsili et al. 2013 (93%, ~1 cps, ~150 ps, ~40 ns). InGaAs/InP:
    Zhang et al. 2015 (10-30%, 1e2-1e4 cps, µs dead time, a few % after-pulsing)."""
    assert detector_preset("SNSPD") is SNSPD
    assert detector_preset("ingaas_apd") is INGAAS_APD
    assert (SNSPD.efficiency, SNSPD.jitter_fwhm_ps, SNSPD.dead_time_ns) == (0.93, 150.0, 40.0)
    assert 0.1 <= INGAAS_APD.efficiency <= 0.3
    assert 1e2 <= INGAAS_APD.dark_count_rate_hz <= 1e4
    assert INGAAS_APD.dead_time_ns >= 1_000.0 and 0 < INGAAS_APD.afterpulse_probability < 0.1
    with pytest.raises(ValidationError, match="snspd.*ingaas_apd"):
        detector_preset("pmt")
