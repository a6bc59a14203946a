"""Distillation through the whole stack (policies ``distill-bbpssw`` and ``distill-dejmps``)
against the published closed forms (physical/engines/distillation.py).

One single-click link between alice and bob with ideal memories: every heralded pair is in the
same post-herald state (Humphreys et al., Nature 558, 268 (2018); the closed form in
``qnetstack.physical.schemes.single_click``), so the inputs of every round are known exactly.
The network layer corrects each pair to Φ+ and Pauli-twirls it, which leaves the Bell-diagonal
state with the pair's weights relative to its heralded frame (Bennett, DiVincenzo, Smolin &
Wootters, PRA 54, 3824 (1996), Sec. III); BBPSSW twirls on to the Werner state of the same
fidelity (Bennett et al., PRL 76, 722 (1996)); DEJMPS rotates instead (Deutsch et al., PRL 77,
2818 (1996)). Every round's success probability and every kept pair's fidelity are then given by
``bbpssw`` and ``dejmps`` of two copies of that state.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from qnetstack.application.service import PairResult
from qnetstack.physical.engines.bell_diagonal import BellDiagonal
from qnetstack.physical.engines.distillation import bbpssw, dejmps
from qnetstack.physical.engines.world import bell_ket
from qnetstack.physical.schemes.single_click import arrival_efficiency, post_herald_state
from qnetstack.physical.service import BellState
from qnetstack.stack import assemble
from qnetstack.stack.scenario import ScenarioError, parse_scenario

ALPHA = 0.3


def one_link(policy: str, number: int, seed: int = 1, memory: dict | None = None) -> dict:
    memory = {"num_qubits": 2, "t2_ns": None, **(memory or {})}
    return {
        "name": f"one link, {policy}",
        "seed": seed,
        "nodes": [{"name": "alice", "hardware": {"memory": memory}}, {"name": "bob", "hardware": {"memory": memory}}],
        "links": [
            {
                "a": "alice",
                "b": "bob",
                "length_km": 2,
                "bright_state_population": ALPHA,
                "fibre": {"db_per_km": 0.0},
                "detector": {"efficiency": 1.0, "dark_count_probability": 0.0},
            }
        ],
        "implementations": {"physical": "model-heralding"},
        "network": {"policy": policy},
        "applications": [{"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": number}}],
    }


def link_state(scenario) -> BellDiagonal:
    """The heralded pair's weights relative to its frame (the same for both heralds)."""
    link = scenario.links[0]
    hardware = {n.name: n.hardware for n in scenario.nodes}
    eta = [arrival_efficiency(link.physics(), hardware[end]) * link.detector.efficiency for end in (link.a, link.b)]
    weights = {}
    for frame in (BellState.PSI_PLUS, BellState.PSI_MINUS):
        rho = post_herald_state(ALPHA, eta[0], eta[1], 0.0, frame)
        weights[frame] = {
            err: float(np.real(np.conj(v) @ rho @ v)) for err in BellState for v in [bell_ket(frame.compose(err)).full().ravel()]
        }
    assert weights[BellState.PSI_PLUS] == pytest.approx(weights[BellState.PSI_MINUS], abs=1e-12)
    return BellDiagonal.from_weights(weights[BellState.PSI_PLUS])


def run(policy: str, number: int):
    scenario = parse_scenario(one_link(policy, number))
    sim = assemble(scenario)
    result = sim.run()
    assert result.status == "done", result.status
    pairs = [m for _, _, m in sim.network.user_messages if isinstance(m, PairResult)]
    return scenario, result, pairs


