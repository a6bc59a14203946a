"""QKD through the whole stack: one key request, assembled and run, with its figures and wall time.

Usage::

    python benchmarks/qkd.py --protocol bb84-decoy --km 50 --pulses 100000000 --ec cascade --seed 1 --json
    python benchmarks/qkd.py --protocol bb84-decoy --km 100 --sifted-bits 1000 --ec cascade --seed 1 --json
    python benchmarks/qkd.py --protocol bb84-decoy --km 50 --key-bits 10240 --ec cascade --seed 1 --json
    python benchmarks/qkd.py --protocol bbm92 --km 10 --pairs 16000 --ec ldpc --seed 1 --json

Each run builds a two-node scenario, assembles it (``qnetstack.stack.assemble``)
and runs it to its end, so the wall time covers the scenario's validation,
assembly, the simulation and the post-processing at both ends.

``bb84-decoy`` sends weak coherent pulses over a pulse link of ``--km`` with
the GYS receiver as Ma, Qi, Zhao & Lo (PRA 72, 012326, 2005) model it
(0.21 dB/km, 4.5 % detection efficiency, Y0 = 1.7e-6, e_d = 3.3 %), 10^8
pulses a second, signal 0.48, weak decoy 0.1 and vacuum with probabilities
0.8, 0.1, 0.1, bases Z and X with 1/2 each. ``--pulses`` says how many.
``--sifted-bits N`` sends the pulses that give N sifted bits on average
(``N / (P(signal) · P(bases agree) · Q_μ)``, Q_μ from the closed form, plus
5 standard deviations), and ``--key-bits N`` the pulses whose expected
asymptotic key (with f = 1.1) is 1.3 N, asking for at least N bits; the run
ends in ``KEY_TOO_SHORT`` when fewer come out. ``--finite-key`` uses Lim et
al.'s (2014) bound instead of the asymptotic one.

``--block-size`` (default 10^7, the largest a request takes) is the pulses
per block of records: the application asks for the clicks-only records, a
few kilobytes per block at these distances, so fewer, larger blocks cost
less per pulse (fewer messages, fewer joins).

``bbm92`` and ``e91`` ask the network for ``--pairs`` end-to-end pairs over one
heralded link of ``--km`` (the link of examples/qkd-bbm92.yaml at that length).

One JSON object with ``--json``: ``protocol``, ``km``, ``pulses`` or
``pairs``, ``status`` (``done``, or the abort's code), ``sifted_bits``,
``qber``, ``secret_bits``, ``key_rate_per_pulse`` (or ``key_rate_per_pair``),
``ec_efficiency`` (leaked / (n h(QBER)) on the key's own QBER),
``keys_equal`` (the same key at both ends), ``sim_time_ns`` (when the run
ended, simulated), ``wall_s`` and ``events``; ``wall_s`` splits into
``setup_s`` (validating and assembling the scenario, with the first imports
of the implementations it names) and ``run_s`` (the simulation and the
post-processing). The interpreter's start and the imports at the top of this
script are outside ``wall_s``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from qnetstack.application.qkd.key_length import GYS
from qnetstack.application.qkd.reconcile import efficiency
from qnetstack.application.service import AppError, KeyDelivered
from qnetstack.stack import assemble
from qnetstack.stack.scenario import parse_scenario

INTENSITIES = [
    {"mean_photon_number": 0.48, "probability": 0.8},
    {"mean_photon_number": 0.1, "probability": 0.1},
    {"mean_photon_number": 0.0, "probability": 0.1},
]
REPETITION_RATE_HZ = 1e8
# two detectors of p_d = 1 - sqrt(1 - Y0) each over a 1 ns gate give Y0 = 1.7e-6 (GYS)
DARK_RATE_HZ = -math.log(math.sqrt(1.0 - GYS.dark_yield)) * 1e9


def pulses_for_sifted_bits(km: float, sifted_bits: int) -> int:
    """Pulses whose expected sifted key (signal rounds, bases agreeing) is ``sifted_bits`` plus 5 standard deviations."""
    per_pulse = INTENSITIES[0]["probability"] * 0.5 * GYS.gain(km, INTENSITIES[0]["mean_photon_number"])
    n = sifted_bits + 5.0 * math.sqrt(sifted_bits)
    return max(10_000, math.ceil(n / per_pulse))


def pulses_for_key_bits(km: float, key_bits: int) -> int:
    """Pulses whose expected asymptotic key, with an error correction of f = 1.1, is 1.3 × ``key_bits``."""
    from dataclasses import replace

    from qnetstack.application.qkd.key_length import vacuum_weak_decoy_rate

    model = replace(GYS, ec_efficiency=1.1)
    rate = INTENSITIES[0]["probability"] * vacuum_weak_decoy_rate(model, km, 0.48, 0.1)
    if rate <= 0.0:
        raise SystemExit(f"--km: no key is expected at {km} km")
    return max(10_000, math.ceil(1.3 * key_bits / rate))


def scenario(args: argparse.Namespace) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"name": "alice", "hardware": {"memory": {"num_qubits": 4}, "emission_efficiency": 0.75}},
        {"name": "bob"},
    ]
    link = {
        "a": "alice",
        "b": "bob",
        "length_km": max(args.km, 0.001),
        "fibre": {"db_per_km": 0.2, "refractive_index": 1.468},
        "detector": {"efficiency": 0.8, "dark_count_probability": 0.0},
        "bright_state_population": 0.02,
    }
    request: dict[str, Any] = {"kind": "qkd", "remote_node": "bob", "protocol": args.protocol, "epsilon": args.epsilon, "ec": args.ec}
    data: dict[str, Any] = {"name": f"bench-{args.protocol}", "seed": args.seed, "nodes": nodes, "links": [link]}
    if args.protocol == "bb84-decoy":
        request.update(pulses=args.pulses, intensities=INTENSITIES, finite_key=args.finite_key, block_size=args.block_size)
        if args.key_bits is not None:
            request["key_bits"] = args.key_bits
        data["pulse_links"] = [
            {
                "sender": "alice",
                "receiver": "bob",
                "length_km": args.km,
                "db_per_km": GYS.attenuation_db_per_km,
                "detector": {"efficiency": GYS.bob_efficiency, "dark_count_rate_hz": DARK_RATE_HZ},
                "gate_ns": 1.0,
                "misalignment": GYS.detector_error,
                "repetition_rate_hz": REPETITION_RATE_HZ,
            }
        ]
        data["implementations"] = {"physical": "model-heralding"}
    else:
        request.update(pairs=args.pairs, sample_fraction=0.35)
        data["implementations"] = {"physical": "model-heralding", "link": "fast-forward-egp"}
    data["applications"] = [{"node": "alice", "request": request}]
    return data


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    data = scenario(args)
    # a decoy-BB84 run traces its figures (sifted bits, QBER) also when it aborts: a few records
    data["keep_trace"] = args.protocol == "bb84-decoy"
    simulation = assemble(parse_scenario(data))
    assembled = time.perf_counter()
    result = simulation.run()
    wall_s = time.perf_counter() - started
    messages = [(node, msg) for _, node, msg in simulation.network.user_messages]
    keys = [(node, msg) for node, msg in messages if isinstance(msg, KeyDelivered)]
    errors = [msg for _, msg in messages if isinstance(msg, AppError)]
    spent_key, spent = ("pulses", args.pulses) if args.protocol == "bb84-decoy" else ("pairs", args.pairs)
    out: dict[str, Any] = {"protocol": args.protocol, "km": args.km, spent_key: spent, "ec": args.ec, "seed": args.seed}
    out["finite_key"] = bool(args.finite_key)
    if keys:
        head = next(msg for node, msg in keys if node == msg.head)
        key_bits = head.sifted_bits if args.protocol == "bb84-decoy" else head.sifted_bits - head.sample_bits
        out.update(
            status="done",
            sifted_bits=head.sifted_bits,
            qber=head.qber,
            secret_bits=head.length,
            ec_efficiency=efficiency(head.leaked_ec_bits, key_bits, head.qber) if head.qber > 0 else None,
            keys_equal=len(keys) == 2 and len({msg.key_sha256 for _, msg in keys}) == 1,
        )
        out[f"key_rate_per_{spent_key[:-1]}"] = head.length / spent
    else:
        out.update(status=errors[0].code.value if errors else result.status, detail=errors[0].detail if errors else result.end.detail)
        traced = [r for r in simulation.network.trace.records if r["event"] == "bb84_decoy.post_processed"]
        figures = traced[0] if traced else {}
        out.update(sifted_bits=figures.get("sifted_bits"), qber=figures.get("qber"), secret_bits=0, ec_efficiency=None, keys_equal=None)
        out[f"key_rate_per_{spent_key[:-1]}"] = 0.0
    out.update(sim_time_ns=result.sim_time_ns, wall_s=round(wall_s, 3), events=result.events)
    out.update(setup_s=round(assembled - started, 3), run_s=round(wall_s - (assembled - started), 3))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=("bb84-decoy", "bbm92", "e91"), required=True)
    parser.add_argument("--km", type=float, required=True)
    spend = parser.add_mutually_exclusive_group(required=True)
    spend.add_argument("--pulses", type=int)
    spend.add_argument("--sifted-bits", type=int)
    spend.add_argument("--key-bits", type=int)
    spend.add_argument("--pairs", type=int)
    parser.add_argument("--ec", choices=("cascade", "ldpc"), default="cascade")
    parser.add_argument("--finite-key", action="store_true")
    parser.add_argument("--epsilon", type=float, default=1e-10)
    parser.add_argument("--block-size", type=int, default=10_000_000, help="bb84-decoy: pulses per block of records (10^3 to 10^7)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.protocol == "bb84-decoy":
        if args.pairs is not None:
            parser.error("--pairs: bb84-decoy spends pulses (--pulses, --sifted-bits or --key-bits)")
        if args.sifted_bits is not None:
            args.pulses = pulses_for_sifted_bits(args.km, args.sifted_bits)
        elif args.key_bits is not None:
            args.pulses = pulses_for_key_bits(args.km, args.key_bits)
    elif args.pairs is None:
        parser.error(f"--pairs: {args.protocol} spends end-to-end pairs")
    out = run(args)
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        for name, value in out.items():
            print(f"{name:20s} {value}")
    return 0 if out["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
