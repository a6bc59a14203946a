"""The tree is ruff-clean (lint and format) and the packages type-check with mypy.

Both run the tools of the environment the tests run in (``sys.executable -m``),
with the configuration in ``pyproject.toml``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The folders that install as qnetstack.<name> (setuptools package-dir in pyproject.toml).
# The folders that install as qnetstack.<name>, as pyproject.toml maps them (a new one is checked without edits here).
PACKAGES = list(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"].values())


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.slow
def test_ruff_lint_and_format_are_clean():
    pytest.importorskip("ruff", reason="install the test extra: pip install '.[test]'")
    lint = run(["ruff", "check", "--no-cache", "."], ROOT)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    form = run(["ruff", "format", "--check", "--no-cache", "."], ROOT)
    assert form.returncode == 0, form.stdout + form.stderr


@pytest.mark.slow
def test_mypy_is_clean_on_the_packages(tmp_path):
    pytest.importorskip("mypy", reason="install the test extra: pip install '.[test]'")
    # mypy must see the folders under the names they install as, so it checks a
    # view of this checkout: qnetstack/<name> links to the repository's folders.
    view = tmp_path / "view"
    (view / "qnetstack").mkdir(parents=True)
    for package in PACKAGES:
        (view / "qnetstack" / package).symlink_to(ROOT / package, target_is_directory=True)
    config = str(ROOT / "pyproject.toml")
    result = run(["mypy", "--config-file", config, "--cache-dir", str(tmp_path / "cache"), "-p", "qnetstack"], view)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout, result.stdout