@pytest.mark.parametrize(("policy", "closed_form"), [("distill-bbpssw", bbpssw), ("distill-dejmps", dejmps)])
def test_distillation_through_the_stack_matches_the_published_formulas(policy, closed_form):
    """Sample: 1500 kept pairs, about 1800-2000 rounds. Success probability: binomial over the
    rounds, 5 standard errors (about 0.045 here; BBPSSW's and DEJMPS's probabilities for this
    state differ by 0.054). Fidelity of the kept pairs: their mean against the closed form,
    within 5 standard errors of the sample (plus 1e-9 for rounding: under DEJMPS every kept
    pair is in the same state, so the spread is zero)."""
    scenario, result, pairs = run(policy, 1500)
    state = link_state(scenario)
    expected = closed_form(state, state)
    assert expected.state is not None
    kept, failed = result.counters["network.distill.kept"], result.counters["network.distill.failed"]
    rounds = kept + failed
    assert kept == len(pairs) == 1500
    p = expected.success_probability
    assert abs(kept / rounds - p) < 5 * math.sqrt(p * (1 - p) / rounds), (kept / rounds, p)
    fidelities = np.array([pair.oracle_fidelity for pair in pairs])
    se = fidelities.std(ddof=1) / math.sqrt(len(fidelities))
    assert abs(fidelities.mean() - expected.state.fidelity()) <= 5 * se + 1e-9, (fidelities.mean(), expected.state.fidelity(), se)


def test_the_two_protocols_differ_where_the_formulas_say_they_do():
    """For single-click pairs (errors on Ψ± only) DEJMPS's rotation turns the Ψ− error into Φ−,
    which the parity check cannot see: it keeps more pairs, and worse ones, than BBPSSW. The
    check above is only meaningful if the stack tells the two apart."""
    scenario = parse_scenario(one_link("distill-dejmps", 1))
    state = link_state(scenario)
    b, d = bbpssw(state, state), dejmps(state, state)
    assert b.state is not None and d.state is not None
    assert d.success_probability - b.success_probability > 0.05
    assert b.state.fidelity() - d.state.fidelity() > 0.04


def delivered_estimates(sim, node: str) -> dict[int, tuple[tuple[float, float, float, float], int]]:
    """Spy on ``node``'s network layer: the Bell-diagonal estimate and its time of every distilled
    pair it hands up, by delivery index (one hop: the index is the number delivered before)."""
    entity = sim.network.entities[node]["network"]
    seen: dict[int, tuple[tuple[float, float, float, float], int]] = {}
    deliver = entity._try_deliver

    def spy(circuit, pair):
        seen[circuit.delivered] = (pair.ok.bell_diagonal, pair.ok.goodness_time_ns)
        deliver(circuit, pair)

    entity._try_deliver = spy
    return seen


@pytest.mark.parametrize("policy", ["distill-bbpssw", "distill-dejmps", "distill-dejmps-pump2"])
def test_the_goodness_of_distilled_pairs_is_their_oracle_fidelity(policy):
    """Single-click pairs are not Werner states (errors on Ψ± only), so the goodness of a kept pair
    comes from the Bell-diagonal algebra of what the round did (network/distill.py). Sample: 1000
    delivered pairs; the mean of (goodness - oracle fidelity), pair by pair, within 5 standard
    errors of that difference (plus 1e-9 for rounding: under DEJMPS every pair is in the same
    state and the spread is zero). The Werner assumption (BBPSSW's closed form of the link
    fidelity) misses: for DEJMPS in the mean, by more than 0.02 and 5 standard errors; for BBPSSW,
    whose mean it gets right (the six permutations average to the Werner state), pair by pair,
    with a root-mean-square error more than twice that of the goodness."""
    scenario = parse_scenario(one_link(policy, 1000))
    sim = assemble(scenario)
    assert sim.run().status == "done"
    pairs = [m for _, _, m in sim.network.user_messages if isinstance(m, PairResult)]
    assert len(pairs) == 1000
    goodness = np.array([pair.goodness for pair in pairs])
    oracle = np.array([pair.oracle_fidelity for pair in pairs])
    difference = goodness - oracle
    se = difference.std(ddof=1) / math.sqrt(len(difference))
    assert abs(difference.mean()) <= 5 * se + 1e-9, (difference.mean(), se)
    f = link_state(scenario).fidelity()
    p = f * f + 2 * f * (1 - f) / 3 + 5 * ((1 - f) / 3) ** 2
    werner = (f * f + ((1 - f) / 3) ** 2) / p
    if policy == "distill-bbpssw":
        rms = math.sqrt(np.mean(difference**2))
        assert math.sqrt(np.mean((werner - oracle) ** 2)) > 2 * rms, (rms, werner)
    else:
        werner_se = oracle.std(ddof=1) / math.sqrt(len(oracle))
        assert abs(werner - oracle.mean()) > max(0.02, 5 * werner_se), (werner, oracle.mean())


