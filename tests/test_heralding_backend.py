"""The model-driven physical backend (physical.backends.heralding_backend), attempt by attempt.

Its per-attempt statistics and its pairs are compared with the closed forms of
the single-click scheme (Humphreys et al., Nature 558, 268 (2018), Methods;
derived in physical.schemes.single_click) with memory noise as amplitude and phase
damping (Nielsen & Chuang 2000, §8.3.5-8.3.6); it is run through the physical
conformance suite; bad scheme settings give one-line errors naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from qnetstack.entity import EntityError
from qnetstack.physical.backends.heralding_backend import HeraldingModelBackend
from qnetstack.physical.conformance import SUITE
from qnetstack.physical.conformance.harness import NODES, LinkSetup, PhysicalHarness
from qnetstack.physical.params import LinkSide, NodeHardware
from qnetstack.physical.schemes.registry import scheme_named
from qnetstack.physical.schemes.single_click import SingleClickModel, arrival_efficiency, fidelity_at_detection
from qnetstack.physical.service import FreeQubit, HeraldAttempt, HeraldResult, OracleFidelity, QubitRef
from qnetstack.stack import assemble
from qnetstack.stack.assembler import AssemblyError
from qnetstack.stack.scenario import ScenarioError, parse_scenario

SIGMAS = 5  # two-sided p ~ 6e-7 for a correct backend


@dataclass
class Outcome:
    """Both ends' results of one attempt (or run) and the oracle fidelity read when the second arrived."""

    start_ns: int
    results: dict[str, tuple[int, HeraldResult]] = field(default_factory=dict)
    oracle: float | None = None


class Rig(PhysicalHarness):
    """The conformance harness's link, with attempts in step every ``spacing`` ns;
    a pair's oracle fidelity is read the instant its second result arrives, then
    both qubits are freed."""

    def __init__(self, impl: Any, setup: LinkSetup, seed: int = 0) -> None:
        self.outcomes: dict[int, Outcome] = {}
        super().__init__(impl, setup, seed)

    def _on_up(self, node: str, msg: Any) -> None:
        super()._on_up(node, msg)
        outcome = self.outcomes[msg.attempt_id]
        outcome.results[node] = (self.kernel.now_ns, msg)
        if len(outcome.results) == 2 and msg.success:
            (_, ra), (_, rb) = outcome.results[NODES[0]], outcome.results[NODES[1]]
            refs = [QubitRef(node=NODES[0], handle=ra.handle), QubitRef(node=NODES[1], handle=rb.handle)]
            outcome.oracle = self.execute(NODES[0], OracleFidelity(qubits=refs, bell_state=ra.bell_state)).fidelity
            for n, r in ((NODES[0], ra), (NODES[1], rb)):
                self.execute(n, FreeQubit(handle=r.handle))
                self.held[n].discard(r.handle)

    def attempt(self, attempt_id: int, max_attempts: int = 1, **fields: Any) -> None:
        self.outcomes[attempt_id] = Outcome(self.kernel.now_ns)
        for node in NODES:
            self.entities[node].handle_above(
                HeraldAttempt(neighbour=node_other(node), attempt_id=attempt_id, max_attempts=max_attempts, **fields)
            )

    def play(self, runs: int, max_attempts: int = 1, spacing_ns: int | None = None) -> list[Outcome]:
        """``runs`` attempts (or runs) one after the other, each after the previous one's results."""
        self.start()
        period = self.capabilities(NODES[0]).links[NODES[1]].attempt_period_ns
        spacing = spacing_ns or (max_attempts * period + 2)
        for k in range(runs):
            self.kernel.schedule(k * spacing, self.attempt, k, max_attempts)
        self.kernel.run()
        return [self.outcomes[k] for k in range(runs)]


def node_other(node: str) -> str:
    return NODES[1] if node == NODES[0] else NODES[0]


def single_click_model(setup: LinkSetup) -> SingleClickModel:
    return SingleClickModel(setup.params, setup.hardware(NODES[0]), setup.hardware(NODES[1]))


# 10 km (τ ≈ 24.5 µs each way) with T2 = 60 µs: the photons' flight visibly dephases the spins
NOISY = LinkSetup(length_km=10.0, bright_state_population=0.3, emission_efficiency=(0.75, 0.6), t1_ns=500_000, t2_ns=60_000)


# ------------------------------------------------------------------ conformance


@pytest.mark.slow
@pytest.mark.conformance
def test_model_backend_passes_the_physical_conformance_suite():
    """Every clause of the physical suite, as for the reference backend."""
    report = SUITE.run(HeraldingModelBackend, name="model-heralding")
    assert report.passed, report.to_text()
    assert {c.clause for c in report.clauses} == set(SUITE.clause_ids)
    assert all(c.status == "pass" for c in report.clauses)


