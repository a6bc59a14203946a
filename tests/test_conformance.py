"""The conformance kit: reference implementations pass, broken ones fail under
the right clause, reports are well formed, specs and suites name the same clauses,
and the suites read their clauses' text and level from the specs they ship with.

Markers (``pyproject.toml``): ``conformance`` on every test that runs checks of
a suite, ``slow`` on those that run a whole suite or a subprocess; the inner
loop is ``python -m pytest -m "not slow"``."""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from qnetstack.entity.conformance import CLAUSE_ID_PATTERN, ConformanceReport, SpecError, Suite, read_spec
from qnetstack.stack.cli import main
from qnetstack.stack.conform import ConformError, run_conformance, suite_for
from tests import broken_links, broken_networks

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("physical", "link", "network", "application")
# "- **LINK-OK-2** (MUST) text": a clause is defined by a list item starting with its bold id
DEFINITION = re.compile(r"^- \*\*(" + CLAUSE_ID_PATTERN[2:-2] + r")\*\* \((MUST|SHOULD)\) ", re.MULTILINE)


# clauses whose checks share the suite's generic scenarios: cheap to add as controls,
# since each scenario is run once per implementation and judged by every check
CONTROLS = {"LINK-CREATE-1", "LINK-ACK-1", "LINK-OK-1", "LINK-OK-3", "LINK-OK-7", "LINK-MSG-1"}
REPORT_CLAUSES = ["LINK-CREATE-1", "LINK-CREATE-3", "LINK-OK-2", "LINK-OK-3", "LINK-MSG-2"]


@pytest.fixture(scope="module")
def link_reference_report() -> ConformanceReport:
    """The reference link layer on a few clauses (the whole suite: test_reference_link_layer_conforms)."""
    return run_conformance("link", select=REPORT_CLAUSES)


def spec_clauses(layer: str) -> dict[str, bool]:
    """Clause id -> mandatory, as defined in specs/<layer>.md."""
    text = (ROOT / "specs" / f"{layer}.md").read_text(encoding="utf-8")
    found: dict[str, bool] = {}
    for clause_id, level in DEFINITION.findall(text):
        assert clause_id not in found, f"{clause_id} is defined twice in specs/{layer}.md"
        found[clause_id] = level == "MUST"
    return found


# ------------------------------------------------------------------ specs


@pytest.mark.parametrize("layer", LAYERS)
def test_every_spec_clause_is_checked_and_every_check_names_a_spec_clause(layer):
    defined = spec_clauses(layer)
    assert defined, f"specs/{layer}.md defines no clause"
    suite = suite_for(layer)
    checked = {c.clause: c.mandatory for c in suite.checks}
    assert sorted(set(defined) - set(checked)) == [], "clauses in the spec that no check verifies"
    assert sorted(set(checked) - set(defined)) == [], "checks naming clauses the spec does not define"
    differ = sorted(c for c in defined if defined[c] != checked[c])
    assert differ == [], "MUST/SHOULD in the spec disagrees with the check's mandatory flag"
    assert suite.spec == f"specs/{layer}.md"


@pytest.mark.parametrize("layer", LAYERS)
def test_every_clause_id_mentioned_in_a_spec_is_defined(layer):
    text = (ROOT / "specs" / f"{layer}.md").read_text(encoding="utf-8")
    every_defined = {c for other in LAYERS for c in spec_clauses(other)}
    mentioned = set(re.findall(CLAUSE_ID_PATTERN, text))
    assert sorted(mentioned - every_defined) == []


@pytest.mark.parametrize("layer", LAYERS)
def test_the_suite_reads_its_clauses_from_the_spec_it_ships_with(layer):
    """The installed copy (package ``qnetstack.specs``) is this checkout's spec, and
    the kit reads the same ids, levels and text from it as this test does."""
    shipped = importlib.resources.files("qnetstack.specs").joinpath(f"{layer}.md").read_text(encoding="utf-8")
    assert shipped == (ROOT / "specs" / f"{layer}.md").read_text(encoding="utf-8"), "the installed spec is stale: reinstall"
    read = read_spec(f"specs/{layer}.md")
    assert {c: k.mandatory for c, k in read.items()} == spec_clauses(layer)
    suite = suite_for(layer)
    for check in suite.checks:
        assert check.title == read[check.clause].text and check.title
        assert check.mandatory == read[check.clause].mandatory


