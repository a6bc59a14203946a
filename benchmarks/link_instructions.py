"""Instructions per pair of ``benchmarks/link.py``, counted by valgrind's callgrind.

Usage::

    python benchmarks/link_instructions.py --km 5 --scheme single-click --mode fast-forward \\
        --seed 4 --client stack [--sizes 100 300] [--checkout DIR] [--python PY] [--json]

Wall time on a shared machine swings by tens of percent from one run to the
next; the number of instructions a run executes does not (it moves by well
under 1 % between identical runs). This script runs itself under
``valgrind --tool=callgrind`` with collection switched off, runs
``benchmarks/link.py``'s ``run()`` once with 20 pairs to warm up (imports,
caches), then with ``--sizes`` pairs each, switching collection on around
each ``run()`` only (callgrind's client requests, through a three-line C shim
compiled on the fly, so a C compiler and valgrind's headers are needed).
Instructions per pair are the difference of the two counts over the
difference of the pair counts: the set-up of a run cancels out.

``--checkout DIR`` measures another checkout's ``benchmarks/link.py`` (e.g. an
older commit, to compare; ``--python`` the interpreter its packages are
installed for). The other options are ``benchmarks/link.py``'s.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SHIM = """#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void cg_on(void) { CALLGRIND_ZERO_STATS; CALLGRIND_TOGGLE_COLLECT; }
void cg_off(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS; }
"""


def _measured(checkout: Path, shim: str, sizes: list[int], options: dict) -> None:
    """Inside valgrind: warm up, then one collected run() per size (one dump each)."""
    spec = importlib.util.spec_from_file_location("link_benchmark", checkout / "benchmarks" / "link.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    client, mode = options.pop("client"), options["mode"]
    bench.run(bench.build_scenario(pairs=20, **options), mode, 1, client)
    callgrind = ctypes.CDLL(shim)
    callgrind.cg_start()
    for pairs in sizes:
        scenario = bench.build_scenario(pairs=pairs, **options)
        callgrind.cg_on()
        bench.run(scenario, mode, 1, client)
        callgrind.cg_off()


def _total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no total in {dump}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--km", type=float, default=5.0)
    parser.add_argument("--scheme", default="single-click")
    parser.add_argument("--mode", default="fast-forward")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--client", default="stack")
    parser.add_argument("--sizes", type=int, nargs=2, default=[100, 300], metavar=("SMALL", "LARGE"))
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run the checkout with")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--inside", default=None, help=argparse.SUPPRESS)  # the shim: we are the measured process
    args = parser.parse_args(argv)
    options = {"km": args.km, "scheme": args.scheme, "mode": args.mode, "seed": args.seed, "client": args.client}
    small, large = args.sizes
    if not 0 < small < large:
        parser.error("--sizes: two pair counts, the first smaller")
    if args.inside:
        _measured(args.checkout.resolve(), args.inside, [small, large], options)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "shim.c").write_text(SHIM)
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(work / "shim.so"), str(work / "shim.c")], check=True)
        out = work / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--collect-atstart=no",
            f"--callgrind-out-file={out}",
            args.python,
            "-W",
            "ignore",
            str(Path(__file__).resolve()),
            *(a for a in (argv if argv is not None else sys.argv[1:]) if a != "--json"),
            "--inside",
            str(work / "shim.so"),
        ]
        # a fixed hash seed: the same dictionary layouts in every run
        subprocess.run(command, check=True, capture_output=True, env=dict(os.environ, PYTHONHASHSEED="0"))
        counts = [_total(work / f"callgrind.out.{part}") for part in (1, 2)]
    result = {
        **options,
        "sizes": [small, large],
        "instructions": counts,
        "instructions_per_pair": (counts[1] - counts[0]) / (large - small),
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"{result['instructions_per_pair']:,.0f} instructions per pair ({counts[0]:,} for {small} pairs, {counts[1]:,} for {large})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
