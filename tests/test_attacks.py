"""Eavesdroppers on a pulse link (physical/backends/pulses.py) seen through the QKD stages.

Each adversary acts on the pulses inside the physical simulation; the
receiver's records go, block by block, through ``sift_decoy`` (application/qkd,
as tests/test_pulses_rate.py does), then through ``estimate_qber``,
``decoy_estimate`` and ``gllp_rate``. What Eve holds comes from the backend's oracle
callback, never from the records.

Statistical checks use fixed seeds, state their sample sizes and allow 5
standard errors (two-sided p ~ 6e-7 for a correct simulation), the tolerance
of the physical conformance suite. The expected values are the gain and
error-rate forms of Ma, Qi, Zhao & Lo (PRA 72, 012326, 2005) with the attack
written in: they hold up to the double-click and dark-count overlap terms
(third order in ημ and Y0 ημ) that specs/physical.md §8.2 already neglects.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from qnetstack.application.qkd.estimation import decoy_estimate, estimate_qber
from qnetstack.application.qkd.key_length import binary_entropy, gllp_rate
from qnetstack.application.qkd.sifting import sift_decoy
from qnetstack.application.qkd.types import AbortReason, DecoyCounts, DecoyRecords, SiftedKey
from qnetstack.physical.backends.heralding_backend import HeraldingModelBackend
from qnetstack.physical.backends.pulses import EavesdropperRecords, PulseLink, PulseTrainBackend, pns_blocking
from qnetstack.physical.backends.qutip_backend import QutipSingleClickBackend
from qnetstack.physical.components.channels import FibreChannel
from qnetstack.physical.components.detectors import Detector
from qnetstack.physical.conformance.suite import SUITE
from qnetstack.physical.params import BeamSplitting, InterceptResend, PhotonNumberSplitting
from qnetstack.physical.service import IntensityClass, PulseRecords, SendPulses

SIGMAS = 5
MU, NU = 0.5, 0.1
INTENSITIES = (MU, NU, 0.0)
EC_EFFICIENCY = 1.16  # f of a modern error correction (Cascade variants reach 1.05-1.2: Martinez-Mateo et al., QIC 15, 453, 2015)


def link(km: float, misalignment: float, dark_rate_hz: float = 1000.0, neighbour: str = "bob") -> PulseLink:
    """0.2 dB/km fibre to a receiver of efficiency 0.5 (an InGaAs-to-SNSPD middle ground) over a 1 ns gate."""
    return PulseLink(
        neighbour=neighbour,
        fibre=FibreChannel(length_km=km, db_per_km=0.2),
        detector=Detector(efficiency=0.5, dark_count_rate_hz=dark_rate_hz),
        misalignment=misalignment,
    )


@dataclass
class Run:
    """Totals of a request's blocks: counts with agreeing bases, the signal's sifted key and Eve's share of it."""

    counts: DecoyCounts
    key: SiftedKey
    eve_known: int  # sifted signal bits Eve knows once the bases are announced
    eve_wrong: int  # of those, bits where her value is not the sender's (must be 0)


def run(
    the_link: PulseLink, adversary: object, pulses: int, probabilities: tuple[float, float, float], seed: int, block_size: int = 1_000_000
) -> Run:
    classes = [IntensityClass(mean_photon_number=m, probability=p) for m, p in zip(INTENSITIES, probabilities)]
    request = SendPulses(request_id=7, neighbour=the_link.neighbour, pulses=pulses, intensities=classes, block_size=block_size)
    held: list[EavesdropperRecords] = []
    backend = PulseTrainBackend(
        [the_link], adversary=None if adversary is None else {the_link.neighbour: adversary}, eavesdropper_oracle=held.append
    )
    sent, detected, errors = np.zeros(3, np.int64), np.zeros(3, np.int64), np.zeros(3, np.int64)
    alice, bob = [], []
    known = wrong = 0
    for index, block in enumerate(backend.send(request, np.random.default_rng(seed))):
        assert isinstance(block, PulseRecords)
        records = DecoyRecords.from_pulses(block, INTENSITIES)
        sifted = sift_decoy(records)
        sent += sifted.counts.sent
        detected += sifted.counts.detected
        errors += sifted.counts.errors
        alice.append(sifted.key.alice)
        bob.append(sifted.key.bob)
        if adversary is not None:
            eve = held[index]
            assert (eve.block, eve.first_pulse, len(eve.knows_bit)) == (block.block, block.first_pulse, len(block))
            rounds = sifted.key.rounds
            knows = eve.knows_bit[rounds]
            known += int(np.count_nonzero(knows))
            wrong += int(np.count_nonzero(eve.eve_bit[rounds][knows] != block.alice_bit[rounds][knows]))
    key_alice, key_bob = np.concatenate(alice), np.concatenate(bob)
    return Run(
        counts=DecoyCounts(INTENSITIES, *(tuple(map(int, a)) for a in (sent, detected, errors))),
        key=SiftedKey(key_alice, key_bob, np.arange(len(key_alice))),
        eve_known=known,
        eve_wrong=wrong,
    )


