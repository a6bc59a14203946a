"""Cutoffs and policies by name (issue 12, item 5): the two-link repeater's waiting time
against its closed forms, an independent slot-by-slot simulation and the whole stack.

Statistics: each mean is compared with its closed form within 5 standard errors of the
sample mean (SE = sample standard deviation / sqrt(n)). With n independent waiting times
the sample mean is normal to a good approximation (n >= 2000, finite variance), so a
correct model fails a 5-SE check with probability below 1e-6; the seeds are fixed, so
every run is the same. Each test also shows that the check can fail: the model it does
not hold for is farther than 5 SE from the same data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qnetstack.network.cutoff import mean_wait_slots, simulate_wait_slots
from qnetstack.network.policy import POLICIES, PolicyError, SwapAsapPolicy, make_policy, register_policy
from qnetstack.network.swap_asap import SwapAsap
from qnetstack.stack import assemble
from qnetstack.stack.assembler import AssemblyError
from qnetstack.stack.conform import run_conformance
from qnetstack.stack.scenario import ScenarioError, load_scenario, parse_scenario
from tests import broken_networks

# ------------------------------------------------------------------ closed forms


def _mean_of_max_by_sum(p: float) -> float:
    """E[max(N1, N2)] = sum_k P(max > k) = sum_k 1 - (1 - (1-p)^k)^2, summed numerically."""
    k = np.arange(0, 20_000)
    return float(np.sum(1.0 - (1.0 - (1.0 - p) ** k) ** 2))


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9, 1.0])
def test_the_closed_forms_at_their_limits(p):
    assert mean_wait_slots(p, None) == pytest.approx(_mean_of_max_by_sum(p), rel=1e-9)
    assert mean_wait_slots(p, 0) == pytest.approx(1.0 / p**2)  # both links in the same slot
    # a cutoff far beyond any likely wait is no cutoff, with or without the restart slot
    for restart in (0, 1):
        assert mean_wait_slots(p, 5_000, restart) == pytest.approx(mean_wait_slots(p, None), rel=1e-9)
    # a shorter cutoff throws more pairs away: the wait only grows
    waits = [mean_wait_slots(p, c) for c in range(0, 30)]
    assert all(a >= b - 1e-12 for a, b in zip(waits, waits[1:]))
    # sitting a slot out after a discard costs time unless nothing is ever discarded (p = 1)
    if p < 1.0:
        assert mean_wait_slots(p, 2, restart_slots=1) > mean_wait_slots(p, 2, restart_slots=0)


def test_the_closed_form_refuses_what_it_does_not_cover():
    with pytest.raises(ValueError, match="p must be"):
        mean_wait_slots(0.0, 3)
    with pytest.raises(ValueError, match="cutoff_slots"):
        mean_wait_slots(0.5, -1)
    with pytest.raises(ValueError, match="restart_slots"):
        mean_wait_slots(0.5, 3, restart_slots=2)


@pytest.mark.parametrize(
    ("p", "cutoff", "restart"),
    [(0.3, None, 0), (0.3, 0, 0), (0.3, 2, 0), (0.1, 5, 0), (0.3, 0, 1), (0.3, 2, 1), (0.1, 5, 1)],
)
def test_the_closed_form_matches_a_slot_by_slot_simulation(p, cutoff, restart):
    """20,000 waiting times per case (SE about 0.7 % of the mean); 5 SE as in the module docstring."""
    waits = simulate_wait_slots(p, cutoff, 20_000, np.random.default_rng(12), restart_slots=restart)
    se = waits.std(ddof=1) / math.sqrt(len(waits))
    assert abs(waits.mean() - mean_wait_slots(p, cutoff, restart)) < 5 * se
    if cutoff is not None and cutoff < 5:
        # the other restart rule is told apart by the same data: the check has power
        other = mean_wait_slots(p, cutoff, 1 - restart)
        assert abs(waits.mean() - other) > 5 * se


# ------------------------------------------------------------------ the stack


def _two_links(number: int, network: dict[str, Any], seed: int = 1, qubits: dict[str, int] | None = None) -> Any:
    """alice - r - bob, links of 1 cm: the classical delays round to 0 ns and an attempt takes
    1 ns (the least the backend allows), so one attempt slot is one nanosecond."""
    qubits = qubits or {}
    return parse_scenario(
        {
            "seed": seed,
            "nodes": [{"name": n, "hardware": {"memory": {"num_qubits": qubits.get(n, 2)}}} for n in ("alice", "r", "bob")],
            "links": [
                {"a": "alice", "b": "r", "length_km": 1e-5, "bright_state_population": 0.1},
                {"a": "r", "b": "bob", "length_km": 1e-5, "bright_state_population": 0.1},
            ],
            "implementations": {"physical": "model-heralding", "link": "fast-forward-egp"},
            "network": network,
            "applications": [{"node": "alice", "request": {"kind": "pairs", "remote_node": "bob", "number": number}}],
            "keep_trace": True,
            "stop": {"max_events": None},
        }
    )


def _waits(number: int, network: dict[str, Any]) -> tuple[np.ndarray, float, int]:
    """Run the two-link repeater for ``number`` end-to-end pairs; the attempt slots each took.

    Why this is the model's quantity: with no classical delay every message arrives in the
    nanosecond it is sent, so right after a swap both links ask for their next pair in that
    nanosecond and both start attempting in the next (the link layer's agreed start, 2 x delay
    + 1 ns), in step, one attempt per nanosecond (the fast-forward link heralds the K-th
    attempt of a run K - 1 ns after its first). Slot k of a round is nanosecond (last swap + k),
    so a round takes (this swap - last swap) slots; the first round starts at 1 ns."""
    simulation = assemble(_two_links(number, network))
    result = simulation.run()
    assert result.status == "done", result.end
    p = simulation.network.entities["alice"]["network"].topology.edges["alice", "r"]["success_probability"]
    assert p == simulation.network.entities["r"]["network"].topology.edges["r", "bob"]["success_probability"]
    records = simulation.network.trace.records
    swaps = np.array([r["time_ns"] for r in records if r["event"] == "network.swap"])
    cutoffs = sum(1 for r in records if r["event"] == "network.cutoff")
    assert len(swaps) == number
    return np.diff(np.concatenate([[0], swaps])), p, cutoffs


def test_the_stack_waits_as_long_as_the_larger_of_two_geometric_variables():
    """2000 end-to-end pairs, no cutoff: mean attempt slots per pair vs (3 - 2p) / (p (2 - p))."""
    waits, p, cutoffs = _waits(2000, {})
    assert cutoffs == 0
    se = waits.std(ddof=1) / math.sqrt(len(waits))
    assert abs(waits.mean() - mean_wait_slots(p, None)) < 5 * se
    assert abs(waits.mean() - 2 / p) > 5 * se  # both links in turn, not in parallel: told apart


@pytest.mark.parametrize("cutoff", [pytest.param(0, marks=pytest.mark.slow), 2])  # c = 0 discards ~18 pairs per delivery
def test_the_stack_with_a_cutoff_waits_as_the_closed_form_says(cutoff):
    """2000 end-to-end pairs with ``cutoff_ns`` = c slots. The stack restarts a discarded link
    one slot late (the link layer's agreed start, see network/cutoff.py), so it is the
    ``restart_slots=1`` form; the paper's ``restart_slots=0`` is told apart by the same data."""
    waits, p, cutoffs = _waits(2000, {"policy": "swap-asap", "policy_options": {"cutoff_ns": cutoff}})
    assert cutoffs > 1000  # the cutoff did act, often
    se = waits.std(ddof=1) / math.sqrt(len(waits))
    assert abs(waits.mean() - mean_wait_slots(p, cutoff, restart_slots=1)) < 5 * se
    assert abs(waits.mean() - mean_wait_slots(p, None)) > 5 * se
    if cutoff == 0:
        assert abs(waits.mean() - mean_wait_slots(p, cutoff, restart_slots=0)) > 5 * se


def test_a_cut_off_pair_is_freed_at_both_ends():
    """The ends have one memory qubit each: if an end kept its half of a cut-off pair, its link
    could never make another, and the run would stall instead of delivering every pair."""
    simulation = assemble(_two_links(50, {"policy": "swap-asap", "policy_options": {"cutoff_ns": 1}}, qubits={"alice": 1, "bob": 1}))
    result = simulation.run()
    assert result.status == "done", result.end
    assert simulation.network.trace.counts["network.cutoff"] > 50
    # every pair's timer was cancelled when the pair was swapped or cut off: none is left to run
    assert len(simulation.network.entities["r"]["network"]._cutoffs) == 0


def test_a_cutoff_is_no_longer_refused_on_paths_of_more_than_two_links():
    """Paths of any length run with a cutoff (tests/test_cutoff_chains.py tests them in depth)."""
    data = _two_links(5, {"policy": "swap-asap", "policy_options": {"cutoff_ns": 3}}).model_dump()
    data["nodes"].append({"name": "carol", "hardware": {"memory": {"num_qubits": 2}}})
    data["links"].append({**data["links"][1], "a": "bob", "b": "carol"})
    data["applications"][0]["request"]["remote_node"] = "carol"
    simulation = assemble(parse_scenario(data))
    result = simulation.run()
    assert result.status == "done", result.status_line()
    assert result.pairs is not None and result.pairs.count == 5
    assert simulation.network.trace.counts["network.cutoff"] > 0


# ------------------------------------------------------------------ policies by name


def test_a_user_registers_a_policy_and_a_scenario_picks_it_by_name(monkeypatch):
    monkeypatch.setitem(POLICIES, "test-counting", POLICIES["swap-asap"])  # replaced below; undone after

    @register_policy
    class Counting(SwapAsapPolicy):
        """swap-asap that counts its swaps and takes an option of its own."""

        name = "test-counting"
        swaps = 0

        def __init__(self, label: str = "", cutoff_ns: int | None = None) -> None:
            super().__init__(cutoff_ns)
            self.label = label

        def to_swap(self, circuit: Any, pairs: Any) -> Any:
            chosen = super().to_swap(circuit, pairs)
            if chosen is not None:
                Counting.swaps += 1
            return chosen

    assert isinstance(make_policy("test-counting", {"label": "x"}), Counting)
    result = assemble(_two_links(7, {"policy": "test-counting", "policy_options": {"label": "mine"}})).run()
    assert result.status == "done"
    assert Counting.swaps == 7  # one per end-to-end pair, at the repeater


def test_unknown_policies_and_bad_options_are_one_line_errors_naming_the_field():
    with pytest.raises(ScenarioError) as unknown:
        _two_links(1, {"policy": "swap-later"})
    message = str(unknown.value)
    assert message.startswith("network.policy: unknown network policy 'swap-later'; registered: ") and "\n" not in message
    assert all(name in message for name in POLICIES)
    for options, why in (({"cutoff_ns": -5}, "cutoff_ns must be"), ({"cut_off": 5}, "unexpected keyword argument 'cut_off'")):
        with pytest.raises(ScenarioError) as bad:
            _two_links(1, {"policy": "swap-asap", "policy_options": options})
        message = str(bad.value)
        assert message.startswith("network.policy_options: ") and "swap-asap" in message and why in message
        assert "\n" not in message
    with pytest.raises(ScenarioError, match="^network.policy: policy_options are given but no policy"):
        _two_links(1, {"policy_options": {"cutoff_ns": 5}})
    with pytest.raises(PolicyError, match="unknown network policy"):
        make_policy("swap-later")


def test_a_network_layer_that_takes_no_policy_is_refused_naming_the_field():
    class NoPolicies(SwapAsap):
        def __init__(self, ctx: Any, topology: Any) -> None:
            super().__init__(ctx, topology)

    with pytest.raises(AssemblyError, match="^network.policy: network .* takes no policy argument"):
        assemble(_two_links(1, {"policy": "swap-asap"}), {"network": NoPolicies})


# ------------------------------------------------------------------ conformance


CUT_CLAUSES = ["NET-CUT-1", "NET-CUT-2", "NET-CUT-3"]


# the reference and the broken layer are separate items so that two workers share them


@pytest.mark.conformance
def test_the_cutoff_clauses_pass_for_the_reference():
    reference = run_conformance("network", select=CUT_CLAUSES)
    assert reference.failed_clauses() == [], reference.to_text()
    assert {c.status for c in reference.clauses} == {"pass"}


@pytest.mark.conformance
def test_the_cutoff_clauses_catch_a_layer_that_swaps_past_its_cutoff():
    broken = run_conformance("network", broken_networks.SwapsPastTheCutoff, select=CUT_CLAUSES)
    assert "NET-CUT-1" in broken.failed_clauses(), broken.to_text()
    assert all(clause.detail for clause in broken.clauses if clause.status == "fail")


def test_the_cutoff_example_runs_and_cuts_pairs_off():
    simulation = assemble(load_scenario(Path(__file__).resolve().parent.parent / "examples" / "repeater-cutoff.yaml"))
    result = simulation.run()
    assert result.status == "done"
    assert result.pairs is not None and result.pairs.count == 20
    assert simulation.network.trace.counts["network.cutoff"] > 0
