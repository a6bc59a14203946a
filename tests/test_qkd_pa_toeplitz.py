"""Privacy amplification and verification by Toeplitz hashing (application/qkd/privacy.py, verify.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qnetstack.application.qkd.privacy import amplify, toeplitz_hash, toeplitz_matrix
from qnetstack.application.qkd.verify import verify


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_fft_hash_equals_the_direct_matrix_product(data):
    n = data.draw(st.integers(1, 200), label="n")
    m = data.draw(st.integers(1, 200), label="m")
    bits = st.lists(st.integers(0, 1), min_size=n + m - 1, max_size=n + m - 1)
    seed = np.array(data.draw(bits, label="seed"), dtype=np.uint8)
    key = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n), label="key"), dtype=np.uint8)
    direct = (toeplitz_matrix(seed, n, m).astype(np.int64) @ key) % 2
    assert np.array_equal(toeplitz_hash(key, seed, m), direct)


def test_the_matrix_is_toeplitz():
    seed = np.arange(6)  # n = 4, m = 3: T[i, j] = seed[i - j + 3]
    assert toeplitz_matrix(seed, 4, 3).tolist() == [[3, 2, 1, 0], [4, 3, 2, 1], [5, 4, 3, 2]]


def test_fft_hash_is_exact_on_a_long_dense_key():
    """The largest convolution terms (all-ones key and seed: up to n) still round to the right parity."""
    n, m = 200_000, 1_000
    key = np.ones(n, dtype=np.uint8)
    seed = np.ones(n + m - 1, dtype=np.uint8)
    # every row of T is all ones, so every output bit is n mod 2
    assert np.all(toeplitz_hash(key, seed, m) == n % 2)
    key[0] = 0
    # column 0 of T is seed[i + n - 1]: all ones, so every bit flips
    assert np.all(toeplitz_hash(key, seed, m) == (n - 1) % 2)


def test_amplify_is_seeded_and_shortens_to_the_asked_length():
    key = np.random.default_rng(1).integers(0, 2, 5_000, dtype=np.uint8)
    first = amplify(key, 1_200, np.random.default_rng(2))
    again = amplify(key, 1_200, np.random.default_rng(2))
    other = amplify(key, 1_200, np.random.default_rng(3))
    assert first.key.size == 1_200 and first.seed.size == 5_000 + 1_200 - 1
    assert np.array_equal(first.key, again.key) and not np.array_equal(first.key, other.key)
    # output bits of a random hash of a random key are balanced: 1200 bits, SD of the mean 0.0144, 5 SD margin
    assert abs(first.key.mean() - 0.5) < 0.072
    with pytest.raises(ValueError, match="output_bits"):
        amplify(key, 5_001, np.random.default_rng(2))


def test_verification_passes_equal_keys_and_refuses_unequal_ones():
    rng = np.random.default_rng(4)
    alice = rng.integers(0, 2, 1_000, dtype=np.uint8)
    same = verify(alice, alice.copy(), rng, tag_bits=64)
    assert same.passed and np.array_equal(same.key, alice)
    assert same.disclosed_bits == 64 and same.epsilon_cor == 2.0**-64
    for position in (0, 499, 999):
        bob = alice.copy()
        bob[position] ^= 1
        refused = verify(alice, bob, rng)
        assert not refused.passed and refused.key is None


def test_short_tags_collide_at_the_universal_rate():
    """With 4-bit tags two different keys pass with probability 2^-4: over 4000 fresh seeds the
    count is binomial(4000, 1/16), mean 250, SD 15.3; accept within 5 SD."""
    rng = np.random.default_rng(5)
    alice = rng.integers(0, 2, 256, dtype=np.uint8)
    bob = alice.copy()
    bob[[3, 100, 200]] ^= 1
    passed = sum(verify(alice, bob, rng, tag_bits=4).passed for _ in range(4_000))
    assert abs(passed - 250) <= 5 * 15.3


@pytest.mark.slow
def test_the_post_processing_benchmark_prints_one_json_object():
    root = Path(__file__).resolve().parents[1]
    args = ["--bits", "2000", "--qber", "0.03", "--blocks", "2", "--pa-bits", "10000", "--seed", "3"]
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "qkd_post.py"), *args], capture_output=True, text=True, check=True, cwd=root
    )
    data = json.loads(out.stdout)
    for key in (
        "ec_efficiency_mean",
        "ec_efficiency_se",
        "ec_failures",
        "keys_output",
        "keys_equal",
        "ec_s",
        "verify_s",
        "pa_s",
        "auth_s",
        "pa_large_s",
    ):
        assert key in data, key
    assert data["bits"] == 2000 and data["blocks"] == 2 and data["pa_large_bits"] == 10000
    assert data["keys_equal"] == data["keys_output"] == 2 and data["ec_failures"] == 0
    assert 1.0 <= data["ec_efficiency_mean"] < 2.0
