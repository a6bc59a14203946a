"""Sweep benchmark: the same sweep serially and on local worker processes.

Usage::

    python benchmarks/sweep.py --points 200 --pairs 100 --workers 2 --repeat 3 [--json]

What runs: ``--points`` lengths of one single-click link, evenly spaced from 1
to 100 km, one seed each, over the whole stack (``examples/sweeps/single-link.yaml``:
model heralding, the fast-forward link layer, swap-asap, a pairs request of
``--pairs`` pairs), with :func:`qnetstack.stack.sweep.run_sweep`: once in this
process (``workers=1``) and once on ``--workers`` local processes (the pool's
start-up included: that is what a user waits for). The two are run alternately,
``--repeat`` times each, and the medians reported, since timings on a shared
machine drift. The rows of the two must be identical (checked).

Reported: ``serial_s`` and ``parallel_s`` (median wall-clock seconds,
``time.perf_counter`` around ``run_sweep``), every repeat's figures, the
speed-up ``serial_s / parallel_s`` and ``parallel_over_ideal``:
``parallel_s / (serial_s / workers)``, which the target asks to be below 2,
and the machine's load average (``os.getloadavg``, 1 minute) before and after:
with other work on the cores, the workers cannot all run, and the figures
say so.

Because wall-clock time on a busy machine says little about what the workers
cost, the CPU time of each leg is reported too (``serial_cpu_s``,
``parallel_cpu_s``, medians): this process's own (``time.process_time``) plus,
for the workers, what the fork server that starts them has collected from
them when they ended (its children's user and system time, fields 16 and 17
of ``/proc/PID/stat``; Linux only, else null) and its own time (it imports
the stack once). ``cpu_overhead`` is ``parallel_cpu_s / serial_cpu_s``: what
running on workers costs beyond the runs themselves. On free cores the
parallel leg can take no less than ``parallel_cpu_s / workers``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import pandas as pd

from qnetstack.stack.sweep import parse_sweep, run_sweep

BASE = Path(__file__).resolve().parent.parent / "examples" / "sweeps" / "single-link.yaml"


def fork_server_cpu_s() -> float | None:
    """CPU seconds of the fork server and of the workers it has reaped, or None (none yet, or no /proc)."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])  # fields 14-17 of the file
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lengths = [round(1 + 99 * i / max(args.points - 1, 1), 3) for i in range(args.points)]
    sweep = parse_sweep(
        {
            "scenario": str(BASE),
            "seeds": [1],
            "points": [{"links.0.length_km": km, "applications.0.request.number": args.pairs} for km in lengths],
        }
    )
    load_before = os.getloadavg()[0]
    serial, parallel = [], []
    serial_cpu: list[float] = []
    parallel_cpu: list[float] = []
    reference = None
    for _ in range(args.repeat):
        for times, cpu, workers in ((serial, serial_cpu, 1), (parallel, parallel_cpu, args.workers)):
            server_before = fork_server_cpu_s() or 0.0
            cpu_before = time.process_time()
            start = time.perf_counter()
            frame = run_sweep(sweep, workers=workers)
            times.append(time.perf_counter() - start)
            server_after = fork_server_cpu_s()
            cpu.append(time.process_time() - cpu_before + ((server_after - server_before) if server_after is not None else 0.0))
            if reference is None:
                reference = frame
            else:
                pd.testing.assert_frame_equal(frame, reference)
    serial_s, parallel_s = statistics.median(serial), statistics.median(parallel)
    figures = {
        "points": args.points,
        "pairs_per_run": args.pairs,
        "workers": args.workers,
        "repeat": args.repeat,
        "serial_s": round(serial_s, 3),
        "parallel_s": round(parallel_s, 3),
        "serial_runs_s": [round(t, 3) for t in serial],
        "parallel_runs_s": [round(t, 3) for t in parallel],
        "speedup": round(serial_s / parallel_s, 3),
        "serial_cpu_s": round(statistics.median(serial_cpu), 3),
        "parallel_cpu_s": round(statistics.median(parallel_cpu), 3) if fork_server_cpu_s() is not None else None,
        "cpu_overhead": round(statistics.median(parallel_cpu) / statistics.median(serial_cpu), 3)
        if fork_server_cpu_s() is not None
        else None,
        "parallel_over_ideal": round(parallel_s / (serial_s / args.workers), 3),
        "target_parallel_over_ideal": 2.0,
        "cores": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.points} runs of {args.pairs} pairs; medians of {args.repeat} alternating repeats")
    print(f"  serial (1 process)      {serial_s:8.2f} s   {serial_s / args.points * 1e3:7.1f} ms per run")
    print(f"  {args.workers} local workers         {parallel_s:8.2f} s   speed-up {figures['speedup']:.2f}")
    print(f"  parallel / (serial / {args.workers})  {figures['parallel_over_ideal']:.2f}   (target < 2)")
    if figures["parallel_cpu_s"] is not None:
        print(
            f"  CPU time: serial {figures['serial_cpu_s']:.2f} s, on workers {figures['parallel_cpu_s']:.2f} s "
            f"(x{figures['cpu_overhead']:.2f}); on {args.workers} free cores at least {figures['parallel_cpu_s'] / args.workers:.2f} s"
        )
    print(f"  load average {figures['load_average_before']} before, {figures['load_average_after']} after, on {figures['cores']} cores")


if __name__ == "__main__":
    main()