def test_clause_text_is_the_spec_item_with_its_continuation_lines():
    text = read_spec("specs/link.md")["LINK-OK-2"].text
    assert text.startswith("Every pair is reported at both ends") and text.endswith("(LINK-EXPIRE-1).")
    assert read_spec("specs/link.md")["LINK-MSG-2"].mandatory is False


def test_a_check_naming_a_clause_the_spec_lacks_or_another_level_is_an_error():
    suite = Suite(layer="link", spec="specs/link.md", reference="qnetstack.link.egp:SingleClickEgp")

    @suite.clause("LINK-OK-2")
    def fine(impl):
        pass

    assert [c.clause for c in suite.checks] == ["LINK-OK-2"]

    @suite.clause("LINK-NOPE-9")
    def unknown(impl):
        pass

    with pytest.raises(SpecError, match="LINK-NOPE-9, which specs/link.md does not define"):
        _ = suite.checks
    other = Suite(layer="link", spec="specs/link.md", reference="qnetstack.link.egp:SingleClickEgp")
    other.clause("LINK-MSG-2", "an old title, not used", mandatory=True)(fine)
    with pytest.raises(SpecError, match="says SHOULD"):
        _ = other.checks
    with pytest.raises(SpecError, match="cannot read specs/transport.md"):
        _ = Suite(layer="transport", spec="specs/transport.md", reference="x:Y").checks


def test_the_cross_reference_check_can_fail(tmp_path):
    """The definition pattern really parses ids and levels (so the tests above can fail)."""
    text = "- **LINK-OK-2** (MUST) both ends.\n- **LINK-MSG-2** (SHOULD) refuse.\n* **LINK-X-1** (MUST) not a definition\n"
    assert DEFINITION.findall(text) == [("LINK-OK-2", "MUST"), ("LINK-MSG-2", "SHOULD")]


# ------------------------------------------------------ reference layers


@pytest.mark.slow
@pytest.mark.conformance
def test_reference_link_layer_conforms():
    report = run_conformance("link")
    assert report.passed, report.to_text()
    assert report.counts()["fail"] == 0
    assert {c.clause for c in report.clauses} == suite_for("link").clause_ids


@pytest.mark.slow
@pytest.mark.conformance
@pytest.mark.parametrize("layer", ["physical", "network", "application"])
def test_reference_implementations_of_the_other_layers_conform(layer):
    report = run_conformance(layer)
    assert report.passed, report.to_text()
    assert report.counts()["fail"] == 0


# ------------------------------------------------ broken implementations


