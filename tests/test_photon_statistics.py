"""Photon statistics in the run report (physical.backends.photon_counts, stack.report):
the closed forms of physical.schemes.midpoint_source_clicks against the scheme's own
law of click patterns, the counter against that law, and a seeded run of an SPDC
midpoint-source link through the stack against the thermal and Poisson closed forms.

Statistical checks state their sample size and allow 5 standard errors (a
two-sided normal tail of 6e-7 per figure, so the few dozen figures checked here
fail by chance with probability below 1e-4).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from qnetstack.physical.backends import photon_counts
from qnetstack.physical.backends.photon_counts import MidpointPatternCounter
from qnetstack.physical.components.sources import SpdcSource
from qnetstack.physical.params import DetectorParams, NodeHardware
from qnetstack.physical.schemes.midpoint_source import DETECTORS, MidpointSourceLinkParams, MidpointSourceModel
from qnetstack.physical.schemes.midpoint_source_clicks import midpoint_click_probabilities
from qnetstack.stack.assembler import assemble
from qnetstack.stack.report import RunResult, StationPhotonStats, photon_stats
from qnetstack.stack.scenario import parse_scenario

SIGMAS = 5
EMISSION = 0.75


def link_params(mu: float, statistics: str = "thermal", p_dc: float = 1e-4, visibility: float = 0.9) -> MidpointSourceLinkParams:
    return MidpointSourceLinkParams(
        length_km=1.0,
        detector=DetectorParams(efficiency=0.8, dark_count_probability=p_dc),
        source=SpdcSource(mean_pair_number=mu, statistics=statistics),
        photon_indistinguishability=visibility,
    )


def law_figures(model: MidpointSourceModel) -> dict[str, float]:
    """The figures of node A from the model's joint law of click patterns, given that the
    pattern is resolved (N ≤ 2 pairs), as a run measures them."""
    joint = model.joint_pattern_probabilities()
    joint = joint / joint.sum()
    masks = np.arange(16)

    def clicks(detector: str) -> np.ndarray:
        return (masks >> DETECTORS.index(detector)) & 1 == 1

    node_a, node_b = joint.sum(axis=1), joint.sum(axis=0)
    parallel = node_a[0b0101] + node_a[0b1010]  # {cH, dH}, {cV, dV}
    crossed = node_a[0b1001] + node_a[0b0110]  # {cH, dV}, {cV, dH}
    arm = float(node_a[clicks("cH") & clicks("dH")].sum())
    click = float(node_a[clicks("cH")].sum())
    return {
        "click": click,
        "arm": arm,
        "g2": arm / click**2,
        "end_a": float(node_a[1:].sum()),
        "end_b": float(node_b[1:].sum()),
        "coincidence": float(joint[1:, 1:].sum()),
        "hom": 1 - parallel / crossed,
    }


# ------------------------------------------------------------------ closed forms vs the model


@pytest.mark.parametrize("mu, statistics", [(0.01, "thermal"), (0.05, "thermal"), (0.01, "poisson"), (0.05, "poisson")])
def test_closed_forms_match_the_models_law_of_clicks(mu, statistics):
    """The pgf closed forms against the model's Fock-space law of click patterns. The model
    keeps N ≤ 2 pairs: renormalising over that mass moves a probability by at most
    ε/(1-ε) (ε the truncated mass); for Poisson its two-pair term is an approximation
    (single Schmidt mode), so the bound also allows the whole two-pair weight P(2)."""
    hardware = NodeHardware(emission_efficiency=EMISSION)
    params = link_params(mu, statistics)
    model = MidpointSourceModel(params, hardware, hardware)
    law = law_figures(model)
    closed = midpoint_click_probabilities(params, hardware, hardware)
    eps = model.truncation_error()
    bound = eps / (1 - eps) + (0.0 if statistics == "thermal" else float(model.pair_probabilities()[2]))
    assert abs(closed.detector_click[0] - law["click"]) <= bound
    assert abs(closed.end_click[0] - law["end_a"]) <= bound
    assert abs(closed.end_click[1] - law["end_b"]) <= bound
    assert abs(closed.coincidence - law["coincidence"]) <= bound
    assert abs(closed.arm_coincidence[0] - law["arm"]) <= bound
    if (mu, statistics) == (0.01, "thermal"):  # here the bound is tight enough to test the HOM term of one click
        assert bound < 0.05 * closed.arm_coincidence[0]
        assert bound < 0.02 * abs(closed.detector_click[0] - _without_interference(params, hardware))


def _without_interference(params: MidpointSourceLinkParams, hardware: NodeHardware) -> float:
    """A detector's click probability with the memory photon made distinguishable (V = 0)."""
    return midpoint_click_probabilities(params.model_copy(update={"photon_indistinguishability": 0.0}), hardware, hardware).detector_click[
        0
    ]