def within(observed: int, rounds: int, expected: float) -> tuple[bool, str]:
    """An observed fraction ``observed/rounds`` within 5 binomial standard errors of ``expected``."""
    se = math.sqrt(expected * (1 - expected) / rounds)
    value = observed / rounds
    return abs(value - expected) <= SIGMAS * se, f"{value:.5f} vs {expected:.5f} (N = {rounds}, SE {se:.2g})"


def photon_click(the_link: PulseLink, mu: float) -> float:
    """1 − e^(−ημ): a click from the pulse's photons on the honest line (Ma et al. 2005)."""
    return -math.expm1(-the_link.transmittance * mu)


# ---------------------------------------------------------------- intercept-resend


@pytest.fixture(scope="module")
def intercept_all() -> tuple[PulseLink, Run]:
    """Eve intercepts every pulse. 10 km (η = 0.315), e_d = 0, p_d = 1e-7: 4 × 10^5 pulses, 80 % signal,
    about 2.4 × 10^4 sifted signal bits (SE of a 25 % rate 0.0028)."""
    the_link = link(10.0, misalignment=0.0, dark_rate_hz=100.0)
    return the_link, run(the_link, InterceptResend(), 400_000, (0.8, 0.1, 0.1), seed=11)


def test_intercept_resend_on_every_signal_gives_a_quarter_of_the_sifted_bits_wrong(intercept_all):
    """PHY-PULSE-7: QBER 1/4 ± 5 SE (Bennett & Brassard 1984), here 0.25 less a dark-count share of ~1e-6."""
    the_link, result = intercept_all
    ok, detail = within(result.key.errors, len(result.key), 0.25)
    assert ok, detail
    # the gains stay honest: the attack resends the photon number it found
    ok, detail = within(result.counts.detected[0], result.counts.sent[0], the_link.vacuum_yield + photon_click(the_link, MU))
    assert ok, detail


def test_intercept_resend_on_every_signal_aborts_at_parameter_estimation(intercept_all):
    """estimate_qber on a 2 000-bit sample, threshold 11 % (Shor & Preskill, PRL 85, 441, 2000): abort."""
    _, result = intercept_all
    estimate = estimate_qber(result.key, sample_size=2_000, rng=np.random.default_rng(3), epsilon=1e-10, threshold=0.11)
    assert estimate.abort is AbortReason.QBER_ABOVE_THRESHOLD, estimate
    assert estimate.qber > 0.2
    # the decoy bound on the single-photon error is no better than a coin: no GLLP key either
    bound = decoy_estimate(result.counts, signal=0, decoy=1, vacuum=2)
    assert bound.e1_upper >= 0.2
    rate = gllp_rate(1.0, bound.gain_signal, bound.qber_signal, bound.q1_lower, bound.e1_upper, EC_EFFICIENCY)
    assert rate < 0.0


def test_eve_knows_the_bit_where_her_basis_was_the_senders(intercept_all):
    """Eve's oracle: her value is the sender's bit wherever she claims to know it, on about half the sifted bits."""
    _, result = intercept_all
    assert result.eve_wrong == 0
    ok, detail = within(result.eve_known, len(result.key), 0.5)
    assert ok, detail


