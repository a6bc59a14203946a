"""The QKD clauses of the application suite: the reference passes, broken applications fail by clause id."""

from __future__ import annotations

import pytest

from qnetstack.application.apps import BasicApps
from qnetstack.stack.conform import run_conformance
from tests import broken_apps

QKD_CLAUSES = ["APP-QKD-1", "APP-QKD-2", "APP-QKD-3", "APP-QKD-4"]


def test_the_reference_application_passes_the_qkd_clauses():
    report = run_conformance("application", BasicApps, select=QKD_CLAUSES)
    assert not report.failed_clauses(), report.to_text()
    assert {c.clause for c in report.clauses if c.status == "pass"} == set(QKD_CLAUSES), report.to_text()


@pytest.mark.parametrize(
    "impl, expected",
    [
        # with an error correction that corrects nothing the keys differ; unverified, they are output anyway
        (broken_apps.KeysWithoutVerification, {"APP-QKD-1"}),
        # the corrected key itself is longer than the finite-key bound for what was disclosed
        (broken_apps.KeysWithoutPrivacyAmplification, {"APP-QKD-3"}),
    ],
    ids=["no-verification", "no-privacy-amplification"],
)
def test_broken_qkd_applications_fail_the_clause_they_break(impl, expected):
    report = run_conformance("application", impl, select=QKD_CLAUSES)
    assert set(report.failed_clauses()) == expected, report.to_text()