# ------------------------------------------------------------------ statistics and states


def test_per_attempt_success_probability_is_the_single_click_model_s():
    """N = 4000 single attempts on a link with different emission efficiencies
    at the two ends and α = 0.3 (p ≈ 0.2, far from the 2αη approximation's
    regime): the success fraction is within 5 binomial standard errors
    sqrt(p(1-p)/N) ≈ 0.032 of SingleClickModel.success_probability(), the closed
    form 2 Tr ρ± (Humphreys et al. 2018; physical.schemes.single_click)."""
    n = 4000
    outcomes = Rig(HeraldingModelBackend, NOISY, seed=3).play(n)
    wins = sum(1 for o in outcomes if o.results[NODES[0]][1].success)
    p = single_click_model(NOISY).success_probability()
    assert 0.1 < p < 0.5
    assert abs(wins / n - p) <= SIGMAS * math.sqrt(p * (1 - p) / n)


def test_delivered_pairs_have_the_model_fidelity_after_the_flight_time():
    """Every heralded pair: fidelity_estimate is the closed-form post-herald
    fidelity after each spin's memory noise for the photon's flight τ (emission
    to detection), and the oracle fidelity when the results arrive (another τ
    later) is the same closed form after 2τ. Exact (1e-9): both branches have
    one state each, so there is nothing statistical (single_click.fidelity_at_detection,
    Humphreys et al. 2018 with Nielsen & Chuang 2000 §8.3 damping)."""
    outcomes = Rig(HeraldingModelBackend, NOISY, seed=4).play(300)
    hw = {n: NOISY.hardware(n) for n in NODES}
    eta_d = NOISY.params.detector.efficiency
    etas = [arrival_efficiency(NOISY.params, hw[n]) * eta_d for n in NODES]
    tau = NOISY.half_delay_ns
    alpha = NOISY.bright_state_population

    def closed_form(wait_ns: int, bell) -> float:
        noise = [(wait_ns, hw[n].memory.t1_ns, hw[n].memory.t2_ns) for n in NODES]
        return fidelity_at_detection(alpha, alpha, *etas, 0.0, bell, *noise)

    successes = [o for o in outcomes if o.results[NODES[0]][1].success]
    assert len(successes) > 30
    for o in successes:
        (t_a, ra), (t_b, rb) = o.results[NODES[0]], o.results[NODES[1]]
        assert t_a == t_b == o.start_ns + 2 * tau and ra.herald_time_ns == o.start_ns + tau
        assert ra.fidelity_estimate == rb.fidelity_estimate
        assert ra.fidelity_estimate == pytest.approx(closed_form(tau, ra.bell_state), abs=1e-9)
        assert o.oracle == pytest.approx(closed_form(2 * tau, ra.bell_state), abs=1e-9)
    # the flight's decoherence is not negligible here, so the check above can tell
    assert (
        closed_form(tau, successes[0].results[NODES[0]][1].bell_state) < closed_form(0, successes[0].results[NODES[0]][1].bell_state) - 0.05
    )


def test_capabilities_announce_the_scheme_model():
    harness = Rig(HeraldingModelBackend, NOISY)
    link = harness.capabilities(NODES[0]).links[NODES[1]]
    assert link.scheme == "single-click"
    assert link.bright_state_population == NOISY.bright_state_population
    assert link.success_probability == pytest.approx(single_click_model(NOISY).success_probability(), abs=1e-12)
    assert link.attempt_period_ns == 2 * NOISY.half_delay_ns


def test_both_backends_announce_the_same_single_click_link():
    """Both backends take the timing and the α menu from the code they share
    (physical.backends.midpoint) and compute the success probability each its
    own way (the QuTiP backend from the closed form, the model backend from the
    scheme's branches): for the same link, with different hardware at the two
    ends, every end of either backend announces the same numbers."""
    from qnetstack.physical.backends.qutip_backend import QutipSingleClickBackend  # noqa: PLC0415

    announced = {
        impl.name: [Rig(impl, NOISY).capabilities(n).links[node_other(n)] for n in NODES]
        for impl in (QutipSingleClickBackend, HeraldingModelBackend)
    }
    assert NOISY.emission_efficiency[0] != NOISY.emission_efficiency[1]  # the ends' order matters
    for links in announced.values():
        assert links[0].alpha_settings == links[1].alpha_settings
        assert links[0].fidelity == pytest.approx(links[1].fidelity, abs=1e-12)
    for q, m in zip(announced["qutip-single-click"], announced["model-heralding"]):
        assert q.attempt_period_ns == m.attempt_period_ns == 2 * NOISY.half_delay_ns
        assert q.alpha_settings == m.alpha_settings and q.alpha_settings
        assert q.success_probability == pytest.approx(m.success_probability, abs=1e-12)


