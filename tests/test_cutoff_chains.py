"""Cutoffs on paths of three links and more, per link and per circuit (issue 12, items 5 and 8).

The chains are n0 - n1 - ... - nL with links of 1 cm: the classical delays round to 0 ns and an
attempt takes 1 ns, so one attempt slot is one nanosecond (as in tests/test_cutoff.py). What the
network layer used for each delivered pair is read from the swap records the ends delivered it
with (each record names the herald times of the two link pairs it joined and the swap's time).

Statistics: a mean is compared with another within 5 standard errors of their difference
(SE = sqrt(var1/n1 + var2/n2), sample variances); the samples are independent and large
(n >= 200), so the means are normal to a good approximation and a correct model fails a
5-SE check with probability below 1e-6; the seeds are fixed, so every run is the same. Each
check is shown able to fail: a model or a run it does not hold for is farther than 5 SE.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qnetstack.application.service import PairResult
from qnetstack.network.service import PairDelivered
from qnetstack.network.swap_asap import SwapAsap
from qnetstack.stack import assemble
from qnetstack.stack.conform import run_conformance
from qnetstack.stack.scenario import load_scenario, parse_scenario
from tests import broken_networks


def chain(links: int, number: int, options: dict[str, Any] | None, seed: int = 1, t2_ns: int | None = None) -> Any:
    """A chain of ``links`` 1-cm links with two memory qubits per node; n0 asks nL for pairs."""
    nodes = [f"n{i}" for i in range(links + 1)]
    memory: dict[str, Any] = {"num_qubits": 2}
    if t2_ns is not None:
        memory["t2_ns"] = t2_ns
    return parse_scenario(
        {
            "seed": seed,
            "nodes": [{"name": n, "hardware": {"memory": memory}} for n in nodes],
            "links": [{"a": a, "b": b, "length_km": 1e-5, "bright_state_population": 0.1} for a, b in zip(nodes, nodes[1:], strict=False)],
            "implementations": {"physical": "model-heralding", "link": "fast-forward-egp"},
            "network": {} if options is None else {"policy": "swap-asap", "policy_options": options},
            "applications": [{"node": nodes[0], "request": {"kind": "pairs", "remote_node": nodes[-1], "number": number}}],
            "keep_trace": True,
            "stop": {"max_events": None},
        }
    )


class _Tap:
    """A network context that also keeps what is sent up."""

    def __init__(self, ctx: Any, sent_up: list) -> None:
        self._ctx, self._sent_up = ctx, sent_up

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def send_up(self, msg: Any) -> None:
        self._sent_up.append((self._ctx.node, msg))
        self._ctx.send_up(msg)


class RecordingNetwork(SwapAsap):
    """The reference, keeping at each end the swap records of every pair it delivers, and what
    it sends up."""

    chains: dict[tuple[str, int], list] = {}  # (end node, index) -> records, by position
    sent_up: list = []

    def __init__(self, ctx: Any, topology: Any, policy: Any = None, metric: Any = None, policy_options: Any = None) -> None:
        super().__init__(_Tap(ctx, RecordingNetwork.sent_up), topology, policy, metric, policy_options)

    def _try_deliver(self, circuit: Any, pair: Any) -> None:
        found = circuit.chain(pair.key) if circuit.hops > 1 else None
        delivered = circuit.delivered
        super()._try_deliver(circuit, pair)
        if found is not None and circuit.delivered > delivered:
            records = sorted(found, key=lambda r: r.position)
            RecordingNetwork.chains[(self.ctx.node, records[0].swap_index)] = records


def run_recorded(scenario: Any) -> tuple[Any, Any]:
    RecordingNetwork.chains, RecordingNetwork.sent_up[:] = {}, []
    simulation = assemble(scenario, {"network": RecordingNetwork})
    return simulation, simulation.run()


def oldest_swap_age(records: list) -> int:
    """The largest age of a link pair at one of its swaps, in ns (each inner link pair is
    swapped at both its ends: it appears in two records)."""
    return max(r.swapped_ns - herald for r in records for herald in r.herald_ns)


def chain_age(records: list) -> int:
    """The age of the chain's oldest link pair at the chain's last swap."""
    return max(r.swapped_ns for r in records) - min(h for r in records for h in r.herald_ns)


def _nothing_held(simulation: Any) -> None:
    network = simulation.network
    nodes = {node: layers for node, layers in network.entities.items() if "network" in layers}
    held = {node: layers["physical"].held_handles() for node, layers in nodes.items()}
    assert not any(held.values()), f"qubits still held: {held}"
    for node, layers in nodes.items():
        entity = layers["network"]
        assert not entity._circuits, f"{node} still runs {list(entity._circuits)}"
        assert entity._cutoffs is None or len(entity._cutoffs) == 0, f"{node} has cutoff timers left"


def _both_ends_agree(links: int, number: int) -> None:
    """Both ends delivered the same pair ids, 0 .. number-1, each from the same chain of swaps."""
    ids = {
        node: sorted(m.pair_id.index for n, m in RecordingNetwork.sent_up if n == node and isinstance(m, PairDelivered))
        for node in ("n0", f"n{links}")
    }
    assert ids["n0"] == ids[f"n{links}"] == list(range(number))
    for index in range(number):
        head, tail = RecordingNetwork.chains[("n0", index)], RecordingNetwork.chains[(f"n{links}", index)]
        assert [(r.upstream_ent_id, r.downstream_ent_id) for r in head] == [(r.upstream_ent_id, r.downstream_ent_id) for r in tail]


# ------------------------------------------------------------------ per link


@pytest.mark.parametrize(("links", "cutoff"), [(3, 2), (4, 3), pytest.param(5, 3, marks=pytest.mark.slow)])
def test_chains_with_a_per_link_cutoff_deliver_every_pair_on_fresh_link_pairs(links, cutoff):
    """40 pairs over 3, 4 and 5 links, two qubits per node: every pair is delivered at both ends
    with the same ids; chains broken after part of them was swapped happened (swaps voided)
    and none was delivered: no delivered pair rests on a link pair older than the cutoff at
    either of its swaps; no qubit, circuit or timer is left. The same run without a cutoff
    delivers pairs that the check refuses, so it can fail."""
    number = 40
    simulation, result = run_recorded(chain(links, number, {"cutoff_ns": cutoff}))
    assert result.status == "done", result.status_line()
    counts = simulation.network.trace.counts
    assert counts["network.cutoff"] > number and counts["network.swap_void"] > 0
    assert len(RecordingNetwork.chains) == 2 * number
    for records in RecordingNetwork.chains.values():
        assert len(records) == links - 1
        assert oldest_swap_age(records) <= cutoff
    _both_ends_agree(links, number)
    _nothing_held(simulation)

    _, plain = run_recorded(chain(links, number, None))
    assert plain.status == "done"
    assert max(oldest_swap_age(records) for records in RecordingNetwork.chains.values()) > cutoff


def test_a_cutoff_raises_the_fidelity_of_pairs_on_decohering_memories():
    """200 pairs over 3 links with T2 = 30 slots, with and without a cutoff of 3 slots.
    The oracle fidelity is higher with the cutoff by far more than 5 SE (measured: 0.736
    against 0.597, SE 0.002 and 0.007), and with the cutoff the goodness each end reports
    still matches the oracle: the mean of goodness - oracle fidelity (pair by pair, both read in
    the same nanosecond here) is within 5 SE of 0."""
    number = 200
    fidelity: dict[str, list[float]] = {}
    for name, options in (("plain", None), ("cutoff", {"cutoff_ns": 3})):
        simulation = assemble(chain(3, number, options, t2_ns=30))
        result = simulation.run()
        assert result.status == "done"
        results = [m for _, _, m in simulation.network.user_messages if isinstance(m, PairResult)]
        assert len(results) == number
        fidelity[name] = [r.oracle_fidelity for r in results]
        gaps = [r.goodness - r.oracle_fidelity for r in results]
        assert abs(statistics.fmean(gaps)) < 5 * statistics.stdev(gaps) / math.sqrt(len(gaps)) + 1e-12
    se = math.sqrt(sum(statistics.variance(f) / len(f) for f in fidelity.values()))
    assert statistics.fmean(fidelity["cutoff"]) - statistics.fmean(fidelity["plain"]) > 5 * se


# ------------------------------------------------------------------ waiting time


def simulate_chain_wait(links: int, p: float, cutoff: int | None, samples: int, rng: np.random.Generator) -> np.ndarray:
    """The slot model of a chain run with swap-asap, independent of the stack: attempt slots
    until every link holds a pair joined end to end, from a start with no pair held.

    In each slot every link without a pair attempts (success ``p``). Adjacent links that hold
    pairs are joined at once (the repeater between them swaps). With a cutoff of ``c`` slots a
    run of joined links is discarded whole in slot ``s`` when a half at one of its repeater ends
    (its leftmost link unless that is the head's, its rightmost unless that is the tail's)
    belongs to a pair made in slot ``t <= s - c - 1``: the partner arriving in slot ``s`` is too
    late. Its links attempt again from slot ``s + 1`` (with no classical delay, a new CREATE's
    first attempt is in the next nanosecond). That is the protocol of network/cutoff.py: a cut
    discards the whole swapped segment it breaks."""
    made = np.full((samples, links), -1)  # per sample, the slot each link's pair was made; -1: none
    waits = np.zeros(samples, dtype=np.int64)
    running = np.arange(samples)
    rows = np.arange(samples)[:, None]
    slot = 0
    while running.size:
        slot += 1
        held = made[running] >= 0
        if cutoff is not None:
            # the ends of the run of held links each link is in (its own index where it holds none)
            left = np.tile(np.arange(links), (running.size, 1))
            right = left.copy()
            for j in range(1, links):
                left[:, j] = np.where(held[:, j] & held[:, j - 1], left[:, j - 1], j)
            for j in range(links - 2, -1, -1):
                right[:, j] = np.where(held[:, j] & held[:, j + 1], right[:, j + 1], j)
            current = made[running]
            r = rows[: running.size]
            too_old_left = (left > 0) & (slot - current[r, left] > cutoff)
            too_old_right = (right < links - 1) & (slot - current[r, right] > cutoff)
            dead = held & (too_old_left | too_old_right)
        else:
            dead = np.zeros_like(held)
        succeeded = ~held & (rng.random(held.shape) < p)
        current = made[running]
        current[dead] = -1
        current[succeeded] = slot
        made[running] = current
        done = (current >= 0).all(axis=1)
        waits[running[done]] = slot
        running = running[~done]
    return waits


def _stack_waits(links: int, number: int, cutoff: int | None) -> tuple[np.ndarray, float]:
    """The slots each end-to-end pair took in the stack: with no classical delay every link
    restarts in the nanosecond after a delivery, so a pair's wait is the time between
    deliveries at the head (the first counted from 0)."""
    simulation = assemble(chain(links, number, None if cutoff is None else {"cutoff_ns": cutoff}))
    result = simulation.run()
    assert result.status == "done"
    p = simulation.network.entities["n0"]["network"].topology.edges["n0", "n1"]["success_probability"]
    done = [r["time_ns"] for r in simulation.network.trace.records if r["event"] == "network.deliver" and r["node"] == "n0"]
    assert len(done) == number
    return np.diff(np.concatenate([[0], done])), p


@pytest.mark.parametrize("cutoff", [None, 2])
def test_the_mean_wait_of_a_three_link_chain_matches_the_slot_model(cutoff):
    """1000 end-to-end pairs of the stack against 20,000 waits of the slot model (numpy, above),
    with and without a cutoff of 2 slots: within 5 SE of their difference. The cutoff
    quadruples the wait (about 64 slots against 15): each model is farther than 5 SE from the
    other's data, so the check tells them apart."""
    waits, p = _stack_waits(3, 1000, cutoff)
    model = simulate_chain_wait(3, p, cutoff, 20_000, np.random.default_rng(7))
    se = math.sqrt(waits.var(ddof=1) / len(waits) + model.var(ddof=1) / len(model))
    assert abs(waits.mean() - model.mean()) < 5 * se
    other = simulate_chain_wait(3, p, 2 if cutoff is None else None, 20_000, np.random.default_rng(8))
    se_other = math.sqrt(waits.var(ddof=1) / len(waits) + other.var(ddof=1) / len(other))
    assert abs(waits.mean() - other.mean()) > 5 * se_other


