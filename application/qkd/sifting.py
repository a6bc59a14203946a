"""Sifting: from the rounds both ends recorded to the rounds a key is made of.

* BB84 (Bennett & Brassard 1984) and BBM92 (Bennett, Brassard & Mermin, PRL
  68, 557, 1992): keep the detected rounds where the two ends chose the same
  basis (:func:`sift_bb84`; BBM92 is the same step on pairs).
* Decoy BB84 (Hwang 2003; Lo, Ma & Chen, PRL 94, 230504, 2005; Ma, Qi, Zhao &
  Lo, PRA 72, 012326, 2005): the key is made of signal-class rounds only; the
  rounds of every class, bases agreeing, are counted for the decoy estimates
  (:func:`sift_decoy`). :func:`decoy_basis_counts` gives the per-basis counts
  the finite-key bound of Lim, Curty, Walenta, Xu & Zbinden (PRA 89, 022307,
  2014) takes, where every class contributes to the key.
* E91 (Ekert, PRL 67, 661, 1991): rounds with the key setting pairs make the
  key; rounds with the four CHSH setting pairs (Clauser, Horne, Shimony & Holt,
  PRL 23, 880, 1969) give S and its standard error (:func:`sift_e91`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qnetstack.application.qkd.types import (
    BasisCounts,
    ChshEstimate,
    DecoyCounts,
    DecoyRecords,
    DecoySifted,
    E91Sifted,
    RawRecords,
    SiftedKey,
)

__all__ = ["sift_bb84", "sift_decoy", "decoy_basis_counts", "E91Settings", "EKERT_1991", "sift_e91", "chsh_estimate"]


def sift_bb84(records: RawRecords) -> SiftedKey:
    """The detected rounds whose bases agree, in round order (BB84, BBM92)."""
    keep = np.flatnonzero(records.detected & (records.alice_basis == records.bob_basis))
    return SiftedKey(records.alice_bit[keep], records.bob_bit[keep], keep)


def sift_decoy(records: DecoyRecords) -> DecoySifted:
    """Key from the signal class; gains and error counts of every class (bases agreeing).

    A class's ``sent`` counts its rounds with agreeing bases, detected or not:
    the basis choice is independent of detection, so detected/sent is the
    class's gain Q_k of Ma et al. (2005).
    """
    agree = records.alice_basis == records.bob_basis
    wrong = records.alice_bit != records.bob_bit
    sent, detected, errors = [], [], []
    for k in range(len(records.intensities)):
        in_class = agree & (records.intensity_class == k)
        seen = in_class & records.detected
        sent.append(int(np.count_nonzero(in_class)))
        detected.append(int(np.count_nonzero(seen)))
        errors.append(int(np.count_nonzero(seen & wrong)))
    counts = DecoyCounts(records.intensities, tuple(sent), tuple(detected), tuple(errors))
    keep = np.flatnonzero(agree & records.detected & (records.intensity_class == records.signal_class))
    key = SiftedKey(records.alice_bit[keep], records.bob_bit[keep], keep)
    return DecoySifted(key=key, counts=counts, signal_class=records.signal_class)


def decoy_basis_counts(records: DecoyRecords, basis: int) -> BasisCounts:
    """Per intensity class, detections and errors among rounds where both ends chose ``basis`` (Lim et al. 2014's n_{B,k}, m_{B,k})."""
    both = records.detected & (records.alice_basis == basis) & (records.bob_basis == basis)
    wrong = records.alice_bit != records.bob_bit
    detections = tuple(int(np.count_nonzero(both & (records.intensity_class == k))) for k in range(len(records.intensities)))
    errors = tuple(int(np.count_nonzero(both & wrong & (records.intensity_class == k))) for k in range(len(records.intensities)))
    return BasisCounts(detections, errors)


@dataclass(frozen=True)
class E91Settings:
    """Which setting pairs (Alice's index, Bob's index) make the key and which the CHSH test.

    ``chsh_terms`` holds (a, b, sign) with S = sum of sign * E(a, b).
    ``anticorrelated`` says the key pairs give opposite bits on the ideal state
    (the singlet), so Bob's key bits are flipped.
    """

    key_pairs: tuple[tuple[int, int], ...]
    chsh_terms: tuple[tuple[int, int, int], ...]
    anticorrelated: bool


# Ekert (1991): Alice measures at 0, pi/4, pi/2 (settings 0, 1, 2), Bob at pi/4,
# pi/2, 3pi/4 (settings 0, 1, 2), on the singlet. Equal angles (Alice 1 with Bob 0,
# Alice 2 with Bob 1) give anticorrelated key bits; S = E(a1,b1) - E(a1,b3) +
# E(a3,b1) + E(a3,b3) is -2*sqrt(2) on the singlet, |S| <= 2 with local hidden variables.
EKERT_1991 = E91Settings(
    key_pairs=((1, 0), (2, 1)),
    chsh_terms=((0, 0, 1), (0, 2, -1), (2, 0, 1), (2, 2, 1)),
    anticorrelated=True,
)


def chsh_estimate(records: RawRecords, terms: tuple[tuple[int, int, int], ...]) -> ChshEstimate:
    """S from the detected rounds of each CHSH setting pair, with the standard error from the four correlators.

    Each correlator is a mean of +-1 outcomes over its own rounds, so its
    standard error is sqrt((1 - E^2) / n); the four are independent, so their
    variances add.
    """
    product_plus = records.alice_bit == records.bob_bit
    s, variance = 0.0, 0.0
    correlators: dict[tuple[int, int], tuple[float, int]] = {}
    for a, b, sign in terms:
        rounds = records.detected & (records.alice_basis == a) & (records.bob_basis == b)
        n = int(np.count_nonzero(rounds))
        if n == 0:
            raise ValueError(f"chsh_terms: no detected round with settings ({a}, {b})")
        same = int(np.count_nonzero(rounds & product_plus))
        correlator = (2 * same - n) / n
        correlators[(a, b)] = (correlator, n)
        s += sign * correlator
        variance += (1.0 - correlator**2) / n
    return ChshEstimate(s=s, standard_error=math.sqrt(variance), correlators=correlators)


def sift_e91(records: RawRecords, settings: E91Settings = EKERT_1991) -> E91Sifted:
    """Split E91 rounds into the key (key setting pairs) and the CHSH estimate (CHSH setting pairs)."""
    key_mask = np.zeros(len(records), dtype=np.bool_)
    for a, b in settings.key_pairs:
        key_mask |= (records.alice_basis == a) & (records.bob_basis == b)
    keep = np.flatnonzero(key_mask & records.detected)
    bob = records.bob_bit[keep] ^ np.uint8(1) if settings.anticorrelated else records.bob_bit[keep]
    key = SiftedKey(records.alice_bit[keep], bob, keep)
    return E91Sifted(key=key, chsh=chsh_estimate(records, settings.chsh_terms))