def _barrett_kok_link(visibility: float = 0.9) -> tuple[HeraldingModelBackend, Any, dict[str, NodeHardware]]:
    entry = scheme_named("barrett-kok")
    assert entry is not None
    params = entry.params_type(length_km=5.0, two_photon_visibility=visibility)
    return HeraldingModelBackend(), params, {n: NodeHardware() for n in NODES}


def test_barrett_kok_link_announces_its_model_and_refuses_an_alpha():
    """A Barrett–Kok link (Barrett & Kok, PRA 71, 060310(R) (2005)) has no bright-state
    population: the capabilities say None, and an attempt that sets one is refused."""
    from tests.fakes import FakeContext  # noqa: PLC0415 - only this test needs it

    backend, params, hw = _barrett_kok_link()
    ctx = FakeContext("alice")
    node = backend.node_entity(ctx, hw["alice"], {"bob": LinkSide(station="alice~bob", params=params, neighbour_hardware=hw["bob"])})
    link = node.capabilities().links["bob"]
    model = scheme_named("barrett-kok").model(params, hw["alice"], hw["bob"], None, None)
    assert link.scheme == "barrett-kok" and link.bright_state_population is None
    assert link.success_probability == pytest.approx(model.success_probability(), abs=1e-12)
    with pytest.raises(EntityError, match="bright_state_population"):
        node.handle_above(HeraldAttempt(neighbour="bob", attempt_id=0, bright_state_population=0.2))


# ------------------------------------------------------------------ bad input


def _scenario(**link: Any) -> dict[str, Any]:
    return {"nodes": [{"name": "alice"}, {"name": "bob"}], "links": [{"a": "alice", "b": "bob", "length_km": 5, **link}]}


@pytest.mark.parametrize(
    "link, field, says",
    [
        ({"scheme": "double-click"}, "links.0.scheme", "single-click"),
        ({"scheme": "barrett-kok", "bright_state_population": 0.2}, "links.0.bright_state_population", "no bright-state population"),
        (
            {"scheme": "barrett-kok", "scheme_params": {"two_photon_visibility": 1.5}},
            "links.0.scheme_params.two_photon_visibility",
            "less than or equal to 1",
        ),
        ({"scheme": "barrett-kok", "scheme_params": {"length_km": 3}}, "links.0.scheme_params", "on the link itself"),
        ({"scheme_params": {"colour": "blue"}}, "links.0.scheme_params.colour", "Extra inputs"),
    ],
)
def test_bad_scheme_settings_name_the_field(link, field, says):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(_scenario(**link))
    assert info.value.field == field and says in info.value.problem
    assert "\n" not in str(info.value)


def test_the_qutip_backend_is_not_chosen_for_a_scheme_it_does_not_run():
    scenario = parse_scenario(_scenario(scheme="barrett-kok"))
    assert type(assemble(scenario).backend) is HeraldingModelBackend  # left out: the backend that runs it
    with pytest.raises(AssemblyError) as info:
        assemble(scenario, implementations={"physical": "qutip-single-click"})
    assert info.value.field == "links.0.scheme" and "does not run the barrett-kok scheme" in info.value.problem


def test_max_attempts_must_be_positive():
    with pytest.raises(ValidationError, match="max_attempts"):
        HeraldAttempt(neighbour="bob", attempt_id=0, max_attempts=0)
    with pytest.raises(ValidationError, match="attempts"):
        HeraldResult(neighbour="bob", attempt_id=0, success=False, attempts=0)


def test_draws_from_the_precomputed_branches_follow_their_probabilities():
    """One attempt's physics is a draw from the branches computed once per link (its cost per
    attempt is measured by benchmarks/physical.py, not by a timed test). 40 000 single attempts:
    each branch's share, and the failures', within 5 standard errors of its probability
    (binomial, sqrt(p (1 - p) / n))."""
    backend, params, hw = _barrett_kok_link()
    from tests.fakes import FakeContext  # noqa: PLC0415

    station = backend.station_entity(FakeContext("alice~bob"), ("alice", "bob"), params, hw)
    prepared = station.prepared(None, None)
    probabilities = [b.probability for b in prepared.branches] + [1 - prepared.p]
    rng = np.random.default_rng(0)
    n = 40_000
    counts = [0] * len(probabilities)
    for _ in range(n):
        attempts, branch = prepared.draw(rng, 1)
        assert attempts == 1
        counts[len(probabilities) - 1 if branch is None else branch] += 1
    for count, p in zip(counts, probabilities, strict=True):
        assert abs(count / n - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12, (counts, probabilities)