def test_source_arm_g2_is_one_plus_one_over_k():
    """A source arm alone (memory photons off, no dark counts) at low μη: the closed form's
    g2(0) tends to 1 + 1/K (2 single-mode thermal, 1.5 for K = 2, 1 Poisson; Christ et
    al., NJP 13, 033027 (2011)); the single-mode model agrees with its thermal value to
    O(μ) (its truncation)."""
    off = NodeHardware(emission_efficiency=0.0)
    expected = {("thermal", 1.0): 2.0, ("thermal", 0.5): 1.5, ("poisson", 1.0): 1.0}
    for (statistics, purity), g2 in expected.items():
        params = link_params(1e-3, statistics, p_dc=0.0).model_copy(
            update={"source": SpdcSource(mean_pair_number=1e-3, statistics=statistics, spectral_purity=purity)}
        )
        closed = midpoint_click_probabilities(params, off, off)
        assert closed.g2[0] == pytest.approx(g2, rel=2e-3)
    thermal = link_params(1e-3, "thermal", p_dc=0.0)
    assert law_figures(MidpointSourceModel(thermal, off, off))["g2"] == pytest.approx(2.0, rel=1e-2)


def test_hom_visibility_of_the_model_tends_to_v():
    """With rare pairs, no dark counts and bright memories the two-click events at a node are
    one memory and one source photon, so 1 - N_parallel/N_crossed tends to the
    memory–source overlap V (Hong, Ou & Mandel 1987); more pairs lower it."""
    hardware = NodeHardware(emission_efficiency=1.0)
    for v in (0.5, 0.9, 1.0):
        law = law_figures(MidpointSourceModel(link_params(1e-4, p_dc=0.0, visibility=v), hardware, hardware))
        assert law["hom"] == pytest.approx(v, abs=2e-3)
    lower = law_figures(MidpointSourceModel(link_params(0.05, p_dc=0.0, visibility=0.9), hardware, hardware))
    assert lower["hom"] < 0.9 - 0.01


# ------------------------------------------------------------------ the counter and the estimators


