"""The network exercise: its stub fails the expected clauses, its worked answer passes every one.

``tests/exercise_solutions/network_solution.py`` keeps the stub's shape and
answers each method with the reference network layer (see its docstring).
Each test runs the whole network suite once (slow).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qnetstack.network.conformance import SUITE
from qnetstack.stack.conform import score
from qnetstack.stack.exercise import exercise_files
from tests.exercise_solutions.network_solution import NetworkSolution
from tests.test_exercise import grade_stub

# The stub declares network:K only and its constructor takes (ctx, topology): the clauses about
# type M, cutoffs (policy_options), nested swapping and end-to-end distillation (policy) do not apply.
STUB_NOT_APPLICABLE = {
    *(f"NET-CUT-{n}" for n in range(1, 6)),
    *(f"NET-ENDS-{n}" for n in range(1, 5)),
    "NET-NEST-1",
    "NET-NEST-2",
    "NET-PAIR-4",
    "NET-FRAME-2",
}
STUB_PASSES = {"NET-IMPL-1", "NET-IMPL-2"}


@pytest.mark.slow
@pytest.mark.conformance
def test_the_network_stub_fails_every_clause_about_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    verdicts, out = grade_stub("network", tmp_path, capsys, monkeypatch)
    assert {c for c, s in verdicts.items() if s == "n/a"} == STUB_NOT_APPLICABLE
    assert {c for c, s in verdicts.items() if s == "pass"} == STUB_PASSES
    failed = {c for c, s in verdicts.items() if s == "FAIL"}
    # every clause of the suite not listed above fails: each handler raises NotImplementedError
    assert failed == SUITE.clause_ids - STUB_NOT_APPLICABLE - STUB_PASSES
    assert len(failed) == 37
    assert re.search(rf"^score: 2/39 applicable clauses pass \(5%\), {len(STUB_NOT_APPLICABLE)} not applicable$", out, re.M)


@pytest.mark.slow
@pytest.mark.conformance
def test_the_worked_network_solution_passes_every_clause() -> None:
    report = SUITE.run(NetworkSolution)
    assert report.failed_clauses() == [], report.to_text()
    grade = score(report)
    assert grade.not_applicable == 0
    assert grade.passed == grade.applicable == len(SUITE.clause_ids)


def test_network_visible_tests_check_clauses_the_stub_fails() -> None:
    visible = exercise_files("network")["test_student_network.py"]
    named = set(re.findall(r'"(NET-[A-Z]+-\d+)"', visible))
    assert named - STUB_PASSES, "the visible tests name no clause the stub fails"
    assert named <= SUITE.clause_ids - STUB_NOT_APPLICABLE
