"""Privacy amplification by Toeplitz hashing, computed with the FFT.

Alice and Bob hold the same n-bit key, of which Eve may know something
(bounded by the key-length calculation). Hashing it to m bits with a function
drawn at random from a two-universal family leaves the output close to
uniform and independent of Eve's information (leftover hash lemma:
Impagliazzo, Levin & Luby 1989; Bennett, Brassard, Crépeau & Maurer, IEEE
Trans. Inf. Theory 41, 1915, 1995; against quantum side information, Renner
2005 and Tomamichel, Schaffner, Smith & Renner 2011).

The family: binary Toeplitz matrices T (m × n, constant along diagonals),
defined by n + m − 1 uniformly random seed bits s with T[i, j] = s[i − j + n − 1];
it is universal (Mansour, Nisan & Tiwari 1990; Krawczyk, CRYPTO 1994): for
keys x ≠ x', P[T x = T x'] = 2^−m. The product is a convolution,
(T x)_i = Σ_j s[i − j + n − 1] x_j = (s ∗ x)[i + n − 1], so it takes
O((n + m) log(n + m)) with the FFT instead of O(n m) (as in Hayashi & Tsurumaru,
IEEE Trans. Inf. Theory 62, 2213, 2016, on fast hashing for QKD). The
convolution's terms are at most n, far inside float64's exact integers, so
rounding the real FFT's output recovers them exactly.

The seed is public (sent on the authenticated channel) and drawn from the
``rng`` passed in. Keys are uint8 arrays of 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft


@dataclass(frozen=True)
class AmplifiedKey:
    """The final key (``key``, uint8 0/1, ``output_bits`` long) and the public Toeplitz seed (n + m − 1 bits) that made it."""

    key: np.ndarray
    seed: np.ndarray


def toeplitz_hash(key: np.ndarray, seed: np.ndarray, output_bits: int) -> np.ndarray:
    """T · key over GF(2), T the ``output_bits`` × n Toeplitz matrix of ``seed`` (n + output_bits − 1 bits), by FFT convolution."""
    n = key.size
    if output_bits < 0:
        raise ValueError(f"output_bits must be non-negative, got {output_bits}")
    if seed.size != n + output_bits - 1 and output_bits > 0:
        raise ValueError(f"the seed must have n + output_bits - 1 = {n + output_bits - 1} bits, got {seed.size}")
    if output_bits == 0 or n == 0:
        return np.zeros(output_bits, dtype=np.uint8)
    size = scipy.fft.next_fast_len(seed.size + n - 1, real=True)
    product = scipy.fft.irfft(scipy.fft.rfft(seed.astype(np.float64), size) * scipy.fft.rfft(key.astype(np.float64), size), size)
    terms = np.rint(product[n - 1 : n - 1 + output_bits]).astype(np.int64)
    return (terms & 1).astype(np.uint8)


def toeplitz_matrix(seed: np.ndarray, n: int, output_bits: int) -> np.ndarray:
    """The explicit matrix T[i, j] = seed[i − j + n − 1] (for checking the FFT path on small inputs)."""
    rows = np.arange(output_bits)[:, None]
    columns = np.arange(n)[None, :]
    return seed[rows - columns + n - 1]


def amplify(key: np.ndarray, output_bits: int, rng: np.random.Generator) -> AmplifiedKey:
    """Hash ``key`` to ``output_bits`` bits with a fresh Toeplitz seed from ``rng``; both parties apply the same seed."""
    if key.ndim != 1 or key.dtype != np.uint8:
        raise ValueError("key must be a 1-D uint8 array of 0s and 1s")
    if not 0 <= output_bits <= key.size:
        raise ValueError(f"output_bits must be in [0, {key.size}] (the key's length), got {output_bits}")
    seed = rng.integers(0, 2, max(0, key.size + output_bits - 1), dtype=np.uint8)
    return AmplifiedKey(key=toeplitz_hash(key, seed, output_bits), seed=seed)
