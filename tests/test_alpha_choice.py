"""Single-click: the link layer lowers α to reach a requested fidelity (issue 5).

Both physical backends announce operating points (α, p, F) from the closed
form (physical.schemes.single_click.operating_points; Humphreys et al., Nature 558,
268 (2018): F ≈ 1 − α, p ≈ 2αη), from the configured α down to α/100. The
EGP runs each request at the fastest point that reaches its min fidelity
(Dahlberg et al., SIGCOMM 2019), and answers UNSUPP when none does.
"""

import math

import pytest

from qnetstack.application.service import PairsRequest
from qnetstack.physical.params import NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.single_click import operating_points
from qnetstack.stack import assemble, load_scenario
from qnetstack.stack.scenario import AppSpec


def _scenario(min_fidelity: float, number: int, physical: str):
    base = load_scenario("examples/link-pairs.yaml")
    apps = [AppSpec(node="alice", request=PairsRequest(remote_node="bob", number=number, min_fidelity=min_fidelity))]
    impls = base.implementations.model_copy(update={"physical": physical})
    return base.model_copy(update={"applications": apps, "implementations": impls})


def test_operating_points_trade_rate_for_fidelity():
    points = operating_points(SingleClickLinkParams(length_km=20), NodeHardware(), NodeHardware(), wait_ns=49_000)
    alphas = [a for a, _, _ in points]
    assert alphas[0] == pytest.approx(0.1) and alphas[-1] == pytest.approx(0.001)
    assert all(x > y for x, y in zip(alphas, alphas[1:]))
    ps = [p for _, p, _ in points]
    fs = [f for _, _, f in points]
    assert all(x > y for x, y in zip(ps, ps[1:]))  # rate falls with α ...
    assert all(x < y for x, y in zip(fs, fs[1:]))  # ... and fidelity rises


@pytest.mark.parametrize("physical", ["qutip-single-click", "model-heralding"])
def test_a_higher_min_fidelity_is_met_by_a_smaller_alpha(physical):
    """60 pairs at min fidelity 0.97 (the configured α = 0.1 gives ~0.92):
    the pairs' mean oracle fidelity reaches 0.97 (up to memory decay while the
    pairs wait, T2 = 1 s, negligible here; LINK-OK-6 checks each pair's goodness), and the attempts per pair grow as
    1/p for the chosen α: within 5 standard errors of the geometric mean."""
    result = assemble(_scenario(0.97, 60, physical)).run()
    pairs = result.pairs
    assert pairs.count == 60
    assert pairs.mean_oracle_fidelity >= 0.97 - 1e-3
    chosen = [
        p
        for a, p, f in operating_points(
            SingleClickLinkParams(length_km=20, bright_state_population=0.1),
            NodeHardware(emission_efficiency=0.75),
            NodeHardware(emission_efficiency=0.75),
            wait_ns=48_947,
        )
        if f >= 0.97
    ]
    p = max(chosen)
    (link,) = result.links
    n = link.successes
    mean_attempts = link.attempts / n
    se = math.sqrt(1 - p) / p / math.sqrt(n)
    assert abs(mean_attempts - 1 / p) < 5 * se


def test_an_unreachable_fidelity_is_refused_at_once():
    """No setting of α gives 0.9999: the network's admission sees it in the operating points
    the link announces and refuses the request before any link is asked (NET-ADMIT-1)."""
    result = assemble(_scenario(0.9999, 5, "model-heralding")).run()
    (app,) = result.applications
    assert (app.outcome, app.error_code) == ("error", "REJECTED") and "out of reach" in app.detail
    assert result.sim_time_ns < 1_000_000  # refused at once, no attempts made
    assert result.counters.get("station.attempt", 0) == 0
