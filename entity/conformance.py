"""The conformance kit's core: clause-tagged checks, suites, reports.

Theory of operation
-------------------
Each layer package ships a :class:`Suite` for the service it provides (for
example ``qnetstack.link.conformance.SUITE``). A suite is a list of :class:`Check` s; each
check names the clause of ``specs/<layer>.md`` it verifies (``LINK-OK-2``) and is a
function that takes the implementation under test and raises
:class:`ClauseFailure` (or any ``AssertionError``) when it finds a violation,
:class:`NotApplicable` when the implementation does not offer the feature the
clause is about. Checks drive the implementation through the layer's harness;
many use hypothesis to generate request sequences, loss patterns and timings.

The spec is the one source of a clause's text and level (MUST or SHOULD): the
suite reads them from the spec file when its checks are first needed (the
specs ship inside the package as ``qnetstack.specs``), so a report quotes the
spec and a check naming a clause the spec lacks is an error (:class:`SpecError`).

Checks judge *runs* of the layer's harness, and many checks judge the same
runs: hypothesis derandomised with the same strategy draws the same scenarios
for every check, and fixed scenarios recur. :meth:`Suite.share_runs` wraps a
harness's run function so that each distinct run is made once per
implementation while the suite runs (see :class:`qnetstack.entity.harness.RunMemo`).

:meth:`Suite.run` runs every check and returns a :class:`ConformanceReport`,
clause by clause: a clause passes when all its checks pass, fails when any
fails (with the failing example), and is not applicable when all its checks
say so. The report prints as text, JSON or JUnit XML. The same checks run
under pytest through :meth:`Suite.pytest_function`.

This module sits below every layer (it imports none of them), so each layer's
suite can use it without breaking the layering rules.
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
import os
import re
import textwrap
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, settings
from pydantic import BaseModel, ConfigDict

from qnetstack.entity.harness import RunMemo

__all__ = [
    "Check",
    "CheckResult",
    "ClauseFailure",
    "ClauseResult",
    "ConformanceReport",
    "ImplementationError",
    "NotApplicable",
    "SpecClause",
    "SpecError",
    "Suite",
    "explore",
    "load_implementation",
    "read_spec",
    "CLAUSE_ID_PATTERN",
]

CLAUSE_ID_PATTERN = r"\b(?:PHY|LINK|NET|APP)-[A-Z]+-\d+\b"

Status = Literal["pass", "fail", "not_applicable"]


class ClauseFailure(AssertionError):
    """A check found behaviour the clause forbids."""


class NotApplicable(Exception):
    """The implementation does not offer what the clause is about."""


class ImplementationError(LookupError):
    """The implementation to check cannot be found or is not of the right shape."""


class SpecError(LookupError):
    """A spec cannot be read, defines a clause twice, or lacks a clause a check names."""


# "- **LINK-OK-2** (MUST) text": a clause is defined by a list item starting with
# its bold id and level; indented lines below it continue its text
_DEFINITION = re.compile(r"^- \*\*(" + CLAUSE_ID_PATTERN[2:-2] + r")\*\* \((MUST|SHOULD)\) (.*)$")


@dataclass(frozen=True)
class SpecClause:
    """A clause as the spec defines it."""

    clause: str
    mandatory: bool  # MUST (True) or SHOULD (False)
    text: str  # the clause's text, Markdown as written, on one line


def read_spec(spec: str) -> dict[str, SpecClause]:
    """The clauses ``spec`` (``"specs/link.md"``) defines, in the order it defines them.

    The spec files are read from the installed package ``qnetstack.specs``
    (the repository's ``specs/`` folder, shipped as package data), so that an
    installed ``qnetstack conform`` quotes the same text as a checkout.
    """
    name = spec.removeprefix("specs/")
    try:
        text = importlib.resources.files("qnetstack.specs").joinpath(name).read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError) as exc:
        raise SpecError(f"cannot read {spec} from the installed package qnetstack.specs: {exc}") from None
    definitions: dict[str, tuple[bool, list[str]]] = {}
    lines: list[str] | None = None  # the text of the clause being read, while its item goes on
    for line in text.splitlines():
        match = _DEFINITION.match(line)
        if match:
            clause_id, level, first = match.groups()
            if clause_id in definitions:
                raise SpecError(f"{clause_id} is defined twice in {spec}")
            lines = [first.strip()]
            definitions[clause_id] = (level == "MUST", lines)
        elif lines is not None and line[:1] in (" ", "\t") and line.strip():
            lines.append(line.strip())
        else:
            lines = None
    return {c: SpecClause(c, mandatory, " ".join(words)) for c, (mandatory, words) in definitions.items()}


def explore(max_examples: int) -> settings:
    """Hypothesis settings for a conformance check.

    Derandomised (the same examples every run, so a CI verdict is stable), no
    example database (nothing written next to the user's code), no deadline
    (a simulated run may take a while) and ``max_examples`` chosen per check so
    that a whole suite stays under a minute. The "explain" phase is left out:
    the lines of *our harness* it lists say nothing to an implementer.
    """
    return settings(
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=False,
    )


def load_implementation(path: str) -> Any:
    """The object that ``module:attr`` names; :class:`ImplementationError` if none."""
    if ":" not in path:
        raise ImplementationError(f"{path!r} is not an import path of the form module:Class")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImplementationError(f"cannot import module {module_name!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImplementationError(f"module {module_name!r} has no attribute {attr!r}") from None


@dataclass(frozen=True)
class Check:
    """One check of one clause."""

    clause: str
    name: str
    title: str
    mandatory: bool
    func: Callable[[Any], None]


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    status: Status
    detail: str = ""
    seconds: float


class ClauseResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    clause: str
    title: str
    mandatory: bool
    status: Status
    checks: list[CheckResult]

    @property
    def detail(self) -> str:
        return "\n".join(f"[{c.name}] {c.detail}" for c in self.checks if c.status == "fail")


class ConformanceReport(BaseModel):
    """The verdict of one suite on one implementation, clause by clause."""

    model_config = ConfigDict(frozen=True)
    layer: str
    implementation: str
    spec: str
    clauses: list[ClauseResult]

    @property
    def passed(self) -> bool:
        """True when no mandatory clause failed (advisory failures are reported, not fatal)."""
        return not any(c.status == "fail" and c.mandatory for c in self.clauses)

    def failed_clauses(self, mandatory_only: bool = False) -> list[str]:
        return [c.clause for c in self.clauses if c.status == "fail" and (c.mandatory or not mandatory_only)]

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "not_applicable": 0}
        for c in self.clauses:
            out[c.status] += 1
        return out

    def to_text(self) -> str:
        label = {"pass": "pass", "fail": "FAIL", "not_applicable": "n/a"}
        width = max((len(c.clause) for c in self.clauses), default=8)
        lines = [f"{self.layer} conformance of {self.implementation} against {self.spec}", ""]
        for c in self.clauses:
            must = "MUST  " if c.mandatory else "SHOULD"
            head = f"  {label[c.status]:<4}  {c.clause:<{width}}  {must}  "
            lines.extend(textwrap.wrap(c.title, 110, initial_indent=head, subsequent_indent=" " * len(head)) or [head])
            if c.status == "fail":
                for check in c.checks:
                    if check.status == "fail":
                        lines.append(f"        check {check.name}:")
                        lines.extend(f"          {line}" for line in check.detail.splitlines())
        n = self.counts()
        verdict = "CONFORMS" if self.passed else "DOES NOT CONFORM"
        lines += [
            "",
            f"{n['pass']} passed, {n['fail']} failed, {n['not_applicable']} not applicable: {verdict}",
        ]
        return "\n".join(lines)

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        data["passed"] = self.passed
        data["counts"] = self.counts()
        return json.dumps(data, indent=2)

    def to_junit(self) -> str:
        """JUnit XML: one testsuite, one testcase per clause (the format CI systems read)."""
        n = self.counts()
        suite = ET.Element(
            "testsuite",
            name=f"qnetstack.conformance.{self.layer}",
            tests=str(len(self.clauses)),
            failures=str(n["fail"]),
            skipped=str(n["not_applicable"]),
            errors="0",
            time=f"{sum(ch.seconds for c in self.clauses for ch in c.checks):.3f}",
        )
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="implementation", value=self.implementation)
        for c in self.clauses:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{self.layer}.{'MUST' if c.mandatory else 'SHOULD'}",
                name=f"{c.clause} {c.title}",
                time=f"{sum(ch.seconds for ch in c.checks):.3f}",
            )
            if c.status == "fail":
                failure = ET.SubElement(case, "failure", message=f"{c.clause} violated")
                failure.text = c.detail
            elif c.status == "not_applicable":
                ET.SubElement(case, "skipped", message="; ".join(ch.detail for ch in c.checks))
        ET.indent(suite)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def _describe_failure(exc: BaseException) -> str:
    """The violation and, when hypothesis found it, the (shrunk) falsifying example."""
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, AssertionError):
        # the implementation crashed: show where, it is the useful part
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
        message = f"the implementation raised {type(exc).__name__}: {exc}\n" + "".join(frames).rstrip()
    notes = list(getattr(exc, "__notes__", []))  # hypothesis puts the falsifying example here
    if notes:
        message += "\n" + "\n".join(notes)
    return message


class Suite:
    """The conformance checks of one service, each tagged with its clause id."""

    def __init__(self, layer: str, spec: str, reference: str) -> None:
        self.layer = layer
        self.spec = spec
        self.reference = reference  # import path of the project's own implementation
        # (clause id, check function, level the decorator insists on or None)
        self._declared: list[tuple[str, Callable[[Any], None], bool | None]] = []
        self._checks: list[Check] | None = None  # resolved against the spec on first use
        self._validate: Callable[[Any], None] | None = None
        self._memos: list[RunMemo] = []

    def clause(
        self, clause_id: str, title: str | None = None, *, mandatory: bool | None = None
    ) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
        """Decorator: register ``func(impl)`` as a check of ``clause_id``.

        The clause's text and level come from the spec. ``title`` is accepted
        so that checks written as ``@SUITE.clause(id, "title")`` keep working,
        and is not used: the spec's text is the title. ``mandatory``, when
        given, must agree with the spec's MUST or SHOULD.
        """
        del title

        def register(func: Callable[[Any], None]) -> Callable[[Any], None]:
            self._declared.append((clause_id, func, mandatory))
            self._checks = None
            return func

        return register

    def validator(self, func: Callable[[Any], None]) -> Callable[[Any], None]:
        """Decorator: the function that raises :class:`ImplementationError` when an
        object is not an implementation of this service at all."""
        self._validate = func
        return func

    def spec_clauses(self) -> dict[str, SpecClause]:
        """The clauses of this suite's spec (read anew on each call)."""
        return read_spec(self.spec)

    @property
    def checks(self) -> list[Check]:
        """Every check, with its clause's title and level from the spec.

        Raises :class:`SpecError` when a check names a clause the spec lacks or
        insists on a level the spec does not give."""
        if self._checks is None:
            defined = self.spec_clauses()
            checks = []
            for clause_id, func, mandatory in self._declared:
                spec_clause = defined.get(clause_id)
                if spec_clause is None:
                    raise SpecError(f"check {func.__name__} names {clause_id}, which {self.spec} does not define")
                if mandatory is not None and mandatory != spec_clause.mandatory:
                    level = "MUST" if spec_clause.mandatory else "SHOULD"
                    raise SpecError(f"check {func.__name__} declares {clause_id} mandatory={mandatory}, but {self.spec} says {level}")
                checks.append(Check(clause_id, func.__name__, spec_clause.text, spec_clause.mandatory, func))
            self._checks = checks
        return self._checks

    @property
    def clause_ids(self) -> set[str]:
        return {clause_id for clause_id, _, _ in self._declared}

    def validate(self, impl: Any) -> None:
        if self._validate is not None:
            self._validate(impl)

    def reference_implementation(self) -> Any:
        return load_implementation(self.reference)

    def share_runs(self, run: Callable[..., Any], *, max_runs: int = 256) -> RunMemo:
        """``run`` (a harness's ``run_*(impl, ...)``), made once per distinct call.

        Checks that judge the same run, of the same implementation, get the same
        record: hypothesis draws the same scenarios for every check that uses one
        strategy, so a suite pays for each scenario once instead of once per
        clause. The record is shared, so checks must not change it. A check
        that needs two independent runs of one scenario (determinism) calls
        the harness's own function. Runs are kept while :meth:`run` is running
        and then dropped; under pytest (:meth:`pytest_function`) the latest
        ``max_runs`` are kept.
        """
        memo = RunMemo(run, max_runs=max_runs)
        self._memos.append(memo)
        return memo

    def run(self, impl: Any, name: str | None = None, select: Iterable[str] | None = None) -> ConformanceReport:
        """Run every check (or those of the clauses in ``select``) against ``impl``."""
        self.validate(impl)
        wanted = None if select is None else set(select)
        by_clause: dict[str, list[tuple[Check, CheckResult]]] = {}
        try:
            for check in self.checks:
                if wanted is not None and check.clause not in wanted:
                    continue
                by_clause.setdefault(check.clause, []).append((check, self._run_check(check, impl)))
        finally:
            for memo in self._memos:  # the runs served this report; do not hold their memory
                memo.clear()
        clauses = []
        for clause_id in sorted(by_clause, key=_clause_sort_key):
            pairs = by_clause[clause_id]
            statuses = {r.status for _, r in pairs}
            status: Status = "fail" if "fail" in statuses else "pass" if "pass" in statuses else "not_applicable"
            clauses.append(
                ClauseResult(
                    clause=clause_id,
                    title=pairs[0][0].title,
                    mandatory=any(c.mandatory for c, _ in pairs),
                    status=status,
                    checks=[r for _, r in pairs],
                )
            )
        label = name or f"{getattr(impl, '__module__', '?')}:{getattr(impl, '__qualname__', repr(impl))}"
        return ConformanceReport(layer=self.layer, implementation=label, spec=self.spec, clauses=clauses)

    @staticmethod
    def _run_check(check: Check, impl: Any) -> CheckResult:
        start = time.perf_counter()
        try:
            check.func(impl)
        except NotApplicable as exc:
            return CheckResult(name=check.name, status="not_applicable", detail=str(exc), seconds=time.perf_counter() - start)
        except Exception as exc:  # a crash of the implementation is a failure of the clause it broke
            return CheckResult(name=check.name, status="fail", detail=_describe_failure(exc), seconds=time.perf_counter() - start)
        return CheckResult(name=check.name, status="pass", seconds=time.perf_counter() - start)

    def pytest_function(self, env_var: str = "QNETSTACK_CONFORM_IMPL") -> Callable[..., None]:
        """A parametrised pytest test function running every check.

        The implementation is the one named by the environment variable
        ``env_var`` (``module:Class``) or, when it is unset, the project's
        reference implementation. Put ``test_conformance = SUITE.pytest_function()``
        in a ``test_*.py`` module.
        """
        import pytest

        suite = self

        @pytest.mark.parametrize("check", self.checks, ids=[f"{c.clause}:{c.name}" for c in self.checks])
        def test_clause(check: Check) -> None:
            path = os.environ.get(env_var) or suite.reference
            impl = load_implementation(path)
            suite.validate(impl)
            try:
                check.func(impl)
            except NotApplicable as exc:
                pytest.skip(f"{check.clause} not applicable: {exc}")

        return test_clause


def _clause_sort_key(clause_id: str) -> tuple[str, int]:
    head, _, number = clause_id.rpartition("-")
    return (head, int(number) if number.isdigit() else 0)
