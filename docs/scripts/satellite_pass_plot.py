"""The figure of docs/physical.md, "Channels in a scenario": a satellite pass's success probability in time.

Takes the link of examples/satellite-pass.yaml and plots, against simulated
time, the midpoint-source scheme's success probability per attempt along the
pass's continuous loss curve, the block-constant probability the model backend
samples from, and the success fraction measured by the backend's fast-forward
sampler over many passes (attempt slots back to back, binned in 10 s). Prints
the figures behind it, and the largest error of holding p constant over a
block (at the block edges, where it is largest for a monotone curve) for
``step_s`` of 1 s and of the example's 5 s:

    pip install -e '.[plots]'
    python docs/scripts/satellite_pass_plot.py        # docs/img/satellite-pass.png, about a minute on one core
    python docs/scripts/satellite_pass_plot.py --out DIR --passes 500
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from qnetstack.physical.backends.heralding_backend import PassLink
from qnetstack.physical.components.channels import equivalent_fibre
from qnetstack.physical.engines.world import QuantumWorld
from qnetstack.physical.schemes.registry import scheme_named
from qnetstack.stack.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "satellite-pass.yaml"
BIN_S = 10.0


def link_with_step(step_s: float):
    data = load_scenario(EXAMPLE).model_dump(exclude_unset=True)
    data["links"][0]["channel"]["step_s"] = step_s
    scenario = parse_scenario(data)
    return scenario, scenario.links[0].physics()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--passes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    scenario, params = link_with_step(5.0)
    arm = params.fibre
    nodes = {n.name: n.hardware for n in scenario.nodes}
    hw_a, hw_b = nodes[scenario.links[0].a], nodes[scenario.links[0].b]
    entry = scheme_named("midpoint-source")

    def p_at(t_ns: float) -> float:
        t = arm.transmittance_at(t_ns)
        if not t > 0:
            return 0.0
        fibre = equivalent_fibre(t, arm.arm_km, 1.0)
        return entry.model(params.replace(fibre=fibre), hw_a, hw_b, None, None).success_probability()

    # block-constant error at the block edges, for two block widths
    for step_s in (1.0, 5.0):
        _, stepped = link_with_step(step_s)
        stepped_arm = stepped.fibre
        blocks = PassLink(QuantumWorld(), entry, stepped, hw_a, hw_b)
        n, start, width = stepped_arm.blocks()
        worst = 0.0
        for b in range(n):
            p_block = blocks.block_link(b, None, None).p
            for edge in (start + b * width + 1.0, start + (b + 1) * width - 1.0):
                worst = max(worst, abs(p_at(edge) - p_block) / p_block)
        print(f"step_s = {step_s:g}: {n} blocks of {width / 1e9:.3f} s, largest |p(t) - p_block| / p_block = {worst:.4f}")

    # sampled success fraction, binned in time
    pass_link = PassLink(QuantumWorld(), entry, params, hw_a, hw_b)
    period = 2 * params.fibre.delay_ns(params.length_km / 2)
    n, start, width = arm.blocks()
    end = start + n * width
    edges = np.arange(start, end + 1, BIN_S * 1e9)
    attempts = np.zeros(len(edges) - 1)
    successes = np.zeros(len(edges) - 1)
    slots = np.arange(int(start), end, period)
    attempts += np.histogram(slots, bins=edges)[0] * args.passes
    rng = np.random.default_rng(args.seed)
    for _ in range(args.passes):
        t = int(start)
        while t < end:
            made, branch, _ = pass_link.draw(rng, t, period, 100_000, None, None)
            if branch is not None:
                k = np.searchsorted(edges, t + (made - 1) * period, side="right") - 1
                if 0 <= k < len(successes):
                    successes[k] += 1
            t += made * period
    # expected successes per bin from the block-constant p the sampler uses, for a χ² check
    slot_p = [0.0 if arm.block_of(t) is None else pass_link.block_link(arm.block_of(t), None, None).p for t in slots]
    expected = np.histogram(slots, bins=edges, weights=slot_p)[0] * args.passes
    chi2 = float(np.sum((successes - expected) ** 2 / expected))
    fraction = successes / attempts
    se = np.sqrt(fraction * (1 - fraction) / attempts)
    centres = (edges[:-1] + edges[1:]) / 2

    zenith = arm.zenith_at_ns
    curve_t = np.linspace(start + 1, end - 1, 121)
    curve_p = [p_at(t) for t in curve_t]
    block_t = [start + (b + 0.5) * width for b in range(n)]
    block_p = [pass_link.block_link(b, None, None).p for b in range(n)]
    print(
        f"pass from {start / 1e9:.1f} s to {end / 1e9:.1f} s, closest approach at {zenith / 1e9:.1f} s, attempt period {period / 1e6:.3f} ms"
    )
    print(
        f"p at closest approach {p_at(zenith):.3e}, at the edge {p_at(start + 1):.3e}; {args.passes} passes, {int(successes.sum())} successes"
    )
    print(f"chi-square of the binned successes against the block probabilities: {chi2:.1f} for {len(successes)} bins")
    for c, f, s, t in zip(centres, fraction, se, [p_at(c) for c in centres]):
        print(f"  t = {c / 1e9:6.1f} s  measured {f:.3e} ± {s:.1e}  curve {t:.3e}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot((curve_t - zenith) / 1e9, curve_p, label="scheme p along the loss curve")
    ax.step((np.array(block_t) - zenith) / 1e9, block_p, where="mid", lw=0.8, label=f"block-constant p ({width / 1e9:.2f} s blocks)")
    ax.errorbar((centres - zenith) / 1e9, fraction, yerr=se, fmt="o", ms=3, label=f"measured, {args.passes} passes, ±1 SE")
    ax.set_xlabel("time from closest approach (s)")
    ax.set_ylabel("success probability per attempt")
    ax.set_title("examples/satellite-pass.yaml: midpoint source on a 500 km orbit")
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "satellite-pass.png", dpi=110)
    print(f"wrote {args.out}/satellite-pass.png")


if __name__ == "__main__":
    main()
