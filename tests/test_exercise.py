"""``qnetstack exercise``: the folder it writes, its bad input, and the stub's grade.

The stub's grade runs the whole link suite once (through ``qnetstack conform
--score``, as a student would), so it is marked slow; the rest is fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from qnetstack.stack.cli import main
from qnetstack.stack.exercise import EXERCISES, exercise_files

# The clauses the stub fails as handed out: every clause about running the
# service, since each handler raises NotImplementedError.
STUB_FAILS = {
    "LINK-ACK-1",
    "LINK-CREATE-1",
    "LINK-CREATE-2",
    "LINK-CREATE-3",
    "LINK-CREATE-4",
    "LINK-CREATE-5",
    "LINK-END-1",
    "LINK-ERR-1",
    "LINK-EXPIRE-1",
    "LINK-MSG-1",
    "LINK-MSG-2",
    "LINK-MUX-1",
    "LINK-OK-1",
    "LINK-OK-2",
    "LINK-OK-3",
    "LINK-OK-4",
    "LINK-OK-5",
    "LINK-OK-6",
    "LINK-OK-7",
    "LINK-RES-1",
    "LINK-RES-2",
    "LINK-SESS-1",
    "LINK-TAG-1",
    "LINK-TAG-2",
    "LINK-TIMEOUT-1",
}
# ...and passes the two clauses about its code: it declares link:K and imports only what it may.
STUB_PASSES = {"LINK-IMPL-1", "LINK-IMPL-2"}


def _written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    target = tmp_path / "course"
    assert main(["exercise", "link", str(target)]) == 0
    out = capsys.readouterr().out
    assert "qnetstack conform link student_link:StudentLink --score" in out
    return target


def test_writes_the_stub_readme_and_visible_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = _written(tmp_path, capsys)
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "student_link.py", "test_student_link.py"]
    assert "specs/link.md" in (target / "README.md").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["course"]  # no staging folder left behind
    stub = (target / "student_link.py").read_text()
    assert stub == exercise_files("link")["student_link.py"]
    imported = set(re.findall(r"^from (qnetstack\.[\w.]+) import", stub, re.M))
    assert imported == {"qnetstack.entity", "qnetstack.link.service", "qnetstack.physical.service"}
    assert stub.count("raise NotImplementedError") == 4
    assert os.access(target, os.R_OK | os.W_OK | os.X_OK)


def test_an_empty_folder_is_filled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    assert main(["exercise", "link", str(target)]) == 0
    assert (target / "student_link.py").is_file()


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> None:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("layer", ["transport", "physical", ""])
def test_unknown_layer(layer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercise", layer, str(tmp_path / "x")]) == 2
    _one_line_error(capsys, "no exercise")
    assert not (tmp_path / "x").exists()


def test_non_empty_folder_is_refused_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["exercise", "link", str(tmp_path)]) == 2
    _one_line_error(capsys, "DIR", "not empty")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_folder_under_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    assert main(["exercise", "link", str(tmp_path / "file" / "course")]) == 2
    _one_line_error(capsys, "DIR", "cannot write")
    assert main(["exercise", "link", str(tmp_path / "file")]) == 2
    _one_line_error(capsys, "DIR", "not a folder")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="needs POSIX permissions that bind (not root)")
def test_unwritable_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["exercise", "link", str(locked / "course")]) == 2
        _one_line_error(capsys, "DIR", "not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_visible_tests_check_clauses_the_stub_fails() -> None:
    """Each visible test names clauses the stub fails, so each fails until the student's work makes it pass."""
    visible = exercise_files("link")["test_student_link.py"]
    named = set(re.findall(r'"(LINK-[A-Z]+-\d+)"', visible))
    assert named - STUB_PASSES, "the visible tests name no clause the stub fails"
    assert named <= STUB_FAILS | STUB_PASSES


VERDICT_LINE = re.compile(r"^  (pass|FAIL|n/a)\s+([A-Z]+-[A-Z]+-\d+)\s+(?:MUST|SHOULD)$", re.M)


def grade_stub(
    layer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, str], str]:
    """Write ``layer``'s exercise and grade its stub as a student would; return the verdicts and the output."""
    target = tmp_path / "course"
    assert main(["exercise", layer, str(target)]) == 0
    module, _, cls = EXERCISES[layer].partition(":")
    assert f"qnetstack conform {layer} {module}:{cls} --score" in capsys.readouterr().out
    monkeypatch.chdir(target)
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.delitem(sys.modules, module, raising=False)
    assert main(["conform", layer, f"{module}:{cls}", "--score"]) == 1
    out = capsys.readouterr().out
    return {clause: status for status, clause in VERDICT_LINE.findall(out)}, out


@pytest.mark.slow
@pytest.mark.conformance
def test_the_stub_fails_the_expected_clauses(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    verdicts, out = grade_stub("link", tmp_path, capsys, monkeypatch)
    assert {c for c, s in verdicts.items() if s == "FAIL"} == STUB_FAILS
    assert {c for c, s in verdicts.items() if s == "pass"} == STUB_PASSES
    applicable = len(STUB_FAILS) + len(STUB_PASSES)
    not_applicable = len(verdicts) - applicable
    assert f"score: 2/{applicable} applicable clauses pass (7%), {not_applicable} not applicable" in out


def test_writes_the_network_exercise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "net"
    assert main(["exercise", "network", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "student_network.py", "test_student_network.py"]
    stub = (target / "student_network.py").read_text()
    imported = set(re.findall(r"^from (qnetstack\.[\w.]+) import", stub, re.M))
    assert imported == {"qnetstack.entity", "qnetstack.link.service", "qnetstack.network.service", "qnetstack.physical.service"}


def test_score_counts_applicable_clauses(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--score on two clauses of the stub, one it passes and one it fails, as text and as JSON."""
    target = _written(tmp_path, capsys)
    monkeypatch.chdir(target)
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.delitem(sys.modules, "student_link", raising=False)
    command = ["conform", "link", "student_link:StudentLink", "--score", "--clause", "LINK-IMPL-1", "--clause", "LINK-CREATE-3"]
    assert main(command) == 1
    out = capsys.readouterr().out
    assert {clause: status for status, clause in VERDICT_LINE.findall(out)} == {"LINK-IMPL-1": "pass", "LINK-CREATE-3": "FAIL"}
    assert out.rstrip().endswith("score: 1/2 applicable clauses pass (50%), 0 not applicable")
    assert main([*command, "--json"]) == 1
    grade = json.loads(capsys.readouterr().out)["score"]
    assert (grade["passed"], grade["applicable"], grade["not_applicable"]) == (1, 2, 0)
    assert [(v["clause"], v["status"]) for v in grade["verdicts"]] == [("LINK-CREATE-3", "fail"), ("LINK-IMPL-1", "pass")]
