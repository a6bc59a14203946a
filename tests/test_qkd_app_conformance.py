"""The QKD clauses of the application suite: the reference passes, broken applications fail by clause id."""

from __future__ import annotations

import pytest

from qnetstack.application.apps import BasicApps
from qnetstack.stack.conform import run_conformance
from tests import broken_apps

QKD_CLAUSES = ["APP-QKD-1", "APP-QKD-2", "APP-QKD-3", "APP-QKD-4", "APP-QKD-5", "APP-QKD-6"]


def test_the_reference_application_passes_the_qkd_clauses():
    report = run_conformance("application", BasicApps, select=QKD_CLAUSES)
    assert not report.failed_clauses(), report.to_text()
    assert {c.clause for c in report.clauses if c.status == "pass"} == set(QKD_CLAUSES), report.to_text()


@pytest.mark.parametrize(
    "impl, expected",
    [
        # with an error correction that corrects nothing the keys differ; unverified, they are output anyway
        # (and so their hashes differ between the ends: APP-QKD-6)
        (broken_apps.KeysWithoutVerification, {"APP-QKD-1", "APP-QKD-6"}),
        # the corrected key itself is longer than the finite-key bound for what was disclosed
        (broken_apps.KeysWithoutPrivacyAmplification, {"APP-QKD-3"}),
        # the noisy pairs' abort (QBER_TOO_HIGH) never reaches the tail's user, nor an AUTH_FAILED one
        (broken_apps.AbortsUntoldAtTheTail, {"APP-QKD-5", "APP-QKD-6"}),
        # the harness's man in the middle goes unnoticed
        (broken_apps.KeysWithoutAuthentication, {"APP-QKD-5"}),
    ],
    ids=["no-verification", "no-privacy-amplification", "abort-untold-at-tail", "no-authentication"],
)
def test_broken_qkd_applications_fail_the_clause_they_break(impl, expected):
    report = run_conformance("application", impl, select=QKD_CLAUSES)
    assert set(report.failed_clauses()) == expected, report.to_text()
