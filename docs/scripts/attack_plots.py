"""The plots of docs/qkd-attacks.md: eavesdroppers on a decoy-BB84 pulse link, seen through the QKD stages.

Every point is a seeded simulation of the pulse-train backend with an
adversary on the link; the receiver's records go through ``sift_decoy``,
``decoy_estimate`` (vacuum + weak decoy, Ma, Qi, Zhao & Lo, PRA 72, 012326,
2005) and ``gllp_rate`` (Gottesman, Lo, Lütkenhaus & Preskill 2004), and what
Eve holds comes from the backend's oracle. Writes three PNGs and prints the
figures behind them:

    pip install -e '.[plots]'
    python docs/scripts/attack_plots.py            # docs/img/attack_*.png, about a minute on one core
    python docs/scripts/attack_plots.py --out DIR
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnetstack.application.qkd.estimation import decoy_estimate
from qnetstack.application.qkd.key_length import binary_entropy, gllp_rate
from qnetstack.application.qkd.sifting import sift_decoy
from qnetstack.application.qkd.types import DecoyCounts, DecoyRecords
from qnetstack.physical.backends.pulses import EavesdropperRecords, PulseLink, PulseTrainBackend
from qnetstack.physical.components.channels import FibreChannel
from qnetstack.physical.components.detectors import Detector
from qnetstack.physical.params import Adversary, BeamSplitting, InterceptResend, PhotonNumberSplitting
from qnetstack.physical.service import IntensityClass, SendPulses

NU = 0.1
PROBABILITIES = (0.5, 0.4, 0.1)  # signal, weak decoy, vacuum
EC_EFFICIENCY = 1.16  # f of a modern error correction (Martinez-Mateo et al., QIC 15, 453, 2015)
PULSES = 4_000_000


def link(km: float, misalignment: float = 0.01) -> PulseLink:
    """0.2 dB/km fibre to a 50 % receiver, p_d = 1e-6 per detector and 1 ns gate (illustrative, not a cited experiment)."""
    return PulseLink(
        neighbour="bob",
        fibre=FibreChannel(length_km=km, db_per_km=0.2),
        detector=Detector(efficiency=0.5, dark_count_rate_hz=1000.0),
        misalignment=misalignment,
    )


@dataclass
class Outcome:
    """One run: the counts with agreeing bases per class, the signal's sifted bits, their errors, and how many Eve knows."""

    counts: DecoyCounts
    sifted: int
    errors: int
    eve_known: int

    def qber(self) -> float:
        return self.errors / self.sifted if self.sifted else 0.0

    def decoy_rate(self, pulses: int) -> tuple[float, float]:
        """(Y1_L, GLLP secret bits per pulse sent), negative where there is no key: the GLLP length
        N [Q1_L (1 − h(e1_U)) − f Q_μ h(E_μ)] over the N signal pulses whose bases agreed, over all pulses."""
        bound = decoy_estimate(self.counts, signal=0, decoy=1, vacuum=2)
        per_pulse = gllp_rate(1.0, bound.gain_signal, bound.qber_signal, bound.q1_lower, bound.e1_upper, EC_EFFICIENCY)
        return bound.y1_lower, self.counts.sent[0] * per_pulse / pulses

    def left_after_eve(self, pulses: int) -> float:
        """(sifted − Eve's known bits − the error correction's leak) per pulse sent: no secure key can be longer."""
        return (self.sifted - self.eve_known - EC_EFFICIENCY * self.sifted * binary_entropy(self.qber())) / pulses


