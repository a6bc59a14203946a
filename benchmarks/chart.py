"""Chart benchmark: reading a 10,000-record trace and drawing its sequence chart.

Usage::

    python benchmarks/chart.py --records 10000 --rounds 5 [--json]

What runs: the teleport example (``examples/teleport-chain.yaml``: alice
teleports to bob through a repeater, 2 x 10 km) is run once with its trace
streamed to a temporary file, as ``qnetstack run --trace`` does; the first
``--records`` records (and the header and end records) are kept as the trace
to chart. Each round then times, in this process:

* ``read``: :func:`qnetstack.stack.trace.read_trace` (parse and check every line);
* ``layout``: :func:`qnetstack.stack.chart.build_chart` (lanes, time axis, arrows);
* ``svg`` and ``html``: :func:`~qnetstack.stack.chart.render_svg` /
  :func:`~qnetstack.stack.chart.render_html`;

and ``total`` = read + layout + svg, what ``qnetstack chart TRACE -o run.svg``
spends after its imports. Printed: the median of each over the rounds (seconds),
the records, lanes, arrows and the SVG's size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from qnetstack.stack import assemble, load_scenario
from qnetstack.stack.chart import build_chart, render_html, render_svg
from qnetstack.stack.runner import run_traced
from qnetstack.stack.trace import read_trace

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "teleport-chain.yaml"


def make_trace(folder: Path, records: int) -> Path:
    """The teleport example's trace, cut to its first ``records`` records (header and end kept)."""
    scenario = load_scenario(EXAMPLE).model_copy(update={"keep_trace": True})
    full = folder / "full.jsonl"
    run_traced(assemble(scenario), full)
    lines = full.read_text().splitlines()
    if len(lines) - 2 < records:
        raise SystemExit(f"the example's trace has {len(lines) - 2} records, fewer than --records {records}")
    cut = folder / "trace.jsonl"
    cut.write_text("\n".join([*lines[: records + 1], lines[-1]]) + "\n")
    return cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        trace = make_trace(Path(folder), args.records)
        times: dict[str, list[float]] = {"read": [], "layout": [], "svg": [], "html": [], "total": []}
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            header, records, _ = read_trace(trace)
            t1 = time.perf_counter()
            chart = build_chart(header, records)
            t2 = time.perf_counter()
            svg = render_svg(chart)
            t3 = time.perf_counter()
            render_html(chart)
            t4 = time.perf_counter()
            for name, spent in (("read", t1 - t0), ("layout", t2 - t1), ("svg", t3 - t2), ("html", t4 - t3), ("total", t3 - t0)):
                times[name].append(spent)
    figures = {
        "records": len(records),
        "lanes": len(chart.lanes),
        "arrows": len(chart.arrows),
        "svg_bytes": len(svg.encode()),
        "rounds": args.rounds,
        **{f"{name}_s": round(statistics.median(spent), 4) for name, spent in times.items()},
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>10}: {value}")


if __name__ == "__main__":
    main()