def test_the_slot_model_without_cutoff_is_the_largest_of_independent_geometric_waits():
    """Without a cutoff the chain waits for the last of its links: E[max of L geometric] =
    sum_k 1 - (1 - (1-p)^k)^L. 20,000 waits, 5 SE."""
    p, links = 0.2, 4
    waits = simulate_chain_wait(links, p, None, 20_000, np.random.default_rng(3))
    k = np.arange(0, 5_000)
    expected = float(np.sum(1.0 - (1.0 - (1.0 - p) ** k) ** links))
    assert abs(waits.mean() - expected) < 5 * waits.std(ddof=1) / math.sqrt(len(waits))


# ------------------------------------------------------------------ per circuit


@pytest.mark.parametrize(("links", "bound"), [(2, 3), (3, 6), pytest.param(4, 9, marks=pytest.mark.slow)])
def test_a_per_circuit_cutoff_bounds_the_oldest_link_pair_and_both_ends_agree(links, bound):
    """40 pairs with ``circuit_cutoff_ns``: complete chains over the bound were discarded at both
    ends (traced at each), none delivered: every delivered pair's oldest link pair is within the
    bound at its chain's last swap; both ends deliver the same ids from the same chains; nothing
    is left held. Without the bound the same chain delivers pairs over it: the check can fail."""
    number = 40
    simulation, result = run_recorded(chain(links, number, {"circuit_cutoff_ns": bound}))
    assert result.status == "done", result.status_line()
    trace = simulation.network.trace
    judged = [r["node"] for r in trace.records if r["event"] == "network.circuit_cutoff"]
    assert judged.count("n0") == judged.count(f"n{links}") > number // 2  # each end judged every discarded chain
    for records in RecordingNetwork.chains.values():
        assert chain_age(records) <= bound
    _both_ends_agree(links, number)
    _nothing_held(simulation)

    _, plain = run_recorded(chain(links, number, None))
    assert plain.status == "done"
    assert max(chain_age(records) for records in RecordingNetwork.chains.values()) > bound


