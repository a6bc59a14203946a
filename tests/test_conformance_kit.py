"""The conformance kit cannot be fooled: an implementation does not decide a
clause by raising the kit's exceptions, exiting, changing what it was handed
or sent, or providing nothing; its imports are read from its source; each
distinct exception is reported once; a clause that hangs fails after its time
limit and the suite goes on; exit codes are as documented.

The implementations are tiny changes of the references (``tests/hostile_layers.py``),
run on one or two cheap clauses each (``--clause``), so that this file stays fast."""

from __future__ import annotations

import json
import re
import signal
import time
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
from hypothesis import strategies as st

from qnetstack.entity.checks import judge_runs
from qnetstack.entity.conformance import ClauseFailure, NotApplicable, Suite, none_or_integers, sampled
from qnetstack.entity.containment import snapshot
from qnetstack.entity.imports import forbidden_imports, why_forbidden
from qnetstack.link.egp import SingleClickEgp
from qnetstack.stack.cli import main
from qnetstack.stack.conform import run_conformance
from tests import hostile_layers, private_imports

CHEAP = ["LINK-CREATE-1"]  # a property over generated scenarios; the first example runs handle_above


def test_a_clause_can_still_be_not_applicable():
    """The control for what follows: the kit's own NotApplicable (a capability
    the class does not declare) still makes a clause not applicable."""

    class WithoutPriority(SingleClickEgp):
        PROVIDES = SingleClickEgp.PROVIDES - {"link:priority"}

    report = run_conformance("link", WithoutPriority, select=["LINK-PRIO-1"])
    assert [c.status for c in report.clauses] == ["not_applicable"] and report.passed


# ------------------------------------------- exceptions that would steer the kit


@pytest.mark.conformance
@pytest.mark.parametrize("impl", hostile_layers.RAISING, ids=lambda impl: impl.__name__)
def test_a_control_exception_out_of_a_handler_fails_the_clause(impl):
    """NotApplicable would make the clause not applicable, ClauseFailure is the
    kit's own verdict, ClauseTimeout and KeyboardInterrupt would stop the check,
    GeneratorExit is not an Exception, UnsatisfiedAssumption would make
    hypothesis drop the example: raised by a handler, each fails the clause
    and is named as the implementation's."""
    report = run_conformance("link", impl, select=CHEAP)
    assert report.failed_clauses() == CHEAP, report.to_text()
    [check] = report.clauses[0].checks
    [error] = check.errors
    raised = impl.__name__.removeprefix("Raises")
    assert error.type == "ImplementationFault" and error.message.startswith(raised), error
    assert f"{impl.__name__}.handle_above on alice" in error.context
    assert error.location.endswith("in handle_above")


@pytest.mark.conformance
def test_not_applicable_from_the_constructor_fails_the_clause():
    report = run_conformance("link", hostile_layers.NotApplicableWhenBuilt, select=CHEAP)
    assert report.failed_clauses() == CHEAP
    assert "NotApplicable" in report.clauses[0].detail


@pytest.mark.conformance
def test_not_applicable_raised_outside_the_kit_fails_even_without_the_harness():
    """A check that calls the implementation directly (no harness in between)
    gets a NotApplicable from it: judged by where it was raised, it fails."""

    suite = Suite(layer="link", spec="specs/link.md", reference="qnetstack.link.egp:SingleClickEgp")

    @suite.clause("LINK-OK-2")
    def calls_the_impl(impl):
        impl.handle_above(object.__new__(impl), None)  # straight into the implementation's code

    @suite.clause("LINK-OK-3")
    def says_not_applicable(impl):
        raise NotApplicable("the kit's own reason")

    report = suite.run(hostile_layers.RAISING[0])
    assert {c.clause: c.status for c in report.clauses} == {"LINK-OK-2": "fail", "LINK-OK-3": "not_applicable"}
    assert "raised outside the conformance kit" in report.clauses[0].detail


@pytest.mark.conformance
def test_sys_exit_in_a_handler_is_a_failed_clause_not_an_exit(capsys):
    """Before: SystemExit(0) went through the kit and ended the command with exit code 0 and no report."""
    code = main(["conform", "link", "tests.hostile_layers:ExitsInHandler", "--clause", "LINK-CREATE-1"])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"FAIL\s+LINK-CREATE-1", out) and "DOES NOT CONFORM" in out
    assert "SystemExit(0): a handler may not end the process" in out


