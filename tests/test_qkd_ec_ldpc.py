"""LDPC syndrome reconciliation (application/qkd/ldpc_code.py) and the reconciler registry (application/qkd/reconcile.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qnetstack.application.qkd.ldpc_code import LdpcParameters, LdpcReconciler, build_parity_check, syndrome
from qnetstack.application.qkd.reconcile import (
    ReconciliationFailed,
    ReconciliationResult,
    binary_entropy,
    reconciler,
    reconciler_names,
    register_reconciler,
)
from qnetstack.application.qkd.verify import verify


def noisy_pair(n: int, qber: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    bob = alice ^ (rng.random(n) < qber).astype(np.uint8)
    return alice, bob, rng


def test_parity_check_matrix_has_the_asked_degrees_and_no_repeated_edge():
    rng = np.random.default_rng(1)
    matrix = build_parity_check(2_000, 300, 400, {2: 0.25, 3: 0.6, 12: 0.15}, rng)
    assert matrix.shape == (400, 2_000)
    assert matrix.max() == 1  # a repeated edge would sum to 2
    first = matrix[:300]
    columns = np.asarray(first.sum(axis=0)).ravel()
    assert sorted(np.unique(columns).tolist()) == [2, 3, 12]
    assert np.count_nonzero(columns == 2) == 500 and np.count_nonzero(columns == 12) == 300
    rows = np.asarray(first.sum(axis=1)).ravel()
    assert rows.max() - rows.min() <= 1  # check degrees concentrated
    extra_rows = np.asarray(matrix[300:].sum(axis=1)).ravel()
    assert np.all(extra_rows == math.ceil(columns.sum() / 300))


def test_syndrome_is_the_gf2_product():
    rng = np.random.default_rng(2)
    matrix = build_parity_check(50, 10, 10, {3: 1.0}, rng)
    key = rng.integers(0, 2, 50, dtype=np.uint8)
    assert np.array_equal(syndrome(matrix, key), (matrix.toarray().astype(int) @ key) % 2)


def test_corrects_a_noisy_key_and_reports_the_disclosed_syndrome():
    alice, bob, rng = noisy_pair(2_000, 0.05, seed=3)
    result = LdpcReconciler().reconcile(alice, bob, 0.05, rng)
    assert isinstance(result, ReconciliationResult)
    assert np.array_equal(result.key, alice)
    bound = 2_000 * binary_entropy(0.05)
    # the first try discloses ceil(1.1 n h(q)) rows, each retry ceil(0.05 n h(q)) more
    assert (result.leaked_bits - math.ceil(1.1 * bound)) % math.ceil(0.05 * bound) == 0 or result.leaked_bits == math.ceil(1.5 * bound)
    assert result.efficiency == pytest.approx(result.leaked_bits / bound)
    assert result.passes == result.channel_uses >= 1


def test_a_decoder_that_does_not_converge_is_a_typed_failure_without_a_key():
    """Bob's key has 15 % errors but the estimate says 1 %: the disclosed syndrome cannot suffice."""
    alice, bob, rng = noisy_pair(1_000, 0.15, seed=4)
    result = LdpcReconciler(LdpcParameters(max_iter=20)).reconcile(alice, bob, 0.01, rng)
    assert isinstance(result, ReconciliationFailed)
    assert not hasattr(result, "key")
    assert "did not converge" in result.reason
    assert result.leaked_bits == math.ceil(1.5 * 1_000 * binary_entropy(0.01))  # every step's rows count


def test_same_seed_same_result():
    alice, bob, _ = noisy_pair(2_000, 0.05, seed=5)
    first = LdpcReconciler().reconcile(alice, bob, 0.05, np.random.default_rng(9))
    again = LdpcReconciler().reconcile(alice, bob, 0.05, np.random.default_rng(9))
    assert isinstance(first, ReconciliationResult) and isinstance(again, ReconciliationResult)
    assert first.leaked_bits == again.leaked_bits and np.array_equal(first.key, again.key)


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="sum to 1"):
        LdpcParameters(column_degrees={3: 0.5})
    with pytest.raises(ValueError, match="f_start"):
        LdpcParameters(f_start=2.0, f_max=1.5)


def test_registry_has_both_methods_and_takes_a_users():
    assert {"cascade", "ldpc"} <= set(reconciler_names())
    assert reconciler("cascade").name == "cascade" and reconciler("ldpc").name == "ldpc"
    with pytest.raises(ValueError, match="unknown reconciler 'turbo'"):
        reconciler("turbo")

    class Reveal:
        """Alice discloses her whole key: correct, and as inefficient as can be."""

        name = "reveal-all-for-test"

        def reconcile(self, alice, bob, qber_estimate, rng):
            return ReconciliationResult(
                self.name, alice.copy(), alice.size, alice.size / (alice.size * binary_entropy(qber_estimate)), 1, 1
            )

    if "reveal-all-for-test" not in reconciler_names():
        register_reconciler("reveal-all-for-test", Reveal)
    alice, bob, rng = noisy_pair(100, 0.1, seed=6)
    result = reconciler("reveal-all-for-test").reconcile(alice, bob, 0.1, rng)
    assert np.array_equal(result.key, alice) and result.leaked_bits == 100
    with pytest.raises(ValueError, match="already registered"):
        register_reconciler("cascade", Reveal)


@pytest.mark.slow
@pytest.mark.parametrize("qber", [0.01, 0.02, 0.03, 0.05])
def test_efficiency_on_ten_thousand_bit_blocks(qber):
    """6 seeded blocks of 10^4 bits per QBER (each ~1-2 s: the BP decoder runs up to 100
    iterations per try). f moves in steps of 0.05 (the retry size) and with the block's error
    count; 6 blocks give an SE of ~0.01-0.03. At 3 % and 5 % mean + 2 SE <= 1.25 holds; at 1-2 %
    these random codes do not reach 1.25 (the figures are in docs/qkd-postprocessing.md), so
    there the test holds them to what they measure, mean + 2 SE <= 1.35."""
    values = []
    for seed in range(6):
        alice, bob, rng = noisy_pair(10_000, qber, seed=300 + seed)
        result = LdpcReconciler().reconcile(alice, bob, qber, rng)
        assert isinstance(result, ReconciliationResult), result
        values.append(result.efficiency)
    mean = float(np.mean(values))
    se = float(np.std(values, ddof=1) / math.sqrt(len(values)))
    print(f"ldpc q={qber}: f = {mean:.4f} +- {se:.4f} (SE, 6 blocks of 10^4 bits)")
    assert mean + 2 * se <= (1.25 if qber >= 0.03 else 1.35)


@pytest.mark.slow
def test_keys_equal_in_every_run_that_outputs_one_at_3_percent():
    """200 seeded runs at QBER 3 % (1000-bit keys, to keep the decoder's time in bounds), LDPC then a 64-bit verification tag:
    a run outputs a key only if the decoder converged and the tags agree, and every key output is Alice's. At 1000 bits
    the codes are weaker than at 10^4, so the syndrome may grow to f_max = 2 here."""
    outputs = 0
    for seed in range(200):
        alice, bob, rng = noisy_pair(1_000, 0.03, seed=2_000 + seed)
        result = LdpcReconciler(LdpcParameters(f_max=2.0)).reconcile(alice, bob, 0.03, rng)
        if isinstance(result, ReconciliationFailed):
            continue
        checked = verify(alice, result.key, rng)
        if checked.key is not None:
            outputs += 1
            assert np.array_equal(checked.key, alice)
    print(f"ldpc: {outputs} of 200 runs output a key")
    assert outputs >= 185  # measured 190: the rest reach f = 2 unconverged and are reported, not output
