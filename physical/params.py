"""Hardware parameters of the physical layer, as validated pydantic models.

Every default names its source. Users copy and change these objects; the
scenario file maps onto them field by field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qnetstack.physical.service import Probability

__all__ = [
    "HardwareParams",
    "SPEED_OF_LIGHT_KM_PER_S",
    "FibreParams",
    "DetectorParams",
    "StationOptionError",
    "MemoryParams",
    "NodeHardware",
    "SingleClickLinkParams",
    "check_station_timing",
    "fibre_delay_ns",
    "LinkSide",
    "InterceptResend",
    "PhotonNumberSplitting",
    "BeamSplitting",
    "Adversary",
]

# Exact by definition of the metre (SI, 1983).
SPEED_OF_LIGHT_KM_PER_S = 299_792.458


class HardwareParams(BaseModel):
    """Base of every hardware parameter model: immutable (copy with
    :meth:`replace`) and strict about unknown fields, so a typo in a scenario
    file is an error rather than a silently ignored setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, validated like a new model: a value
        out of range or an unknown field raises ``ValidationError`` naming it.
        (pydantic's ``model_copy(update=...)`` does not validate, so a sweep
        could run with an efficiency of 1.5 unnoticed.) Nested models may be
        given as models or as dicts (a dict builds the nested model anew, with
        defaults for what it leaves out: change one nested field with
        ``hw.replace(memory=hw.memory.replace(t2_ns=...))``); the unchanged
        fields are passed as they are, so a nested model keeps its own type."""
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return self.model_validate({**fields, **changes})


class FibreParams(HardwareParams):
    """Standard single-mode telecom fibre at 1550 nm.

    Defaults: attenuation 0.2 dB/km and group index 1.468, typical of
    ITU-T G.652 fibre (Corning SMF-28 Ultra product information, 2014:
    ≤ 0.18 dB/km, group index 1.4682 at 1550 nm; 0.2 dB/km is the rounded
    figure used e.g. by SeQUeNCe, Wu et al., Quantum Sci. Technol. 6, 045027, 2021).
    """

    db_per_km: float = Field(0.2, ge=0.0)
    refractive_index: float = Field(1.468, ge=1.0, allow_inf_nan=False)

    def transmittance(self, length_km: float) -> float:
        """Power transmittance 10^(-α L / 10) (Beer–Lambert law in dB form)."""
        return 10.0 ** (-self.db_per_km * length_km / 10.0)

    def delay_ns(self, length_km: float) -> int:
        return fibre_delay_ns(length_km, self.refractive_index)


def fibre_delay_ns(length_km: float, refractive_index: float = 1.468) -> int:
    """Propagation delay L / (c / n), rounded to the nearest nanosecond."""
    return round(length_km * refractive_index / SPEED_OF_LIGHT_KM_PER_S * 1e9)


class StationOptionError(ValueError):
    """A station option that a heralded link cannot run with; ``field`` names it
    (e.g. ``detector.dead_time_ns``), relative to the link's parameters."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class DetectorParams(HardwareParams):
    """The detectors of a heralding station, per detection window.

    Default efficiency 0.8 is the detector efficiency of SeQUeNCe's example
    links (Wu et al. 2021); default dark-count probability per detection window
    is 0 (an idealisation: set it from the detector's dark-count rate times the
    window, e.g. ~1e-7 for a 10 Hz SNSPD and a 10 ns window).

    Station options (the defaults keep the plain threshold detector):

    * ``kind``: ``"threshold"`` (click / no click) or ``"pnr"`` (photon-number
      resolving). A PNR detector reports the number of detection events in
      the window: detected photons plus an independent Poisson number of dark
      counts of mean λ = -ln(1 - p), so that P(no dark count) = 1 - p as for
      the threshold detector (the model of
      :class:`qnetstack.physical.components.detectors.Detector`). A heralding
      station with PNR detectors accepts a detector only when it counts exactly
      one event, where a threshold detector accepts any click.
    * ``gate_ns``: length of the detection window, centred on the expected
      photon arrival; ``None`` (default): long enough to hold every photon.
    * ``jitter_fwhm_ps``: Gaussian timing jitter (FWHM). A photon is detected
      inside the gate with probability ``erf(gate / (2√2 σ))``, σ = FWHM /
      (2√(2 ln 2)) (the Gaussian's mass within ±gate/2; jitter as a Gaussian
      spread of the detection time, Hadfield, Nature Photonics 3, 696
      (2009)), which multiplies the efficiency (:meth:`windowed_efficiency`).
    * ``dead_time_ns`` and ``afterpulse_probability``: after a click the
      detector is blind for the dead time and then clicks again with the
      after-pulse probability (the simplified model of
      :class:`~qnetstack.physical.components.detectors.Detector`). The heralding
      models treat attempts as independent, so a heralded link refuses a dead
      time that reaches into the next attempt's gate, and any after-pulsing
      (:meth:`heralding_timing_problem`); the time-resolved simulator of
      :class:`~qnetstack.physical.components.detectors.Detector` models both.
    """

    efficiency: Probability = 0.8
    dark_count_probability: Probability = 0.0
    # ---- station options (kind, gate, jitter, dead time, after-pulsing)
    kind: Literal["threshold", "pnr"] = "threshold"
    gate_ns: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    jitter_fwhm_ps: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    dead_time_ns: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    afterpulse_probability: float = Field(0.0, ge=0.0, lt=1.0)

    def windowed_efficiency(self) -> float:
        """Efficiency within the gate: η · erf(gate / (2√2 σ)) with σ the jitter's
        standard deviation; η when there is no jitter or no gate."""
        if self.jitter_fwhm_ps == 0.0 or self.gate_ns is None:
            return self.efficiency
        sigma_ns = self.jitter_fwhm_ps * 1e-3 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        return self.efficiency * math.erf(self.gate_ns / (2.0 * math.sqrt(2.0) * sigma_ns))

    def dark_count_events_weight(self) -> float:
        """(1 - p) λ with λ = -ln(1 - p): the probability of exactly one dark count
        in a window for the PNR model (0 when p = 1)."""
        q = 1.0 - self.dark_count_probability
        return 0.0 if q <= 0.0 else -q * math.log(q)

    def heralding_timing_problem(self, attempt_period_ns: float) -> StationOptionError | None:
        """Why attempts ``attempt_period_ns`` apart would not be independent with
        this detector, or ``None``. A click can fall anywhere in the gate (taken
        as 0 ns long when not given), so the detector must be armed again before
        the next gate opens: dead time + gate <= period. After-pulses tie an
        attempt to the clicks of the ones before it, which the heralding models
        (independent attempts) do not describe, so a heralded link refuses them."""
        gate = self.gate_ns or 0.0
        if self.dead_time_ns + gate > attempt_period_ns:
            return StationOptionError(
                "detector.dead_time_ns",
                f"dead time {self.dead_time_ns:g} ns plus gate {gate:g} ns exceeds the attempt period "
                f"{attempt_period_ns:g} ns: a click would blind the next attempt (not modelled)",
            )
        if self.afterpulse_probability > 0.0:
            return StationOptionError(
                "detector.afterpulse_probability",
                "after-pulses correlate successive attempts, which the heralding models do not describe; set it to 0 on a heralded link",
            )
        return None


