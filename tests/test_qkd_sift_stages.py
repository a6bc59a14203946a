"""Sifting (``qnetstack.application.qkd.sifting``) and the records it works on.

Properties (hypothesis, derandomized): BB84 sifting keeps exactly the detected
rounds whose bases agree, in order; decoy sifting keeps signal rounds only and
counts every class; the E91 split keeps key setting pairs only. Statistics:
the CHSH value S of simulated singlet outcomes (Ekert 1991 settings) against
-2*sqrt(2) within 5 standard errors, the standard error the code reports
checked against the spread of S over seeded repetitions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qnetstack.application.qkd.sifting import EKERT_1991, decoy_basis_counts, sift_bb84, sift_decoy, sift_e91
from qnetstack.application.qkd.types import DecoyRecords, RawRecords, SiftedKey

PROPERTY = settings(derandomize=True, deadline=None, max_examples=100)

rounds = st.integers(0, 60).flatmap(
    lambda n: st.tuples(
        *(st.lists(st.integers(0, 1), min_size=n, max_size=n) for _ in range(5)), st.lists(st.integers(0, 2), min_size=n, max_size=n)
    )
)


def _raw(columns) -> RawRecords:
    alice_basis, alice_bit, bob_basis, bob_bit, detected, _ = columns
    return RawRecords(alice_basis=alice_basis, alice_bit=alice_bit, bob_basis=bob_basis, bob_bit=bob_bit, detected=detected)


@PROPERTY
@given(rounds)
def test_bb84_sifting_keeps_exactly_the_detected_rounds_with_agreeing_bases(columns):
    records = _raw(columns)
    key = sift_bb84(records)
    expected = [i for i in range(len(records)) if records.detected[i] and records.alice_basis[i] == records.bob_basis[i]]
    assert key.rounds.tolist() == expected
    assert key.alice.tolist() == [int(records.alice_bit[i]) for i in expected]
    assert key.bob.tolist() == [int(records.bob_bit[i]) for i in expected]


@PROPERTY
@given(rounds)
def test_decoy_sifting_keys_on_the_signal_class_and_counts_every_class(columns):
    alice_basis, alice_bit, bob_basis, bob_bit, detected, classes = columns
    records = DecoyRecords(
        alice_basis=alice_basis,
        alice_bit=alice_bit,
        bob_basis=bob_basis,
        bob_bit=bob_bit,
        detected=detected,
        intensity_class=classes,
        intensities=(0.5, 0.1, 0.0),
        signal_class=0,
    )
    sifted = sift_decoy(records)
    agree = [i for i in range(len(records)) if alice_basis[i] == bob_basis[i]]
    assert all(classes[i] == 0 and detected[i] and i in agree for i in sifted.key.rounds)
    assert len(sifted.key) == sum(1 for i in agree if classes[i] == 0 and detected[i])
    for k in range(3):
        in_class = [i for i in agree if classes[i] == k]
        assert sifted.counts.sent[k] == len(in_class)
        assert sifted.counts.detected[k] == sum(detected[i] for i in in_class)
        assert sifted.counts.errors[k] == sum(1 for i in in_class if detected[i] and alice_bit[i] != bob_bit[i])
    z = decoy_basis_counts(records, 0)
    x = decoy_basis_counts(records, 1)
    # every detected round with agreeing bases is in exactly one of the two bases
    assert [a + b for a, b in zip(z.detections, x.detections)] == list(sifted.counts.detected)
    assert [a + b for a, b in zip(z.errors, x.errors)] == list(sifted.counts.errors)


def _singlet_rounds(rng: np.random.Generator, n: int) -> RawRecords:
    """E91 rounds on the singlet: settings uniform over 3 x 3, outcomes with P(equal) = (1 - cos(a - b)) / 2."""
    alice_angles = np.array([0.0, math.pi / 4, math.pi / 2])
    bob_angles = np.array([math.pi / 4, math.pi / 2, 3 * math.pi / 4])
    a = rng.integers(0, 3, n)
    b = rng.integers(0, 3, n)
    equal = rng.random(n) < (1 - np.cos(alice_angles[a] - bob_angles[b])) / 2
    alice_bit = rng.integers(0, 2, n)
    bob_bit = np.where(equal, alice_bit, 1 - alice_bit)
    return RawRecords(alice_basis=a, alice_bit=alice_bit, bob_basis=b, bob_bit=bob_bit, detected=np.ones(n, dtype=bool))


def test_e91_on_the_singlet_gives_identical_keys_and_s_near_minus_two_root_two():
    # 90 000 rounds: each CHSH setting pair gets ~10 000, so SE(S) ~ 0.01 and 5 SE ~ 0.05.
    records = _singlet_rounds(np.random.default_rng(91), 90_000)
    sifted = sift_e91(records, EKERT_1991)
    assert len(sifted.key) > 0 and sifted.key.errors == 0  # equal angles on the singlet: perfectly anticorrelated, Bob's bits flipped
    key_pairs = {(int(records.alice_basis[i]), int(records.bob_basis[i])) for i in sifted.key.rounds}
    assert key_pairs == {(1, 0), (2, 1)}
    assert abs(sifted.chsh.s - (-2 * math.sqrt(2))) < 5 * sifted.chsh.standard_error
    assert abs(sifted.chsh.s) > 2 + 5 * sifted.chsh.standard_error  # a violation, beyond noise
    assert set(sifted.chsh.correlators) == {(0, 0), (0, 2), (2, 0), (2, 2)}


def test_the_reported_chsh_standard_error_matches_the_spread_over_repetitions():
    # 200 repetitions of 9 000 rounds: the sample standard deviation of S is
    # itself known to ~5 % (1/sqrt(2*199)); the reported SE must agree within 20 %.
    values, errors = [], []
    for seed in range(200):
        chsh = sift_e91(_singlet_rounds(np.random.default_rng(seed), 9_000)).chsh
        values.append(chsh.s)
        errors.append(chsh.standard_error)
    spread = float(np.std(values, ddof=1))
    assert 0.8 < float(np.mean(errors)) / spread < 1.2


def test_a_chsh_setting_pair_with_no_rounds_is_named():
    records = RawRecords(alice_basis=[1, 2], alice_bit=[0, 1], bob_basis=[0, 1], bob_bit=[1, 0], detected=[1, 1])
    with pytest.raises(ValueError, match=r"chsh_terms: no detected round with settings \(0, 0\)"):
        sift_e91(records)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"alice_bit": [0, 2]}, "alice_bit"),
        ({"bob_basis": [0]}, "bob_basis"),
        ({"detected": [[1, 1]]}, "detected"),
        ({"alice_basis": [-1, 0]}, "alice_basis"),
    ],
)
def test_bad_records_are_refused_naming_the_field(change, field):
    good = {"alice_basis": [0, 1], "alice_bit": [0, 1], "bob_basis": [0, 1], "bob_bit": [0, 1], "detected": [1, 0]}
    with pytest.raises(ValueError, match=f"^{field}:"):
        RawRecords(**{**good, **change})


def test_records_are_read_only_copies():
    bits = np.array([0, 1, 1], dtype=np.uint8)
    key = SiftedKey(bits, bits)
    bits[0] = 1
    assert key.alice[0] == 0  # a copy
    with pytest.raises(ValueError):
        key.alice[0] = 1  # read-only


def test_decoy_records_refuse_a_class_without_an_intensity():
    with pytest.raises(ValueError, match="^intensity_class:"):
        DecoyRecords(
            alice_basis=[0], alice_bit=[0], bob_basis=[0], bob_bit=[0], detected=[1], intensity_class=[3], intensities=(0.5, 0.1, 0.0)
        )