@pytest.mark.conformance
@pytest.mark.parametrize(
    "impl, expected",
    [
        # The responder never reports: the pair is missing at one end, and the
        # responder's side of the request never ends (not with OKs, nor with an
        # ERR TIMEOUT when it has a deadline).
        (broken_links.OkAtOneEnd, {"LINK-OK-2", "LINK-END-1", "LINK-TIMEOUT-1"}),
        (broken_links.InflatedGoodness, {"LINK-OK-5"}),
        (broken_links.LabelledBellState, {"LINK-OK-4"}),
        (broken_links.NeverTimesOut, {"LINK-TIMEOUT-1"}),
        (broken_links.ErrorsLoseTheirTag, {"LINK-TAG-1"}),
        (broken_links.TaggedAtTheResponder, {"LINK-TAG-2"}),
        (broken_links.StrayHeraldKept, {"LINK-SESS-1"}),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_broken_link_layers_fail_exactly_the_clauses_they_break(impl, expected):
    """The clauses each one breaks fail, with the failing example; the controls
    (clauses next to the broken one, and generic ones) pass. The reference
    passes every clause (test_reference_link_layer_conforms), so a failure
    here comes from the one change each broken layer makes."""
    neighbours = {"LINK-OK-2", "LINK-OK-4", "LINK-OK-5", "LINK-OK-6", "LINK-END-1", "LINK-ERR-1"} - expected
    report = run_conformance("link", impl, select=sorted(expected | neighbours | CONTROLS))
    assert not report.passed
    assert set(report.failed_clauses()) == expected, report.to_text()
    assert {c.clause for c in report.clauses} == expected | neighbours | CONTROLS
    for clause in report.clauses:
        if clause.status == "fail":
            assert clause.detail  # the failing example is reported


NETWORK_CONTROLS = {"NET-REQ-1", "NET-END-1", "NET-RES-3", "NET-TIMEOUT-1"}


@pytest.mark.conformance
@pytest.mark.parametrize(
    "impl, expected",
    [
        (broken_networks.ReservesNothing, {"NET-ADM-1", "NET-ADM-2", "NET-ADM-3", "NET-RES-4"}),
        (broken_networks.LeaksReleasedSetUps, {"NET-ADM-2", "NET-RES-4"}),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_broken_network_layers_fail_the_admission_clauses_they_break(impl, expected):
    """Without reservations circuits that cross deadlock for memory (and one that can never
    fit is accepted); a layer that keeps what a released set-up had reserved starves the
    requests after it. The controls, which give every node enough memory, pass."""
    report = run_conformance("network", impl, select=sorted(expected | NETWORK_CONTROLS))
    assert set(report.failed_clauses()) == expected, report.to_text()
    assert all(clause.detail for clause in report.clauses if clause.status == "fail")


# ----------------------------------------------------------------- reports


@pytest.mark.conformance
def test_text_report_lists_every_clause_and_the_verdict(link_reference_report):
    text = link_reference_report.to_text()
    assert {c.clause for c in link_reference_report.clauses} == set(REPORT_CLAUSES)
    for clause in link_reference_report.clauses:
        assert re.search(rf"^\s+pass\s+{clause.clause}\s", text, re.MULTILINE)
    # the title is the spec's text, wrapped
    assert "The `create_id` s a node gives its requests are distinct." not in text  # not selected
    assert re.search(r"LINK-CREATE-3\s+MUST\s+A CREATE whose `remote_node` is the node itself", text)
    assert re.search(r"LINK-MSG-2\s+SHOULD\s+A message from above", text)
    assert text.rstrip().endswith("CONFORMS")


@pytest.mark.conformance
def test_json_report_round_trips(link_reference_report):
    data = json.loads(link_reference_report.to_json())
    assert data["passed"] is True and data["layer"] == "link"
    assert data["counts"]["pass"] == len(data["clauses"])
    assert ConformanceReport.model_validate({k: v for k, v in data.items() if k not in ("passed", "counts")}) == link_reference_report


@pytest.mark.conformance
def test_junit_report_of_a_failing_implementation():
    report = run_conformance("link", broken_links.InflatedGoodness, select=["LINK-OK-5", "LINK-OK-2"])
    root = ET.fromstring(report.to_junit())
    assert root.tag == "testsuite" and root.get("tests") == "2" and root.get("failures") == "1"
    cases = {case.get("name").split()[0]: case for case in root.iter("testcase")}
    assert set(cases) == {"LINK-OK-5", "LINK-OK-2"}
    failure = cases["LINK-OK-5"].find("failure")
    assert failure is not None and "goodness 0.99" in failure.text
    # the shrunk example hypothesis found, whatever heading its version gives it
    assert "scenario=" in failure.text and "herald_fidelities=(0.7,)" in failure.text
    assert cases["LINK-OK-2"].find("failure") is None


# --------------------------------------------------------------------- CLI


@pytest.mark.conformance
def test_cli_passes_the_reference_and_writes_json_and_junit(tmp_path, capsys):
    junit = tmp_path / "link.xml"
    code = main(["conform", "link", "single-click-egp", "--json", "--junit", str(junit), "--clause", "LINK-OK-2"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["clause"] for c in data["clauses"]] == ["LINK-OK-2"] and data["passed"]
    assert ET.parse(junit).getroot().get("failures") == "0"


@pytest.mark.conformance
def test_cli_exit_code_1_names_the_broken_clause(capsys):
    code = main(["conform", "link", "tests.broken_links:InflatedGoodness", "--clause", "LINK-OK-5"])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"FAIL\s+LINK-OK-5", out) and "DOES NOT CONFORM" in out


@pytest.mark.parametrize(
    "args, says",
    [
        (["conform", "transport"], "unknown layer 'transport'"),
        (["conform", "link", "no_such_module:Egp"], "cannot import module 'no_such_module'"),
        (["conform", "link", "qnetstack.link.egp:NoSuchClass"], "has no attribute 'NoSuchClass'"),
        (["conform", "link", "qnetstack.link.egp:PeerCreate"], "does not implement the link service"),
        (["conform", "link", "egp-that-is-not-registered"], "unknown link implementation"),
        (["conform", "link", "--clause", "LINK-NOPE-1"], "no clause LINK-NOPE-1"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args, says, capsys):
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0]


def test_runner_api_raises_conform_error():
    with pytest.raises(ConformError, match="unknown layer"):
        run_conformance("transport")


# ------------------------------------------------------------ under pytest


def _pyargs(package: str, impl: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("QNETSTACK_CONFORM_IMPL", None)
    if impl:
        env["QNETSTACK_CONFORM_IMPL"] = impl
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n0", "--pyargs", package, "-k", "LINK-OK-5 or LINK-OK-2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.conformance
@pytest.mark.parametrize(
    "impl, code, summary",
    [(None, 0, "2 passed"), ("tests.broken_links:InflatedGoodness", 1, "1 failed, 1 passed")],
    ids=["reference", "InflatedGoodness"],
)
def test_suite_runs_under_pytest_pyargs(impl, code, summary):
    """The reference and a broken layer, one item each (two pytest processes that workers share)."""
    done = _pyargs("qnetstack.link.conformance", impl)
    assert done.returncode == code, done.stdout + done.stderr
    assert summary in done.stdout
    if impl is not None:
        assert "LINK-OK-5" in done.stdout


# ------------------------------------------- the docs' worked example

# docs/conformance.md: the example's policy passes the link suite (the priority
# clauses not applicable) and runs the teleportation example with the reference's
# result. tests/test_docs.py runs the page's commands and checks the figures it quotes.


# ------------------------------------------------------------ shared runs


def test_identical_harness_runs_are_made_once_and_others_afresh():
    import numpy as np

    from qnetstack.entity.harness import RunMemo
    from qnetstack.link.conformance.harness import LinkConditions, ScriptedCreate, run_link
    from qnetstack.link.egp import SingleClickEgp
    from qnetstack.link.service import LinkCreate

    memo = RunMemo(run_link)
    creates = [ScriptedCreate(0, "alice", LinkCreate(remote_node="bob", number=2))]
    first = memo(SingleClickEgp, LinkConditions(success_probability=0.5), creates, until_ns=2_000_000)
    again = memo(SingleClickEgp, LinkConditions(success_probability=0.5), list(creates), until_ns=2_000_000)
    assert again is first and (memo.hits, memo.misses) == (1, 1)
    other_seed = memo(SingleClickEgp, LinkConditions(success_probability=0.5), creates, until_ns=2_000_000, seed=1)
    assert other_seed is not first and memo.misses == 2
    # 1 and 1.0 are different arguments (a run may depend on the type)
    assert memo(SingleClickEgp, LinkConditions(success_probability=1), creates, 2_000_000) is not memo(
        SingleClickEgp, LinkConditions(success_probability=1.0), creates, 2_000_000
    )
    # what cannot be fingerprinted (a random generator) is run every time, and so is a crash
    calls = []

    def run(impl, rng):
        calls.append(rng)
        return object()

    fresh = RunMemo(run)
    fresh(SingleClickEgp, np.random.default_rng(0))
    fresh(SingleClickEgp, np.random.default_rng(0))
    assert len(calls) == 2 and len(fresh) == 0

    class Crashed:
        crashed = RuntimeError("boom")

    crashing = RunMemo(lambda impl: Crashed())
    crashing(SingleClickEgp)
    assert crashing(SingleClickEgp) is not None and len(crashing) == 0 and crashing.misses == 2


@pytest.mark.conformance
def test_checks_of_a_suite_share_the_runs_of_its_scenarios():
    """The generic scenarios are run once and judged by every check that uses them;
    the runs are dropped once the report is made."""
    from qnetstack.link.conformance import suite as link_suite

    shared = link_suite.run_link
    hits, misses = shared.hits, shared.misses
    report = run_conformance("link", select=["LINK-OK-1", "LINK-OK-3", "LINK-OK-7"])
    assert report.passed
    made, reused = shared.misses - misses, shared.hits - hits
    assert made > 0 and reused >= 2 * made  # two of the three checks judge runs the first one made
    assert len(shared) == 0