@pytest.mark.parametrize("fraction", [0.2, 0.6])
def test_intercept_resend_on_a_fraction_adds_a_quarter_of_it(fraction):
    """PHY-PULSE-7: QBER = honest + f (1/4 − e_d/2) × (photon clicks / all clicks), i.e. f/4 + honest for e_d, Y0 → 0.

    An attacked, sifted photon click is wrong with 1/2 × e_d + 1/2 × 1/2 (Eve's basis right or wrong)
    instead of e_d. 20 km, e_d = 2 %, 4 × 10^5 pulses, ~1.5 × 10^4 sifted signal bits, SE ~0.003.
    """
    the_link = link(20.0, misalignment=0.02)
    result = run(the_link, InterceptResend(fraction=fraction), 400_000, (0.8, 0.1, 0.1), seed=12)
    y0, click = the_link.vacuum_yield, photon_click(the_link, MU)
    honest = (0.5 * y0 + 0.02 * click) / (y0 + click)
    expected = honest + fraction * (0.25 - 0.01) * click / (y0 + click)
    ok, detail = within(result.key.errors, len(result.key), expected)
    assert ok, detail
    # and it is not the honest rate: the test can tell f = 0.2 from no attack
    assert not within(result.key.errors, len(result.key), honest)[0]


def test_single_photon_resend_changes_the_gain_as_well():
    """resend="single_photon": the attacked gain is Y0 + η(1 − e^(−μ)) (one photon whenever the pulse had any),
    not Y0 + 1 − e^(−ημ); the QBER is still 1/4. 10 km, 4 × 10^5 pulses, ~1.6 × 10^5 signal pulses with agreeing bases."""
    the_link = link(10.0, misalignment=0.0, dark_rate_hz=100.0)
    result = run(the_link, InterceptResend(resend="single_photon"), 400_000, (0.8, 0.1, 0.1), seed=13)
    expected_gain = the_link.vacuum_yield + the_link.transmittance * -math.expm1(-MU)
    ok, detail = within(result.counts.detected[0], result.counts.sent[0], expected_gain)
    assert ok, detail
    assert not within(result.counts.detected[0], result.counts.sent[0], the_link.vacuum_yield + photon_click(the_link, MU))[0]
    ok, detail = within(result.key.errors, len(result.key), 0.25)
    assert ok, detail


# ---------------------------------------------------------------- photon-number splitting and beam splitting at 50 km

# 50 km of 0.2 dB/km (t = 0.1) to the 50 % receiver, e_d = 1 %, p_d = 1e-6: 4 × 10^6 pulses, classes
# μ = 0.5, ν = 0.1, vacuum with probabilities 0.5, 0.4, 0.1, so 10^6 signal and 8 × 10^5 decoy
# pulses with agreeing bases, ~2.5 × 10^4 sifted signal bits.
FAR = link(50.0, misalignment=0.01)
FAR_PULSES, FAR_PROBABILITIES = 4_000_000, (0.5, 0.4, 0.1)


@pytest.fixture(scope="module")
def honest_far() -> Run:
    return run(FAR, None, FAR_PULSES, FAR_PROBABILITIES, seed=50)


@pytest.fixture(scope="module")
def pns_far() -> Run:
    return run(FAR, PhotonNumberSplitting(), FAR_PULSES, FAR_PROBABILITIES, seed=51)


@pytest.fixture(scope="module")
def beam_far() -> Run:
    return run(FAR, BeamSplitting(), FAR_PULSES, FAR_PROBABILITIES, seed=52)


def multi_photon_click(mu: float, efficiency: float) -> float:
    """Σ_{n≥2} P_μ(n) [1 − (1 − η_d)^(n−1)], summed term by term (the backend uses a closed form)."""
    return sum(math.exp(-mu) * mu**n / math.factorial(n) * (1 - (1 - efficiency) ** (n - 1)) for n in range(2, 60))


def test_pns_blocking_matches_the_honest_gain_and_keeps_nothing_from_one_photon_pulses():
    """At 50 km forwarding n − 1 photons of the multi-photon pulses alone exceeds the honest gain: b = 1, c > 0."""
    b, c = pns_blocking(MU, FAR.fibre.transmittance(), 0.5)
    assert b == 1.0 and 0.0 < c < 1.0
    assert (1 - c) * multi_photon_click(MU, 0.5) == pytest.approx(photon_click(FAR, MU), rel=1e-12)
    # next to the sender it cannot: forwarding all but one photon falls short, so Eve blocks nothing
    near = link(0.0, misalignment=0.01)
    assert pns_blocking(MU, near.fibre.transmittance(), 0.5) == (0.0, 0.0)
    # in between, she blocks a fraction of the one-photon pulses only
    b, c = pns_blocking(MU, link(30.0, 0.01).fibre.transmittance(), 0.5)
    assert 0.0 < b < 1.0 and c == 0.0
    single = MU * math.exp(-MU) * 0.5
    assert (1 - b) * single + multi_photon_click(MU, 0.5) == pytest.approx(photon_click(link(30.0, 0.01), MU), rel=1e-12)


