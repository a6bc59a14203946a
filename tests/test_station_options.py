"""Station options of heralded links (physical.params.DetectorParams, the single-click
and Barrett–Kok closed forms, the scenario's link fields).

* Barrett–Kok with dark counts, threshold vs photon-number-resolving (PNR)
  detectors: rate and fidelity of an attempt-by-attempt trajectory simulation
  against each kind's closed form.
* Single-click with interferometer phase noise σ (and photon visibility V):
  mean fidelity of simulated attempts against the dephasing closed form.
* The closed forms equal the independent Fock-space / QuTiP instruments exactly.
* Gate and jitter: the windowed efficiency against the time-resolved detector.
* Every new field refuses bad values with one line naming it.

Statistical checks state their sample size and allow 5 standard errors: for a
mean of n independent draws a deviation beyond 5 SE has probability < 1e-6
under the model, so a failure means a wrong formula, not bad luck, and the
seeds are fixed anyway.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from qnetstack.physical.components.detectors import Detector
from qnetstack.physical.params import DetectorParams, FibreParams, NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.barrett_kok import CLICK_PATTERNS, BarrettKokLinkParams, BarrettKokModel
from qnetstack.physical.schemes.model import branch_fidelity
from qnetstack.physical.schemes.single_click import SingleClickModel, detector_one_event
from qnetstack.stack import ScenarioError, parse_scenario
from qnetstack.stack.assembler import default_physical

# ------------------------------------------------------------------ Barrett–Kok: PNR vs threshold with dark counts

# A short link with good optics and a high dark-count probability (0.1 per
# window), so that the two kinds of detector differ by many standard errors:
# threshold p_succ 0.357, F 0.714; PNR p_succ 0.252, F 0.820.
BK_DARK = 0.1


def bk_model(kind: str, p_dc: float = BK_DARK, visibility: float = 0.9) -> BarrettKokModel:
    params = BarrettKokLinkParams(
        length_km=1.0,
        detector=DetectorParams(efficiency=0.9, dark_count_probability=p_dc, kind=kind),
        two_photon_visibility=visibility,
    )
    node = NodeHardware(emission_efficiency=0.9)
    return BarrettKokModel(params, node, node)


@pytest.mark.parametrize("kind", ["threshold", "pnr"])
def test_barrett_kok_trajectories_match_the_closed_form_of_their_detector_kind(kind):
    # 12,000 attempts: rate SE ≈ 0.004; about 3,000 (PNR) to 4,300 (threshold)
    # heralds with a per-herald fidelity spread of 0.34-0.41, so fidelity SE ≈
    # 0.0063; the kinds differ by 0.104 in rate (> 20 SE) and 0.106 in fidelity
    # (> 15 SE), so the check against the other kind's closed form must fail.
    n = 12_000
    model = bk_model(kind)
    other = bk_model("pnr" if kind == "threshold" else "threshold")
    rng = np.random.default_rng(15_04)
    fidelities = []
    for _ in range(n):
        outcome = model.sample_trajectory(rng)
        if outcome is not None:
            bell, state = outcome
            fidelities.append(branch_fidelity(state, bell))
    f = np.array(fidelities)
    rate = f.size / n
    rate_se = math.sqrt(rate * (1 - rate) / n)
    fid_se = f.std(ddof=1) / math.sqrt(f.size)
    assert abs(rate - model.success_probability()) < 5 * rate_se
    assert abs(f.mean() - model.branches()[0].fidelity) < 5 * fid_se
    # the same measurement tells the two detector kinds apart
    assert abs(rate - other.success_probability()) > 5 * rate_se
    assert abs(f.mean() - other.branches()[0].fidelity) > 5 * fid_se


@pytest.mark.parametrize("kind", ["threshold", "pnr"])
@pytest.mark.parametrize("p_dc, visibility", [(0.0, 0.9), (0.02, 0.75), (0.3, 1.0)])
def test_barrett_kok_closed_form_equals_the_fock_space_instrument(kind, p_dc, visibility):
    model = bk_model(kind, p_dc, visibility)
    for pattern, branch in zip(CLICK_PATTERNS, model.branches(), strict=True):
        simulated = model.pattern_branch(pattern)
        assert simulated.probability == pytest.approx(branch.probability, rel=1e-12)
        np.testing.assert_allclose(simulated.state, branch.state, atol=1e-12)


@pytest.mark.parametrize("visibility", [0.6, 1.0])
def test_barrett_kok_pnr_changes_nothing_without_dark_counts(visibility):
    threshold, pnr = bk_model("threshold", 0.0, visibility), bk_model("pnr", 0.0, visibility)
    assert pnr.success_probability() == pytest.approx(threshold.success_probability(), rel=1e-12)
    assert pnr.branches()[0].fidelity == pytest.approx((1 + visibility) / 2, rel=1e-12)


def test_barrett_kok_pnr_trades_rate_for_fidelity_with_dark_counts():
    threshold, pnr = bk_model("threshold"), bk_model("pnr")
    assert pnr.success_probability() < threshold.success_probability()
    assert pnr.branches()[0].fidelity > threshold.branches()[0].fidelity


# ------------------------------------------------------------------ single-click: phase noise and visibility


def sc_model(sigma: float, visibility: float = 1.0, kind: str = "threshold", p_dc: float = 0.0, alpha: float = 0.2) -> SingleClickModel:
    params = SingleClickLinkParams(
        length_km=2.0,
        detector=DetectorParams(efficiency=0.9, dark_count_probability=p_dc, kind=kind),
        bright_state_population=alpha,
        two_photon_visibility=visibility,
        phase_noise_rad=sigma,
    )
    return SingleClickModel(params)


@pytest.mark.parametrize("visibility", [1.0, 0.85])
def test_single_click_phase_noise_fidelity_matches_the_dephasing_closed_form(visibility):
    # 20,000 attempts at p_succ ≈ 0.24: about 4,700 heralds, each with its own
    # phase φ ~ N(0, 0.6²); per-herald fidelity spread ≈ 0.09, so SE ≈ 0.0013.
    # Without the exp(-σ²/2) factor the closed form is 0.065-0.07 higher (> 40 SE).
    sigma, n = 0.6, 20_000
    model = sc_model(sigma, visibility)
    rng = np.random.default_rng(2018)
    fidelities = [branch_fidelity(b.state, b.bell_state) for b in (model.simulate_attempt(rng) for _ in range(n)) if b is not None]
    f = np.array(fidelities)
    se = f.std(ddof=1) / math.sqrt(f.size)
    rate = f.size / n
    assert abs(rate - model.success_probability()) < 5 * math.sqrt(rate * (1 - rate) / n)
    assert abs(f.mean() - model.branches()[0].fidelity) < 5 * se
    assert abs(f.mean() - sc_model(0.0, visibility).branches()[0].fidelity) > 5 * se


def test_single_click_dephasing_law_in_the_small_alpha_limit():
    # F = (1-α)(1 + √V e^{-σ²/2}) / (2 - αη(3-V)/2) for equal ends and p = 0 (module docstring)
    for sigma, visibility in [(0.0, 1.0), (0.5, 1.0), (1.0, 0.8)]:
        model = sc_model(sigma, visibility, alpha=0.05)
        eta = model._etas()[0]
        c = math.sqrt(visibility) * math.exp(-(sigma**2) / 2)
        expected = (1 - 0.05) * (1 + c) / (2 - 0.05 * eta * (3 - visibility) / 2)
        assert model.branches()[0].fidelity == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kind", ["threshold", "pnr"])
@pytest.mark.parametrize("visibility, p_dc", [(1.0, 0.0), (1.0, 0.05), (0.7, 0.05)])
def test_single_click_closed_form_equals_the_optics(kind, visibility, p_dc):
    # V = 1: the QuTiP operator model (PNR POVM included); V < 1: the Fock-space round with internal modes
    model = sc_model(0.0, visibility, kind, p_dc, alpha=0.3)
    for branch, (weight, bell, state) in zip(model.branches(), model._instrument, strict=True):
        assert bell is branch.bell_state
        assert weight == pytest.approx(branch.probability, rel=1e-12)
        np.testing.assert_allclose(state, branch.state, atol=1e-12)


def test_single_click_pnr_rejects_two_photons_in_one_detector():
    # both ends bright (α = 1), no dark counts: only |11> emits. Threshold detectors herald
    # when one photon is lost (η(1-η) per end) or the pair bunches into one detector
    # (η², V = 1); PNR detectors only in the first case: p_succ differs by η².
    threshold, pnr = (sc_model(0.0, 1.0, kind, 0.0, alpha=1.0) for kind in ("threshold", "pnr"))
    eta = threshold._etas()[0]
    assert pnr.success_probability() == pytest.approx(2 * eta * (1 - eta), rel=1e-12)
    assert threshold.success_probability() == pytest.approx(2 * eta * (1 - eta) + eta**2, rel=1e-12)


# ------------------------------------------------------------------ detector models agree with each other


@pytest.mark.parametrize("n_photons", [0, 1, 2])
def test_pnr_one_event_element_matches_the_detector_distribution(n_photons):
    rate_hz, window_ns, eta = 2e6, 50.0, 0.7
    detector = Detector(kind="pnr", efficiency=eta, dark_count_rate_hz=rate_hz)
    p_dc = detector.dark_count_probability(window_ns)
    element = detector_one_event(eta, p_dc).full().real
    assert element[n_photons, n_photons] == pytest.approx(detector.pnr_distribution(n_photons, window_ns)[1], rel=1e-12)


def test_jitter_windowed_efficiency_matches_the_time_resolved_detector():
    # 200,000 photons at the gate's centre, σ = 0.2 ns, gate 0.4 ns: P(in gate) = η erf(1/√2) ≈ 0.546;
    # binomial SE ≈ 0.0011.
    fwhm_ps, gate_ns, eta, n = 0.2e3 * 2.3548200450309493, 0.4, 0.8, 200_000
    params = DetectorParams(efficiency=eta, jitter_fwhm_ps=fwhm_ps, gate_ns=gate_ns)
    detector = Detector(efficiency=eta, jitter_fwhm_ps=fwhm_ps)
    clicks = detector.simulate_clicks(np.full(n, 5.0), 10.0, np.random.default_rng(7))
    fraction = np.count_nonzero(np.abs(clicks - 5.0) <= gate_ns / 2) / n
    expected = params.windowed_efficiency()
    assert expected == pytest.approx(eta * math.erf(1 / math.sqrt(2)), rel=1e-6)
    assert abs(fraction - expected) < 5 * math.sqrt(expected * (1 - expected) / n)


def test_jitter_lowers_the_heralding_rate_through_the_efficiency():
    plain = bk_model("threshold", 0.0)
    gated = BarrettKokModel(
        plain.params.replace(detector=plain.params.detector.replace(jitter_fwhm_ps=500.0, gate_ns=0.3)), plain.hardware_a, plain.hardware_b
    )
    ratio = gated.params.detector.windowed_efficiency() / plain.params.detector.efficiency
    assert 0.0 < ratio < 1.0
    assert gated.success_probability() == pytest.approx(plain.success_probability() * ratio**2, rel=1e-12)  # η_A η_B / 2


# ------------------------------------------------------------------ the scenario: fields, errors, backend choice

NODES = [{"name": "a"}, {"name": "b"}]


def scenario(**link):
    return parse_scenario({"nodes": NODES, "links": [{"a": "a", "b": "b", "length_km": 2.0, **link}]})


def test_station_options_reach_the_scheme_parameters():
    sc = scenario(detector={"kind": "pnr", "dark_count_probability": 0.01}, two_photon_visibility=0.8, phase_noise_rad=0.3)
    params = sc.links[0].physics()
    assert isinstance(params, SingleClickLinkParams)
    assert (params.detector.kind, params.two_photon_visibility, params.phase_noise_rad) == ("pnr", 0.8, 0.3)
    assert default_physical(sc) == "model-heralding"
    assert default_physical(scenario()) == "qutip-single-click"
    bk = scenario(scheme="barrett-kok", two_photon_visibility=0.7).links[0].physics()
    assert bk.two_photon_visibility == 0.7
    ms = scenario(scheme="midpoint-source", two_photon_visibility=0.7).links[0].physics()
    assert ms.photon_indistinguishability == 0.7
    # the existing spelling stays valid
    assert scenario(scheme="barrett-kok", scheme_params={"two_photon_visibility": 0.6}).links[0].physics().two_photon_visibility == 0.6


@pytest.mark.parametrize(
    "link, field",
    [
        ({"detector": {"kind": "pnrr"}}, "links.0.detector.kind"),
        ({"detector": {"gate_ns": 0.0}}, "links.0.detector.gate_ns"),
        ({"detector": {"jitter_fwhm_ps": -1.0}}, "links.0.detector.jitter_fwhm_ps"),
        ({"detector": {"dead_time_ns": -1.0}}, "links.0.detector.dead_time_ns"),
        ({"detector": {"dead_time_ns": 1e6}}, "links.0.detector.dead_time_ns"),
        ({"detector": {"dead_time_ns": 9000.0, "gate_ns": 1000.0}}, "links.0.detector.dead_time_ns"),
        ({"detector": {"afterpulse_probability": 1.0}}, "links.0.detector.afterpulse_probability"),
        ({"detector": {"afterpulse_probability": 0.01}}, "links.0.detector.afterpulse_probability"),
        ({"two_photon_visibility": 1.5}, "links.0.two_photon_visibility"),
        ({"two_photon_visibility": "high"}, "links.0.two_photon_visibility"),
        ({"phase_noise_rad": -0.1}, "links.0.phase_noise_rad"),
        ({"phase_noise_rad": float("inf")}, "links.0.phase_noise_rad"),
        ({"scheme": "barrett-kok", "phase_noise_rad": 0.2}, "links.0.phase_noise_rad"),
        ({"scheme": "midpoint-source", "detector": {"kind": "pnr"}}, "links.0.detector.kind"),
        (
            {"scheme": "barrett-kok", "two_photon_visibility": 0.8, "scheme_params": {"two_photon_visibility": 0.9}},
            "links.0.scheme_params",
        ),
    ],
)
def test_bad_station_options_are_one_line_errors_naming_the_field(link, field):
    with pytest.raises(ScenarioError) as info:
        scenario(**link)
    assert info.value.field == field
    assert "\n" not in str(info.value)


def test_qutip_backend_refuses_station_options_it_does_not_run():
    from qnetstack.physical.backends.qutip_backend import _require_single_click

    params = SingleClickLinkParams(length_km=2.0, fibre=FibreParams(), phase_noise_rad=0.1)
    with pytest.raises(ValueError, match="phase_noise_rad"):
        _require_single_click(params, "link a-b")


@pytest.mark.parametrize("kind", ["threshold", "pnr"])
def test_a_scenario_runs_barrett_kok_with_its_detector_kind(kind):
    # 300 pairs over a run of the whole stack (model-heralding backend): the link's measured
    # success probability (about 900-1,250 attempts, SE ≈ 0.013-0.016) against the closed form
    # of the detector kind; memories without decoherence, so each pair's oracle fidelity is
    # the post-herald state's.
    from qnetstack.stack import assemble

    hardware = {"emission_efficiency": 0.9, "memory": {"t2_ns": None}}
    sc = parse_scenario(
        {
            "seed": 3,
            "nodes": [{"name": "a", "hardware": hardware}, {"name": "b", "hardware": hardware}],
            "links": [
                {
                    "a": "a",
                    "b": "b",
                    "length_km": 1.0,
                    "scheme": "barrett-kok",
                    "two_photon_visibility": 0.9,
                    "detector": {"efficiency": 0.9, "dark_count_probability": BK_DARK, "kind": kind},
                }
            ],
            "applications": [{"node": "a", "request": {"kind": "pairs", "remote_node": "b", "number": 300}}],
        }
    )
    result = assemble(sc).run()
    model = bk_model(kind)
    assert result.status == "done"
    link = result.links[0]
    assert link.success_probability is not None and link.success_probability_stderr is not None
    assert abs(link.success_probability - model.success_probability()) < 5 * link.success_probability_stderr
    assert result.pairs is not None
    assert result.pairs.mean_oracle_fidelity == pytest.approx(model.branches()[0].fidelity, abs=1e-9)


# ------------------------------------------------------------------ the conformance clause (PHY-HERALD-10)


def _plain(params):
    """The link's parameters with every station option back at its default."""
    return params.replace(detector=params.detector.replace(kind="threshold"), two_photon_visibility=1.0, phase_noise_rad=0.0)


@pytest.mark.conformance
def test_the_station_options_clause_passes_a_backend_that_refuses_them_and_fails_one_that_ignores_them():
    # the model backend, which runs them, passes it in test_heralding_backend's whole-suite run
    from qnetstack.physical.backends.heralding_backend import HeraldingModelBackend
    from qnetstack.physical.backends.qutip_backend import QutipSingleClickBackend
    from qnetstack.physical.conformance.suite import SUITE

    class IgnoresStationOptions(HeraldingModelBackend):
        def node_entity(self, ctx, hardware, links):
            return super().node_entity(ctx, hardware, {nb: side.replace(params=_plain(side.params)) for nb, side in links.items()})

        def station_entity(self, ctx, ends, params, hardware):
            return super().station_entity(ctx, ends, _plain(params), hardware)

    for impl, verdict in ((QutipSingleClickBackend, "pass"), (IgnoresStationOptions, "fail")):
        report = SUITE.run(impl, select={"PHY-HERALD-10"})
        assert [c.status for c in report.clauses] == [verdict], report.to_text()
