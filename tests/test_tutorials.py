"""Every tutorial of the documentation runs, and its own checks pass.

The tutorials (docs/tutorials/*.py) are jupytext percent-format scripts whose
last cell asserts what the tutorial shows. Each is run here as a script, in a
fresh Python process started in an empty temporary folder (so it relies on
nothing but the installed package), and must exit 0. A tutorial that takes
more than about five seconds is marked slow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "docs" / "tutorials"
# the tutorials that take longer than about 5 s on a busy 2-core machine
SLOW = {"application", "whole-network"}


def _params() -> list[object]:
    return [
        pytest.param(path, id=path.stem, marks=[pytest.mark.slow] if path.stem in SLOW else []) for path in sorted(TUTORIALS.glob("*.py"))
    ]


def test_every_layer_and_a_whole_network_has_a_tutorial():
    assert {p.stem for p in TUTORIALS.glob("*.py")} >= {"physical", "link", "network", "application", "whole-network"}


def test_every_tutorial_ends_with_a_check():
    for path in TUTORIALS.glob("*.py"):
        last_cell = path.read_text(encoding="utf-8").rsplit("# %%", 1)[-1]
        assert "assert " in last_cell, f"{path.name}: the last cell checks nothing"


@pytest.mark.parametrize("path", _params())
def test_the_tutorial_runs_and_its_checks_pass(path, tmp_path):
    done = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_environment(tmp_path)
    )
    assert done.returncode == 0, (
        f"{path.name} exited {done.returncode}\n--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
    )


def _environment(tmp_path: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"  # no display
    env["MPLCONFIGDIR"] = str(tmp_path / "mpl")
    env["TMPDIR"] = str(tmp_path)  # what a tutorial writes (traces, charts) lands in the test's folder
    env.pop("PYTHONPATH", None)  # the installed package only
    return env
