"""Decoy-BB84 pulse trains at the physical layer: pulses per second, simulated and sifted.

Usage::

    python benchmarks/qkd_pulses.py --km 50 --pulses 100000000 --seed 1 --json

Sends ``--pulses`` weak coherent pulses (signal μ = 0.48, weak decoy ν = 0.1 and
vacuum, chosen with probabilities 0.8, 0.1, 0.1; bases Z and X with 1/2 each)
over ``--km`` of fibre to a BB84 receiver, through
:class:`qnetstack.physical.backends.pulses.PulseTrainBackend` in blocks of
``--block-size`` pulses. The link is the GYS experiment as Ma, Qi, Zhao & Lo
(PRA 72, 012326, 2005) model it: 0.21 dB/km, a 4.5 % receiver
(``--receiver-efficiency``), Y0 = 1.7e-6, e_d = 3.3 %.

Each block's records are turned into the QKD stages' ``DecoyRecords`` and
sifted (``sift_decoy``), and the summed counts go through the vacuum + weak
decoy bounds and the GLLP rate (application/qkd), so the wall time is the
whole way from pulses to an asymptotic rate. ``sim_s`` is the part spent
drawing the pulses, ``sift_s`` the rest. One JSON object with ``--json``:
``pulses``, ``detections`` (all classes, all bases), ``gains`` and ``qber``
per class (bases agreeing), ``key_rate_per_pulse`` and the closed form it
estimates (``closed_form_rate``, ``vacuum_weak_decoy_rate``), ``sim_s``,
``sift_s``, ``wall_s`` and ``pulses_per_s``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace

import numpy as np

from qnetstack.application.qkd.estimation import decoy_estimate
from qnetstack.application.qkd.key_length import GYS, gllp_rate, vacuum_weak_decoy_rate
from qnetstack.application.qkd.sifting import sift_decoy
from qnetstack.application.qkd.types import DecoyCounts, DecoyRecords
from qnetstack.physical.backends.pulses import PulseLink, PulseTrainBackend
from qnetstack.physical.components.channels import FibreChannel
from qnetstack.physical.components.detectors import Detector
from qnetstack.physical.service import IntensityClass, PulseRecords, SendPulses

INTENSITIES = (0.48, 0.1, 0.0)
PROBABILITIES = (0.8, 0.1, 0.1)


def run(km: float, pulses: int, seed: int, block_size: int, receiver_efficiency: float) -> dict[str, object]:
    model = replace(GYS, bob_efficiency=receiver_efficiency)
    # two detectors of p_d = 1 - sqrt(1 - Y0) each over a 1 ns gate, so 1 - (1 - p_d)^2 = Y0
    dark_rate_hz = -math.log(math.sqrt(1.0 - model.dark_yield)) * 1e9
    link = PulseLink(
        neighbour="bob",
        fibre=FibreChannel(length_km=km, db_per_km=model.attenuation_db_per_km),
        detector=Detector(efficiency=receiver_efficiency, dark_count_rate_hz=dark_rate_hz),
        gate_ns=1.0,
        misalignment=model.detector_error,
    )
    classes = [IntensityClass(mean_photon_number=m, probability=p) for m, p in zip(INTENSITIES, PROBABILITIES)]
    request = SendPulses(request_id=0, neighbour="bob", pulses=pulses, intensities=classes, block_size=block_size)
    sent, detected, errors = np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64)
    detections = 0
    sim_s = 0.0
    start = time.perf_counter()
    blocks = PulseTrainBackend([link]).send(request, np.random.default_rng(seed))
    while True:
        drawn = time.perf_counter()
        block = next(blocks, None)
        sim_s += time.perf_counter() - drawn
        if block is None:
            break
        assert isinstance(block, PulseRecords)
        detected_flags = block.detected
        detections += int(np.count_nonzero(detected_flags))
        records = DecoyRecords(
            alice_basis=block.alice_basis,
            alice_bit=block.alice_bit,
            bob_basis=block.bob_basis,
            bob_bit=block.bob_bit,
            detected=detected_flags,
            intensity_class=block.intensity_class,
            intensities=INTENSITIES,
        )
        counts = sift_decoy(records).counts
        sent += counts.sent
        detected += counts.detected
        errors += counts.errors
    total = DecoyCounts(INTENSITIES, tuple(map(int, sent)), tuple(map(int, detected)), tuple(map(int, errors)))
    estimate = decoy_estimate(total, signal=0, decoy=1, vacuum=2)
    rate = gllp_rate(0.5, estimate.gain_signal, estimate.qber_signal, estimate.q1_lower, estimate.e1_upper, model.ec_efficiency)
    wall_s = time.perf_counter() - start
    return {
        "km": km,
        "pulses": pulses,
        "seed": seed,
        "block_size": block_size,
        "receiver_efficiency": receiver_efficiency,
        "intensities": list(INTENSITIES),
        "detections": detections,
        "gains": [total.gain(k) for k in range(3)],
        "qber": [total.error_rate(k) for k in range(3)],
        "key_rate_per_pulse": max(0.0, rate),
        "closed_form_rate": vacuum_weak_decoy_rate(model, km, INTENSITIES[0], INTENSITIES[1]),
        "sim_s": round(sim_s, 3),
        "sift_s": round(wall_s - sim_s, 3),
        "wall_s": round(wall_s, 3),
        "pulses_per_s": round(pulses / wall_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--km", type=float, default=50.0)
    parser.add_argument("--pulses", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--block-size", type=int, default=1_000_000)
    parser.add_argument("--receiver-efficiency", type=float, default=GYS.bob_efficiency)
    parser.add_argument("--json", action="store_true", help="print one JSON object and nothing else")
    args = parser.parse_args(argv)
    if args.pulses < 1:
        parser.error(f"--pulses: must be at least 1, got {args.pulses}")
    if args.km < 0:
        parser.error(f"--km: must be >= 0, got {args.km}")
    result = run(args.km, args.pulses, args.seed, args.block_size, args.receiver_efficiency)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