def drive(counter: MidpointPatternCounter, model: MidpointSourceModel, attempts: int, seed: int) -> None:
    """Attempts one by one as the model station draws them: one uniform per attempt against
    the branches' cumulative probabilities, failure beyond them."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum([b.probability for b in model.branches()])
    draws = np.searchsorted(cumulative, rng.random(attempts), side="right")
    for index in draws:
        counter.record(1, int(index) if index < len(cumulative) else None, 1)


def test_counter_measures_the_models_arm_g2_thermal_and_poisson():
    """Memory photons off, μ = 0.05, 200,000 attempts drawn like the station's: the arm g2(0)
    the counter measures matches the model's law (thermal ≈ 1.73, Poisson ≈ 1.24: the
    model's two-pair cutoff and single-mode two-pair term, see midpoint_source_clicks)
    within 5 delta-method s.e. (about 0.2 here)."""
    off = NodeHardware(emission_efficiency=0.0)
    for statistics in ("thermal", "poisson"):
        model = MidpointSourceModel(link_params(0.05, statistics, p_dc=0.0), off, off)
        counter = MidpointPatternCounter(model, lambda: np.random.default_rng(7))
        drive(counter, model, 200_000, seed=3)
        stats = photon_stats(counter.counts("s", "a-b", ("a", "b"), 200_000, 0))
        law = law_figures(model)
        for arm in ("a.H", "a.V", "b.H", "b.V"):
            estimate = stats.g2[arm]
            assert estimate.stderr is not None and estimate.stderr < 0.3
            assert abs(estimate.value - law["g2"]) <= SIGMAS * estimate.stderr, (statistics, arm, estimate, law["g2"])


def test_g2_standard_error_matches_its_spread():
    """The delta-method s.e. of g2(0) against the spread of 400 independent estimates from
    n = 20,000 attempts each (a sample s.d. of 400 draws is within ±18% of the true one
    at 5 of its own standard errors, 5/sqrt(2·400))."""
    rng = np.random.default_rng(11)
    n = 20_000
    # per attempt: (no click, c only, d only, both), bunched like a thermal arm
    cells = np.array([0.9, 0.045, 0.045, 0.01])
    estimates, stderrs = [], []
    for draw in rng.multinomial(n, cells, size=400):
        c, d, both = draw[1] + draw[3], draw[2] + draw[3], draw[3]
        counts = {"c": c, "d": d, "both": both}
        estimate = _g2_of(counts, n)
        estimates.append(estimate.value)
        stderrs.append(estimate.stderr)
    spread = float(np.std(estimates, ddof=1))
    assert float(np.median(stderrs)) == pytest.approx(spread, rel=0.18)


def _g2_of(counts: dict[str, int], n: int):
    from qnetstack.stack.report import _g2

    return _g2(counts["both"], counts["c"], counts["d"], n)


# ------------------------------------------------------------------ through the stack


def scenario(mu: float, statistics: str, pairs: int, link: str = "single-click-egp", seed: int = 3):
    node = {"memory": {"num_qubits": 2}, "emission_efficiency": EMISSION}
    return parse_scenario(
        {
            "name": f"spdc-{statistics}",
            "seed": seed,
            "nodes": [{"name": "alice", "hardware": node}, {"name": "bob", "hardware": node}],
            "links": [
                {
                    "a": "alice",
                    "b": "bob",
                    "length_km": 1.0,
                    "scheme": "midpoint-source",
                    "detector": {"efficiency": 0.8, "dark_count_probability": 1e-4},
                    "scheme_params": {"source": {"mean_pair_number": mu, "statistics": statistics}},
                }
            ],
            "implementations": {"physical": "model-heralding", "link": link},
            "applications": [{"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": pairs}}],
        }
    )


def run_stats(mu: float, statistics: str, pairs: int, link: str = "single-click-egp") -> tuple[RunResult, StationPhotonStats]:
    result = assemble(scenario(mu, statistics, pairs, link)).run()
    assert result.status == "done"
    (stats,) = result.photon_statistics
    return result, stats


def within(estimate, expected: float, what: str) -> None:
    assert estimate.stderr is not None and estimate.stderr > 0, what
    assert abs(estimate.value - expected) <= SIGMAS * estimate.stderr, (what, estimate, expected)


@pytest.mark.slow
@pytest.mark.parametrize("statistics", ["thermal", "poisson"])
def test_spdc_click_statistics_through_the_stack_match_closed_forms(statistics):
    """Scenario → run → report, seeded: an SPDC midpoint source (μ = 0.05 per process, 1 km,
    memories emitting with 0.75, detectors 0.8 with dark-count probability 1e-4), pairs
    made attempt by attempt until 60 are delivered (n ≈ 17,000 attempts, stated by the
    report as ``trials``). Every detector's click probability, each node's, the
    coincidence and accidental probabilities and both Klyshko efficiencies agree with the
    source's thermal or Poisson closed forms within 5 binomial s.e. (s.e. ≈ 0.003, while
    the model's truncation moves them by < 5e-4). For the thermal source the arm g2(0)
    agrees with its closed form within 5 delta-method s.e.; for Poisson the model's
    two-pair term is not the Poisson one (module docstring of midpoint_source_clicks), so
    g2 is checked against the model's law instead, and so is the HOM visibility."""
    result, stats = run_stats(0.05, statistics, 60)
    assert stats.trials > 10_000 and stats.fast_forwarded_attempts == 0
    assert stats.observed_attempts == result.links[0].attempts == stats.attempts
    node = NodeHardware(emission_efficiency=EMISSION)
    params = link_params(0.05, statistics)
    closed = midpoint_click_probabilities(params, node, node)
    law = law_figures(MidpointSourceModel(params, node, node))
    assert len(stats.detectors) == 8
    for d in stats.detectors:
        index = 0 if d.detector.startswith("alice.") else 1
        within(d.probability, closed.detector_click[index], d.detector)
    within(stats.end_click["alice"], closed.end_click[0], "click at alice")
    within(stats.end_click["bob"], closed.end_click[1], "click at bob")
    assert stats.coincidence is not None and stats.accidental is not None
    within(stats.coincidence, closed.coincidence, "coincidence")
    within(stats.accidental, closed.accidental, "accidental")
    within(stats.heralding_efficiency["alice"], closed.heralding_efficiency[0], "heralding efficiency alice")
    within(stats.heralding_efficiency["bob"], closed.heralding_efficiency[1], "heralding efficiency bob")
    g2_expected = closed.g2[0] if statistics == "thermal" else law["g2"]
    for arm, estimate in stats.g2.items():
        within(estimate, g2_expected, f"g2 {arm}")
    for end, estimate in stats.hom_visibility.items():
        within(estimate, law["hom"], f"HOM visibility {end}")