def simulate(the_link: PulseLink, adversary: Adversary | None, mu: float, seed: int, pulses: int = PULSES) -> Outcome:
    intensities = (mu, NU, 0.0)
    classes = [IntensityClass(mean_photon_number=m, probability=p) for m, p in zip(intensities, PROBABILITIES)]
    request = SendPulses(request_id=0, neighbour="bob", pulses=pulses, intensities=classes, block_size=1_000_000)
    held: list[EavesdropperRecords] = []
    backend = PulseTrainBackend([the_link], adversary=None if adversary is None else {"bob": adversary}, eavesdropper_oracle=held.append)
    sent, detected, errors = np.zeros(3, np.int64), np.zeros(3, np.int64), np.zeros(3, np.int64)
    sifted = wrong = known = 0
    for index, block in enumerate(backend.send(request, np.random.default_rng(seed))):
        records = DecoyRecords.from_pulses(block, intensities)
        result = sift_decoy(records)
        sent += result.counts.sent
        detected += result.counts.detected
        errors += result.counts.errors
        sifted += len(result.key)
        wrong += result.key.errors
        if held:
            known += int(np.count_nonzero(held[index].knows_bit[result.key.rounds]))
    counts = DecoyCounts(intensities, tuple(map(int, sent)), tuple(map(int, detected)), tuple(map(int, errors)))
    return Outcome(counts, sifted, wrong, known)


def intercept_resend(out: Path, plt: object) -> None:
    """QBER of the sifted signal bits against the intercepted fraction, at 20 km."""
    the_link = link(20.0)
    fractions = np.linspace(0.0, 1.0, 11)
    honest = simulate(the_link, None, 0.5, seed=100, pulses=400_000)
    rows = []
    for i, f in enumerate(fractions):
        same = simulate(the_link, InterceptResend(fraction=float(f)), 0.5, seed=101 + i, pulses=400_000)
        single = simulate(the_link, InterceptResend(fraction=float(f), resend="single_photon"), 0.5, seed=201 + i, pulses=400_000)
        rows.append((f, same, single))
        print(
            f"intercept-resend f={f:.1f}: QBER {same.qber():.4f} (same photon number, {same.sifted} bits), {single.qber():.4f} (single photon)"
        )
    fig, ax = plt.subplots(figsize=(6, 4))  # type: ignore[attr-defined]
    for k, (label, marker) in enumerate((("resend: same photon number", "o"), ("resend: one photon", "s"))):
        q = np.array([r[1 + k].qber() for r in rows])
        n = np.array([r[1 + k].sifted for r in rows])
        ax.errorbar(fractions, q, yerr=5 * np.sqrt(q * (1 - q) / n), fmt=marker, ms=4, capsize=2, label=f"{label} (±5 SE)")
    ax.plot(fractions, fractions / 4 + honest.qber(), "k-", lw=1, label=f"f/4 + honest QBER ({honest.qber():.3f})")
    ax.axhline(0.11, color="grey", ls=":", lw=1, label="11 % (Shor & Preskill 2000)")
    ax.set_xlabel("fraction f of pulses intercepted")
    ax.set_ylabel("QBER of the sifted signal bits")
    ax.set_title("Intercept-resend, 20 km, μ = 0.5, e_d = 1 %")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "attack_intercept_resend.png", dpi=110)


