"""Finite-key settings optimisation (qkd.settings): decoy BB84 after Lim et al. (2014), BBM92's sample fraction.

The optimiser must find settings at least as good as the fixed defaults and as
every point of a coarse grid of its own box (a grid other than the one it
starts from), give the same answer twice, and its length per pulse must rise
with N towards the N → ∞ rate, never above it (Lim et al. 2014, Fig. 1). The
channel is the illustrative receiver of tests/test_qkd_key_length.py at 25 km.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qnetstack.application.qkd.key_length import FibreDetectorModel, decoy_bb84_rate_limit
from qnetstack.application.qkd.settings import (
    _BOUNDS,
    DEFAULT_DECOY_SETTINGS,
    _settings,
    decoy_key_length,
    entanglement_key_length,
    optimise_decoy_bb84,
    optimise_sample_fraction,
)

RECEIVER = FibreDetectorModel(attenuation_db_per_km=0.2, bob_efficiency=0.1, dark_yield=6e-7, detector_error=0.005, ec_efficiency=1.16)
KM = 25.0


def test_decoy_optimum_beats_the_defaults_and_every_point_of_a_coarse_grid():
    pulses = 1e8
    best = optimise_decoy_bb84(RECEIVER, KM, pulses)
    assert best.length == decoy_key_length(RECEIVER, KM, pulses, best.settings)  # the length is the bound at the settings returned
    assert best.length >= decoy_key_length(RECEIVER, KM, pulses, DEFAULT_DECOY_SETTINGS) > 0
    levels = [np.linspace(low, high, 4) for low, high in _BOUNDS]  # 4 levels, box edges included: 1024 points
    grid_best = max(decoy_key_length(RECEIVER, KM, pulses, _settings(x, 0.0)) for x in itertools.product(*levels))
    assert best.length >= grid_best
    mu, p = best.settings.intensities, best.settings.probabilities
    assert mu[0] > mu[1] + mu[2] and mu[1] > mu[2] >= 0 and abs(sum(p) - 1) < 1e-12


@pytest.mark.slow
def test_decoy_length_per_pulse_grows_towards_the_asymptotic_rate():
    """N = 1e6 ... 1e10: the optimised l/N never falls, stays below the N → ∞ rate at its own settings
    (the finite-key terms only subtract), and at 1e10 is within 20 % of it; the search is deterministic."""
    sizes = [10.0**e for e in range(6, 11)]
    found = [optimise_decoy_bb84(RECEIVER, KM, n) for n in sizes]
    rates = [f.per_pulse for f in found]
    assert all(a <= b for a, b in zip(rates, rates[1:])), rates
    for f in found:
        s = f.settings
        assert f.per_pulse < decoy_bb84_rate_limit(RECEIVER, KM, s.intensities, s.probabilities, s.key_basis_probability)
    s = found[-1].settings
    assert rates[-1] >= 0.8 * decoy_bb84_rate_limit(RECEIVER, KM, s.intensities, s.probabilities, s.key_basis_probability)
    assert optimise_decoy_bb84(RECEIVER, KM, sizes[2]) == found[2]


@pytest.mark.parametrize("sifted, qber", [(10_000, 0.02), (100_000, 0.01), (2_000, 0.015)])
def test_bbm92_sample_fraction_beats_the_default_and_a_grid(sifted, qber):
    best = optimise_sample_fraction(sifted, qber)
    assert best.length == entanglement_key_length(sifted, best.sample_fraction, qber, 1.1, 5e-11, 5e-11)
    assert best.length >= entanglement_key_length(sifted, 0.2, qber, 1.1, 5e-11, 5e-11)  # the request's default fraction
    grid = np.linspace(0.01, 0.95, 95)
    assert best.length >= max(entanglement_key_length(sifted, f, qber, 1.1, 5e-11, 5e-11) for f in grid)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: optimise_sample_fraction(1000, 0.6), "qber"),
        (lambda: optimise_decoy_bb84(RECEIVER, KM, -1.0), "pulses"),
        (lambda: optimise_decoy_bb84(RECEIVER, KM, 1e8, mu3=0.5), "mu3"),
    ],
)
def test_bad_input_is_refused_naming_the_field(call, field):
    with pytest.raises(ValueError, match=field):
        call()