def test_both_cutoffs_at_once():
    """A per-link and a per-circuit cutoff together on four links: both bounds hold for every
    delivered pair and every pair is delivered."""
    simulation, result = run_recorded(chain(4, 20, {"cutoff_ns": 4, "circuit_cutoff_ns": 10}))
    assert result.status == "done", result.status_line()
    for records in RecordingNetwork.chains.values():
        assert oldest_swap_age(records) <= 4 and chain_age(records) <= 10
    _both_ends_agree(4, 20)
    _nothing_held(simulation)


# ------------------------------------------------------------------ conformance and the example


CHAIN_CUT_CLAUSES = ["NET-CUT-4", "NET-CUT-5"]


@pytest.mark.slow
@pytest.mark.conformance
def test_the_longer_chain_clauses_pass_for_the_reference():
    reference = run_conformance("network", select=CHAIN_CUT_CLAUSES)
    assert reference.failed_clauses() == [], reference.to_text()
    assert {c.status for c in reference.clauses} == {"pass"}


@pytest.mark.slow
@pytest.mark.conformance
@pytest.mark.parametrize(
    "broken, expected",
    [
        (broken_networks.LeavesBrokenChains, {"NET-CUT-4", "NET-CUT-5"}),
        (broken_networks.DeliversPastTheCircuitCutoff, {"NET-CUT-5"}),
        (broken_networks.SwapsPastTheCutoff, {"NET-CUT-4"}),
    ],
    ids=["LeavesBrokenChains", "DeliversPastTheCircuitCutoff", "SwapsPastTheCutoff"],
)
def test_the_longer_chain_clauses_catch_broken_layers(broken, expected):
    """One item per broken layer (not a loop in one test), so that two workers share them."""
    report = run_conformance("network", broken, select=CHAIN_CUT_CLAUSES)
    assert set(report.failed_clauses()) == expected, (broken.__name__, report.to_text())
    assert all(clause.detail for clause in report.clauses if clause.status == "fail")


def test_the_chain_cutoff_example_runs_and_cuts_pairs_off():
    simulation = assemble(load_scenario(Path(__file__).resolve().parent.parent / "examples" / "chain-cutoff.yaml"))
    result = simulation.run()
    assert result.status == "done"
    assert result.pairs is not None and result.pairs.count == 20
    counts = simulation.network.trace.counts
    assert counts["network.cutoff"] > 0 and counts["network.circuit_cutoff"] > 0