def test_pns_without_decoys_looks_honest(honest_far, pns_far):
    """PHY-PULSE-8: the signal's gain and QBER under PNS are the honest ones within 5 SE, so a check of
    the signal's gain and QBER alone (no decoys) passes, while Eve knows every sifted bit from a photon."""
    y0, click = FAR.vacuum_yield, photon_click(FAR, MU)
    for result in (honest_far, pns_far):
        ok, detail = within(result.counts.detected[0], result.counts.sent[0], y0 + click)
        assert ok, detail
        ok, detail = within(result.counts.errors[0], result.counts.detected[0], (0.5 * y0 + 0.01 * click) / (y0 + click))
        assert ok, detail
    assert pns_far.eve_wrong == 0
    # every sifted bit but the dark counts' (~1e-6 / 0.025 of them) comes from a multi-photon pulse
    assert pns_far.eve_known >= 0.999 * len(pns_far.key)
    assert honest_far.eve_known == 0


def test_pns_with_decoys_the_single_photon_bound_collapses(honest_far, pns_far):
    """PHY-PULSE-8 and the decoy method (Ma, Qi, Zhao & Lo 2005): the weak decoy's gain falls to
    Y0 + (1 − c) M(ν), far below the honest one, and with it the bound on Y1.

    Honest: Y1_L near the true Y1 = η + Y0 (0.05), still positive with every rate moved 5 standard
    deviations the unfavourable way. PNS: Y1_L = 0 even without any allowance, so Q1 = 0 and the GLLP rate
    is negative: no key. (Measured, seeds 50 and 51: Y1_L 0.049 honest, 0.042 with 5 SD; 0 under PNS,
    whose raw bound is ~6 standard errors (of the decoy gain) below 0. The decoy's gain: 5.0e-3 honest,
    1.2e-3 under PNS.)
    """
    _, c = pns_blocking(MU, FAR.fibre.transmittance(), 0.5)
    ok, detail = within(pns_far.counts.detected[1], pns_far.counts.sent[1], FAR.vacuum_yield + (1 - c) * multi_photon_click(NU, 0.5))
    assert ok, detail
    assert not within(pns_far.counts.detected[1], pns_far.counts.sent[1], FAR.vacuum_yield + photon_click(FAR, NU))[0]

    honest = decoy_estimate(honest_far.counts, signal=0, decoy=1, vacuum=2, standard_deviations=SIGMAS)
    attacked = decoy_estimate(pns_far.counts, signal=0, decoy=1, vacuum=2)
    assert honest.y1_lower > 0.5 * (FAR.transmittance + FAR.vacuum_yield)
    assert attacked.y1_lower == 0.0 and attacked.q1_lower == 0.0
    for bound, has_key in ((honest, True), (attacked, False)):
        rate = gllp_rate(0.5, bound.gain_signal, bound.qber_signal, bound.q1_lower, bound.e1_upper, EC_EFFICIENCY)
        assert (rate > 0.0) is has_key, (bound, rate)


def test_beam_splitting_leaves_the_records_honest(beam_far):
    """PHY-PULSE-9: gains and QBER of signal and decoy within 5 SE of the honest forms; Eve's share of the
    sifted signal bits is the expected P(Eve taps >= 1 photon and Bob clicks) / Q_μ, from
    Σ_n P_μ(n) [(1 − (1 − tη_d)^n) − t^n (1 − (1 − η_d)^n)] = (1 − e^(−tη_dμ)) − e^(−μ(1−t)) + e^(−μ(1 − t + tη_d))."""
    y0 = FAR.vacuum_yield
    for k, mu in ((0, MU), (1, NU)):
        click = photon_click(FAR, mu)
        ok, detail = within(beam_far.counts.detected[k], beam_far.counts.sent[k], y0 + click)
        assert ok, detail
        ok, detail = within(beam_far.counts.errors[k], beam_far.counts.detected[k], (0.5 * y0 + 0.01 * click) / (y0 + click))
        assert ok, detail
    t = FAR.fibre.transmittance()
    tapped = photon_click(FAR, MU) - math.exp(-MU * (1 - t)) + math.exp(-MU * (1 - t + 0.5 * t))
    ok, detail = within(beam_far.eve_known, len(beam_far.key), tapped / (y0 + photon_click(FAR, MU)))
    assert ok, detail
    assert beam_far.eve_wrong == 0