def check_station_timing(length_km: float, fibre: FibreParams, detector: DetectorParams) -> None:
    """Raise :class:`StationOptionError` when ``detector`` cannot serve independent
    attempts on a link of ``length_km`` (attempt period 2 · delay(L/2), emission
    to herald, as the midpoint backends run it)."""
    if detector.dead_time_ns == 0.0 and detector.gate_ns is None and detector.afterpulse_probability == 0.0:
        return  # nothing that depends on the period (and no delay to compute for absurd lengths)
    half_delay_ns = length_km / 2 * fibre.refractive_index / SPEED_OF_LIGHT_KM_PER_S * 1e9
    period_ns = max(1, 2 * round(half_delay_ns)) if half_delay_ns < 2**62 else math.inf
    problem = detector.heralding_timing_problem(period_ns)
    if problem is not None:
        raise problem


class MemoryParams(HardwareParams):
    """A node's quantum memory.

    ``t1_ns`` / ``t2_ns``: energy relaxation and total dephasing times; ``None``
    means no decoherence of that kind. Physics requires T2 ≤ 2·T1
    (Nielsen & Chuang 2000, §8.3). Default: 4 qubits, T1 = ∞, T2 = 1 s —
    "memory lifetimes of order seconds" (RFC 9340 §5.4, 2023).

    Operation errors, as average fidelities (default 1: perfect; ``None``: the
    hardware cannot perform the operation, the device answers ``UNSUPPORTED``):
    ``single_qubit_gate_fidelity`` and ``two_qubit_gate_fidelity`` F set a
    depolarising channel ρ → λρ + (1 − λ) I/d after each gate on d = 2 or 4
    dimensions, λ = (dF − 1)/(d − 1), i.e. depolarising probability
    p = 1 − λ = d(1 − F)/(d − 1) (Nielsen & Chuang 2000, §8.3.4; average gate
    fidelity as in Nielsen, Phys. Lett. A 303, 249, 2002, what randomized
    benchmarking reports); ``measurement_fidelity`` F_m is the probability that
    a readout reports the true outcome (a symmetric flip with probability
    1 − F_m).

    Operation durations in ns (default 0: instantaneous), honoured by device
    operations sent as a ``DeviceRequest``: ``single_qubit_gate_duration_ns``,
    ``two_qubit_gate_duration_ns`` and ``measurement_duration_ns`` (a Bell
    measurement takes one of each). The platform presets
    (:mod:`qnetstack.physical.components.memories`) carry the published
    figures with their sources.
    """

    num_qubits: int = Field(4, ge=0, le=64)
    t1_ns: int | None = Field(None, gt=0)
    t2_ns: int | None = Field(1_000_000_000, gt=0)
    single_qubit_gate_fidelity: float | None = Field(1.0, ge=0.5, le=1.0)
    two_qubit_gate_fidelity: float | None = Field(1.0, ge=0.25, le=1.0)
    measurement_fidelity: float | None = Field(1.0, ge=0.5, le=1.0)
    single_qubit_gate_duration_ns: int = Field(0, ge=0)
    two_qubit_gate_duration_ns: int = Field(0, ge=0)
    measurement_duration_ns: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _t2_within_two_t1(self) -> MemoryParams:
        if self.t1_ns is not None and self.t2_ns is not None and self.t2_ns > 2 * self.t1_ns:
            raise ValueError(f"t2_ns={self.t2_ns} exceeds 2*t1_ns={2 * self.t1_ns}; physics requires T2 <= 2*T1")
        if self.t1_ns is not None and self.t2_ns is None:
            raise ValueError("t2_ns=None (no dephasing) with finite t1_ns is unphysical; give t2_ns <= 2*t1_ns")
        return self