def test_a_backend_that_exits_while_it_is_built_is_bad_input_not_an_exit(capsys):
    """The physical suite's validator builds the backend; its sys.exit(3) is one line and exit code 2."""
    assert main(["conform", "physical", "tests.hostile_layers:ExitsWhenBuilt"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "building it raised SystemExit: 3" in lines[0]


@pytest.mark.conformance
def test_under_pytest_a_not_applicable_from_the_implementation_fails_the_test(monkeypatch):
    from qnetstack.entity.containment import ImplementationFault
    from qnetstack.link.conformance import SUITE

    monkeypatch.setenv("QNETSTACK_CONFORM_IMPL", "tests.hostile_layers:RaisesNotApplicable")
    [check] = [c for c in SUITE.checks if c.clause == "LINK-CREATE-1"]
    with pytest.raises(ImplementationFault, match="NotApplicable"):
        SUITE.pytest_function()(check)


@pytest.mark.conformance
def test_telling_hypothesis_to_drop_the_failing_examples_does_not_pass():
    """InflatedGoodness fails LINK-OK-5; with every example that shows it
    rejected (hypothesis.reject() in the handler), it passed before."""
    report = run_conformance("link", hostile_layers.RejectsWhereItCheats, select=["LINK-OK-5"])
    assert report.failed_clauses() == ["LINK-OK-5"]
    assert "UnsatisfiedAssumption" in report.clauses[0].detail


# --------------------------------------------------------- changed messages


@pytest.mark.conformance
def test_a_handler_that_changes_the_request_it_was_handed_fails():
    """Before: LINK-OK-7 read the changed CREATE (number + 2) and passed."""
    report = run_conformance("link", hostile_layers.RewritesItsRequest, select=["LINK-OK-7"])
    assert report.failed_clauses() == ["LINK-OK-7"]
    detail = report.clauses[0].detail
    assert "the LinkCreate handed to RewritesItsRequest.handle_above" in detail
    assert re.search(r"number (\d) -> (\d)", detail)


@pytest.mark.conformance
def test_an_ok_changed_after_it_was_sent_fails():
    """Before: the record showed the honest goodness written in afterwards, and LINK-OK-5 passed."""
    report = run_conformance("link", hostile_layers.EditsItsOksLater, select=["LINK-OK-5"])
    assert report.failed_clauses() == ["LINK-OK-5"]
    detail = report.clauses[0].detail
    assert re.search(r"the LinkOkKeep sent by EditsItsOksLater\.send_up on (alice|bob) at t=\d+ ns was changed afterwards", detail)
    assert "goodness 0.99 ->" in detail


def test_snapshots_see_changes_of_frozen_models_at_any_depth():
    from qnetstack.link.service import EntanglementId, LinkOkKeep
    from qnetstack.physical.service import BellState, OracleFidelity, QubitRef

    ok = LinkOkKeep(
        create_id=0,
        origin_node="alice",
        ent_id=EntanglementId(creator="alice", peer="bob", sequence=1),
        purpose_id=0,
        remote_node="bob",
        bell_state=BellState.PSI_PLUS,
        goodness=0.8,
        goodness_time_ns=0,
        handle=0,
    )
    before = snapshot(ok)
    assert snapshot(ok) == before
    object.__setattr__(ok.ent_id, "sequence", 2)  # a nested frozen model
    assert snapshot(ok) != before
    read = OracleFidelity(qubits=[QubitRef(node="a", handle=0)], bell_state=None, theta_rad=0.0)
    before = snapshot(read)
    read.qubits.append(QubitRef(node="b", handle=1))  # a list inside a frozen model
    assert snapshot(read) != before


# --------------------------------------------------- providing the service


@pytest.mark.conformance
@pytest.mark.parametrize("impl", [hostile_layers.ProvidesNothing, hostile_layers.DoesNothing], ids=lambda impl: impl.__name__)
def test_an_application_that_provides_nothing_does_not_conform(impl):
    """Before: every clause was not applicable and the verdict was CONFORMS."""
    report = run_conformance("application", impl, select=["APP-IMPL-1", "APP-END-1", "APP-PAIR-1"])
    statuses = {c.clause: c.status for c in report.clauses}
    assert statuses == {"APP-IMPL-1": "fail", "APP-END-1": "not_applicable", "APP-PAIR-1": "not_applicable"}
    assert not report.passed
    [declared] = [c for c in report.clauses if c.clause == "APP-IMPL-1"]
    assert "names none of ['application:pairs', 'application:teleport']" in declared.detail


@pytest.mark.parametrize(
    "layer, clause",
    [
        ("link", "LINK-IMPL-1"),
        ("network", "NET-IMPL-1"),
        ("application", "APP-IMPL-1"),
        ("link", "LINK-IMPL-2"),
        ("physical", "PHY-BACKEND-3"),
    ],
)
def test_the_reference_implementations_declare_and_import_what_they_may(layer, clause):
    report = run_conformance(layer, select=[clause])
    assert report.failed_clauses() == [], report.to_text()


# ------------------------------------------------------------------ imports


def test_private_imports_of_other_layers_fail_with_file_and_line():
    report = run_conformance("link", private_imports.ReachesIntoOtherLayers, select=["LINK-IMPL-2"])
    assert report.failed_clauses() == ["LINK-IMPL-2"]
    found = report.clauses[0].detail.splitlines()
    source = private_imports.__file__
    with open(source, encoding="utf-8") as handle:
        text = handle.read().splitlines()
    marks = {"routing": "import routing", "world": "import world", "runtime": '"qnetstack.stack.runtime"'}
    lines = {name: next(n for n, line in enumerate(text, start=1) if mark in line) for name, mark in marks.items()}
    assert any(f"private_imports.py:{lines['routing']} imports qnetstack.network.routing: the network layer" in f for f in found), found
    assert any(f":{lines['world']} imports qnetstack.physical.engines.world: a private module of the physical layer" in f for f in found)
    assert any(f":{lines['runtime']} imports qnetstack.stack.runtime: the stack" in f for f in found)
    assert len(found) == 3  # the link layer's own egp and physical.service are allowed


@pytest.mark.parametrize(
    "module, layer, allowed",
    [
        ("numpy", "link", True),
        ("qnetstack", "link", True),
        ("qnetstack.entity", "network", True),
        ("qnetstack.entity.machine", "network", True),
        ("qnetstack.entity.conformance", "network", False),
        ("qnetstack.entity.harness", "link", False),
        ("qnetstack.link.egp", "link", True),
        ("qnetstack.link.conformance.suite", "link", False),
        ("qnetstack.physical.service", "link", True),
        ("qnetstack.physical.params", "application", True),
        ("qnetstack.physical.backends.device", "link", False),
        ("qnetstack.link.service", "network", True),
        ("qnetstack.link.service", "application", True),
        ("qnetstack.link.request", "network", False),
        ("qnetstack.network.service", "link", False),
        ("qnetstack.application.service", "physical", False),
        ("qnetstack.stack", "application", False),
        ("qnetstack.stack.cli", "physical", False),
    ],
)
def test_which_modules_a_layer_may_import(module, layer, allowed):
    assert (why_forbidden(module, layer) is None) == allowed


def test_the_broken_layers_of_the_tests_import_only_what_a_link_layer_may():
    """tests/broken_links.py builds on the reference link layer and the physical service: allowed."""
    from tests import broken_links

    assert forbidden_imports(broken_links.InflatedGoodness, "link") == []
    assert any("the conformance kit" in f for f in forbidden_imports(hostile_layers.ExitsInHandler, "link"))


# ------------------------------------------------ each distinct error once


@pytest.mark.conformance
def test_each_distinct_exception_is_shown_once_with_its_call_and_the_clauses_it_broke(capsys, tmp_path):
    """Before: the same traceback was printed under every clause it broke."""
    junit = tmp_path / "crash.xml"
    args = ["conform", "link", "tests.crashing_link:CrashesOnHeralds", "--clause", "LINK-CREATE-1", "--clause", "LINK-OK-7"]
    assert main([*args, "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert out.count("1 / 0") == 1  # the traceback's source line, once
    assert out.count("error 1 (shown below), ZeroDivisionError: division by zero") == 2
    assert "error 2" not in out
    assert re.search(r"in CrashesOnHeralds\.handle_below on (alice|bob) at t=\d+ ns, handling HeraldResult\(", out)
    assert "broke 2 clauses: LINK-CREATE-1, LINK-OK-7" in out
    assert "entity/harness.py" not in out.split("error 1: ")[1]  # the kit's frames are left out
    # the JUnit and JSON reports keep every clause's full detail
    failures = [f.text for f in ET.parse(junit).getroot().iter("failure")]
    assert len(failures) == 2 and all("1 / 0" in text and "CrashesOnHeralds.handle_below" in text for text in failures)
    assert main([*args[:5], "--json"]) == 1
    [clause] = json.loads(capsys.readouterr().out)["clauses"]
    [check] = clause["checks"]
    assert "1 / 0" in check["detail"] and check["errors"][0]["type"] == "ZeroDivisionError"


# ------------------------------------------------------------------ timeouts


@pytest.mark.conformance
@pytest.mark.parametrize("impl", ["LoopsForever", "SwallowsTimeouts"])
def test_a_hanging_handler_fails_its_clause_after_the_limit_and_the_suite_goes_on(impl, capsys):
    handler_before = signal.getsignal(signal.SIGALRM)
    start = time.perf_counter()
    code = main(
        ["conform", "link", f"tests.hostile_layers:{impl}", "--clause", "LINK-CREATE-1", "--clause", "LINK-OK-7", "--clause-timeout", "0.5"]
    )
    took = time.perf_counter() - start
    out = capsys.readouterr().out
    assert code == 1
    assert len(re.findall(rf"timed out in handler {impl}\.handle_above on alice at t=\d+ ns", out)) == 2, out
    if impl == "LoopsForever":
        assert "it was running LoopsForever._spin (" in out
    assert took < 10  # two clauses of 0.5 s each, and the start of the command
    assert signal.getsignal(signal.SIGALRM) == handler_before  # the kit gives the alarm back


@pytest.mark.conformance
def test_a_real_ctrl_c_stops_the_run_with_no_verdict(capsys):
    """A SIGINT delivered to the process (what Ctrl-C does) is not taken for the implementation's exception."""
    # the handler the kit must put back: Python's default, or SIG_IGN when the
    # tests were started in the background by a shell that ignores SIGINT there
    before = signal.getsignal(signal.SIGINT)
    code = main(["conform", "link", "tests.hostile_layers:PressesCtrlC", "--clause", "LINK-CREATE-1"])
    captured = capsys.readouterr()
    assert code == 130
    assert "interrupted" in captured.err and "CONFORMS" not in captured.out
    assert signal.getsignal(signal.SIGINT) == before


def test_the_run_says_so_when_it_cannot_limit_time():
    """Outside the main thread no alarm can be set: the report says so instead of pretending."""
    import threading

    found = []

    def run() -> None:
        found.append(run_conformance("link", select=["LINK-IMPL-1"], clause_timeout=5))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert found[0].notes == ["no time limit per clause: not in the main thread, where alarms and Ctrl-C arrive"]
    assert "note: no time limit per clause" in found[0].to_text()


# ------------------------------------------------------ exit codes and files


@pytest.mark.parametrize(
    "extra, says",
    [
        (
            ["--junit", "/nonexistent-folder/report.xml"],
            "--junit: cannot write /nonexistent-folder/report.xml: /nonexistent-folder does not exist",
        ),
        (["--clause-timeout", "0"], "--clause-timeout: must be a positive number of seconds"),
        (["--clause-timeout", "nan"], "--clause-timeout: must be a positive number of seconds"),
    ],
)
def test_bad_options_are_one_line_and_exit_2_before_the_suite_runs(extra, says, capsys):
    start = time.perf_counter()
    assert main(["conform", "link", "--clause", "LINK-OK-2", *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing ran
    assert captured.err.strip().splitlines() == [f"qnetstack: error: {captured.err.strip().removeprefix('qnetstack: error: ')}"]
    assert says in captured.err
    assert time.perf_counter() - start < 2


def test_bad_input_leaves_no_empty_junit_file(tmp_path, capsys):
    junit = tmp_path / "report.xml"
    assert main(["conform", "link", "no_such_module:Egp", "--junit", str(junit)]) == 2
    assert not junit.exists()


def test_the_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["conform", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for line in (
        "0    every mandatory (MUST) clause passes",
        "1    a mandatory clause fails",
        "2    bad input",
        "--clause-timeout SECONDS",
    ):
        assert line in out


def test_clause_failure_and_not_applicable_are_still_importable_from_the_kit():
    """Suites written against ``qnetstack.entity.conformance`` keep working."""
    assert issubclass(ClauseFailure, AssertionError) and issubclass(NotApplicable, Exception)


def test_judge_runs_judges_the_run_of_each_drawn_scenario():
    """The property every generated-scenario check runs on: each drawn scenario
    (conditions, script, horizon) is run with a drawn seed and its run judged."""
    calls = []

    def run(impl, conditions, script, until_ns, seed):
        calls.append((impl, conditions, script, until_ns, seed))
        return SimpleNamespace(crashed=None, until_ns=until_ns)

    judged = []
    scenarios = st.tuples(st.integers(0, 9), st.just(["request"]), st.integers(1, 5))
    judge_runs(run, "impl", scenarios, judged.append, examples=7)
    assert len(judged) == len(calls) == 7
    assert all(c[0] == "impl" and c[2] == ["request"] and 1 <= c[3] <= 5 and 0 <= c[4] <= 2**16 for c in calls)
    assert [r.until_ns for r in judged] == [c[3] for c in calls]


def test_judge_runs_fails_a_crashed_run_before_judging_it():
    def run(impl, conditions, script, until_ns, seed):
        return SimpleNamespace(crashed=ZeroDivisionError("in a handler"))

    judged = []
    with pytest.raises(ZeroDivisionError, match="in a handler"):
        judge_runs(run, "impl", st.just((None, [], 10)), judged.append, examples=3)
    assert judged == []


def test_scenario_strategies_are_built_once_per_arguments():
    assert sampled(1, 2, 3) is sampled(1, 2, 3) and sampled(1, 2, 3) is not sampled(1, 2)
    assert none_or_integers(0, 5) is none_or_integers(0, 5)
