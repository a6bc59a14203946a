"""Pulse trains with an eavesdropper on the link: pulses drawn per second, honest and under each attack.

Usage::

    python benchmarks/qkd_attacks.py --km 50 --pulses 10000000 --repeat 3 --seed 1 --json

Draws ``--pulses`` pulses (μ = 0.5, ν = 0.1, vacuum with probabilities 0.5, 0.4,
0.1) over ``--km`` of 0.2 dB/km fibre to a 50 % receiver (p_d = 1e-6, e_d = 1 %)
through :class:`qnetstack.physical.backends.pulses.PulseTrainBackend` in blocks
of 10^6, with no adversary and with each adversary of
``qnetstack.physical.params`` in turn, the honest run and the attacks
alternating ``--repeat`` times so a change of the machine's load hits them
alike. Only the drawing is timed (no sifting). Prints, per case, the median
wall time and the pulses per second; one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from qnetstack.physical.backends.pulses import PulseLink, PulseTrainBackend
from qnetstack.physical.components.channels import FibreChannel
from qnetstack.physical.components.detectors import Detector
from qnetstack.physical.params import BeamSplitting, InterceptResend, PhotonNumberSplitting
from qnetstack.physical.service import IntensityClass, SendPulses

CASES = {
    "honest": None,
    "intercept_resend": InterceptResend(),
    "photon_number_splitting": PhotonNumberSplitting(),
    "beam_splitting": BeamSplitting(),
}


def draw(km: float, pulses: int, adversary: object, seed: int) -> float:
    link = PulseLink(
        neighbour="bob",
        fibre=FibreChannel(length_km=km, db_per_km=0.2),
        detector=Detector(efficiency=0.5, dark_count_rate_hz=1000.0),
        misalignment=0.01,
    )
    classes = [IntensityClass(mean_photon_number=m, probability=p) for m, p in ((0.5, 0.5), (0.1, 0.4), (0.0, 0.1))]
    request = SendPulses(request_id=0, neighbour="bob", pulses=pulses, intensities=classes, block_size=1_000_000)
    backend = PulseTrainBackend([link], adversary=None if adversary is None else {"bob": adversary})
    start = time.perf_counter()
    for _ in backend.send(request, np.random.default_rng(seed)):
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--km", type=float, default=50.0)
    parser.add_argument("--pulses", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for round_ in range(args.repeat):
        for name, adversary in CASES.items():
            times[name].append(draw(args.km, args.pulses, adversary, args.seed + round_))
    result = {
        "km": args.km,
        "pulses": args.pulses,
        "repeat": args.repeat,
        "median_wall_s": {name: statistics.median(t) for name, t in times.items()},
        "pulses_per_s": {name: args.pulses / statistics.median(t) for name, t in times.items()},
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name in CASES:
            print(f"{name:24s} median {result['median_wall_s'][name]:.2f} s  {result['pulses_per_s'][name]:.3g} pulses/s")


if __name__ == "__main__":
    main()
