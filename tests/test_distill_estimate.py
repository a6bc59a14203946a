"""The estimate a distilling network layer gives a kept pair (network/distill.py ``round_estimate``,
network/bell_diagonal.py ``parity_check``) against the closed forms of physical/engines/distillation.py
(Bennett et al., PRL 76, 722 (1996); Deutsch et al., PRL 77, 2818 (1996)). Pure functions: exact
comparisons, no sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qnetstack.link.service import EntanglementId, LinkOkKeep
from qnetstack.network import bell_diagonal as bd
from qnetstack.network.distill import _PERMUTATIONS, _Input, round_estimate, werner_round
from qnetstack.physical.engines.bell_diagonal import BellDiagonal
from qnetstack.physical.engines.distillation import bbpssw, bilateral_cnot, dejmps
from qnetstack.physical.service import BellState, MemoryDecoherence


def ok(weights, time_ns: int = 0, frame: BellState = BellState.PSI_PLUS) -> LinkOkKeep:
    return LinkOkKeep(
        create_id=0,
        origin_node="alice",
        ent_id=EntanglementId(creator="alice", peer="bob", sequence=0),
        purpose_id=0,
        remote_node="bob",
        bell_state=frame,
        goodness=weights[0],
        goodness_time_ns=time_ns,
        handle=0,
        bell_diagonal=tuple(weights),
    )


def random_weights(rng) -> tuple[float, float, float, float]:
    w = rng.dirichlet([4.0, 1.0, 1.0, 1.0])
    return tuple(float(x) for x in w)


def test_the_parity_check_is_the_bilateral_cnot_of_the_reference():
    rng = np.random.default_rng(7)
    for _ in range(50):
        a, b = random_weights(rng), random_weights(rng)
        p, kept = bd.parity_check(a, b)
        expected = bilateral_cnot(BellDiagonal.from_weights(a), BellDiagonal.from_weights(b))
        assert expected.state is not None
        assert p == pytest.approx(expected.success_probability, abs=1e-12)
        assert kept == pytest.approx(tuple(expected.state.weights), abs=1e-12)


def test_a_dejmps_round_is_the_dejmps_closed_form_on_any_bell_diagonal_inputs():
    rng = np.random.default_rng(8)
    for _ in range(50):
        a, b = random_weights(rng), random_weights(rng)
        p, kept, _ = round_estimate(_Input(ok(a), "r"), _Input(ok(b), "r"), (None, None), (5, 5))
        expected = dejmps(BellDiagonal.from_weights(a), BellDiagonal.from_weights(b))
        assert expected.state is not None
        assert p == pytest.approx(expected.success_probability, abs=1e-12)
        assert kept == pytest.approx(tuple(expected.state.weights), abs=1e-12)


def test_bbpssw_averaged_over_its_six_permutations_is_the_werner_closed_form():
    """Each pair gets one of six permutations of (Φ−, Ψ+, Ψ−); over all 36 choices for the two
    inputs, the success-weighted mean of the kept fidelity is BBPSSW's Werner formula, although
    each choice alone may be far from it (the inputs here are single-click-like: errors on Ψ±)."""
    a, b = (0.8, 0.0, 0.15, 0.05), (0.75, 0.0, 0.05, 0.2)
    probabilities, fidelities = [], []
    for word_a, word_b in itertools.product(_PERMUTATIONS, repeat=2):
        p, kept, _ = round_estimate(_Input(ok(a), word_a), _Input(ok(b), word_b), (None, None), (0, 0))
        probabilities.append(p)
        fidelities.append(kept[0])
    p_werner, f_werner = werner_round(a[0], b[0])
    reference = bbpssw(BellDiagonal.from_weights(a), BellDiagonal.from_weights(b))
    assert p_werner == pytest.approx(reference.success_probability, abs=1e-12)
    assert np.mean(probabilities) == pytest.approx(p_werner, abs=1e-12)
    assert np.average(fidelities, weights=probabilities) == pytest.approx(f_werner, abs=1e-12)
    assert max(fidelities) - min(fidelities) > 0.05


def test_a_link_without_a_bell_diagonal_estimate_is_taken_as_werner():
    werner_ok = ok((0.9, 0.0, 0.0, 0.0)).model_copy(update={"bell_diagonal": None})
    p, kept, _ = round_estimate(_Input(werner_ok, "hr"), _Input(werner_ok, ""), (None, None), (0, 0))
    assert (p, kept[0]) == pytest.approx(werner_round(0.9, 0.9), abs=1e-12)


def test_inputs_decohere_until_each_ends_readout_and_the_kept_pair_until_the_later_one():
    """Head memory with T2 = 1 ms, tail memory with T1 = T2 = 2 ms; pairs heralded at 0 and 100 us,
    read out at 300 us (head) and 500 us (tail): the same as decaying each input first and the kept
    pair's head half by 200 us after the round."""
    head, tail = MemoryDecoherence(t1_ns=None, t2_ns=1_000_000), MemoryDecoherence(t1_ns=2_000_000, t2_ns=2_000_000)
    a, b = (0.85, 0.05, 0.06, 0.04), (0.9, 0.02, 0.05, 0.03)
    p, kept, time_ns = round_estimate(_Input(ok(a, 0), "r"), _Input(ok(b, 100_000), "r"), (head, tail), (300_000, 500_000))
    assert time_ns == 500_000

    def decay(w, head_ns, tail_ns):
        return bd.decayed(w, bd.add(bd.exponents(head, head_ns), bd.exponents(tail, tail_ns)))

    expected = dejmps(BellDiagonal.from_weights(decay(a, 300_000, 500_000)), BellDiagonal.from_weights(decay(b, 200_000, 400_000)))
    assert expected.state is not None
    assert p == pytest.approx(expected.success_probability, abs=1e-12)
    assert kept == pytest.approx(decay(tuple(expected.state.weights), 200_000, 0), abs=1e-12)
    undecayed = round_estimate(_Input(ok(a, 0), "r"), _Input(ok(b, 100_000), "r"), (None, None), (300_000, 500_000))
    assert undecayed[1][0] - kept[0] > 0.05