def test_the_report_shows_the_statistics_in_table_and_json():
    """A short run (5 pairs, attempt by attempt): the section is in the table and the JSON,
    and its counts add up (clicks per node at most the trials)."""
    result, stats = run_stats(0.05, "thermal", 5)
    table = result.to_table()
    assert "photon statistics at station alice~bob (midpoint-source)" in table
    assert "g2(0) alice.H" in table and "heralding efficiency bob" in table
    (entry,) = json.loads(result.to_json())["photon_statistics"]
    assert entry["trials"] == stats.trials == stats.observed_attempts - stats.unresolved_attempts
    assert {d["detector"] for d in entry["detectors"]} == {f"{n}.{d}" for n in ("alice", "bob") for d in DETECTORS}
    assert all(d.clicks <= stats.trials for d in stats.detectors)
    assert stats.heralds == result.links[0].successes == 5


def test_fast_forward_says_clicks_were_not_observed():
    """In fast-forward only heralds are drawn: the station is listed with its attempts as
    fast-forwarded and no click figure, and the table says so."""
    result, stats = run_stats(0.05, "thermal", 5, link="fast-forward-egp")
    assert stats.observed_attempts == 0 and stats.fast_forwarded_attempts == result.links[0].attempts > 0
    assert stats.detectors == [] and stats.coincidence is None and stats.g2 == {}
    assert stats.not_observed is not None and "fast-forward" in stats.not_observed
    assert "not observed: " in result.to_table()


def test_counting_leaves_the_run_unchanged(monkeypatch):
    """The failures' patterns come from a stream of their own: the same seeded run with and
    without the counter delivers the same pairs at the same times with the same attempts."""
    with_counter = assemble(scenario(0.05, "thermal", 8)).run()
    monkeypatch.setattr("qnetstack.physical.backends.heralding_backend.pattern_counter", lambda station: None)
    without = assemble(scenario(0.05, "thermal", 8)).run()
    assert without.photon_statistics == []
    assert with_counter.photon_statistics and with_counter.photon_statistics[0].observed_attempts > 0
    assert with_counter.links == without.links and with_counter.sim_time_ns == without.sim_time_ns
    assert with_counter.pairs == without.pairs and with_counter.events == without.events


def test_heralds_only_schemes_are_left_out_of_the_report():
    """Single-click stations draw heralds only: no photon-statistics entry, and the station's
    counts say why."""
    sc = scenario(0.05, "thermal", 3).model_dump(mode="json")
    sc["links"][0].update(scheme="single-click", scheme_params={}, bright_state_population=0.1)
    sim = assemble(parse_scenario(sc))
    result = sim.run()
    assert result.photon_statistics == []
    counts = sim.network.entities["alice~bob"]["physical"].photon_statistics()
    assert counts.heralds == 3 and counts.not_observed is not None and counts.clicks == {}


def test_spawned_stream_leaves_its_parent_alone():
    parent = np.random.Generator(np.random.PCG64(np.random.SeedSequence(5)))
    twin = np.random.Generator(np.random.PCG64(np.random.SeedSequence(5)))
    child = photon_counts.spawned_rng(parent)
    assert parent.random() == twin.random()
    assert child.random() != twin.random()
