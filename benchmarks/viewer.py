"""Viewer benchmark: frames per second while the trace viewer plays a 100,000-record trace.

Usage::

    python benchmarks/viewer.py --records 100000 --seconds 5 [--speeds 30,1000] [--json]

What runs: the teleport example (``examples/teleport-chain.yaml``) is run once with
its trace streamed to a temporary file; its records are repeated, each copy
shifted in time to follow the one before, until there are ``--records`` of
them (the trace of a run that teleports many more qubits looks the same: the
same messages, again and again). ``qnetstack view``'s page of that trace is
opened in the OS's headless Chromium (``/usr/bin/chromium``, driven by
Playwright) and played, for ``--seconds`` at each speed of ``--speeds``
(records per second; at 1000 the chart scrolls a new screenful about every
0.05 s). The page counts its animation frames while playing
(``requestAnimationFrame`` callbacks, each of which draws the rows in view)
and the time each draw takes. Printed: the page's size, the seconds to write
it (read the trace + render the page) and to load it in the browser (until
the page's code has run), and per speed the frames per second
(frames / wall seconds, the target being at least 30) with the median and
95th percentile of the draw time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from qnetstack.stack import assemble, load_scenario
from qnetstack.stack.runner import run_traced
from qnetstack.stack.trace import TraceWriter, read_trace
from qnetstack.stack.viewer import render_viewer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "teleport-chain.yaml"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def make_trace(folder: Path, records: int) -> Path:
    """The teleport example's trace, its records repeated (shifted in time) up to ``records``."""
    scenario = load_scenario(EXAMPLE).model_copy(update={"keep_trace": True})
    one = folder / "one.jsonl"
    run_traced(assemble(scenario), one)
    header, body, end = read_trace(one)
    span = end["t_ns"] + 1
    out = folder / "trace.jsonl"
    writer = TraceWriter(out, header["scenario"], header["seed"], nodes=header["nodes"], links=header.get("links"))
    copy = 0
    while writer.records < records:
        shift = copy * span
        for record in body[: records - writer.records]:
            moved = dict(record, t_ns=record["t_ns"] + shift)
            if "delivery_ns" in moved:
                moved["delivery_ns"] += shift
            writer(moved)
        copy += 1
    writer.finish(copy * span, end["status"], end["reason"], f"{copy} copies of the example's run")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to play at each speed")
    parser.add_argument("--speeds", default="30,1000", help="records per second, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    figures: dict[str, object] = {"records": args.records}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        trace = make_trace(folder, args.records)
        t0 = time.perf_counter()
        page_text = render_viewer(*read_trace(trace))
        page_path = folder / "viewer.html"
        page_path.write_text(page_text, encoding="utf-8")
        figures["write_s"] = round(time.perf_counter() - t0, 3)
        figures["page_mb"] = round(len(page_text.encode()) / 1e6, 1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            t0 = time.perf_counter()
            tab.goto(page_path.as_uri(), timeout=120_000)
            tab.wait_for_function("() => window.qnetViewer !== undefined", timeout=120_000)
            figures["load_s"] = round(time.perf_counter() - t0, 3)
            if tab.evaluate("window.qnetViewer.rows") != args.records:
                raise SystemExit("the page does not show every record")
            for speed in [int(s) for s in args.speeds.split(",")]:
                tab.evaluate("window.qnetViewer.pause(); window.qnetViewer.moveTo(0)")
                tab.select_option("#speed", str(speed))
                frames0 = tab.evaluate("window.qnetViewer.frames")
                cursor0 = tab.evaluate("window.qnetViewer.cursor")
                t0 = time.perf_counter()
                tab.evaluate("window.qnetViewer.play()")
                tab.wait_for_timeout(args.seconds * 1000)
                frames = tab.evaluate("window.qnetViewer.frames") - frames0
                cursor = tab.evaluate("window.qnetViewer.cursor")
                wall = time.perf_counter() - t0
                tab.evaluate("window.qnetViewer.pause()")
                draws = sorted(tab.evaluate("window.qnetViewer.drawMs()")[-max(frames, 1) :])
                figures[f"fps_at_{speed}_per_s"] = round(frames / wall, 1)
                figures[f"records_played_at_{speed}_per_s"] = cursor - cursor0
                figures[f"draw_ms_median_at_{speed}_per_s"] = round(statistics.median(draws), 2)
                figures[f"draw_ms_p95_at_{speed}_per_s"] = round(draws[int(0.95 * (len(draws) - 1))], 2)
            browser.close()
        if errors:
            raise SystemExit(f"the page reported errors: {errors[:3]}")
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>30}: {value}")


if __name__ == "__main__":
    main()
