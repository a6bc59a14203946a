"""BBM92 over a two-link repeater chain against the repeaterless PLOB bound: figures for docs/qkd-networks.md.

    pip install -e '.[plots]'
    python docs/scripts/key_network_plots.py [--pairs 1000] [--seed 1] [--out docs/img/key-network-rate.png]

Hardware: the ``trapped-ion-2023`` platform preset (memory T2 = 50 s, photon
efficiency 0.025 with conversion to 1550 nm, 0.18 dB/km fibre, detectors of
efficiency 0.93; references in ``qnetstack.physical.components.presets``) at
all three nodes A – R – B, links of L/2 each. The links are single-click
(Humphreys et al., Nature 558, 268, 2018): the preset's own scheme,
Barrett–Kok, needs two photons per herald, so its rate falls with η_link
rather than √η_link and is far below (its closed form is drawn too). The
bright-state population α is chosen per distance to maximise the closed-form
rate (grid 0.005 .. 0.1).

For each distance the script prints and plots, in secret bits per channel use
(one attempt slot of both links; application.qkd.chain_rate):

* the PLOB bound −log2(1 − η) of the direct link of length L (fibre only);
* the closed form with the preset's T2 and with memories that do not decohere;
* the rate measured through the whole stack (BBM92 on ``--pairs`` pairs,
  seeded): the sifted fraction times 1 − h(Q_Z) − h(Q_X) of the measured QBERs,
  over the measured slots per pair, with a delta-method standard error
  (``chain_rate.measured_chain_rate``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from qnetstack.application import qkd_apps
from qnetstack.application.qkd.chain_rate import measured_chain_rate, to_phi_plus, two_link_chain_rate
from qnetstack.application.qkd.key_length import plob_bound
from qnetstack.physical.backends.midpoint import attempt_period_ns
from qnetstack.physical.components.presets import preset
from qnetstack.physical.schemes.registry import scheme_named
from qnetstack.stack import assemble
from qnetstack.stack.scenario import parse_scenario

PRESET = "trapped-ion-2023"
ALPHAS = np.round(np.arange(0.005, 0.1001, 0.005), 3)
SIMULATED_KM = (50, 100, 150, 200, 250)
CURVE_KM = np.linspace(10, 400, 79)
# Memories ten times longer-lived than the preset's (T2 = 500 s instead of 50 s): where the chain beats the bound
LONGER_T2_NS = 500 * 10**9
LONGER_T2_KM = 350


def chain_scenario(total_km: float, alpha: float, pairs: int, seed: int, scheme: str = "single-click", t2_ns: int | None = None) -> Any:
    """A – R – B with the preset's hardware (its T2 replaced by ``t2_ns`` if given), links of total_km/2,
    a BBM92 request from A to B."""
    ion = preset(PRESET)
    hardware = ion.node_hardware().model_dump()
    if t2_ns is not None:
        hardware["memory"]["t2_ns"] = t2_ns
    link = {
        "length_km": total_km / 2,
        "scheme": scheme,
        "fibre": ion.fibre_params().model_dump(),
        "detector": ion.detector_params().model_dump(),
        **({"bright_state_population": alpha} if scheme == "single-click" else {}),
    }
    return parse_scenario(
        {
            "seed": seed,
            "nodes": [{"name": n, "hardware": hardware} for n in ("a", "r", "b")],
            "links": [{"a": "a", "b": "r", **link}, {"a": "r", "b": "b", **link}],
            "implementations": {"physical": "model-heralding", "link": "fast-forward-egp"},
            "applications": [{"node": "a", "request": {"kind": "qkd", "remote_node": "b", "pairs": pairs, "epsilon": 0.1}}],
            "stop": {"max_events": None},
        }
    )


def link_model(sc: Any, alpha: float) -> tuple[float, np.ndarray, int, int | None]:
    """(p per attempt, the heralded state in the Φ+ frame, the slot in ns, T2 in ns) of the scenario's first link."""
    link = sc.links[0]
    nodes = {n.name: n for n in sc.nodes}
    params = link.physics()
    entry = scheme_named(link.scheme)
    chosen = alpha if link.scheme == "single-click" else entry.link_alpha(params)
    model = entry.model(params, nodes["a"].hardware, nodes["r"].hardware, chosen, chosen)
    p = model.success_probability()
    rho = sum(b.probability * to_phi_plus(b.state, b.bell_state) for b in model.branches()) / p
    return p, rho, attempt_period_ns(params), nodes["a"].hardware.memory.t2_ns


