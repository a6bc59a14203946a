"""Pulse trains in the clicks-only form (``SendPulses.record_format="clicks"``, ``ClickRecords``).

The clicks-only draw must give records with the distribution of the per-pulse
draw. The two draws use the random stream differently, so they are compared in
distribution: per cell (intensity class, both bases, the receiver's bit, double
click) the numbers of clicked pulses of two independent trains of N pulses
differ by at most 5 standard errors of a difference of two binomial counts,
√(2 N p (1 − p)) with p the pooled cell frequency (two-sided p ≈ 6e-7 per cell
for a correct draw; 48 cells). Fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from qnetstack.physical.backends.pulses import PulseLink, PulseTrainBackend
from qnetstack.physical.components.channels import FibreChannel
from qnetstack.physical.components.detectors import Detector
from qnetstack.physical.params import InterceptResend
from qnetstack.physical.service import ClickRecords, IntensityClass, PulseRecords, SendPulses

SIGMAS = 5
CLASSES = [
    IntensityClass(mean_photon_number=0.5, probability=0.5),
    IntensityClass(mean_photon_number=0.1, probability=0.3),
    IntensityClass(mean_photon_number=0.0, probability=0.2),
]
# Short fibre and a noisy detector, so that photon clicks, dark clicks and double clicks
# all occur thousands of times in 10^6 pulses: p_d = 1 − e^(−0.02) ≈ 0.02 per detector and gate.
NOISY = Detector(efficiency=0.5, dark_count_rate_hz=2e7)


def link(detector: Detector = NOISY, km: float = 10.0) -> PulseLink:
    return PulseLink(neighbour="bob", fibre=FibreChannel(length_km=km), detector=detector, misalignment=0.05)


def train(lnk: PulseLink, pulses: int, fmt: str, seed: int, adversary: object = None, **fields: object) -> list:
    req = SendPulses(request_id=1, neighbour="bob", pulses=pulses, intensities=CLASSES, record_format=fmt, **fields)  # type: ignore[arg-type]
    backend = PulseTrainBackend([lnk], adversary={"bob": adversary} if adversary is not None else None)
    return list(backend.send(req, np.random.default_rng(seed)))


def as_clicks(blocks: list) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per block: (clicked positions, their record bytes, sent counts), from either record format."""
    out = []
    for b in blocks:
        if isinstance(b, PulseRecords):
            offsets, records, sent = ClickRecords.from_packed(np.frombuffer(b.records, dtype=np.uint8), len(CLASSES))
        else:
            offsets, records, sent = b.offsets, b.records, b.sent
        out.append((np.frombuffer(offsets, dtype="<i4"), np.frombuffer(records, dtype=np.uint8), np.asarray(sent)))
    return out


def cell_counts(blocks: list) -> tuple[np.ndarray, np.ndarray]:
    """Clicked pulses per record byte value (every field but 'detected'), and sent pulses per class and bases."""
    clicked = np.zeros(256, dtype=np.int64)
    sent = np.zeros(4 * len(CLASSES), dtype=np.int64)
    for _, records, counts in as_clicks(blocks):
        clicked += np.bincount(records, minlength=256)
        sent += counts
    return clicked, sent


def assert_same_distribution(a: np.ndarray, b: np.ndarray, trials: int, what: str) -> None:
    assert a.sum() > 0 and b.sum() > 0, f"{what}: nothing to compare"
    for cell in np.flatnonzero(a + b):
        p = (a[cell] + b[cell]) / (2 * trials)
        se = math.sqrt(2 * trials * p * (1 - p))
        assert abs(int(a[cell]) - int(b[cell])) <= SIGMAS * se, (
            f"{what} cell {cell:#010b}: {a[cell]} vs {b[cell]} (5 SE = {SIGMAS * se:.1f})"
        )


@pytest.mark.parametrize(
    "detector",
    [NOISY, Detector(efficiency=0.5, dark_count_rate_hz=2e7, dead_time_ns=50.0, afterpulse_probability=0.1)],
    ids=["ideal-timing", "dead-time-and-after-pulses"],
)
def test_clicks_only_draw_has_the_distribution_of_the_per_pulse_draw(detector):
    pulses = 500_000  # 4 blocks of 1.25e5; about 6e4 clicked pulses per train
    dense = train(link(detector), pulses, "per_pulse", seed=1, block_size=125_000)
    sparse = train(link(detector), pulses, "clicks", seed=2, block_size=125_000)
    dense_clicked, dense_sent = cell_counts(dense)
    sparse_clicked, sparse_sent = cell_counts(sparse)
    assert dense_sent.sum() == sparse_sent.sum() == pulses
    assert_same_distribution(dense_clicked, sparse_clicked, pulses, "clicked")
    assert_same_distribution(dense_sent, sparse_sent, pulses, "sent")
    doubles = sum(int(np.count_nonzero(records & 4)) for _, records, _ in as_clicks(sparse))
    assert doubles > 1000  # the comparison covers double clicks, not only single ones


