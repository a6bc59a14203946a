"""Fast-forward and attempt-by-attempt give the same results in distribution.

Attempts are i.i.d., so the attempt of the first success is geometric with the
per-attempt success probability p (e.g. Rozpędek et al., PRA 99, 052330
(2019), Sec. III); a run of attempts that samples it directly must match one
simulated attempt by attempt, in its statistics and in its timing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from qnetstack.link.conformance import SUITE as LINK_SUITE
from qnetstack.link.conformance.harness import LinkConditions, ScriptedCreate, run_link
from qnetstack.link.egp import FastForwardEgp, SingleClickEgp
from qnetstack.link.service import LinkCreate, LinkError
from qnetstack.physical.backends.heralding_backend import HeraldingModelBackend
from qnetstack.physical.backends.qutip_backend import QutipSingleClickBackend
from qnetstack.physical.conformance.harness import NODES, LinkSetup
from tests.test_heralding_backend import Rig

SIGMAS = 5
# 2 km, α = 0.3, T2 = 200 µs: p ≈ 0.3 and pairs that dephase a little before they are read
SETUP = LinkSetup(length_km=2.0, bright_state_population=0.3, emission_efficiency=(0.75, 0.6), t1_ns=1_000_000, t2_ns=200_000)
RUN_CAP = 60  # attempts per run: P(no success in 60) = 0.7^60 ~ 5e-10


def _per_attempt(impl, n: int, seed: int) -> tuple[float, float, list[float]]:
    outcomes = Rig(impl, SETUP, seed).play(n)
    wins = [o for o in outcomes if o.results[NODES[0]][1].success]
    p = len(wins) / n
    return p, math.sqrt(p * (1 - p) / n), [o.oracle for o in wins]


def _fast_forward(impl, runs: int, seed: int) -> tuple[float, float, list[float], list[int]]:
    rig = Rig(impl, SETUP, seed)
    outcomes = rig.play(runs, max_attempts=RUN_CAP)
    period = rig.capabilities(NODES[0]).links[NODES[1]].attempt_period_ns
    attempts = []
    for o in outcomes:
        (t_a, ra), (t_b, rb) = o.results[NODES[0]], o.results[NODES[1]]
        assert ra.success and rb.success and ra.attempts == rb.attempts and t_a == t_b
        # the K-th attempt of a run heralds exactly when the K-th of an attempt-by-attempt run would
        assert t_a - o.start_ns == (ra.attempts - 1) * period + 2 * SETUP.half_delay_ns
        assert ra.herald_time_ns - o.start_ns == (ra.attempts - 1) * period + SETUP.half_delay_ns
        attempts.append(ra.attempts)
    total = sum(attempts)
    p = runs / total  # maximum-likelihood estimate of a geometric parameter
    se = p * math.sqrt((1 - p) / runs)  # its asymptotic standard error (Fisher information n / (p²(1-p)))
    return p, se, [o.oracle for o in outcomes], attempts


def _close(a: float, se_a: float, b: float, se_b: float) -> bool:
    return abs(a - b) <= SIGMAS * math.sqrt(se_a**2 + se_b**2) + 1e-9


def test_fast_forward_matches_attempt_by_attempt_on_one_link():
    """Model backend: 3000 single attempts against 800 fast-forward runs (and the
    QuTiP backend's runs of attempts, simulated one by one, 300 runs): the
    success probabilities and the mean oracle fidelities of the pairs agree within
    5 standard errors (binomial s.e. for single attempts; p·sqrt((1-p)/n) for the
    geometric MLE; s/sqrt(n) for means)."""
    p1, se1, f1 = _per_attempt(HeraldingModelBackend, 3000, seed=11)
    p2, se2, f2, attempts = _fast_forward(HeraldingModelBackend, 800, seed=12)
    p3, se3, f3, _ = _fast_forward(QutipSingleClickBackend, 300, seed=13)
    assert max(attempts) > 5  # the runs really did skip over failures
    assert _close(p1, se1, p2, se2), (p1, p2)
    assert _close(p2, se2, p3, se3), (p2, p3)
    means = [(float(np.mean(f)), float(np.std(f, ddof=1)) / math.sqrt(len(f))) for f in (f1, f2, f3)]
    assert _close(*means[0], *means[1]), means
    assert _close(*means[1], *means[2]), means


def test_runs_stop_at_max_attempts_and_fail_at_both_ends():
    """α = 0 at both ends without dark counts never heralds (Humphreys et al. 2018):
    a run of 7 fails at both ends after exactly 7 attempt periods."""
    rig = Rig(HeraldingModelBackend, SETUP)
    rig.start()
    rig.kernel.schedule(0, lambda: rig.attempt(0, 7, bright_state_population=0.0))
    rig.kernel.run()
    period = rig.capabilities(NODES[0]).links[NODES[1]].attempt_period_ns
    for node in NODES:
        t, result = rig.outcomes[0].results[node]
        assert not result.success and result.attempts == 7 and t == 6 * period + 2 * SETUP.half_delay_ns


# ------------------------------------------------------------------ the link layer


def _creates() -> list[ScriptedCreate]:
    return [
        ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=15)),
        # a deadline the request cannot meet: ends with TIMEOUT mid-run
        ScriptedCreate(5_000, "bob", LinkCreate(remote_node="alice", number=500, max_time_ns=2_000_000)),
    ]


def test_fast_forward_egp_delivers_what_the_per_attempt_egp_delivers():
    """The link harness's fake physical layer draws each attempt of a run in turn,
    with the same random stream as single attempts, so the fast-forward EGP must
    give exactly the per-attempt EGP's OKs and errors, at the same times."""
    conditions = LinkConditions(success_probability=0.05)
    runs = [run_link(impl, conditions, _creates(), until_ns=10**9, seed=3) for impl in (SingleClickEgp, FastForwardEgp)]
    for run in runs:
        assert run.crashed is None and run.misuse == []
    record = [[(u.time_ns, u.node, u.msg) for u in run.up] for run in runs]
    assert record[0] == record[1]
    assert any(isinstance(m, LinkError) for _, _, m in record[0])  # the deadline path was taken
    assert len(runs[0].oks()) >= 30  # 15 pairs of the first request, at both ends


@pytest.mark.slow
@pytest.mark.conformance
def test_fast_forward_egp_passes_the_link_conformance_suite():
    """Every clause, as for the per-attempt reference (issue 5: the suite passes in both modes)."""
    report = LINK_SUITE.run(FastForwardEgp, name="fast-forward-egp")
    assert report.passed, report.to_text()
    assert {c.clause for c in report.clauses} == set(LINK_SUITE.clause_ids)
    assert all(c.status == "pass" for c in report.clauses)
