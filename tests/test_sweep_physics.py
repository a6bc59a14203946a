"""A sweep of fidelity against link length agrees with the single-click closed forms,
and gives the same rows on a dask cluster as in one process.

The sweep: the single-link scenario of examples/sweeps (memories without
decoherence, model heralding, fast-forward link layer), 3 lengths × 2 seeds,
100 pairs a run, so 200 pairs per point.

Closed forms (Humphreys et al., Nature 558, 268 (2018); the derivation in
``qnetstack.physical.schemes.single_click``), with total photon efficiency η
(emission × fibre over half the link × detector) at each end, no dark counts:
p = 2αη(1 − αη/2) per attempt and F = (1 − α)/(1 − αη/2) for the heralded pair
(the same forms tests/test_end_to_end.py checks for one length).

* Fidelity: with ideal memories every delivered pair is in the heralded state
  (both herald outcomes give it the same fidelity), so the runs have no spread:
  the standard error over the seeds is 0, and "within 5 standard errors" is
  equality up to rounding (1e-9). The check has teeth: F falls by more than
  0.02 between 5 and 100 km, far beyond rounding.
* Success probability: attempts are independent with probability p, so the
  pooled estimate over a point's runs (successes / attempts, 200 successes
  from about 1,800 attempts at 5 km to 16,000 at 100 km) has standard error
  √(p(1 − p)/attempts); it must lie within 5 of them (two-sided p ≈ 6e-7 for
  a correct stack).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from qnetstack.physical.schemes.single_click import arrival_efficiency, herald_fidelity, success_probability
from qnetstack.stack.sweep import parse_sweep, run_sweep, summarise

BASE = Path(__file__).resolve().parent.parent / "examples" / "sweeps" / "single-link.yaml"
LENGTHS_KM = [5, 50, 100]
SEEDS = [1, 2]
SIGMAS = 5
ROUNDING = 1e-9


def analytic(scenario):
    """(success probability per attempt, heralded fidelity) of the scenario's one link."""
    (link,) = scenario.links
    hardware = {n.name: n.hardware for n in scenario.nodes}
    physics = link.physics()
    eta_a = arrival_efficiency(physics, hardware[link.a]) * link.detector.efficiency
    eta_b = arrival_efficiency(physics, hardware[link.b]) * link.detector.efficiency
    alpha = link.bright_state_population
    p_dc = link.detector.dark_count_probability
    return success_probability(alpha, eta_a, eta_b, p_dc), herald_fidelity(alpha, eta_a, eta_b, p_dc)


@pytest.mark.slow  # a dask LocalCluster of two worker processes starts (several seconds) and 6 runs
def test_fidelity_vs_length_matches_the_closed_form_and_a_local_cluster_gives_the_same_rows():
    from distributed import LocalCluster

    sweep = parse_sweep({"scenario": str(BASE), "seeds": SEEDS, "grid": {"links.0.length_km": LENGTHS_KM}})
    frame = run_sweep(sweep, workers=1)
    assert len(frame) == len(LENGTHS_KM) * len(SEEDS)
    assert (frame["status"] == "done").all()
    summary = summarise(frame)
    expected = [analytic(point.scenario) for point in sweep.points]

    for (p, fidelity), (_, row) in zip(expected, summary.iterrows()):
        assert row["pairs.count.mean"] == 100
        assert row["pairs.mean_oracle_fidelity.se"] == 0.0  # no spread: see the module docstring
        assert abs(row["pairs.mean_oracle_fidelity.mean"] - fidelity) <= SIGMAS * row["pairs.mean_oracle_fidelity.se"] + ROUNDING
        runs = frame[frame["point"] == row["point"]]
        attempts = int(runs["link[alice-bob].attempts"].sum())
        pooled = runs["link[alice-bob].successes"].sum() / attempts
        assert abs(pooled - p) < SIGMAS * math.sqrt(p * (1 - p) / attempts)
    fidelities = [f for _, f in expected]
    assert fidelities[0] - fidelities[-1] > 0.02  # the curve the check follows is not flat

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_cluster = run_sweep(sweep, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(on_cluster, frame)