def test_dead_time_holds_in_the_clicks_only_draw():
    detector = Detector(efficiency=0.5, dark_count_rate_hz=2e7, dead_time_ns=50.0)  # 5 pulses at 10^8 per second
    for offsets, records, _ in as_clicks(train(link(detector), 200_000, "clicks", seed=3, block_size=50_000)):
        # a detector (the bit of a single click) never clicks twice within its dead time
        for bit in (0, 1):
            mine = offsets[((records >> 1) & 1 == bit) | ((records & 4) > 0)]
            assert len(mine) > 100 and np.all(np.diff(mine) >= 5)


def test_clicks_only_blocks_have_the_structure_of_per_pulse_blocks():
    lnk = link()
    dense = train(lnk, 120_001, "per_pulse", seed=4, block_size=50_000)
    sparse = train(lnk, 120_001, "clicks", seed=4, block_size=50_000)
    assert [type(b) for b in sparse] == [ClickRecords] * 3
    for d, s in zip(dense, sparse, strict=True):
        assert (s.block, s.first_pulse, len(s), s.emitted_ns, s.delivered_ns, s.last) == (
            d.block,
            d.first_pulse,
            len(d),
            d.emitted_ns,
            d.delivered_ns,
            d.last,
        )
        assert s.sent_counts.sum() == len(s) and s.sent_counts.shape == (len(CLASSES), 2, 2)
        clicked = s.clicked
        assert np.all(np.diff(clicked) > 0) and clicked[0] >= 0 and clicked[-1] < len(s)
        assert np.all(np.frombuffer(s.records, dtype=np.uint8) & 1)
        assert set(np.unique(s.intensity_class)) <= set(range(len(CLASSES)))
    again = train(lnk, 120_001, "clicks", seed=4, block_size=50_000)
    assert [b.model_dump() for b in again] == [b.model_dump() for b in sparse]  # same seed, same records


def test_an_attacked_link_gives_the_clicks_of_its_per_pulse_records():
    attack = InterceptResend(fraction=1.0)
    dense = train(link(), 100_000, "per_pulse", seed=5, adversary=attack)
    sparse = train(link(), 100_000, "clicks", seed=5, adversary=attack)
    for (do, dr, ds), (so, sr, ss) in zip(as_clicks(dense), as_clicks(sparse), strict=True):
        assert np.array_equal(do, so) and np.array_equal(dr, sr) and np.array_equal(ds, ss)


def test_gain_and_error_rate_of_a_long_clicks_only_train_follow_ma_qi_zhao_lo():
    # GYS as Ma, Qi, Zhao & Lo (PRA 72, 012326, 2005) model it, at 50 km, 10^8 pulses (about 0.5 s
    # here, where the per-pulse draw takes about 30 s): signal class ≈ 2.5e7 pulses with bases agreeing.
    gys = PulseLink(
        neighbour="bob",
        fibre=FibreChannel(length_km=50.0, db_per_km=0.21),
        detector=Detector(efficiency=0.045, dark_count_rate_hz=850.0),
        misalignment=0.033,
    )
    blocks = train(gys, 100_000_000, "clicks", seed=6, block_size=10_000_000)
    eta, y0, e_d = gys.transmittance, gys.vacuum_yield, gys.misalignment
    sent = sum(b.sent_counts for b in blocks)
    for k, c in enumerate(CLASSES):
        agreeing = int(sent[k, 0, 0] + sent[k, 1, 1])
        detected = errors = 0
        for b in blocks:
            mine = (b.intensity_class == k) & (b.alice_basis == b.bob_basis)
            detected += int(np.count_nonzero(mine))
            errors += int(np.count_nonzero(mine & (b.alice_bit != b.bob_bit)))
        gain = y0 + 1 - math.exp(-eta * c.mean_photon_number)
        error = 0.5 * y0 + e_d * (1 - math.exp(-eta * c.mean_photon_number))
        for observed, expected, what in ((detected, gain, "gain"), (errors, error, "error")):
            se = math.sqrt(expected * (1 - expected) / agreeing)
            assert abs(observed / agreeing - expected) <= SIGMAS * se, f"class {k} {what}: {observed / agreeing:.4g} vs {expected:.4g}"


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"sent": [1, 1, 1, 1]}, "sent"), ({"offsets": b"\x00\x00"}, "offsets"), ({"record_format": "sparse"}, "record_format")],
)
def test_inconsistent_click_records_and_unknown_formats_are_refused_naming_the_field(fields, named):
    base = {
        "request_id": 1,
        "neighbour": "bob",
        "block": 0,
        "first_pulse": 0,
        "pulses": 5,
        "offsets": b"\x01\x00\x00\x00",
        "records": b"\x01",
        "sent": [2, 1, 1, 1],
        "emitted_ns": 0,
        "delivered_ns": 10,
        "last": True,
    }
    if named == "record_format":
        with pytest.raises(ValidationError, match="record_format"):
            SendPulses(request_id=1, neighbour="bob", pulses=5, intensities=CLASSES, **fields)  # type: ignore[arg-type]
        return
    ClickRecords(**base)  # the base is valid
    with pytest.raises(ValidationError) as info:
        ClickRecords(**(base | fields))
    assert named in str(info.value)