def test_beam_splitting_the_decoy_key_length_stays_below_what_eve_does_not_know(beam_far):
    """The GLLP length from the decoy estimate, ℓ = N [Q1_L (1 − h(e1_U)) − f Q_μ h(E_μ)] over the N signal
    pulses with agreeing bases, is at most the sifted bits less Eve's known bits less the error
    correction's leak. Measured (seed 52): ℓ = 11 057 against 24 510 − 8 913 − 2 273 = 13 324; the gap
    is ~7 standard errors of ℓ (~300 bits, from Y1_L's spread: ~4 000 decoy clicks) and ~30 of the
    count of Eve's bits (~75).

    A length that credits every detection as a single photon, n (1 − h(E)) − leak, is above that
    limit: it would be a key Eve partly knows.
    """
    counts = beam_far.counts
    bound = decoy_estimate(counts, signal=0, decoy=1, vacuum=2)
    n = len(beam_far.key)
    qber = beam_far.key.errors / n
    leak = EC_EFFICIENCY * n * binary_entropy(qber)
    length = counts.sent[0] * gllp_rate(1.0, bound.gain_signal, bound.qber_signal, bound.q1_lower, bound.e1_upper, EC_EFFICIENCY)
    left = n - beam_far.eve_known - leak
    assert 0.0 < length <= left, (length, left)
    naive = n * (1.0 - binary_entropy(qber)) - leak
    assert naive > left


# ---------------------------------------------------------------- scope, format and bad input


def test_an_adversary_acts_only_on_its_own_link():
    """PHY-PULSE-6: with Eve on the link to bob, a request to carol gives the honest records bit for bit, and
    the request to bob keeps the block structure (PHY-PULSE-3) of the honest answer."""
    bob, carol = link(10.0, 0.01), link(10.0, 0.01, neighbour="carol")
    classes = [IntensityClass(mean_photon_number=m, probability=p) for m, p in zip(INTENSITIES, (0.5, 0.4, 0.1))]
    honest = PulseTrainBackend([bob, carol])
    attacked = PulseTrainBackend([bob, carol], adversary={"bob": InterceptResend()})
    to_carol = SendPulses(request_id=1, neighbour="carol", pulses=30_000, intensities=classes, block_size=7_000)
    assert list(attacked.send(to_carol, np.random.default_rng(5), 100)) == list(honest.send(to_carol, np.random.default_rng(5), 100))
    to_bob = to_carol.model_copy(update={"neighbour": "bob"})
    for adversary in (InterceptResend(), PhotonNumberSplitting(), BeamSplitting()):
        backend = PulseTrainBackend([bob, carol], adversary={"bob": adversary})
        blocks = list(backend.send(to_bob, np.random.default_rng(5), 100))
        reference = list(honest.send(to_bob, np.random.default_rng(5), 100))
        strip = {"records"}
        assert [b.model_dump(exclude=strip) for b in blocks] == [b.model_dump(exclude=strip) for b in reference]
        assert [len(b) for b in blocks] == [len(b) for b in reference]
        # the first block's sender side is drawn before Eve acts, so it is the honest one
        assert np.array_equal(blocks[0].alice_bit, reference[0].alice_bit)
        assert blocks[0].records != reference[0].records


def test_no_adversary_is_the_honest_backend():
    """adversary=None and adversary={} draw exactly what PulseTrainBackend(links) draws."""
    bob = link(10.0, 0.01)
    classes = [IntensityClass(mean_photon_number=m, probability=p) for m, p in zip(INTENSITIES, (0.5, 0.4, 0.1))]
    req = SendPulses(request_id=1, neighbour="bob", pulses=20_000, intensities=classes, block_size=5_000)
    reference = list(PulseTrainBackend([bob]).send(req, np.random.default_rng(8)))
    for adversary in (None, {}):
        assert list(PulseTrainBackend([bob], adversary=adversary).send(req, np.random.default_rng(8))) == reference


