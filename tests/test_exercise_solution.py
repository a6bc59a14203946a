"""The worked answer to the link exercise passes every clause the reference passes.

``tests/exercise_solutions/link_solution.py`` keeps the stub's shape (its
attributes, constructor and five entity methods, plus the ``reliable`` option) and answers each method with
the reference entity, so this shows the stub's design carries a complete link
layer. One run of the whole link suite (slow).
"""

from __future__ import annotations

import pytest

from qnetstack.link.conformance import SUITE
from qnetstack.stack.conform import score
from tests.exercise_solutions.link_solution import LinkSolution

# The answer declares what the reference declares and takes ``reliable=`` as it does (LINK-REL-1),
# so every clause applies.
NOT_APPLICABLE: set[str] = set()


@pytest.mark.slow
@pytest.mark.conformance
def test_the_worked_solution_passes_every_applicable_clause() -> None:
    report = SUITE.run(LinkSolution)
    assert report.failed_clauses() == [], report.to_text()
    grade = score(report)
    assert {v.clause for v in grade.verdicts if v.status == "not_applicable"} == NOT_APPLICABLE
    assert grade.passed == grade.applicable == len(SUITE.clause_ids) - len(NOT_APPLICABLE)
