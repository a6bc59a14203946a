"""The documentation site builds with ``mkdocs build --strict``: no broken link, no
missing page, no page left out of the navigation, every API page resolves.

The build runs the site's hook (docs/hooks/generated_pages.py), so it also makes the
teleport example's sequence chart from a run; the test checks that the built
site holds that chart, the specs and the tutorial pages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # a whole site build, API pages and a traced run of the teleport example: ~20 s
def test_the_site_builds_strictly_with_the_chart_made_from_a_run(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        # Material for MkDocs prints a banner about its end of life on every build; it is not a build warning
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{log[-4000:]}"
    assert "WARNING" not in log, log[-4000:]

    chart = (site / "img" / "teleport-chain.svg").read_text(encoding="utf-8")
    assert chart.startswith("<svg") and "TeleportResult" in chart and "SwapRecord" in chart
    assert "img/teleport-chain.svg" in (site / "trace-format" / "index.html").read_text(encoding="utf-8")
    for page in ("specs/link", "tutorials/link", "tutorials/whole-network", "api/link"):
        assert (site / page / "index.html").is_file(), page
    api = (site / "api" / "link" / "index.html").read_text(encoding="utf-8")
    assert "LinkCreate" in api  # the API page was made from the module, not left empty
