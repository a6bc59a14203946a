"""The common heralding-model interface (physical.schemes.model)."""

import math

import numpy as np
import pytest

from qnetstack.physical.params import DetectorParams, FibreParams, NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.model import HeraldingModel, sample_success
from qnetstack.physical.schemes.single_click import SingleClickModel
from qnetstack.physical.service import BellState


def test_single_click_model_matches_the_textbook_closed_form():
    """p = 2αη(1 - αη/2), F = (1-α)/(1 - αη/2) for equal ends and no dark counts
    (Humphreys et al., Nature 558, 268 (2018), Methods; Rozpędek et al.,
    PRA 99, 052330 (2019), Sec. III)."""
    params = SingleClickLinkParams(length_km=20, bright_state_population=0.2, fibre=FibreParams(), detector=DetectorParams(efficiency=0.9))
    hw = NodeHardware(emission_efficiency=0.5)
    model = SingleClickModel(params, hw, hw)
    assert isinstance(model, HeraldingModel)
    alpha, eta = 0.2, 0.5 * 10 ** (-0.2 * 10 / 10) * 0.9
    assert model.success_probability() == pytest.approx(2 * alpha * eta * (1 - alpha * eta / 2), rel=1e-12)
    branches = model.branches()
    assert {b.bell_state for b in branches} == {BellState.PSI_PLUS, BellState.PSI_MINUS}
    for b in branches:
        assert b.fidelity == pytest.approx((1 - alpha) / (1 - alpha * eta / 2), rel=1e-12)
        assert np.trace(b.state).real == pytest.approx(1.0)


def test_sample_success_is_geometric_with_the_success_probability():
    """n = 4000 successes: the mean number of attempts 1/p has standard error
    sqrt(1-p)/p/sqrt(n); the check allows 5 of them. Branch shares: binomial,
    5 standard errors."""
    model = SingleClickModel(SingleClickLinkParams(length_km=10, bright_state_population=0.3))
    p = model.success_probability()
    rng = np.random.default_rng(11)
    n = 4000
    draws = [sample_success(model, rng) for _ in range(n)]
    attempts = np.array([a for a, _ in draws])
    assert attempts.min() >= 1
    se = math.sqrt(1 - p) / p / math.sqrt(n)
    assert abs(attempts.mean() - 1 / p) < 5 * se
    plus = sum(b.bell_state is BellState.PSI_PLUS for _, b in draws)
    assert abs(plus / n - 0.5) < 5 * math.sqrt(0.25 / n)


def test_sample_success_refuses_a_scheme_that_never_succeeds():
    model = SingleClickModel(SingleClickLinkParams(length_km=10, bright_state_population=0.0))
    with pytest.raises(ValueError, match="never heralds"):
        sample_success(model, np.random.default_rng(0))


def test_single_click_attempt_instrument_built_from_the_optics_equals_the_closed_form():
    """The per-attempt instrument (spin–photon states, beam splitter, detectors,
    photons traced out) gives exactly the closed-form branches, with dark counts
    and unequal arms (module docstring of physical.schemes.single_click)."""
    params = SingleClickLinkParams(
        length_km=30, bright_state_population=0.25, detector=DetectorParams(efficiency=0.7, dark_count_probability=0.01)
    )
    model = SingleClickModel(params, NodeHardware(emission_efficiency=0.4), NodeHardware(emission_efficiency=0.9))
    for (weight, bell, state), branch in zip(model._instrument, model.branches(), strict=True):
        assert bell is branch.bell_state
        assert weight == pytest.approx(branch.probability, rel=1e-9)
        assert np.allclose(state, branch.state, atol=1e-10)


def test_single_click_attempt_by_attempt_success_rate_matches_the_model():
    """n = 20000 attempts; success fraction within 5 binomial standard errors."""
    model = SingleClickModel(SingleClickLinkParams(length_km=5, bright_state_population=0.3))
    rng = np.random.default_rng(5)
    n = 20_000
    successes = sum(model.simulate_attempt(rng) is not None for _ in range(n))
    p = model.success_probability()
    assert abs(successes / n - p) < 5 * math.sqrt(p * (1 - p) / n)
