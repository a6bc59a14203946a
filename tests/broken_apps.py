"""Broken QKD applications for the conformance tests: each skips one post-processing stage.

Each is the reference application with a post-processing that leaves out one
stage; ``tests/test_qkd_app_conformance.py`` checks that the suite names the
clause it breaks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qnetstack.application.apps import BasicApps
from qnetstack.application.qkd.estimation import estimate_qber
from qnetstack.application.qkd.key_length import finite_key_entanglement
from qnetstack.application.qkd.privacy import amplify, toeplitz_hash
from qnetstack.application.qkd.reconcile import reconciler
from qnetstack.application.qkd.sifting import sift_bb84, sift_e91
from qnetstack.application.qkd.types import RawRecords
from qnetstack.application.qkd_apps import E91_CHSH, QkdApps, QkdResult, split_epsilon
from qnetstack.application.service import AppErrorCode


def _careless(verify: bool, amplify_key: bool) -> Any:
    def post_process(protocol: str, head_bases: Any, head_bits: Any, tail_bases: Any, tail_bits: Any, request: Any, rng: Any) -> QkdResult:
        eps_sec, eps_cor = split_epsilon(request.epsilon)
        records = RawRecords(
            alice_basis=head_bases, alice_bit=head_bits, bob_basis=tail_bases, bob_bit=tail_bits, detected=np.ones(len(head_bits), bool)
        )
        key = sift_e91(records, E91_CHSH).key if protocol == "e91" else sift_bb84(records)
        sample = round(request.sample_fraction * len(key))
        estimate = estimate_qber(key, sample, rng, eps_sec, request.qber_threshold)
        if estimate.abort is not None:
            return QkdResult(AppErrorCode.QBER_TOO_HIGH, "QBER above the threshold", None, None, 2, {})
        alice, bob = np.asarray(estimate.key.alice), np.asarray(estimate.key.bob)
        corrected = reconciler(request.ec).reconcile(alice, bob, max(estimate.qber, 0.005), rng)
        bob_key = np.asarray(corrected.key)
        tag_bits = 64
        if verify and not np.array_equal(alice, bob_key):
            return QkdResult(AppErrorCode.VERIFY_FAILED, "tags differ", None, None, 3, {})
        figures = dict(
            pairs=len(head_bits),
            epsilon_sec=eps_sec,
            epsilon_cor=eps_cor,
            sifted_bits=len(key),
            sample_bits=sample,
            sample_errors=estimate.sample_errors,
            qber=estimate.qber,
            qber_upper=estimate.qber_upper,
            leaked_ec_bits=corrected.leaked_bits,
            verify_bits=tag_bits if verify else 0,
        )
        if not amplify_key:  # the corrected key as it is: no privacy amplification
            return QkdResult(None, "", alice.copy(), bob_key.copy(), 4, figures)
        leak = corrected.leaked_bits + figures["verify_bits"]
        length = finite_key_entanglement(len(alice), sample, estimate.sample_errors, leak, eps_sec, eps_cor).length
        if length == 0:
            return QkdResult(AppErrorCode.KEY_TOO_SHORT, "no secret bit", None, None, 4, figures)
        amplified = amplify(alice, length, rng)
        return QkdResult(None, "", amplified.key, toeplitz_hash(bob_key, amplified.seed, length), 4, figures)

    return post_process


class _Unverified(QkdApps):
    def post_process(self, *arguments: Any) -> QkdResult:
        return _careless(verify=False, amplify_key=True)(*arguments)


class _Unamplified(QkdApps):
    def post_process(self, *arguments: Any) -> QkdResult:
        return _careless(verify=True, amplify_key=False)(*arguments)


class KeysWithoutVerification(BasicApps):
    """Outputs its keys without checking that error correction made them equal (and aborts on nothing)."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._qkd = _Unverified(ctx)


class KeysWithoutPrivacyAmplification(BasicApps):
    """Outputs the corrected key itself, longer than the finite-key bound allows."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._qkd = _Unamplified(ctx)


class _Unauthenticated(QkdApps):
    def authentic(self, auth: Any, message: bytes, tag: Any) -> bool:
        return True  # takes every message as sent by the other end


class KeysWithoutAuthentication(BasicApps):
    """Takes every classical QKD message as authentic: a man in the middle's changes go unnoticed."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._qkd = _Unauthenticated(ctx)


class _SilentTail(QkdApps):
    def _end_tail(self, tail: Any, answer: Any, code: Any = None, detail: str = "") -> None:
        super()._end_tail(tail, answer)  # ends as told, but never tells its user why


class AbortsUntoldAtTheTail(BasicApps):
    """Ends the tail's side of an aborted QKD request without telling the tail's user (no KeyAborted)."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._qkd = _SilentTail(ctx)