def test_the_goodness_of_distilled_pairs_follows_memory_decoherence():
    """Memories with T2 = 200 us: the inputs of a round decohere until its readouts and the kept
    pair until it is handed up. The application reads the oracle fidelity later than the tail's
    delivery (once the head's message has come), so the prediction is the tail's delivered
    Bell-diagonal estimate decohered on to that moment (both halves, e^(-t/T2) on X and Y,
    Nielsen & Chuang 2000, §8.3.6). Sample: 1000 pairs, every pair in the same state up to the
    timing, the mean difference within 5 standard errors (plus 1e-9 for rounding). Leaving the
    decoherence out, or taking Werner inputs, misses by more than 0.02."""
    from qnetstack.network import bell_diagonal as bd
    from qnetstack.physical.service import MemoryDecoherence

    t2 = 200_000
    scenario = parse_scenario(one_link("distill-dejmps", 1000, memory={"t2_ns": t2}))
    sim = assemble(scenario)
    estimates = delivered_estimates(sim, "bob")
    assert sim.run().status == "done"
    pairs = [m for _, _, m in sim.network.user_messages if isinstance(m, PairResult)]
    assert len(pairs) == 1000
    memory = MemoryDecoherence(t1_ns=None, t2_ns=t2)
    predicted, undecayed = [], []
    for pair in pairs:
        weights, time_ns = estimates[pair.pair_id.index]
        assert pair.goodness == pytest.approx(weights[0], abs=1e-12)
        later = bd.exponents(memory, pair.reported_time_ns - time_ns)
        predicted.append(bd.decayed(weights, bd.add(later, later))[0])
        undecayed.append(weights[0])
    oracle = np.array([pair.oracle_fidelity for pair in pairs])
    difference = np.array(predicted) - oracle
    se = difference.std(ddof=1) / math.sqrt(len(difference))
    assert abs(difference.mean()) <= 5 * se + 1e-9, (difference.mean(), se)
    ideal = dejmps(link_state(scenario), link_state(scenario))
    assert ideal.state is not None
    assert ideal.state.fidelity() - oracle.mean() > 0.02
    f = link_state(scenario).fidelity()
    p = f * f + 2 * f * (1 - f) / 3 + 5 * ((1 - f) / 3) ** 2
    assert (f * f + ((1 - f) / 3) ** 2) / p - oracle.mean() > 0.02
    assert np.mean(undecayed) - oracle.mean() > 0.01  # the last stretch of decoherence matters too


def test_an_unknown_policy_name_is_a_scenario_error_naming_the_registered_ones():
    with pytest.raises(ScenarioError) as info:
        parse_scenario(one_link("distill-magic", 1))
    assert info.value.field == "network.policy"
    for name in ("distill-bbpssw", "distill-dejmps", "swap-asap"):
        assert name in str(info.value)


def test_distillation_with_gate_and_readout_durations_completes_later():
    """The CNOT and the readout go through the device's request path: the same pairs are
    delivered, later by at least one CNOT and one readout per round."""
    quick = assemble(parse_scenario(one_link("distill-dejmps", 10)))
    quick.run()
    slow_data = one_link("distill-dejmps", 10, memory={"two_qubit_gate_duration_ns": 40_000, "measurement_duration_ns": 10_000})
    slow = assemble(parse_scenario(slow_data))
    result = slow.run()
    assert result.status == "done"
    last = [max(t for t, _, m in sim.network.user_messages if isinstance(m, PairResult)) for sim in (quick, slow)]
    assert last[1] >= last[0] + 50_000


