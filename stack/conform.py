"""Runs a layer's conformance suite against an implementation: ``qnetstack conform``.

The suites live in the layer packages (``<layer>.conformance.SUITE``); this
module only finds the suite and the implementation and turns problems with
either into one-line :class:`ConformError` s. Each clause has a time limit
(:data:`DEFAULT_CLAUSE_TIMEOUT` unless told otherwise), after which it fails
and the suite goes on.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ConfigDict

from qnetstack.entity.conformance import ConformanceReport, ImplementationError, Progress, Suite
from qnetstack.stack import registry

__all__ = ["ConformError", "DEFAULT_CLAUSE_TIMEOUT", "LAYERS", "Score", "Verdict", "score", "suite_for", "run_conformance"]

LAYERS = registry.LAYERS
# seconds a clause may take: the slowest clause of a reference suite takes a few
# seconds, so this is room for a slow machine, not for a handler that never returns
DEFAULT_CLAUSE_TIMEOUT = 120.0


class ConformError(ValueError):
    """Bad input to the runner: unknown layer, missing implementation, wrong shape."""


def suite_for(layer: str) -> Suite:
    if layer not in LAYERS:
        raise ConformError(f"unknown layer {layer!r} (layers: {', '.join(LAYERS)})")
    return importlib.import_module(f"qnetstack.{layer}.conformance").SUITE


def run_conformance(
    layer: str,
    implementation: str | Any | None = None,
    select: list[str] | None = None,
    *,
    clause_timeout: float | None = DEFAULT_CLAUSE_TIMEOUT,
    progress: Progress | None = None,
) -> ConformanceReport:
    """Run ``layer``'s suite against ``implementation`` (a registered name,
    ``module:Class``, the class itself, or ``None`` for the reference).

    ``clause_timeout``: seconds each clause may take (``None``: no limit);
    ``progress`` hears of each clause as it ends (:class:`qnetstack.entity.conformance.TextReport`)."""
    if clause_timeout is not None and not clause_timeout > 0:
        raise ConformError(f"--clause-timeout: must be a positive number of seconds, got {clause_timeout}")
    suite = suite_for(layer)
    spec = suite.reference if implementation is None else implementation
    try:
        impl = registry.resolve(layer, spec)
    except registry.RegistryError as exc:
        raise ConformError(str(exc)) from None
    name = spec if isinstance(spec, str) else f"{getattr(impl, '__module__', '?')}:{getattr(impl, '__qualname__', impl)}"
    if select:
        unknown = sorted(set(select) - suite.clause_ids)
        if unknown:
            raise ConformError(f"no clause {', '.join(unknown)} in the {layer} suite (see {suite.spec})")
    try:
        return suite.run(impl, name=name, select=select, clause_timeout=clause_timeout, progress=progress)
    except ImplementationError as exc:
        raise ConformError(f"{name}: {exc}") from None


class Verdict(BaseModel):
    """One clause's line in a grade: its id, MUST or SHOULD, and pass / fail / not_applicable."""

    model_config = ConfigDict(frozen=True)
    clause: str
    level: str
    status: str


class Score(BaseModel):
    """A grade for ``qnetstack conform --score``: every applicable clause counts one.

    A clause applies when the implementation declares the feature it is about
    (``PROVIDES``); the suite reports the others not applicable, and they
    neither add nor take away. MUST and SHOULD clauses weigh the same, so the
    score says how much of the service works; whether the implementation
    conforms (no MUST clause fails) is the report's verdict above it."""

    model_config = ConfigDict(frozen=True)
    implementation: str
    passed: int
    applicable: int
    not_applicable: int
    verdicts: list[Verdict]

    def to_text(self) -> str:
        lines = [f"grade of {self.implementation}, clause by clause:"]
        shown = {"pass": "pass", "fail": "FAIL", "not_applicable": "n/a"}
        lines += [f"  {shown[v.status]:<5} {v.clause:<16} {v.level}" for v in self.verdicts]
        share = f" ({100 * self.passed / self.applicable:.0f}%)" if self.applicable else ""
        lines.append(f"score: {self.passed}/{self.applicable} applicable clauses pass{share}, {self.not_applicable} not applicable")
        return "\n".join(lines)


def score(report: ConformanceReport) -> Score:
    """The grade of ``report``: clauses passed out of those that apply, and each clause's verdict."""
    verdicts = [Verdict(clause=c.clause, level="MUST" if c.mandatory else "SHOULD", status=c.status) for c in report.clauses]
    passed = sum(v.status == "pass" for v in verdicts)
    failed = sum(v.status == "fail" for v in verdicts)
    return Score(
        implementation=report.implementation,
        passed=passed,
        applicable=passed + failed,
        not_applicable=len(verdicts) - passed - failed,
        verdicts=verdicts,
    )