@pytest.mark.parametrize(
    ("adversary", "message"),
    [
        ({"carol": BeamSplitting()}, "adversary.carol: no pulse link to 'carol'"),
        (
            {"bob": {"kind": "intercept_resend", "fraction": 1.5}},
            "adversary.bob.intercept_resend.fraction: Input should be less than or equal to 1",
        ),
        ({"bob": {"kind": "man_in_the_middle"}}, "adversary.bob: Input tag 'man_in_the_middle' found using 'kind'"),
        ({"bob": {"kind": "beam_splitting", "tap": 0.5}}, "adversary.bob.beam_splitting.tap: Extra inputs are not permitted"),
    ],
)
def test_bad_adversaries_are_refused_with_one_line_naming_the_field(adversary, message):
    """PHY-PULSE-10: refused when the backend is built, one line naming the field."""
    with pytest.raises(ValueError) as error:
        PulseTrainBackend([link(10.0, 0.01)], adversary=adversary)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_adversary_models_validate_their_fields():
    with pytest.raises(ValidationError, match="fraction"):
        InterceptResend(fraction=-0.1)
    with pytest.raises(ValidationError, match="single_photon_block"):
        PhotonNumberSplitting(single_photon_block=2.0)
    with pytest.raises(ValidationError, match="resend"):
        InterceptResend(resend="pulse")  # type: ignore[arg-type]
    assert PhotonNumberSplitting(single_photon_block=0.3).replace(single_photon_block=None).single_photon_block is None


# ---------------------------------------------------------------- the conformance clauses catch broken adversaries


class _IgnoresAdversary(HeraldingModelBackend):
    """Takes an adversary and runs the honest channel."""

    def pulse_trains(self, links, adversary=None, eavesdropper_oracle=None):  # type: ignore[no-untyped-def]
        return PulseTrainBackend(links)


class _AttacksEveryLink(HeraldingModelBackend):
    """Puts the first adversary it is given on every link."""

    def pulse_trains(self, links, adversary=None, eavesdropper_oracle=None):  # type: ignore[no-untyped-def]
        if adversary:
            first = next(iter(adversary.values()))
            adversary = {link.neighbour: first for link in links}
        return PulseTrainBackend(links, adversary=adversary, eavesdropper_oracle=eavesdropper_oracle)


ATTACK_CLAUSES = [f"PHY-PULSE-{i}" for i in range(6, 11)]


def test_the_reference_backend_passes_the_adversary_clauses_and_others_are_not_judged():
    report = SUITE.run(HeraldingModelBackend, select=ATTACK_CLAUSES)
    assert {c.clause: c.status for c in report.clauses} == dict.fromkeys(ATTACK_CLAUSES, "pass")
    report = SUITE.run(QutipSingleClickBackend, select=ATTACK_CLAUSES)
    assert {c.clause: c.status for c in report.clauses} == dict.fromkeys(ATTACK_CLAUSES, "not_applicable")


@pytest.mark.parametrize(
    ("impl", "failing"),
    [
        (_IgnoresAdversary, {"PHY-PULSE-7", "PHY-PULSE-8", "PHY-PULSE-9", "PHY-PULSE-10"}),  # it also accepts any adversary
        (_AttacksEveryLink, {"PHY-PULSE-6", "PHY-PULSE-10"}),  # it moves an adversary on carol to bob instead of refusing it
    ],
)
def test_broken_adversaries_are_caught_by_clause(impl, failing):
    report = SUITE.run(impl, select=ATTACK_CLAUSES)
    assert {c.clause for c in report.clauses if c.status == "fail"} == failing


def test_the_attack_benchmark_prints_a_figure_per_case():
    """benchmarks/qkd_attacks.py, run as a user runs it, on a small train."""
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, str(root / "benchmarks" / "qkd_attacks.py"), "--pulses", "20000", "--repeat", "1", "--json"]
    out = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, cwd=root).stdout)
    cases = {"honest", "intercept_resend", "photon_number_splitting", "beam_splitting"}
    assert set(out["pulses_per_s"]) == cases and all(v > 0 for v in out["pulses_per_s"].values())
    assert out["pulses"] == 20_000