def test_an_end_waiting_for_the_other_ends_outcome_says_so():
    """While bob's outcome of a round is on its way to alice, alice's circuit says what it waits for."""
    sim = assemble(parse_scenario(one_link("distill-bbpssw", 1)))
    alice = sim.network.entities["alice"]["network"]
    kernel = sim.network.kernel
    sim.network.start()
    for _ in range(1_000_000):
        waits = [w.waiting_for for w in alice.describe_waits()]
        if any("distillation round" in w for w in waits):
            break
        kernel.run(max_events=1)
    assert waits == ["the outcome of a distillation round from bob (0/1 delivered)"]


@pytest.mark.parametrize(("policy", "closed_form"), [("distill-bbpssw-pump2", bbpssw), ("distill-dejmps-pump2", dejmps)])
def test_two_rounds_of_pumping_match_the_closed_forms_round_by_round(policy, closed_form):
    """Entanglement pumping (Dür, Briegel, Cirac & Zoller, PRA 59, 169 (1999)): the pair kept by a
    round of two fresh pairs is distilled again with a fresh pair. Round 0 succeeds with
    p0 = f(s, s).p, round 1 with p1 = f(f(s, s).state, s).p, and a delivered pair has the fidelity
    of f(f(s, s).state, s). Sample: 600 delivered pairs (about 700-750 second rounds, 1100-1300
    first rounds); each probability binomial within 5 standard errors, the mean fidelity within 5
    standard errors of the sample (plus 1e-9 for rounding, as above)."""
    data = one_link(policy, 600)
    data["keep_trace"] = True
    scenario = parse_scenario(data)
    sim = assemble(scenario)
    assert sim.run().status == "done"
    state = link_state(scenario)
    first = closed_form(state, state)
    assert first.state is not None
    second = closed_form(first.state, state)
    assert second.state is not None
    for index, expected in ((0, first.success_probability), (1, second.success_probability)):
        outcomes = [
            r["event"] == "network.distill.kept"
            for r in sim.network.trace.records
            if r["event"].startswith("network.distill.") and r["round"] == index
        ]
        n = len(outcomes)
        assert n > 500
        assert abs(sum(outcomes) / n - expected) < 5 * math.sqrt(expected * (1 - expected) / n), (index, sum(outcomes) / n, expected)
    fidelities = np.array([m.oracle_fidelity for _, _, m in sim.network.user_messages if isinstance(m, PairResult)])
    assert len(fidelities) == 600
    se = fidelities.std(ddof=1) / math.sqrt(len(fidelities))
    assert abs(fidelities.mean() - second.state.fidelity()) <= 5 * se + 1e-9, (fidelities.mean(), second.state.fidelity(), se)


def test_a_circuit_that_ends_while_the_device_works_on_its_qubits_leaves_none_held():
    """The circuit fails at alice while her CNOT of a round is under way (a busy qubit cannot be
    freed then): the qubits are freed when the device answers, and once the run settles no
    device holds a qubit."""
    from qnetstack.network.circuit import CircuitEvent
    from qnetstack.network.service import NetErrorCode
    from qnetstack.physical.service import ApplyTwoQubitGate

    data = one_link("distill-bbpssw", 3, memory={"two_qubit_gate_duration_ns": 1_000_000})
    sim = assemble(parse_scenario(data))
    alice = sim.network.entities["alice"]["network"]
    kernel = sim.network.kernel
    sim.network.start()
    for _ in range(1_000_000):
        if any(isinstance(op, ApplyTwoQubitGate) for op in alice._device_ops.values()):
            break
        kernel.run(max_events=1)
    (circuit,) = alice._circuits.values()
    alice._fail(circuit, CircuitEvent.DEADLINE, "ended by the test", tell_path=True, code=NetErrorCode.TIMEOUT)
    kernel.run(until_ns=kernel.now_ns + 1_000_000_000)
    for node in ("alice", "bob"):
        assert sim.network.entities[node]["physical"].held_handles() == [], node
