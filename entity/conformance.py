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

The implementation under test runs inside the kit's process, so the kit keeps
it to rules it cannot get around (:mod:`qnetstack.entity.containment`): an
exception the implementation raises never decides a clause for it (a
:class:`NotApplicable` counts only when the kit's own code raised it; one
that comes out of the implementation, a ``SystemExit`` or a fake Ctrl-C
fails the clause), a message it is handed or has sent must not change, and
each clause has a time limit (``clause_timeout``) after which it fails,
naming the handler that was running, and the suite goes on. Two checks every
suite can add need no harness: that the implementation declares some of the
service (:meth:`Suite.provides_clause`) and that its code imports only what
its layer may (:meth:`Suite.imports_clause`, read from the source).

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
say so. A progress object (:class:`TextReport`) hears of each clause as it
ends. The report prints as text (each distinct exception of the
implementation once, with the clauses it broke), JSON or JUnit XML (each
clause with its full detail). The same checks run under pytest through
:meth:`Suite.pytest_function`.

This module sits below every layer (it imports none of them), so each layer's
suite can use it without breaking the layering rules.
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import json
import os
import re
import textwrap
import time
import traceback
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from qnetstack.entity.containment import (
    ClauseFailure,
    ClauseTimeout,
    ImplementationFault,
    NotApplicable,
    call_context,
    clause_timer,
    is_runner_module,
)
from qnetstack.entity.harness import RunMemo
from qnetstack.entity.imports import forbidden_imports

__all__ = [
    "Check",
    "CheckResult",
    "ClauseFailure",
    "ClauseResult",
    "ConformanceReport",
    "ErrorInfo",
    "ImplementationError",
    "NotApplicable",
    "Progress",
    "TextReport",
    "SpecClause",
    "SpecError",
    "Suite",
    "explore",
    "load_implementation",
    "none_or_integers",
    "read_spec",
    "sampled",
    "CLAUSE_ID_PATTERN",
]

CLAUSE_ID_PATTERN = r"\b(?:PHY|LINK|NET|APP)-[A-Z]+-\d+\b"

Status = Literal["pass", "fail", "not_applicable"]


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


# A scenario strategy draws from many small strategies. Hypothesis validates every
# new strategy object it is given, and building them anew for every scenario made
# that validation cost more than the draws and the simulated runs: these two are
# built once per arguments, for every suite.


@functools.cache
def sampled(*values: Any) -> st.SearchStrategy[Any]:
    """``st.sampled_from(values)``, built once per ``values``."""
    return st.sampled_from(values)


@functools.cache
def none_or_integers(low: int, high: int) -> st.SearchStrategy[int | None]:
    """None or an integer from ``low`` to ``high``, built once per bounds."""
    return st.none() | st.integers(low, high)


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