def photon_number_splitting(out: Path, plt: object) -> None:
    """Gain, QBER, decoy Y1 bound and key rate with and without PNS against distance."""
    distances = np.arange(10.0, 101.0, 10.0)
    rows = []
    for i, km in enumerate(distances):
        the_link = link(float(km))
        honest = simulate(the_link, None, 0.5, seed=300 + i)
        pns = simulate(the_link, PhotonNumberSplitting(), 0.5, seed=400 + i)
        rows.append((km, the_link, honest, pns))
        (y1h, rh), (y1p, rp) = honest.decoy_rate(PULSES), pns.decoy_rate(PULSES)
        print(
            f"PNS {km:5.1f} km: gain {honest.counts.gain(0):.3e} / {pns.counts.gain(0):.3e}, QBER {honest.qber():.4f} / {pns.qber():.4f},"
            f" decoy gain {honest.counts.gain(1):.3e} / {pns.counts.gain(1):.3e}, Y1_L {y1h:.3e} / {y1p:.3e},"
            f" rate {rh:.3e} / {rp:.3e}, Eve knows {pns.eve_known / max(1, pns.sifted):.3f} of the PNS sifted bits"
        )
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))  # type: ignore[attr-defined]
    (gain, qber), (y1, rate) = axes
    for k, label in ((2, "honest"), (3, "PNS")):
        gain.semilogy(distances, [r[k].counts.gain(0) for r in rows], "o" if k == 2 else "x", label=f"signal, {label}")
        gain.semilogy(distances, [r[k].counts.gain(1) for r in rows], "s" if k == 2 else "+", label=f"decoy, {label}")
        qber.plot(distances, [r[k].qber() for r in rows], "o" if k == 2 else "x", label=label)
        y1.plot(distances, [r[k].decoy_rate(PULSES)[0] for r in rows], "o" if k == 2 else "x", label=f"Y1 lower bound, {label}")
        positive = [(r[0], r[k].decoy_rate(PULSES)[1]) for r in rows if r[k].decoy_rate(PULSES)[1] > 0]
        if positive:
            rate.semilogy(*zip(*positive), "o" if k == 2 else "x", label=f"{label}")
    gain.semilogy(distances, [r[1].vacuum_yield + -math.expm1(-r[1].transmittance * 0.5) for r in rows], "k-", lw=1, label="honest Q_μ")
    y1.plot(distances, [r[1].vacuum_yield + r[1].transmittance for r in rows], "k-", lw=1, label="true Y1 = Y0 + η (honest)")
    zero = [r[0] for r in rows if r[3].decoy_rate(PULSES)[1] <= 0]
    if zero:
        rate.plot([], [], " ", label=f"PNS: no key at {', '.join(f'{z:.0f}' for z in zero)} km")
    gain.set_ylabel("gain (bases agreeing)")
    qber.set_ylabel("QBER of the sifted signal bits")
    qber.set_ylim(0, 0.05)
    y1.set_ylabel("Y1 (vacuum + weak decoy bound)")
    rate.set_ylabel("GLLP secret bits per pulse sent")
    for ax in axes.flat:
        ax.set_xlabel("fibre length (km)")
        ax.legend(fontsize=7)
    fig.suptitle("Photon-number splitting: gain and QBER look honest; the decoys show it (μ = 0.5, ν = 0.1)")
    fig.tight_layout()
    fig.savefig(out / "attack_pns.png", dpi=110)


def beam_splitting(out: Path, plt: object) -> None:
    """Decoy GLLP key rate against what Eve's tapped photons leave, varying μ at 50 km."""
    mus = np.array([0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0])  # above the decoy ν = 0.1
    the_link = link(50.0)
    rows = []
    for i, mu in enumerate(mus):
        outcome = simulate(the_link, BeamSplitting(), float(mu), seed=500 + i)
        _, rate = outcome.decoy_rate(PULSES)
        share = outcome.eve_known / outcome.sifted
        left = outcome.left_after_eve(PULSES)
        naive = outcome.sifted * (1 - (1 + EC_EFFICIENCY) * binary_entropy(outcome.qber())) / PULSES
        rows.append((mu, share, rate, left, naive))
        print(
            f"beam splitting 50 km μ={mu:.2f}: Eve knows {share:.3f} of {outcome.sifted} sifted bits; per pulse: decoy GLLP {rate:.3e}, left after Eve {left:.3e}, all detections credited {naive:.3e}"
        )
    fig, ax = plt.subplots(figsize=(6.5, 4.2))  # type: ignore[attr-defined]
    share = [r[1] for r in rows]
    ax.plot(share, [r[3] for r in rows], "k^-", lw=1, label="(sifted − Eve's bits − EC leak) / pulse")
    ax.plot(share, [r[2] for r in rows], "o-", label="decoy GLLP key / pulse")
    ax.plot(share, [r[4] for r in rows], "s--", label="every detection credited as one photon")
    for mu, s, rate, _, _ in rows:
        ax.annotate(f"μ={mu:.2g}", (s, rate), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("fraction of the sifted bits Eve knows (measured)")
    ax.set_ylabel("bits per pulse sent")
    ax.set_title("Beam splitting, 50 km: the decoy key stays below what Eve leaves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "attack_beam_splitting.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "img")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    intercept_resend(args.out, plt)
    photon_number_splitting(args.out, plt)
    beam_splitting(args.out, plt)
    print(f"wrote {args.out}/attack_intercept_resend.png, attack_pns.png, attack_beam_splitting.png")


if __name__ == "__main__":
    main()
