"""Satellite-pass link benchmark: what following a pass in time costs the model backend.

Usage::

    python benchmarks/satellite_pass.py           # readable table
    python benchmarks/satellite_pass.py --json    # one JSON object on stdout, nothing else

The link is that of ``examples/satellite-pass.yaml`` (midpoint-source scheme,
500 km orbit, 5 s blocks). What is timed (``time.perf_counter``):

``ms_per_block`` — preparing one block of the pass (the scheme's model at the
block's transmittance, its branches and cumulative probabilities), over every
block of the pass, built once each.

``us_per_fast_forward_draw`` — one ``PassLink.draw`` of a fast-forward run
(up to 100,000 attempts, stopping at the first success), back to back from the
satellite's rise to its setting, over ``--passes`` passes with the blocks
already prepared; fastest of 5 equal groups of passes.

``us_per_attempt`` — one ``PassLink.draw`` of a single attempt (max_attempts 1),
over every attempt slot of one pass; fastest of 5 equal parts.

``example_wall_s`` — the whole example run (``assemble(...).run()``),
assembly included.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from qnetstack.physical.backends.heralding_backend import PassLink
from qnetstack.physical.engines.world import QuantumWorld
from qnetstack.physical.schemes.registry import scheme_named
from qnetstack.stack import assemble
from qnetstack.stack.scenario import load_scenario

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "satellite-pass.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
    parser.add_argument("--passes", type=int, default=50, help="passes for the fast-forward timing (default 50)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    scenario = load_scenario(EXAMPLE)
    link = scenario.links[0]
    params = link.physics()
    hardware = {n.name: n.hardware for n in scenario.nodes}
    arm = params.fibre
    pass_link = PassLink(QuantumWorld(), scheme_named("midpoint-source"), params, hardware[link.a], hardware[link.b])
    n_blocks, start, width = arm.blocks()
    end = start + n_blocks * width
    period = 2 * params.fibre.delay_ns(params.length_km / 2)

    began = time.perf_counter()
    for index in range(n_blocks):
        pass_link.block_link(index, None, None)
    ms_per_block = (time.perf_counter() - began) / n_blocks * 1e3

    rng = np.random.default_rng(args.seed)
    groups = 5
    per_group = max(1, args.passes // groups)
    ff_best = float("inf")
    draws_total = 0
    for _ in range(groups):
        draws = 0
        began = time.perf_counter()
        for _ in range(per_group):
            t = int(start)
            while t < end:
                made, _, _ = pass_link.draw(rng, t, period, 100_000, None, None)
                t += made * period
                draws += 1
        ff_best = min(ff_best, (time.perf_counter() - began) / draws * 1e6)
        draws_total += draws

    slots = list(range(int(start), int(end), period))
    part = len(slots) // groups
    one_best = float("inf")
    for g in range(groups):
        chunk = slots[g * part : (g + 1) * part]
        began = time.perf_counter()
        for t in chunk:
            pass_link.draw(rng, t, period, 1, None, None)
        one_best = min(one_best, (time.perf_counter() - began) / len(chunk) * 1e6)

    began = time.perf_counter()
    result = assemble(scenario).run()
    example_wall_s = time.perf_counter() - began

    figures = {
        "blocks": n_blocks,
        "block_width_s": width / 1e9,
        "attempt_period_ns": period,
        "ms_per_block": ms_per_block,
        "fast_forward_draws": draws_total,
        "us_per_fast_forward_draw": ff_best,
        "attempts_per_pass": len(slots),
        "us_per_attempt": one_best,
        "example_status": result.end.status,
        "example_wall_s": example_wall_s,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"examples/satellite-pass.yaml: {n_blocks} blocks of {width / 1e9:.2f} s, attempt period {period / 1e6:.3f} ms")
    print(f"  preparing a block            {ms_per_block:8.1f} ms")
    print(f"  fast-forward draw            {ff_best:8.1f} µs  ({draws_total} draws over {groups * per_group} passes)")
    print(f"  single attempt               {one_best:8.1f} µs  ({len(slots)} attempt slots per pass)")
    print(f"  the example, assembled + run {example_wall_s:8.2f} s   ({result.end.status})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