class ErrorInfo(BaseModel):
    """An exception that came out of the implementation, as a report shows it.

    Two are the same error when they have the same type, message and raising
    location (:attr:`key`); the text report shows each distinct one once."""

    model_config = ConfigDict(frozen=True)
    type: str  # the exception's class, e.g. "ZeroDivisionError"
    message: str
    location: str  # where it was raised: "file:line in function"
    context: str = ""  # the call it came out of: handler, node, simulated time, message
    traceback: str = ""  # the implementation's frames (the kit's left out)
    example: str = ""  # hypothesis's failing example, when a property found it

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.type, self.message, self.location)

    def headline(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    status: Status
    detail: str = ""
    seconds: float
    errors: list[ErrorInfo] = []  # the implementation's exceptions behind a failure, if any


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
    notes: list[str] = []  # what limits the run had, e.g. no time limit per clause and why

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
        """The text report (what ``qnetstack conform`` prints as it goes), clauses in id order."""
        lines: list[str] = []
        text = TextReport(lines.append)
        text.start(self.layer, self.implementation, self.spec, self.notes)
        for clause in self.clauses:
            text.clause(clause)
        text.finish(self)
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


class Progress(Protocol):
    """What :meth:`Suite.run` tells as it goes: the run starts, each clause ends."""

    def start(self, layer: str, implementation: str, spec: str, notes: list[str]) -> None: ...

    def clause(self, result: ClauseResult) -> None: ...


class TextReport:
    """The text report, written line by line through ``write`` as clauses end.

    A failure that is an exception of the implementation is one line under
    its clause, naming the error by number; :meth:`finish` then shows each
    distinct error once (its call, its traceback without the kit's frames,
    hypothesis's example) followed by the clauses it broke, and the verdict.
    """

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._errors: dict[tuple[str, str, str], tuple[ErrorInfo, list[str]]] = {}

    def start(self, layer: str, implementation: str, spec: str, notes: list[str]) -> None:
        self._write(f"{layer} conformance of {implementation} against {spec}")
        for note in notes:
            self._write(f"note: {note}")
        self._write("")

    def clause(self, c: ClauseResult) -> None:
        label = {"pass": "pass", "fail": "FAIL", "not_applicable": "n/a"}
        must = "MUST  " if c.mandatory else "SHOULD"
        head = f"  {label[c.status]:<4}  {c.clause:<14}  {must}  "
        for line in textwrap.wrap(c.title, 110, initial_indent=head, subsequent_indent=" " * len(head)) or [head]:
            self._write(line)
        if c.status != "fail":
            return
        for check in c.checks:
            if check.status != "fail":
                continue
            if not check.errors:
                self._write(f"        check {check.name}:")
                for line in check.detail.splitlines():
                    self._write(f"          {line}")
                continue
            for error in check.errors:
                number = self._number(error, c.clause)
                self._write(f"        check {check.name}: error {number} (shown below), {_cut(error.headline(), 100)}")

    def finish(self, report: ConformanceReport) -> None:
        if self._errors:
            self._write("")
            self._write("Exceptions, each shown once, then the clauses it broke:")
            for number, (error, clauses) in enumerate(self._errors.values(), start=1):
                self._write("")
                self._write(f"error {number}: {error.headline()}")
                self._write(f"  raised at {error.location}")
                if error.context:
                    self._write(f"  {error.context}")
                if error.traceback:
                    self._write("  Traceback (the conformance kit's frames left out):")
                    for line in error.traceback.rstrip().splitlines():
                        self._write(f"  {line}")
                if error.example:
                    for line in error.example.splitlines():
                        self._write(f"  {line}")
                broke = sorted(set(clauses), key=_clause_sort_key)
                self._write(f"  broke {len(broke)} clause{'s' if len(broke) != 1 else ''}: {', '.join(broke)}")
        n = report.counts()
        verdict = "CONFORMS" if report.passed else "DOES NOT CONFORM"
        self._write("")
        self._write(f"{n['pass']} passed, {n['fail']} failed, {n['not_applicable']} not applicable: {verdict}")

    def _number(self, error: ErrorInfo, clause: str) -> int:
        if error.key not in self._errors:
            self._errors[error.key] = (error, [])
        self._errors[error.key][1].append(clause)
        return list(self._errors).index(error.key) + 1


def _cut(text: str, limit: int) -> str:
    """The first line of ``text``, at most ``limit`` characters; "..." marks what is left out."""
    first = text.split("\n", 1)[0]
    if first == text and len(first) <= limit:
        return text
    return first[: limit - 3] + "..."


# ------------------------------------------------------- describing failures


def _failure(name: str, exc: BaseException, seconds: float, prefix: str = "") -> CheckResult:
    """A failing check's result for ``exc``: the violation the kit found, or
    the implementation's exceptions (with their calls and tracebacks)."""
    leaves = _leaves(exc)
    if all(_from_implementation(leaf) for leaf in leaves):
        errors = [_error_info(leaf, exc) for leaf in leaves]
        detail = "\n\n".join(_error_text(e) for e in errors)
    else:  # the kit's verdict (or several, some of them verdicts): described as it is
        errors = []
        detail = _describe_failure(exc)
    return CheckResult(name=name, status="fail", detail=prefix + detail, seconds=seconds, errors=errors)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions in ``exc``: itself, or those of an exception group (hypothesis
    raises one when it finds several distinct failures)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _from_implementation(exc: BaseException) -> bool:
    """An exception of the implementation, not a verdict of the kit: what came
    through the harness's door into the implementation, and anything that is
    not an assertion (a check's verdict is a :class:`ClauseFailure`)."""
    return call_context(exc) is not None or isinstance(exc, ImplementationFault) or not isinstance(exc, AssertionError)


def _error_info(exc: BaseException, raised: BaseException) -> ErrorInfo:
    """``exc`` as a report shows it; ``raised`` is what the check raised (it carries hypothesis's notes)."""
    context = call_context(exc)
    if isinstance(exc, ImplementationFault):
        # the kit's finding about the implementation: where the implementation
        # raised what it did, or (a changed message) the handler it was handed to
        name = "ImplementationFault"
        if exc.__cause__ is not None:
            location, frames = _implementation_traceback(exc.__cause__)
        else:
            location, frames = (context.handler if context is not None else ""), ""
    else:
        kind = type(exc)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        location, frames = _implementation_traceback(exc)
    notes = list(getattr(exc, "__notes__", None) or getattr(raised, "__notes__", None) or [])
    return ErrorInfo(
        type=name,
        message=str(exc),
        location=location,
        context="" if context is None else f"in {context.describe()}",
        traceback=frames,
        example="\n".join(notes),
    )


def _implementation_traceback(exc: BaseException) -> tuple[str, str]:
    """Where ``exc`` was raised, and its traceback from the implementation's
    first frame on (the frames of the kit, hypothesis and the standard library
    that led there are left out)."""
    entries: list[tuple[TracebackType, bool]] = []
    tb = exc.__traceback__
    while tb is not None:
        entries.append((tb, is_runner_module(str(tb.tb_frame.f_globals.get("__name__", "")))))
        tb = tb.tb_next
    if not entries:
        return "", ""
    first = next((i for i, (_, runner) in enumerate(entries) if not runner), max(0, len(entries) - 3))
    summary = traceback.StackSummary.extract((tb.tb_frame, tb.tb_lineno) for tb, _ in entries[first:])
    last = summary[-1]
    location = f"{_shown_path(last.filename)}:{last.lineno} in {last.name}"
    lines = []
    for frame in summary:  # as Python prints a traceback, with paths relative to the working folder
        lines.append(f'  File "{_shown_path(frame.filename)}", line {frame.lineno}, in {frame.name}\n')
        if frame.line:
            lines.append(f"    {frame.line.strip()}\n")
    return location, "".join(lines)


def _shown_path(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def _error_text(error: ErrorInfo) -> str:
    """An error in full, for the JSON and JUnit reports (every clause carries its own)."""
    parts = [f"the implementation raised {error.headline()}", f"raised at {error.location}"]
    if error.context:
        parts.append(error.context)
    if error.traceback:
        parts.append("Traceback (the conformance kit's frames left out):\n" + error.traceback.rstrip())
    if error.example:
        parts.append(error.example)
    return "\n".join(parts)


def _describe_failure(exc: BaseException) -> str:
    """The violation and, when hypothesis found it, the (shrunk) falsifying example."""
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, AssertionError):
        # the kit itself failed: show where, it is the useful part
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
        message = f"{type(exc).__name__}: {exc}\n" + "".join(frames).rstrip()
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

    def provides_clause(self, clause_id: str, any_of: Iterable[str]) -> None:
        """Register the check of ``clause_id``: the implementation declares
        ``PROVIDES`` with at least one of the capabilities ``any_of`` (the
        service's request types). Without one it offers nothing of the
        service, and every other clause would be not applicable."""
        wanted = sorted(any_of)
        layer = self.layer

        def provides_the_service(impl: Any) -> None:
            name = getattr(impl, "__qualname__", None) or repr(impl)
            provides = getattr(impl, "PROVIDES", None)
            if provides is None:
                raise ClauseFailure(f"{name} declares no PROVIDES (it must name at least one of {wanted})")
            if isinstance(provides, str) or not isinstance(provides, Iterable):
                raise ClauseFailure(f"{name}.PROVIDES is {provides!r}, not a set of capability names")
            offered = sorted(str(p) for p in provides)
            if not set(offered) & set(wanted):
                raise ClauseFailure(f"PROVIDES = {offered} names none of {wanted}: {name} provides nothing of the {layer} service")

        self.clause(clause_id)(provides_the_service)

    def imports_clause(self, clause_id: str) -> None:
        """Register the check of ``clause_id``: the implementation's code imports,
        of qnetstack, only what its layer may (:mod:`qnetstack.entity.imports`,
        read from the source without running it)."""
        layer = self.layer

        def imports_only_what_its_layer_may(impl: Any) -> None:
            findings = forbidden_imports(impl, layer)
            if findings:
                shown = findings[:10] + ([f"... and {len(findings) - 10} more"] if len(findings) > 10 else [])
                raise ClauseFailure("\n".join(shown))

        self.clause(clause_id)(imports_only_what_its_layer_may)

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
        """Raise :class:`ImplementationError` when ``impl`` is not an
        implementation of this service at all (the suite's validator decides;
        one that builds the implementation may see it exit or raise anything)."""
        if self._validate is None:
            return
        try:
            self._validate(impl)
        except (ImplementationError, SpecError):
            raise
        except BaseException as exc:
            if clause_timer().owns(exc):
                raise  # a real Ctrl-C
            if isinstance(exc, Exception) and call_context(exc) is None and not isinstance(exc, ImplementationFault):
                raise  # the validator itself failed: a bug of the kit, not bad input
            raise ImplementationError(f"building it raised {type(exc).__name__}: {exc}") from None

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

    def run(
        self,
        impl: Any,
        name: str | None = None,
        select: Iterable[str] | None = None,
        *,
        clause_timeout: float | None = None,
        progress: Progress | None = None,
    ) -> ConformanceReport:
        """Run every check (or those of the clauses in ``select``) against ``impl``.

        ``clause_timeout``: seconds a clause may take (all its checks together)
        before it fails as timed out and the suite goes on; ``None``, no limit.
        The limit needs ``SIGALRM`` and the main thread; without them the run
        has none and the report's notes say so. ``progress`` hears of the start
        and of each clause as it ends (in the order the checks run)."""
        label = name or f"{getattr(impl, '__module__', '?')}:{getattr(impl, '__qualname__', repr(impl))}"
        wanted = None if select is None else set(select)
        checks = [c for c in self.checks if wanted is None or c.clause in wanted]
        left = Counter(c.clause for c in checks)
        by_clause: dict[str, list[tuple[Check, CheckResult]]] = {}
        spent: dict[str, float] = {}
        out_of_time: set[str] = set()  # clauses that timed out: their other checks are not run
        timer = clause_timer()
        timer.install(clause_timeout)  # before the validator, which may build the implementation
        notes = [f"no time limit per clause: {timer.unavailable}"] if clause_timeout is not None and not timer.installed else []
        try:
            self.validate(impl)
            if progress is not None:
                progress.start(self.layer, label, self.spec, notes)
            for check in checks:
                done = by_clause.setdefault(check.clause, [])
                budget = None if clause_timeout is None else clause_timeout - spent.get(check.clause, 0.0)
                if check.clause in out_of_time or (budget is not None and budget <= 0):
                    detail = f"timed out: not run, the clause's other checks used its {clause_timeout:g} s"
                    result = CheckResult(name=check.name, status="fail", detail=detail, seconds=0.0)
                    out_of_time.add(check.clause)
                else:
                    result = self._run_check(check, impl, budget, clause_timeout)
                    if timer.expired:
                        out_of_time.add(check.clause)
                spent[check.clause] = spent.get(check.clause, 0.0) + result.seconds
                done.append((check, result))
                left[check.clause] -= 1
                if left[check.clause] == 0 and progress is not None:
                    progress.clause(_clause_result(check.clause, done))
        finally:
            timer.uninstall()
            for memo in self._memos:  # the runs served this report; do not hold their memory
                memo.clear()
        clauses = [_clause_result(clause_id, by_clause[clause_id]) for clause_id in sorted(by_clause, key=_clause_sort_key)]
        return ConformanceReport(layer=self.layer, implementation=label, spec=self.spec, clauses=clauses, notes=notes)

    @staticmethod
    def _run_check(check: Check, impl: Any, budget: float | None = None, limit: float | None = None) -> CheckResult:
        """One check's verdict. Only the kit decides a clause: an exception the
        implementation raised (whatever its type) fails it, a timeout fails it
        even when the implementation swallowed it, and a real Ctrl-C stops the run."""
        timer = clause_timer()
        start = time.perf_counter()

        def took() -> float:
            return time.perf_counter() - start

        try:
            with timer.limit(budget):
                check.func(impl)
        except ClauseTimeout as exc:
            if timer.owns(exc):
                return CheckResult(name=check.name, status="fail", detail=_timed_out(timer.where, limit), seconds=took())
            return _failure(check.name, exc, took())  # the implementation raised the kit's timeout itself
        except KeyboardInterrupt as exc:
            if timer.owns(exc):
                raise  # a real Ctrl-C: stop the run
            return _failure(check.name, exc, took())
        except NotApplicable as exc:
            if _raised_by_the_kit(exc, check):
                return CheckResult(name=check.name, status="not_applicable", detail=str(exc), seconds=took())
            prefix = "NotApplicable was raised outside the conformance kit's checks; an implementation may not raise it\n"
            return _failure(check.name, exc, took(), prefix=prefix)
        except BaseException as exc:  # a crash of the implementation is a failure of the clause it broke
            return _failure(check.name, exc, took())
        if timer.expired:  # the timeout was raised and caught by someone
            detail = _timed_out(timer.where, limit) + " (the timeout was caught, and the check went on)"
            return CheckResult(name=check.name, status="fail", detail=detail, seconds=took())
        return CheckResult(name=check.name, status="pass", seconds=took())

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
                if not _raised_by_the_kit(exc, check):
                    raise ImplementationFault("NotApplicable was raised outside the conformance kit's checks") from exc
                pytest.skip(f"{check.clause} not applicable: {exc}")

        return test_clause


def _clause_result(clause_id: str, pairs: list[tuple[Check, CheckResult]]) -> ClauseResult:
    statuses = {r.status for _, r in pairs}
    status: Status = "fail" if "fail" in statuses else "pass" if "pass" in statuses else "not_applicable"
    return ClauseResult(
        clause=clause_id,
        title=pairs[0][0].title,
        mandatory=any(c.mandatory for c, _ in pairs),
        status=status,
        checks=[r for _, r in pairs],
    )


def _timed_out(where: str, limit: float | None) -> str:
    seconds = "" if limit is None else f" (the clause's limit is {limit:g} s)"
    return f"timed out in {where or 'the check'}{seconds}"


def _raised_by_the_kit(exc: NotApplicable, check: Check) -> bool:
    """True when the kit's own code raised ``exc``: it came through no call into
    the implementation, and every frame from the check down to the ``raise``
    is the kit's, the check's own module's, hypothesis's or the standard
    library's. A NotApplicable raised anywhere in the implementation's code
    (or by kit code the implementation called) fails this."""
    if call_context(exc) is not None:
        return False
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if not (is_runner_module(module) or module == check.func.__module__):
            return False
        tb = tb.tb_next
    return True


def _clause_sort_key(clause_id: str) -> tuple[str, int]:
    head, _, number = clause_id.rpartition("-")
    return (head, int(number) if number.isdigit() else 0)
