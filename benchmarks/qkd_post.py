"""QKD post-processing benchmark: wall time per stage and reconciliation efficiency, as one JSON object.

Usage::

    python benchmarks/qkd_post.py --bits 100000 --qber 0.03 --ec cascade --seed 1
    python benchmarks/qkd_post.py --bits 10000 --qber 0.03 --ec ldpc --blocks 6 --seed 1
    python benchmarks/qkd_post.py --pa-bits 1000000 --seed 1

What runs (no network simulation: the stages of ``qnetstack.application.qkd``
on made-up keys): ``--blocks`` times, Alice's key is ``--bits`` uniform bits
and Bob's is hers with each bit flipped with probability ``--qber``; then
error correction (``--ec``, by name from the reconciler registry, given the
true QBER as its estimate), verification (64-bit Toeplitz tag), privacy
amplification of the verified key to half its length (a fixed fraction, as
the key-length bound is not this benchmark's subject), and Wegman–Carter tags
on the disclosed parities/syndrome (one message per block). Separately,
Toeplitz hashing of a ``--pa-bits`` key to half its length, the size the issue
asks to take under a second.

Printed (one JSON object on stdout): ``bits``, ``qber``, ``ec``, ``blocks``;
``ec_efficiency_mean`` and ``ec_efficiency_se`` (standard error over the
blocks that converged, None with fewer than two), ``ec_failures`` (blocks the
reconciler reported failed), ``ec_leaked_bits_mean``, ``ec_channel_uses_mean``,
``keys_output`` (blocks that passed verification), ``keys_equal`` (of those,
equal to Alice's: must equal ``keys_output``); per stage the mean wall time per
block in seconds, ``ec_s``, ``verify_s``, ``pa_s``, ``auth_s``
(``time.perf_counter``); ``pa_large_bits`` and ``pa_large_s`` (the fastest of
3 runs of the large Toeplitz hash, the minimum filtering out other processes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from qnetstack.application.qkd.auth import KeyPool, WegmanCarter
from qnetstack.application.qkd.privacy import amplify
from qnetstack.application.qkd.reconcile import ReconciliationResult, reconciler, reconciler_names
from qnetstack.application.qkd.verify import verify


def run(bits: int, qber: float, ec: str, blocks: int, pa_bits: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    method = reconciler(ec)
    efficiencies: list[float] = []
    leaked: list[int] = []
    uses: list[int] = []
    failures = outputs = equal = 0
    stage = {"ec_s": 0.0, "verify_s": 0.0, "pa_s": 0.0, "auth_s": 0.0}
    pool_bits = rng.integers(0, 2, 61 * (blocks + 1), dtype=np.uint8)
    alice_auth, bob_auth = WegmanCarter(KeyPool(pool_bits)), WegmanCarter(KeyPool(pool_bits))
    for _ in range(blocks):
        alice = rng.integers(0, 2, bits, dtype=np.uint8)
        bob = alice ^ (rng.random(bits) < qber).astype(np.uint8)
        start = time.perf_counter()
        result = method.reconcile(alice, bob, qber, rng)
        stage["ec_s"] += time.perf_counter() - start
        if not isinstance(result, ReconciliationResult):
            failures += 1
            continue
        efficiencies.append(result.efficiency)
        leaked.append(result.leaked_bits)
        uses.append(result.channel_uses)
        start = time.perf_counter()
        # the disclosed information, as one message; its size is what the tag's cost depends on
        message = np.packbits(rng.integers(0, 2, result.leaked_bits, dtype=np.uint8)).tobytes()
        assert bob_auth.check(message, alice_auth.sign(message))
        stage["auth_s"] += time.perf_counter() - start
        start = time.perf_counter()
        checked = verify(alice, result.key, rng)
        stage["verify_s"] += time.perf_counter() - start
        if checked.key is None:
            continue
        outputs += 1
        equal += int(np.array_equal(checked.key, alice))
        start = time.perf_counter()
        amplify(checked.key, checked.key.size // 2, rng)
        stage["pa_s"] += time.perf_counter() - start
    large = rng.integers(0, 2, pa_bits, dtype=np.uint8)
    large_times = []
    for _ in range(3):
        start = time.perf_counter()
        amplify(large, pa_bits // 2, rng)
        large_times.append(time.perf_counter() - start)
    se = float(np.std(efficiencies, ddof=1) / math.sqrt(len(efficiencies))) if len(efficiencies) > 1 else None
    return {
        "bits": bits,
        "qber": qber,
        "ec": ec,
        "blocks": blocks,
        "ec_efficiency_mean": float(np.mean(efficiencies)) if efficiencies else None,
        "ec_efficiency_se": se,
        "ec_failures": failures,
        "ec_leaked_bits_mean": float(np.mean(leaked)) if leaked else None,
        "ec_channel_uses_mean": float(np.mean(uses)) if uses else None,
        "keys_output": outputs,
        "keys_equal": equal,
        **{name: seconds / blocks for name, seconds in stage.items()},
        "pa_large_bits": pa_bits,
        "pa_large_s": min(large_times),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=100_000, help="key bits per block (default 100000)")
    parser.add_argument("--qber", type=float, default=0.03, help="bit flip probability (default 0.03)")
    parser.add_argument("--ec", default="cascade", choices=reconciler_names(), help="error correction (default cascade)")
    parser.add_argument("--blocks", type=int, default=4, help="blocks to reconcile (default 4)")
    parser.add_argument("--pa-bits", type=int, default=1_000_000, help="key bits of the large Toeplitz hash (default 10^6)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.bits < 2 or args.blocks < 1 or args.pa_bits < 2:
        parser.error("--bits and --pa-bits must be at least 2, --blocks at least 1")
    if not 0.0 < args.qber < 0.5:
        parser.error("--qber must be in (0, 0.5)")
    sys.stdout.write(json.dumps(run(args.bits, args.qber, args.ec, args.blocks, args.pa_bits, args.seed)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
