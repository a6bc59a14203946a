"""Build-time additions to the documentation site (an MkDocs hook, named in mkdocs.yml).

Three kinds of page or image live outside ``docs/`` or are made from a run,
so they are added to the site's files when it is built:

* the normative service specs, ``specs/*.md``, as ``specs/NAME.md`` (one copy,
  the one the conformance suites read, so the site cannot drift from it);
* each tutorial, a jupytext percent-format script ``docs/tutorials/NAME.py``,
  as the page ``tutorials/NAME.md``: its markdown cells as prose, its code
  cells as Python blocks (the script itself is published beside the page to
  download and run);
* (for the API pages) a tree ``build/api-src/qnetstack/`` of links to the
  layer folders, named as the installed package names them, from which
  mkdocstrings reads the docstrings;
* the sequence chart of the teleport example, ``img/teleport-chain.svg``,
  drawn from a traced run of ``examples/teleport-chain.yaml`` made during the
  build: the picture in the docs is always one the current code makes.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
# The API pages are read from the source: a tree in which each layer folder is
# where the installed package puts it (qnetstack/link is link/, and so on),
# since the repository keeps the folders at its top (pyproject.toml, package-dir).
API_SOURCE = ROOT / "build" / "api-src"
PACKAGE_FOLDERS = ("entity", "physical", "link", "network", "application", "stack")
TUTORIALS = ROOT / "docs" / "tutorials"
TELEPORT_SCENARIO = ROOT / "examples" / "teleport-chain.yaml"
CHART_URI = "img/teleport-chain.svg"

log = logging.getLogger("mkdocs.hooks.generated_pages")


def lay_out_api_source() -> None:
    """Make (or refresh) ``build/api-src/qnetstack/<layer>``, a link to each layer folder."""
    package = API_SOURCE / "qnetstack"
    package.mkdir(parents=True, exist_ok=True)
    for folder in PACKAGE_FOLDERS:
        link = package / folder
        if not link.is_symlink() or link.resolve() != (ROOT / folder).resolve():
            link.unlink(missing_ok=True)
            link.symlink_to(ROOT / folder, target_is_directory=True)


# At import, not in on_config: MkDocs imports its hooks while it reads mkdocs.yml, and
# mkdocstrings keeps only the search paths that exist when its own on_config runs, which
# is before any hook's.
lay_out_api_source()


def on_files(files: Files, config: Any) -> Files:
    for spec in sorted((ROOT / "specs").glob("*.md")):
        files.append(File.generated(config, f"specs/{spec.name}", content=spec.read_text(encoding="utf-8")))
    for script in sorted(TUTORIALS.glob("*.py")):
        files.append(File.generated(config, f"tutorials/{script.stem}.md", content=tutorial_page(script)))
    files.append(File.generated(config, CHART_URI, content=teleport_chart()))
    return files


def tutorial_page(script: Path) -> str:
    """The markdown page of a jupytext percent-format script: markdown cells as they are,
    code cells fenced as Python, and a link to the script to download."""
    import jupytext

    notebook = jupytext.read(script, fmt="py:percent")
    parts = []
    for cell in notebook.cells:
        source = cell.source.strip("\n")
        if not source:
            continue
        if cell.cell_type == "markdown":
            parts.append(source)
        else:
            parts.append(f"```python\n{source}\n```")
    parts.append(
        f"*This page is the script [`{script.name}`]({script.name}), run as a test of the package: download it and run `python {script.name}`.*"
    )
    return "\n\n".join(parts) + "\n"


def teleport_chart() -> str:
    """The SVG sequence chart of the teleport example's first teleported qubit, from a run made now.

    The window ends when bob's application hands its user the first
    ``TeleportResult``: every layer's part in one teleport, on one picture."""
    from qnetstack.stack import assemble, load_scenario
    from qnetstack.stack.chart import build_chart, render_svg
    from qnetstack.stack.runner import run_traced
    from qnetstack.stack.trace import read_trace

    scenario = load_scenario(TELEPORT_SCENARIO).model_copy(update={"keep_trace": True})
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "teleport.jsonl"
        result = run_traced(assemble(scenario), trace)
        if result.status != "done":
            raise RuntimeError(f"{TELEPORT_SCENARIO.name}: the run for the docs' chart ended {result.status_line()}")
        header, records, _ = read_trace(trace)
    first = first_teleport_delivery(records)
    chart = build_chart(header, records, to_ns=first)
    log.info("teleport chart: %d lanes, %d messages, up to t = %d ns", len(chart.lanes), len(chart.arrows), first)
    return render_svg(chart)


def first_teleport_delivery(records: list[dict[str, Any]]) -> int:
    """When an application first hands a user a ``TeleportResult`` (the receiving end of a teleport)."""
    for record in records:
        if record.get("type") == "service" and record.get("kind") == "TeleportResult" and record.get("to_layer") == "user":
            return int(record["t_ns"])
    raise RuntimeError("the teleport example's trace has no TeleportResult for a user")
