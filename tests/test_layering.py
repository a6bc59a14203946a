"""The layering rules hold, and the contracts that check them can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="install the test extra: pip install '.[test]'")

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["entity", "physical", "link", "network", "application", "stack"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the layer folders under ``root`` (``root/<layer>``), seen as
    the ``qnetstack.<layer>`` packages they install as."""
    if root == ROOT:  # lint a copy, so that what is linted is this checkout and not an installed qnetstack
        root = Path(tempfile.mkdtemp())
        for package in PACKAGES:
            shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    namespace = root / "_ns"
    (namespace / "qnetstack").mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        link = namespace / "qnetstack" / package
        if not link.exists():
            link.symlink_to(root / package, target_is_directory=True)
    env = dict(os.environ, PYTHONPATH=str(namespace))
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))"
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)


def test_import_contracts_are_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, bad_import, contract",
    [
        ("application/apps.py", "import qnetstack.link.egp", "Only link.service is public"),
        ("network/swap_asap.py", "import qnetstack.physical.engines.world", "Only physical.service"),
        ("link/egp.py", "import qnetstack.network.service", "Layers"),
        ("physical/service.py", "import qnetstack.stack.runtime", "Layers"),
        ("physical/components/memories.py", "import qnetstack.physical.engines.world", "Physical tiers"),
        ("physical/components/presets.py", "import qnetstack.physical.schemes.model", "Physical tiers"),
        ("physical/schemes/registry.py", "import qnetstack.physical.backends.device", "Physical tiers"),
        ("physical/engines/bell_diagonal.py", "import qnetstack.physical.backends.qutip_backend", "Physical tiers"),
        ("physical/engines/world.py", "import qnetstack.physical.schemes.single_click", "Physical tiers"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, bad_import, contract):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{bad_import}  # deliberately breaks the layering\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    assert any(contract in line for line in broken), result.stdout
