"""Verification: the keys go on only if a universal hash of each is equal.

After error correction Bob's key equals Alice's with high but not certain
probability. Alice draws a fresh hash from a universal family (Carter &
Wegman, J. Comput. Syst. Sci. 18, 143, 1979), here a Toeplitz matrix of
``tag_bits`` rows (the family of :mod:`qnetstack.application.qkd.privacy`,
universal: Mansour, Nisan & Tiwari 1990), sends the seed and her tag; Bob
compares with his. For keys that differ, the tags are equal with probability
exactly 2^−tag_bits over the seed, so a key pair that passes differs with
probability at most

    ε_cor = 2^−tag_bits

(the correctness parameter of composable QKD security: Renner 2005; Tomamichel,
Lim, Gisin & Renner, Nat. Commun. 3, 634, 2012). Alice's tag is disclosed, so
``tag_bits`` count as leaked (the seed is independent of the key and leaks
nothing). Keys are uint8 arrays of 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qnetstack.application.qkd.privacy import toeplitz_hash


@dataclass(frozen=True)
class VerificationResult:
    """``passed``: the tags were equal; ``key``: the common key, only when they were (None otherwise, never a key that failed);
    ``disclosed_bits``: the bits of Alice's tag; ``epsilon_cor``: 2^−tag_bits."""

    passed: bool
    key: np.ndarray | None
    disclosed_bits: int
    epsilon_cor: float


def verify(alice: np.ndarray, bob: np.ndarray, rng: np.random.Generator, tag_bits: int = 64) -> VerificationResult:
    """Compare Toeplitz tags of the two keys under a fresh seed from ``rng``; hand on the key only if they are equal."""
    if alice.shape != bob.shape or alice.ndim != 1:
        raise ValueError(f"alice and bob must be 1-D keys of equal length, got shapes {alice.shape} and {bob.shape}")
    if tag_bits < 1:
        raise ValueError(f"tag_bits must be at least 1, got {tag_bits}")
    seed = rng.integers(0, 2, alice.size + tag_bits - 1, dtype=np.uint8)
    passed = bool(np.array_equal(toeplitz_hash(alice, seed, tag_bits), toeplitz_hash(bob, seed, tag_bits)))
    return VerificationResult(passed=passed, key=bob.copy() if passed else None, disclosed_bits=tag_bits, epsilon_cor=2.0**-tag_bits)
