"""The docs say what the code does: every command block of docs/conformance.md
is run and its quoted output (counts, verdicts, results) must still be what
the command prints; the code the page copies from the example is the
example's; and no file cites paths of a folder users do not have.

A command block is a fenced block whose first line is a prompt and a
``qnetstack`` command: ``$ `` runs it in the repository's top folder,
``examples$ `` in ``examples/``. The lines after it are the output; ``...``
stands for any lines. The commands run in-process (``qnetstack.stack.cli.main``)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from qnetstack.link import scheduler
from qnetstack.stack.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "conformance.md"
COMMAND_BLOCK = re.compile(r"^```\n(?P<folder>[\w./-]*)\$ (?P<command>[^\n]+)\n(?P<output>.*?)^```", re.MULTILINE | re.DOTALL)
COUNTS = re.compile(r"^\d+ passed, \d+ failed, \d+ not applicable: (CONFORMS|DOES NOT CONFORM)$", re.MULTILINE)


def command_blocks() -> list[tuple[str, str, list[str]]]:
    text = PAGE.read_text(encoding="utf-8")
    return [(m["folder"], m["command"], m["output"].rstrip("\n").split("\n")) for m in COMMAND_BLOCK.finditer(text)]


def _is_whole_suite(command: str) -> bool:
    return " conform " in f" {command} " and "--clause" not in command


def _params() -> list[object]:
    params = []
    for folder, command, output in command_blocks():
        marks = [pytest.mark.slow, pytest.mark.conformance] if _is_whole_suite(command) else []
        params.append(pytest.param(folder, command, output, marks=marks, id=f"{folder}$ {command}"))
    return params


def mismatch(expected: list[str], actual: list[str]) -> str | None:
    """Why ``actual`` does not show ``expected`` (``...`` lines stand for any
    lines; without one at an end, the output starts or ends there), or None."""
    segments: list[list[str]] = [[]]
    for line in expected:
        if line == "...":
            segments.append([])
        else:
            segments[-1].append(line.rstrip())
    actual = [line.rstrip() for line in actual]
    position = 0
    for index, segment in enumerate(segments):
        if not segment:
            continue
        size = len(segment)
        if index == 0:
            starts = [0]
        elif index == len(segments) - 1:
            starts = [len(actual) - size]
        else:
            starts = list(range(position, len(actual) - size + 1))
        found = next((s for s in starts if s >= position and actual[s : s + size] == segment), None)
        if found is None:
            return "these lines are not in the output (in this order):\n" + "\n".join(segment)
        position = found + size
    return None


def test_the_page_has_the_commands_whose_figures_it_quotes():
    """So that the test below cannot pass by finding no block: the verdicts and the teleport figures are there."""
    blocks = command_blocks()
    commands = [command for _, command, _ in blocks]
    assert "qnetstack conform link minimal_link:EdfEgp" in commands
    assert any(command.startswith("qnetstack run teleport-chain.yaml") for command in commands)
    quoted = [line for _, _, output in blocks for line in output if COUNTS.match(line)]
    assert len(quoted) >= 3
    # every count the page quotes is inside a command block
    text = PAGE.read_text(encoding="utf-8")
    assert len(COUNTS.findall(text)) == len(quoted)


@pytest.mark.parametrize("folder, command, expected", _params())
def test_each_command_of_the_page_prints_what_the_page_says(folder, command, expected, monkeypatch, capsys):
    argv = shlex.split(command)
    assert argv[0] == "qnetstack", f"a command block runs qnetstack, not {argv[0]!r}"
    monkeypatch.chdir(ROOT / folder)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI puts the current folder on the path
    # run from examples/, the example registers its policy as minimal_link's, where other
    # tests import it as examples.minimal_link's: give them back the registry they had
    monkeypatch.setattr(scheduler, "_POLICIES", dict(scheduler._POLICIES))
    code = main(argv[1:])
    out = capsys.readouterr().out
    assert code in (0, 1)
    problem = mismatch(expected, out.rstrip("\n").split("\n"))
    assert problem is None, f"{folder}$ {command}\n{problem}\n\n--- the command printed ---\n{out}"


def test_the_mismatch_finder_can_fail():
    out = ["head", "a", "b", "c", "tail"]
    assert mismatch(["head", "...", "b", "...", "tail"], out) is None
    assert mismatch(["head", "...", "c", "b", "...", "tail"], out) is not None  # order
    assert mismatch(["a", "...", "tail"], out) is not None  # must start at the start
    assert mismatch(["head", "...", "c"], out) is not None  # must end at the end
    assert mismatch(["head", "...", "x", "...", "tail"], out) is not None


def test_the_pages_copy_of_the_example_policy_is_the_example():
    text = PAGE.read_text(encoding="utf-8")
    [snippet] = [block for block in re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL) if "class EdfEgp" in block]
    example = (ROOT / "examples" / "minimal_link.py").read_text(encoding="utf-8")
    assert snippet in example


# --------------------------------------------------------------- citations

# a path under a folder named "shared" (or "../shared"): notes of the developers,
# which users do not have; docs and code cite papers and RFCs instead
SHARED_PATH = re.compile(r"(?<![\w-])(?:\.\./)*" + "shared" + r"/")
SKIPPED_FOLDERS = {
    ".git",
    ".venv",
    ".ci-venv",
    "build",
    "dist",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".import_linter_cache",
    ".mypy_cache",
    ".ruff_cache",
}


def test_no_file_cites_paths_users_do_not_have():
    cited = []
    for path in ROOT.rglob("*"):
        if not path.is_file() or SKIPPED_FOLDERS & set(path.relative_to(ROOT).parts) or path.suffix in (".pyc", ".png"):
            continue
        if path.name.endswith(".egg-info") or any(part.endswith(".egg-info") for part in path.parts):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if SHARED_PATH.search(line):
                cited.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert cited == []


def test_the_citation_pattern_finds_what_it_must():
    assert SHARED_PATH.search("see " + "../shared" + "/notes.md") and SHARED_PATH.search("(" + "shared" + "/x.pdf)")
    assert not SHARED_PATH.search("a shared state") and not SHARED_PATH.search("unshared" + "/x")