class NodeHardware(HardwareParams):
    """One node's hardware: its memory and its photon emission.

    ``emission_efficiency``: probability that an emitted photon enters the
    fibre (emission, collection, coupling). Default 0.75, the memory efficiency
    of SeQUeNCe's example links (Wu et al. 2021).
    """

    memory: MemoryParams = MemoryParams()
    emission_efficiency: Probability = 0.75


class SingleClickLinkParams(HardwareParams):
    """A heralded link run with the single-click scheme, station at the midpoint.

    ``bright_state_population`` is α of Humphreys et al., Nature 558, 268 (2018);
    default 0.1, the low end of the range [0.1, 0.3] the QuTech link-layer
    simulations allowed (Dahlberg et al. 2019, QLinkLayerSimulations ``mhp.py``).

    Station options (defaults: ideal photons, a stable interferometer):

    * ``two_photon_visibility``: V = |<χ_A|χ_B>|², the Hong–Ou–Mandel
      visibility of the two nodes' photons (Hong, Ou & Mandel, PRL 59, 2044
      (1987)); the single-photon interference keeps a fraction √V of the
      heralded coherence, and two photons bunch into one detector with
      probability (1 + V)/2 (see :mod:`qnetstack.physical.schemes.single_click`).
      Hensen et al., Nature 526, 682 (2015), Methods, measured 0.90 ± 0.02 for NV photons.
    * ``phase_noise_rad``: σ of the Gaussian optical phase difference between
      the two arms in each attempt; the heralded coherence is multiplied by
      E[e^{iφ}] = exp(-σ²/2) (Humphreys et al. 2018, Methods; Rozpędek et
      al., PRA 99, 052330 (2019), Sec. III).
    """

    length_km: float = Field(gt=0.0, allow_inf_nan=False)
    fibre: FibreParams = FibreParams()
    detector: DetectorParams = DetectorParams()
    bright_state_population: Probability = 0.1
    # ---- station options (photon distinguishability, interferometer phase noise)
    two_photon_visibility: Probability = 1.0
    phase_noise_rad: float = Field(0.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _station_timing(self) -> SingleClickLinkParams:
        check_station_timing(self.length_km, self.fibre, self.detector)
        return self


class LinkSide(HardwareParams):
    """What one end of a heralded link knows of it: the station, the physics,
    and the hardware at the other end (whose emission efficiency matters).

    ``params`` is the link's parameter model, and its type says the heralding
    scheme: :class:`SingleClickLinkParams` for single-click; the parameter
    models of other schemes live with their scheme (e.g.
    ``qnetstack.physical.schemes.barrett_kok.BarrettKokLinkParams``). A backend refuses types it
    cannot run."""

    station: str
    params: HardwareParams
    neighbour_hardware: NodeHardware


# ---------------------------------------------------------------- adversaries
#
# An eavesdropper (Eve) on a prepare-and-measure pulse link. The pulse-train
# backend (qnetstack.physical.backends.pulses) applies one to the pulses of
# the link it is configured on; the receiver's records keep their format, and
# what Eve holds is reported apart, as an oracle read for tests and metrics.


class InterceptResend(HardwareParams):
    """Intercept-resend on a fraction of the pulses (Bennett & Brassard 1984).

    Eve sits at the sender's output. On each pulse she attacks (independently
    with probability ``fraction``) she measures in a basis of her own (Z with
    probability ``z_probability``): in the sender's basis she gets the sender's
    bit, in the other a fair coin. She then sends into the fibre, prepared in
    the state she found:

    * ``resend="same_photon_number"`` (default): as many photons as the pulse
      held (a photon-number measurement that does not disturb the number, then
      the measurement of one photon). Each class keeps its photon-number
      statistics, so the receiver's gains are the honest ones and only the
      error rate changes: in the sifted bits of an attacked pulse Eve's basis
      is wrong half the time and then the receiver's bit is a coin, an error
      rate of 1/4 (Bennett & Brassard 1984; Gisin, Ribordy, Tittel & Zbinden,
      Rev. Mod. Phys. 74, 145, 2002, §VI.A). With misalignment e_d the
      attacked pulses' error is 1/4 + e_d/2 instead of e_d.
    * ``resend="single_photon"``: one photon whenever the pulse held at least
      one, the textbook single-photon attack. The attacked pulses' gain is then
      η(1 − e^(−μ)) instead of 1 − e^(−ημ), so the gains change too.

    An empty pulse gives Eve nothing and she sends nothing. Eve's detectors are
    ideal (no loss, no dark counts): the strongest form of the attack.
    """

    kind: Literal["intercept_resend"] = "intercept_resend"
    fraction: Probability = 1.0
    z_probability: Probability = 0.5
    resend: Literal["same_photon_number", "single_photon"] = "same_photon_number"


class PhotonNumberSplitting(HardwareParams):
    """Photon-number splitting (Brassard, Lütkenhaus, Mor & Sanders, PRL 85, 1330, 2000; Lütkenhaus, PRA 61, 052304, 2000).

    Eve measures the photon number of every pulse without disturbing the
    polarisation (a quantum non-demolition measurement). From a pulse of two
    or more photons she keeps one in a memory and forwards the rest; she
    blocks a fraction ``single_photon_block`` of the one-photon pulses and
    forwards the others; she forwards over a lossless line, so the receiver
    sees only its detector's efficiency. She measures her stored photons once
    the bases are announced and so knows the sender's bit of every
    multi-photon pulse. Forwarded photons keep their state: the error rate is
    the honest one.

    ``single_photon_block=None`` (default) chooses the blocking so that the
    receiver's gain of the signal (the request's class of highest mean photon
    number, which the protocol announces) equals the honest one over the
    replaced fibre, 1 − e^(−ημ): Eve blocks the fraction b of one-photon
    pulses that makes up the difference, and where even b = 1 leaves too many
    clicks (long fibres) she also blocks a fraction of the multi-photon pulses.
    Where forwarding n − 1 photons cannot reach the honest gain (short
    fibres), she blocks nothing and the gain falls short of the honest one.
    Eve cannot tell the intensity classes apart, so the decoys get the same
    treatment, which is what the decoy method detects (Hwang, PRL 91, 057901,
    2003; Lo, Ma & Chen, PRL 94, 230504, 2005).
    """

    kind: Literal["photon_number_splitting"] = "photon_number_splitting"
    single_photon_block: Probability | None = None


class BeamSplitting(HardwareParams):
    """Beam splitting on a lossy line (Bennett, Bessette, Brassard, Salvail & Smolin, J. Cryptology 5, 3, 1992; Lütkenhaus, PRA 61, 052304, 2000).

    Eve replaces the fibre of transmittance t by a lossless one and taps a
    fraction 1 − t of each pulse with a beam splitter: each photon goes to the
    receiver with probability t and to Eve otherwise, which is the honest loss,
    so the receiver's records have the honest statistics (no change of gain or
    error rate). Eve keeps what she taps and measures it once the bases are
    announced: she knows the sender's bit of every pulse of which she got at
    least one photon.
    """

    kind: Literal["beam_splitting"] = "beam_splitting"


Adversary = Annotated[InterceptResend | PhotonNumberSplitting | BeamSplitting, Field(discriminator="kind")]
"""An eavesdropper on a pulse link, told apart by ``kind``."""