def closed_form(total_km: float, alpha: float, ideal_memory: bool = False, scheme: str = "single-click", t2_ns: int | None = None) -> Any:
    sc = chain_scenario(total_km, alpha, 100, 1, scheme, t2_ns)
    p, rho, slot, t2 = link_model(sc, alpha)
    return two_link_chain_rate(p, rho, slot, None if ideal_memory else t2)


def best_alpha(total_km: float, ideal_memory: bool = False, t2_ns: int | None = None) -> float:
    rates = [closed_form(total_km, a, ideal_memory, t2_ns=t2_ns).rate_per_slot for a in ALPHAS]
    return float(ALPHAS[int(np.argmax(rates))])


def direct_eta(total_km: float) -> float:
    return 10 ** (-preset(PRESET).fibre_params().db_per_km * total_km / 10)


def simulate(total_km: float, alpha: float, pairs: int, seed: int, t2_ns: int | None = None) -> dict[str, Any]:
    """Run BBM92 through the stack; the measured rate per slot and its standard error."""
    sc = chain_scenario(total_km, alpha, pairs, seed, t2_ns=t2_ns)
    p, _, slot, _ = link_model(sc, alpha)
    records: list[tuple[np.ndarray, ...]] = []
    original = qkd_apps.post_process

    def recording(protocol: str, head_bases: Any, head_bits: Any, tail_bases: Any, tail_bits: Any, *rest: Any) -> Any:
        records.append((head_bases.copy(), head_bits.copy(), tail_bases.copy(), tail_bits.copy()))
        return original(protocol, head_bases, head_bits, tail_bases, tail_bits, *rest)

    qkd_apps.post_process = recording  # type: ignore[assignment]
    try:
        simulation = assemble(sc)
        delivered: list[int] = []
        simulation.network.delivery_callbacks.append(lambda t, node, msg: delivered.append(t) if node == "a" else None)
        started = time.perf_counter()
        simulation.run()
        wall = time.perf_counter() - started
    finally:
        qkd_apps.post_process = original  # type: ignore[assignment]
    waits = np.diff(np.concatenate([[0], delivered])) / slot
    measured = measured_chain_rate(*records[0], waits)
    return {**vars(measured), "slot_ns": slot, "p": p, "wall_s": wall, "alpha": alpha, "km": total_km}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--longer-t2-pairs", type=int, default=4000, help="pairs of the run with T2 = 500 s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "img" / "key-network-rate.png"))
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()

    print(f"preset {PRESET}; BBM92 over a - r - b, single-click links of L/2; {args.pairs} pairs per run, seed {args.seed}")
    header = f"{'L km':>6} {'alpha':>6} {'PLOB':>10} {'closed form':>12} {'ideal mem.':>11} {'simulated':>11} {'± s.e.':>9} {'sim/PLOB':>9} {'Q_Z':>7} {'(c.f.)':>7} {'Q_X':>7} {'(c.f.)':>7} {'bits/s':>8} {'wall s':>7}"
    print(header)
    points = []
    for index, km in enumerate(SIMULATED_KM):
        alpha = best_alpha(km)
        cf = closed_form(km, alpha)
        ideal = closed_form(km, best_alpha(km, ideal_memory=True), ideal_memory=True)
        sim = simulate(km, alpha, args.pairs, args.seed + index)  # a seed per distance: independent points
        bound = plob_bound(direct_eta(km))
        points.append((km, sim))
        per_s = sim["rate_per_slot"] / (sim["slot_ns"] * 1e-9)
        print(
            f"{km:>6.0f} {alpha:>6.3f} {bound:>10.3e} {cf.rate_per_slot:>12.3e} {ideal.rate_per_slot:>11.3e} {sim['rate_per_slot']:>11.3e} "
            f"{sim['rate_se']:>9.1e} {sim['rate_per_slot'] / bound:>9.3f} {sim['q_z']:>7.4f} {cf.q_z:>7.4f} {sim['q_x']:>7.4f} {cf.q_x:>7.4f} {per_s:>8.3f} {sim['wall_s']:>7.1f}"
        )
    alpha = best_alpha(LONGER_T2_KM, t2_ns=LONGER_T2_NS)
    cf = closed_form(LONGER_T2_KM, alpha, t2_ns=LONGER_T2_NS)
    longer = simulate(LONGER_T2_KM, alpha, args.longer_t2_pairs, args.seed + len(SIMULATED_KM), t2_ns=LONGER_T2_NS)
    bound = plob_bound(direct_eta(LONGER_T2_KM))
    print(
        f"T2 = {LONGER_T2_NS / 1e9:.0f} s at {LONGER_T2_KM} km, alpha {alpha}: PLOB {bound:.3e}, closed form {cf.rate_per_slot:.3e}, "
        f"simulated {longer['rate_per_slot']:.3e} ± {longer['rate_se']:.1e} ({longer['rate_per_slot'] / bound:.2f} x PLOB, "
        f"{(longer['rate_per_slot'] - bound) / longer['rate_se']:.1f} s.e. above it), Q_Z {longer['q_z']:.4f} (c.f. {cf.q_z:.4f}), "
        f"Q_X {longer['q_x']:.4f} (c.f. {cf.q_x:.4f}), {longer['pairs']} pairs, "
        f"wall {longer['wall_s']:.1f} s"
    )
    alphas = [best_alpha(km) for km in CURVE_KM]
    longer_curve = [closed_form(km, best_alpha(km, t2_ns=LONGER_T2_NS), t2_ns=LONGER_T2_NS).rate_per_slot for km in CURVE_KM]
    plob = [plob_bound(direct_eta(km)) for km in CURVE_KM]
    chain = [closed_form(km, a).rate_per_slot for km, a in zip(CURVE_KM, alphas, strict=True)]
    ideal = [closed_form(km, best_alpha(km, ideal_memory=True), ideal_memory=True).rate_per_slot for km in CURVE_KM]
    bk = [closed_form(km, 0.0, scheme="barrett-kok").rate_per_slot for km in CURVE_KM]
    ratio = [c / b for c, b in zip(chain, plob, strict=True)]
    best = int(np.argmax(ratio))
    print(f"closed form, preset T2: best chain/PLOB ratio {ratio[best]:.3f} at {CURVE_KM[best]:.0f} km")
    crossing = next((km for km, i, b in zip(CURVE_KM, ideal, plob, strict=True) if i > b), None)
    print(
        f"closed form, memories without decoherence: the chain beats PLOB from {crossing} km" if crossing else "ideal memories: no crossing"
    )
    if args.no_plot:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.semilogy(CURVE_KM, plob, "k-", label="PLOB bound, direct link (Pirandola et al. 2017)")
    ax.semilogy(CURVE_KM, [max(c, 1e-14) for c in chain], "C0-", label=f"chain, closed form ({PRESET}, T2 = 50 s)")
    ax.semilogy(CURVE_KM, [max(c, 1e-14) for c in ideal], "C0--", label="chain, closed form, memories without decoherence")
    ax.semilogy(CURVE_KM, [max(c, 1e-14) for c in longer_curve], "C1-.", label="chain, closed form, T2 = 500 s")
    ax.semilogy(CURVE_KM, [max(c, 1e-14) for c in bk], "C2:", label="chain, Barrett-Kok links, closed form")
    kms = [km for km, s in points if s["rate_per_slot"] > 0]
    ax.errorbar(
        kms,
        [s["rate_per_slot"] for _, s in points if s["rate_per_slot"] > 0],
        yerr=[s["rate_se"] for _, s in points if s["rate_per_slot"] > 0],
        fmt="C3o",
        label=f"chain, simulated through the stack ({args.pairs} pairs each)",
    )
    ax.errorbar(
        [LONGER_T2_KM],
        [longer["rate_per_slot"]],
        yerr=[longer["rate_se"]],
        fmt="C1s",
        label=f"chain, simulated, T2 = 500 s ({args.longer_t2_pairs} pairs)",
    )
    ax.set_ylim(1e-12, 1)
    ax.set_xlabel("total distance L (km)")
    ax.set_ylabel("secret bits per channel use")
    ax.set_title("BBM92 over one repeater vs the repeaterless bound")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
