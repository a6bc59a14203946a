"""Pulse records through the QKD estimation stages: the asymptotic decoy-BB84 rate at 50 km.

The physical layer's records (physical/backends/pulses.py) are turned, block by
block, into ``DecoyRecords`` and sifted by ``sift_decoy``; the counts of all
blocks are summed, bounded by the vacuum + weak decoy method and put into the
GLLP rate (application/qkd). The result must be the closed-form rate the same
estimate gives on expected counts (``vacuum_weak_decoy_rate``, Ma, Qi, Zhao &
Lo, PRA 72, 012326, 2005). Tests may call the application package: they sit
outside the layering.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from qnetstack.application.qkd.estimation import decoy_estimate
from qnetstack.application.qkd.key_length import GYS, FibreDetectorModel, decoy_bb84_rate, gllp_rate, vacuum_weak_decoy_rate
from qnetstack.application.qkd.sifting import sift_decoy
from qnetstack.application.qkd.types import DecoyCounts, DecoyRecords
from qnetstack.physical.backends.pulses import PulseLink, PulseTrainBackend
from qnetstack.physical.components.channels import FibreChannel
from qnetstack.physical.components.detectors import Detector
from qnetstack.physical.service import IntensityClass, PulseRecords, SendPulses

MU, NU = 0.48, 0.1
INTENSITIES = (MU, NU, 0.0)


def link_for(model: FibreDetectorModel, km: float) -> PulseLink:
    """The pulse link a FibreDetectorModel describes: two detectors of p_d = Y0/2 over a 1 ns gate."""
    dark_rate_hz = -math.log(1.0 - (1.0 - math.sqrt(1.0 - model.dark_yield))) * 1e9
    return PulseLink(
        neighbour="bob",
        fibre=FibreChannel(length_km=km, db_per_km=model.attenuation_db_per_km),
        detector=Detector(efficiency=model.bob_efficiency, dark_count_rate_hz=dark_rate_hz),
        gate_ns=1.0,
        misalignment=model.detector_error,
    )


def decoy_counts(link: PulseLink, pulses: int, probabilities: tuple[float, float, float], seed: int) -> DecoyCounts:
    """sift_decoy on each block's records, the counts summed over the blocks."""
    classes = [IntensityClass(mean_photon_number=m, probability=p) for m, p in zip(INTENSITIES, probabilities)]
    request = SendPulses(request_id=0, neighbour="bob", pulses=pulses, intensities=classes, block_size=2_000_000)
    sent, detected, errors = np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64)
    for block in PulseTrainBackend([link]).send(request, np.random.default_rng(seed)):
        assert isinstance(block, PulseRecords)
        records = DecoyRecords.from_pulses(block, INTENSITIES)
        counts = sift_decoy(records).counts
        sent += counts.sent
        detected += counts.detected
        errors += counts.errors
    return DecoyCounts(INTENSITIES, tuple(map(int, sent)), tuple(map(int, detected)), tuple(map(int, errors)))


def rate_of(counts: DecoyCounts, model: FibreDetectorModel) -> float:
    estimate = decoy_estimate(counts, signal=0, decoy=1, vacuum=2)
    return gllp_rate(
        model.sifting_factor, estimate.gain_signal, estimate.qber_signal, estimate.q1_lower, estimate.e1_upper, model.ec_efficiency
    )


def rate_standard_error(counts: DecoyCounts, model: FibreDetectorModel) -> float:
    """The rate's standard error by the delta method: per class, the correct and the wrong
    detections are independent Poisson counts (both probabilities are << 1), their variances their
    values; the rate's derivatives by central differences of one count."""
    variance = 0.0
    for k in range(3):
        for wrong in (False, True):
            value = counts.errors[k] if wrong else counts.detected[k] - counts.errors[k]
            if value == 0:
                continue
            step = max(1, round(0.01 * value))

            def moved(delta: int, k: int = k, wrong: bool = wrong) -> float:
                detected = list(counts.detected)
                errors = list(counts.errors)
                detected[k] += delta
                if wrong:
                    errors[k] += delta
                return rate_of(DecoyCounts(counts.intensities, counts.sent, tuple(detected), tuple(errors)), model)

            slope = (moved(step) - moved(-step)) / (2 * step)
            variance += slope**2 * value
    return math.sqrt(variance)


@pytest.mark.slow
def test_records_through_sifting_and_decoy_estimation_give_the_closed_form_rate_at_50_km():
    """Within 5 % of ``vacuum_weak_decoy_rate`` at 50 km.

    Model: GYS (0.21 dB/km, Y0 = 1.7e-6, e_d = 3.3 %, f = 1.22) with a 93 % receiver (an
    SNSPD, Marsili et al. 2013) instead of 4.5 %: at 4.5 % the weak decoy's ~300 errors per
    10^8 pulses make the rate's standard error ~7 %, and 5 % would need ~10^10 pulses.
    Sample: 1.5 × 10^8 pulses, classes μ = 0.48, ν = 0.1, vacuum with probabilities 0.4,
    0.5, 0.1 (the weak decoy's errors dominate the variance, so it gets half the pulses);
    the delta-method standard error on expected counts is then 0.91 % of the rate. The test
    requires it to be at most 1 %, so 5 % is at least 5 standard errors.
    """
    model = replace(GYS, bob_efficiency=0.93)
    counts = decoy_counts(link_for(model, 50.0), 150_000_000, (0.4, 0.5, 0.1), seed=50)
    closed = vacuum_weak_decoy_rate(model, 50.0, MU, NU)
    rate = rate_of(counts, model)
    se = rate_standard_error(counts, model)
    assert se <= 0.01 * closed, f"standard error {se:.3g} is more than 1 % of {closed:.4g}: the sample is too small for the test"
    assert rate == pytest.approx(closed, rel=0.05), f"rate {rate:.5g} vs closed form {closed:.5g} (SE {se:.2g})"
    assert rate < decoy_bb84_rate(model, 50.0, MU)  # a vacuum and one decoy bound Q1 and e1 from below and above


def test_the_link_for_a_model_has_its_transmittance_and_vacuum_yield():
    link = link_for(GYS, 50.0)
    assert link.transmittance == pytest.approx(GYS.transmittance(50.0), rel=1e-12)
    assert link.vacuum_yield == pytest.approx(GYS.dark_yield, rel=1e-9)


def test_a_short_train_gives_counts_the_estimation_stages_accept():
    """10^6 pulses at 0 km (GYS): every class detected, and the rate is positive."""
    counts = decoy_counts(link_for(GYS, 0.0), 1_000_000, (0.5, 0.3, 0.2), seed=1)
    assert all(n > 0 for n in counts.sent) and counts.detected[0] > 0 and counts.detected[1] > 0
    assert rate_of(counts, GYS) > 0.0
