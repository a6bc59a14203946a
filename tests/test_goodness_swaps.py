"""Goodness through swaps: the Bell-diagonal algebra of the delivered link states against the
simulated states (specs/network.md, Goodness through swaps; NET-GOOD-1, NET-GOOD-2).

The reference network layer composes the links' Bell-diagonal estimates with each memory half's
decoherence until its swap or the delivery (network/bell_diagonal.py). Here the same composition is
recomputed independently, with the physical layer's Bell-diagonal engine
(``qnetstack.physical.engines.bell_diagonal``: XOR-convolution for swaps, phase flips for T2), from
what the repeaters reported (each link pair's diagonal and herald time, each swap's time), up to
the moment the application read the oracle fidelity; and compared with that oracle fidelity.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from qnetstack.application.service import PairResult
from qnetstack.network import bell_diagonal as bd
from qnetstack.network.service import PairDelivered
from qnetstack.network.swap_asap import SwapAsap
from qnetstack.physical.engines.bell_diagonal import BellDiagonal
from qnetstack.physical.service import BellState, MemoryDecoherence
from qnetstack.stack import assemble
from qnetstack.stack.conform import run_conformance
from qnetstack.stack.scenario import parse_scenario
from tests import broken_networks

KM = 10.0


class _Tap:
    """A network context that also keeps what is sent up."""

    def __init__(self, ctx, sent_up: list) -> None:
        self._ctx, self._sent_up = ctx, sent_up

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def send_up(self, msg) -> None:
        self._sent_up.append((self._ctx.node, msg))
        self._ctx.send_up(msg)


class RecordingNetwork(SwapAsap):
    """The reference, keeping at the tail the swap records of every pair it delivers, and
    everything it sends up."""

    chains: dict[tuple[str, int, int], list] = {}  # (head, request_id, index) -> records, by position
    sent_up: list = []

    def __init__(self, ctx, topology) -> None:
        super().__init__(_Tap(ctx, RecordingNetwork.sent_up), topology)

    def _try_deliver(self, circuit, pair) -> None:
        found = circuit.chain(pair.key) if circuit.hops > 1 and not circuit.is_head else None
        delivered = circuit.delivered
        super()._try_deliver(circuit, pair)
        if found is not None and circuit.delivered > delivered:
            records = sorted(found, key=lambda r: r.position)
            RecordingNetwork.chains[(circuit.head, circuit.request_id, records[0].swap_index)] = records


def chain_scenario(links: int, pairs: int, memory: dict, scheme: str = "single-click", seed: int = 1):
    nodes = [f"n{i}" for i in range(links + 1)]
    return parse_scenario(
        {
            "name": f"goodness-chain-{links}",
            "seed": seed,
            "nodes": [{"name": n, "hardware": {"memory": {"num_qubits": 4, **memory}}} for n in nodes],
            "links": [{"a": a, "b": b, "length_km": KM, "scheme": scheme} for a, b in zip(nodes, nodes[1:], strict=False)],
            "implementations": {"physical": "model-heralding", "link": "fast-forward-egp", "network": "swap-asap"},
            "applications": [{"node": nodes[0], "request": {"kind": "pairs", "remote_node": nodes[-1], "number": pairs}}],
        }
    )


def run_recorded(scenario):
    RecordingNetwork.chains, RecordingNetwork.sent_up[:] = {}, []
    simulation = assemble(scenario, {"network": RecordingNetwork})
    result = simulation.run()
    results = [m for _, _, m in simulation.network.user_messages if isinstance(m, PairResult)]
    return result, results, dict(RecordingNetwork.chains)


def predicted_fidelity(records: list, read_ns: int, t2_ns: float | None) -> float:
    """The physical engine's Bell-diagonal algebra: each link pair from its herald, its left half
    dephased until the swap at its left node (or the read, at the head), its right half until the
    swap at its right node (or the read, at the tail); then swapped along the path, frames tracked
    (weights are relative to the frames, so every swap is relabelled by Φ+)."""
    links = [records[0].upstream_estimate, *(r.downstream_estimate for r in records)]
    swaps = [r.swap_time_ns for r in records]
    ends = [read_ns, *swaps, read_ns]  # the time each node's half stops decohering: node i at ends[i]
    state = None
    for i, link in enumerate(links):
        pair = BellDiagonal.from_weights(link.weights)
        pair = pair.memory_noise(ends[i] - link.time_ns, None, t2_ns, "A").memory_noise(ends[i + 1] - link.time_ns, None, t2_ns, "B")
        state = pair if state is None else state.swap(pair, BellState.PHI_PLUS)
    assert state is not None
    return state.fidelity(BellState.PHI_PLUS)


@pytest.mark.slow
@pytest.mark.parametrize("t2_ns", [None, 20_000_000], ids=["ideal", "dephasing"])
@pytest.mark.parametrize("links", range(2, 9))
def test_oracle_fidelity_matches_the_bell_diagonal_algebra_of_the_link_states(links, t2_ns):
    """Chains of 2-8 single-click links (10 km each), ideal memories or T2 = 20 ms (no T1, so the
    memory channel is a Pauli channel and the algebra is exact for the mean): 200 pairs each. Per
    pair, the difference between the oracle fidelity (read by the application) and the algebra at
    the moment of that read; their mean is within 5 standard errors of 0. Single-click states are
    not Bell-diagonal (their |11> term), so single pairs differ (Bell coherences favour some swap
    outcomes); the mean over outcomes does not (specs/network.md, why a diagonal is enough). A
    relative floor of 1e-9 covers rounding when every pair agrees exactly."""
    scenario = chain_scenario(links, 200, {"t2_ns": t2_ns})
    result, results, chains = run_recorded(scenario)
    assert result.end.status == "done" and len(results) == 200
    differences = []
    for r in results:
        differences.append(r.oracle_fidelity - predicted_fidelity(chains[key(r)], r.reported_time_ns, t2_ns))
    mean = statistics.fmean(differences)
    se = statistics.stdev(differences) / math.sqrt(len(differences))
    assert abs(mean) <= 5 * se + 1e-9, (mean, se)
    # The check has teeth: 5 SE is under 0.002 here, and the simpler estimates miss by more than
    # that: with dephasing, the algebra without the memories' decay (by 0.027 at 2 links, more
    # beyond); ideal, the Werner composition of the link fidelities, once the chain is long
    # enough for the difference to grow (0.004 at 4 links; 0.0007 at 2, under 5 SE).
    assert 5 * se < 0.002
    if t2_ns is not None:
        without_decay = [r.oracle_fidelity - predicted_fidelity(chains[key(r)], r.reported_time_ns, None) for r in results]
        assert abs(statistics.fmean(without_decay)) > 5 * se
    elif links >= 4:
        assert abs(statistics.fmean(r.oracle_fidelity - werner_fidelity(chains[key(r)]) for r in results)) > 5 * se


def key(result: PairResult) -> tuple[str, int, int]:
    return (result.pair_id.head, result.pair_id.request_id, result.pair_id.index)


def werner_fidelity(records: list) -> float:
    f = records[0].upstream_estimate.weights[0]
    for r in records:
        g = r.downstream_estimate.weights[0]
        f = f * g + (1 - f) * (1 - g) / 3
    return f


@pytest.mark.slow
def test_goodness_is_within_0_01_of_the_oracle_with_decohering_memories():
    """1000 pairs over a chain of 5 nodes (4 Barrett-Kok links of 10 km), memories with T1 = 100 ms
    and T2 = 50 ms (T1 amplitude damping too: the estimate's twirled channel is then approximate).
    The mean goodness (at each delivery) is within 0.01 of the mean oracle fidelity (read when the
    application has both halves, up to a path delay later): the issue's target. The decoherence
    matters here: the pairs lose more than 0.01 of fidelity to it, so ignoring it would fail."""
    memory = {"t1_ns": 100_000_000, "t2_ns": 50_000_000}
    result = assemble(chain_scenario(4, 1000, memory, scheme="barrett-kok")).run()
    assert result.pairs.count == 1000
    gap = result.pairs.mean_goodness - result.pairs.mean_oracle_fidelity
    assert abs(gap) < 0.01, (result.pairs.mean_goodness, result.pairs.mean_oracle_fidelity)
    ideal = assemble(chain_scenario(4, 1000, {"t2_ns": None}, scheme="barrett-kok")).run()
    assert ideal.pairs.mean_oracle_fidelity - result.pairs.mean_oracle_fidelity > 0.01


@pytest.mark.slow
def test_the_twirled_t1_channel_is_a_small_error_under_strong_amplitude_damping():
    """With T1 = 10 ms, T2 = 5 ms (single-click, 4 links of 10 km, 1000 pairs) decoherence costs
    the pairs about 0.2 of fidelity, and the estimate's Pauli-twirled memory channel drops the
    amplitude damping's drift towards |0> (specs/network.md). The network's own algebra
    (network/bell_diagonal.py), from the records to the moment of the oracle read, is still within
    0.003 of the mean oracle fidelity (measured: 0.0017, standard error 0.0001), while the same
    algebra with no decay at all is off by more than 0.1."""
    memory = MemoryDecoherence(t1_ns=10_000_000, t2_ns=5_000_000)
    result, results, chains = run_recorded(chain_scenario(4, 1000, {"t1_ns": 10_000_000, "t2_ns": 5_000_000}))
    assert result.end.status == "done" and len(results) == 1000
    with_decay, without_decay = [], []
    for r in results:
        records = chains[key(r)]
        links = [records[0].upstream_estimate, *(x.downstream_estimate for x in records)]
        decay = bd.add(
            bd.exponents(memory, r.reported_time_ns - links[0].time_ns), bd.exponents(memory, r.reported_time_ns - links[-1].time_ns)
        )
        for x in records:
            decay = bd.add(decay, x.swap_decay)
        weights = [link.weights for link in links]
        with_decay.append(r.oracle_fidelity - bd.chain_fidelity(weights, decay))
        without_decay.append(r.oracle_fidelity - bd.chain_fidelity(weights, bd.NO_DECAY))
    assert abs(statistics.fmean(with_decay)) < 0.003
    assert abs(statistics.fmean(without_decay)) > 0.1


def test_goodness_through_swaps_is_the_algebra_of_the_records():
    """Fast check on a 3-link single-click chain with dephasing memories: each delivered pair's
    goodness (at the tail's delivery) is what the physical engine's algebra gives from the records
    at the goodness time, to rounding: the network's composition and the engine's agree."""
    t2 = 5_000_000
    run_recorded(chain_scenario(3, 30, {"t2_ns": t2}))
    delivered = [m for node, m in RecordingNetwork.sent_up if isinstance(m, PairDelivered) and node == "n3"]
    assert len(delivered) == 30
    for d in delivered:
        records = RecordingNetwork.chains[(d.pair_id.head, d.pair_id.request_id, d.pair_id.index)]
        assert d.goodness == pytest.approx(predicted_fidelity(records, d.goodness_time_ns, t2), abs=1e-12)
        assert d.goodness_time_ns >= max(r.swap_time_ns for r in records)  # NET-GOOD-2


def test_correlations_and_weights_are_inverse_and_swaps_multiply_them():
    rng = np.random.default_rng(7)
    for _ in range(20):
        w1, w2 = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(4))
        assert bd.weights(bd.correlations(w1)) == pytest.approx(tuple(w1), abs=1e-12)
        swapped = BellDiagonal.from_weights(w1).swap(BellDiagonal.from_weights(w2), BellState.PHI_PLUS)
        assert bd.chain_fidelity([w1, w2], bd.NO_DECAY) == pytest.approx(swapped.fidelity(), abs=1e-12)


def test_memory_exponents_follow_t1_and_t2():
    memory = MemoryDecoherence(t1_ns=100.0, t2_ns=50.0)
    assert bd.exponents(memory, 10) == pytest.approx((0.2, 0.2, 0.1))
    assert bd.exponents(None, 10) == bd.NO_DECAY
    assert bd.exponents(MemoryDecoherence(), 10) == bd.NO_DECAY
    # a perfect pair after T2 dephasing of one half for t: F = (1 + e^{-t/T2}) / 2
    assert bd.chain_fidelity([(1, 0, 0, 0)], bd.exponents(MemoryDecoherence(t2_ns=50.0), 50)) == pytest.approx((1 + math.exp(-1)) / 2)


@pytest.mark.conformance
def test_werner_goodness_on_non_werner_states_is_caught_by_net_good_1():
    """The broken layer drops the links' Bell diagonals and composes goodness as Werner states;
    NET-GOOD-1 catches it, and the controls next to it pass."""
    report = run_conformance("network", broken_networks.WernerGoodness, select=["NET-GOOD-1", "NET-GOOD-2", "NET-PAIR-6", "NET-REQ-1"])
    assert set(report.failed_clauses()) == {"NET-GOOD-1"}, report.to_text()
    assert all(clause.detail for clause in report.clauses if clause.status == "fail")
