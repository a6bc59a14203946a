"""Optical quantum channels: fibre, terrestrial free space, satellite downlinks,
and quantum frequency conversion, as validated parameter models with closed forms.

Theory of operation
-------------------
Every channel here answers three questions about a photon sent through it:
what fraction of the light arrives (*transmittance*, a probability), how long
it takes (*delay*), and how many noise photons per detection window reach the
receiver with it. :class:`LinkBudget` carries the first and the last through a
chain of elements (fibre, converter, fibre, ...); each element's ``apply``
multiplies the transmittance by its own and attenuates the noise already
present, then adds its own noise.

**Fibre** (:class:`FibreChannel`)

* Loss: Beer–Lambert law in decibels, ``T = 10^(-α_dB L / 10)``; in natural
  units ``T = exp(-α L)`` with ``α = α_dB ln(10) / 10`` per km (Agrawal,
  *Fiber-Optic Communication Systems*, 4th ed., 2010, §2.5). ``α_dB`` comes
  from :data:`ATTENUATION_BANDS` at the photon's wavelength unless given
  explicitly.
* Delay: a pulse travels at the group velocity ``c / n_g``, so
  ``τ = L n_g / c`` (Agrawal 2010, §2.4). Default ``n_g = 1.468`` as in
  :class:`qnetstack.physical.params.FibreParams` (Corning SMF-28 Ultra product
  information, 2014: 1.4682 at 1550 nm, 1.4676 at 1310 nm).
* Polarisation and phase noise on a photonic qubit: a Pauli channel
  (Nielsen & Chuang, *Quantum Computation and Quantum Information*, 2000,
  §8.3). The model assumes the fibre is a chain of independent, identical
  1 km pieces (Markovian noise), each applying the depolarising channel
  ``ρ -> (1-d) ρ + d I/2`` (Bloch vector shrinks by ``1-d``) and the phase-flip
  channel ``ρ -> (1-z) ρ + z ZρZ`` (coherences shrink by ``1-2z``). Shrink
  factors multiply along the chain, so for length L
  ``d(L) = 1 - (1-d)^L`` and ``z(L) = (1 - (1-2z)^L) / 2``; two halves of a
  fibre compose to the whole. The same "probability per unit length"
  parametrisation is the fibre depolarisation model of NetSquid (Coopmans et
  al., Commun. Phys. 4, 164 (2021)). Both are Pauli channels, so they commute,
  and together they are the Pauli channel with
  ``p_I = (1-3d/4)(1-z) + (d/4) z``, ``p_Z = (d/4)(1-z) + (1-3d/4) z``,
  ``p_X = p_Y = d/4`` (compose Pauli channels by multiplying Paulis, which
  commute up to phase). Defaults are 0: an idealisation, to be set from a
  measured process fidelity of the installed fibre.
* Polarisation drift: temperature and stress rotate the fibre's birefringence
  slowly, so the output polarisation performs a random walk on the Poincaré
  sphere (Czegledi et al., "Polarization drift channel model for coherent
  fibre-optic systems", Sci. Rep. 6, 21217 (2016)). We model it as isotropic
  rotational diffusion of the Stokes (Bloch) vector with diffusion constant
  ``D`` in rad²/s: in a short time ``dt`` the state turns by a rotation vector
  with independent Gaussian components of variance ``2 D dt``. For rotational
  diffusion the mean overlap of a unit vector with its start decays as
  ``<s(t)·s(0)> = exp(-2 D t)`` (Debye, *Polar Molecules*, 1929, the l = 1
  relaxation ``exp(-l(l+1) D t)``; Favro, Phys. Rev. 119, 53 (1960)). Hence an
  uncompensated polarisation qubit has mean fidelity
  ``F(t) = (1 + exp(-2 D t)) / 2`` with its input, for every input state
  (isotropy), i.e. the drift averaged over its randomness is a depolarising
  channel with ``d(t) = 1 - exp(-2 D t)``. :func:`sample_drift_unitaries`
  draws the random rotations themselves (as SU(2) matrices) by composing short
  steps. Default ``D = 0`` (no drift; actively compensated fibre).
* Raman noise from co-propagating classical light (WDM coexistence): a
  classical channel of launch power ``P`` at wavelength λ_c scatters
  spontaneous Raman photons into the quantum channel's band. Light scattered
  at position z is created ∝ ``P exp(-α_c z) β Δλ dz`` and then attenuated by
  ``exp(-α_q (L-z))`` to the far end, so the forward noise power is
  ``P β Δλ (exp(-α_q L) - exp(-α_c L)) / (α_c - α_q)``, which for equal
  attenuation becomes the familiar ``P β L Δλ exp(-α L)`` (Eraerds et al.,
  NJP 12, 063027 (2010); Patel et al., PRX 2, 041010 (2012)). β is the
  effective Raman scattering coefficient per km per nm of filter bandwidth
  Δλ; Eraerds et al. (2010) measured it versus wavelength in standard fibre,
  of order 10⁻⁹ (km·nm)⁻¹ near the Stokes peak. The noise photon rate is the
  power divided by the photon energy ``h c / λ_q``. With equal attenuation the
  rate grows linearly for ``αL ≪ 1`` and peaks at ``L = 1/α`` (zero of
  ``d/dL [L exp(-αL)]``); with unequal ones at
  ``L = ln(α_c/α_q) / (α_c - α_q)``. No parameter has a default: β depends
  strongly on the wavelength separation, set it from a measurement.

**Free space** (:class:`FreeSpaceChannel`, :class:`SatellitePass`)

* Diffraction: the transmitter sends a Gaussian beam (TEM00) of waist ``w0``
  (default the transmitter aperture radius ``D_T/2``). It spreads as
  ``w(z) = w0 sqrt(1 + (z/z_R)²)`` with Rayleigh range ``z_R = π w0² / λ``,
  and a receiver aperture of radius ``a = D_R/2`` centred on the beam collects
  ``1 - exp(-2 a² / w(z)²)`` of its power (Siegman, *Lasers*, 1986, ch. 17;
  used for satellite links by Bourgoin et al., NJP 15, 023006 (2013)). Far
  from the waist ``w ≈ λz/(π w0)`` and the fraction tends to
  ``2 a² / w² = π² w0² D_R² / (2 λ² z²)``. With ``w0 = D_T/2`` this is
  ``2 (π D_T D_R / (4 λ z))²``: twice the uniformly-illuminated-aperture
  (Friis) figure ``(π D_T D_R / (4 λ z))²``, which the Gaussian reproduces for
  ``w0 = D_T/(2√2)``. Truncation of the beam by the transmitter aperture is not
  modelled.
* Pointing: a beam whose centre misses the receiver by ρ delivers
  ``exp(-2 ρ² / w²)`` of the on-axis intensity (Gaussian profile, Siegman
  1986). For random jitter with rms angle σ per axis, ρ² = (σ z)² χ²₂ and the
  mean factor is ``1 / (1 + 4 σ² z² / w²)`` (Toyoshima et al., JOSA A 19, 567
  (2002), Gaussian beam with random jitter). Both assume a receiver small
  compared with the beam (``a ≪ w``), the regime of long links.
* Atmosphere: a horizontal path loses ``α_atm`` dB per km. Along a slant path
  through a plane-parallel atmosphere the optical depth scales with the air
  mass ``sec θ_z = 1 / sin ε`` (θ_z zenith angle, ε elevation), so
  ``T_atm = T_zenith^(1/sin ε)`` (Beer–Lambert with the plane-parallel air
  mass; Kasten & Young, Appl. Opt. 28, 4735 (1989), who also show it holds to
  better than 1 % above about 20° elevation and overestimates the air mass
  towards the horizon). Turbulence (beam wander, scintillation) is not
  modelled; for downlinks it matters little because the beam meets the
  atmosphere only in its last ~20 km (Bourgoin et al. 2013).
* Satellite pass geometry: circular orbit of altitude h over a spherical
  Earth of radius R, ground station in the orbital plane, Earth rotation
  ignored (an overhead pass). With central angle γ between station and
  sub-satellite point and ``r = R + h``, the slant range is
  ``d = sqrt(R² + r² - 2 R r cos γ)`` and the elevation satisfies
  ``sin ε = (r cos γ - R) / d``; equivalently
  ``d(ε) = sqrt(r² - R² cos² ε) - R sin ε`` (law of cosines; e.g. Vallado,
  *Fundamentals of Astrodynamics and Applications*, 4th ed., 2013, §11.3).
  The satellite moves at the Kepler rate ``ω = sqrt(GM / r³)``, so
  ``γ(t) = ω t`` with t = 0 at zenith; the station tracks it above the minimum
  elevation ε_min, i.e. for ``|γ| ≤ γ_max = arccos(R cos ε_min / r) - ε_min``. The
  pass is symmetric in t and its loss is smallest at zenith. A station at
  ground distance ``R β`` beside the ground track sees the central angle
  ``cos γ = cos β cos(ω t)`` (right spherical triangle: station, its foot on
  the track, the sub-satellite point; Napier's rules, e.g. Smart, *Textbook
  on Spherical Astronomy*, 6th ed., 1977, ch. 1), so its pass lasts
  ``|t| ≤ arccos(cos γ_max / cos β) / ω`` and needs ``β < γ_max``. Delays are
  ``d / c`` (vacuum; the air's refractive index 1.0003 adds < 0.03 % on a
  short stretch, Ciddor, Appl. Opt. 35, 1566 (1996)).
* Sanity figure: Micius (Liao et al., Nature 549, 43 (2017)), ~500 km
  altitude, 850 nm decoy-state downlink, reported 22 dB of link loss at 645 km
  and 35 dB at 1200 km slant range, with a ~10 µrad beam divergence.

**Frequency conversion** (:class:`FrequencyConversion`)

Quantum frequency conversion moves a photon to a telecom wavelength by
difference-frequency generation in a χ(2) waveguide, e.g. Rb 780 nm to 1517 nm
(van Leent et al., Nature 607, 69 (2022)) or NV 637 nm to 1588 nm (Dréau et
al., Phys. Rev. Applied 9, 064031 (2018)). To the channel budget it is a
lossy element (end-to-end efficiency η, a probability) that also adds noise
photons, chiefly from Raman scattering of the strong pump, at a rate measured
after its output filter. Anything upstream, signal and noise alike, is
multiplied by η.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field, field_validator, model_validator

from qnetstack.physical.params import SPEED_OF_LIGHT_KM_PER_S, FibreParams, HardwareParams
from qnetstack.physical.service import Probability

__all__ = [
    "PLANCK_CONSTANT_J_S",
    "EARTH_RADIUS_KM",
    "EARTH_GM_KM3_PER_S2",
    "AttenuationBand",
    "ATTENUATION_BANDS",
    "attenuation_db_per_km",
    "LinkBudget",
    "RamanNoise",
    "FibreChannel",
    "compose_pauli_channels",
    "apply_pauli_channel",
    "sample_drift_unitaries",
    "FreeSpaceOptics",
    "FreeSpaceChannel",
    "SatellitePass",
    "slant_range_km",
    "equivalent_fibre",
    "SatellitePassArm",
    "FrequencyConversion",
    "noise_click_probability",
]

# Exact by the 2019 redefinition of the SI.
PLANCK_CONSTANT_J_S = 6.626_070_15e-34
# Mean Earth radius R1 of the Geodetic Reference System 1980 (Moritz,
# J. Geodesy 74, 128 (2000)): 6371.0088 km, rounded.
EARTH_RADIUS_KM = 6371.0
# Geocentric gravitational constant (IERS Conventions 2010, Petit & Luzum,
# IERS Technical Note 36, Table 1.1).
EARTH_GM_KM3_PER_S2 = 398_600.4418

_DB_TO_NEPER = math.log(10.0) / 10.0  # α [1/km] = α_dB [dB/km] * ln(10)/10
_SPEED_OF_LIGHT_M_PER_S = SPEED_OF_LIGHT_KM_PER_S * 1e3


# ------------------------------------------------------------------ attenuation table


class AttenuationBand(HardwareParams):
    """A wavelength band ``[low_nm, high_nm]`` and its fibre attenuation."""

    name: str
    low_nm: float
    high_nm: float
    db_per_km: float = Field(ge=0.0)
    source: str


_SMF28_ULTRA = "Corning SMF-28 Ultra product information PI1424 (2014), maximum attenuation; ITU-T G.652 bands"

ATTENUATION_BANDS: tuple[AttenuationBand, ...] = (
    # Short-wave band of the Rb/Cs/SPDC sources. Standard telecom fibre is not
    # single-mode here (cut-off ~1260 nm); this row is for 780-nm-class
    # single-mode fibre. Rayleigh scattering ∝ λ⁻⁴ alone scales 0.18 dB/km at
    # 1550 nm to ≈2.5 dB/km at 800 nm (Agrawal 2010, §2.5), a lower bound.
    AttenuationBand(
        name="short-wave NIR",
        low_nm=770.0,
        high_nm=870.0,
        db_per_km=3.5,
        source="780HP-class single-mode fibre specification, <= 3.5 dB/km at 850 nm (Thorlabs/Nufern 780HP)",
    ),
    AttenuationBand(name="O", low_nm=1260.0, high_nm=1360.0, db_per_km=0.32, source=_SMF28_ULTRA + ", 1310 nm"),
    AttenuationBand(name="E", low_nm=1360.0, high_nm=1460.0, db_per_km=0.32, source=_SMF28_ULTRA + ", 1383 nm"),
    AttenuationBand(name="S", low_nm=1460.0, high_nm=1530.0, db_per_km=0.21, source=_SMF28_ULTRA + ", 1490 nm"),
    AttenuationBand(name="C", low_nm=1530.0, high_nm=1565.0, db_per_km=0.18, source=_SMF28_ULTRA + ", 1550 nm"),
    AttenuationBand(name="L", low_nm=1565.0, high_nm=1625.0, db_per_km=0.20, source=_SMF28_ULTRA + ", 1625 nm"),
)


def _covered_ranges() -> str:
    merged: list[list[float]] = []
    for band in sorted(ATTENUATION_BANDS, key=lambda b: b.low_nm):
        if merged and band.low_nm <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], band.high_nm)
        else:
            merged.append([band.low_nm, band.high_nm])
    return ", ".join(f"{lo:g}-{hi:g} nm" for lo, hi in merged)


def _band_of(wavelength_nm: float) -> AttenuationBand | None:
    # Bands share their edges; the first match (the shorter band) wins.
    for band in ATTENUATION_BANDS:
        if band.low_nm <= wavelength_nm <= band.high_nm:
            return band
    return None


def attenuation_db_per_km(wavelength_nm: float) -> float:
    """Table attenuation (dB/km) at ``wavelength_nm``; ValueError outside the covered bands."""
    band = _band_of(wavelength_nm)
    if band is None:
        raise ValueError(f"wavelength {wavelength_nm:g} nm is outside the bands the fibre model covers ({_covered_ranges()})")
    return band.db_per_km


def _check_covered(value: float, field: str) -> float:
    if _band_of(value) is None:
        raise ValueError(
            f"{field}={value:g} nm is outside the bands the fibre attenuation table covers ({_covered_ranges()}); "
            "give a wavelength inside them"
        )
    return value


# ------------------------------------------------------------------ budget


class LinkBudget(HardwareParams):
    """Transmittance and mean noise photons per detection window, accumulated
    along a chain of channel elements (see the module docstring)."""

    transmittance: Probability = 1.0
    noise_photons: float = Field(0.0, ge=0.0)
    window_ns: float = Field(gt=0.0)


# ------------------------------------------------------------------ fibre


class RamanNoise(HardwareParams):
    """Co-propagating classical light that Raman-scatters into the quantum band.

    ``launch_power_mw``: classical power entering the fibre. ``raman_coefficient_per_km_nm``:
    β of Eraerds et al., NJP 12, 063027 (2010) at the quantum wavelength for
    this pump wavelength. ``filter_bandwidth_nm``: Δλ of the quantum
    receiver's filter. ``classical_db_per_km``: attenuation at the classical
    wavelength; ``None`` takes it from :data:`ATTENUATION_BANDS`.
    """

    launch_power_mw: float = Field(ge=0.0)
    raman_coefficient_per_km_nm: float = Field(ge=0.0)
    filter_bandwidth_nm: float = Field(gt=0.0)
    classical_wavelength_nm: float
    classical_db_per_km: float | None = Field(None, ge=0.0)

    @field_validator("classical_wavelength_nm")
    @classmethod
    def _classical_wavelength_covered(cls, value: float) -> float:
        return _check_covered(value, "classical_wavelength_nm")

    def attenuation_db_per_km(self) -> float:
        if self.classical_db_per_km is not None:
            return self.classical_db_per_km
        return attenuation_db_per_km(self.classical_wavelength_nm)


class FibreChannel(HardwareParams):
    """A span of single-mode fibre carrying photonic qubits (module docstring).

    ``db_per_km``: explicit attenuation at ``wavelength_nm``; ``None`` (default)
    takes the table value. ``depolarising_per_km`` / ``dephasing_per_km``: the
    d and z of one km; default 0 (idealisation). ``polarisation_drift_rad2_per_s``:
    rotational diffusion constant D on the Poincaré sphere; default 0
    (compensated fibre). ``raman``: co-propagating classical traffic, or None.
    """

    length_km: float = Field(ge=0.0)
    wavelength_nm: float = 1550.0
    db_per_km: float | None = Field(None, ge=0.0)
    group_index: float = Field(1.468, ge=1.0)
    depolarising_per_km: Probability = 0.0
    dephasing_per_km: float = Field(0.0, ge=0.0, le=0.5)
    polarisation_drift_rad2_per_s: float = Field(0.0, ge=0.0)
    raman: RamanNoise | None = None

    @field_validator("wavelength_nm")
    @classmethod
    def _wavelength_covered(cls, value: float) -> float:
        return _check_covered(value, "wavelength_nm")

    # ---------------------------------------------------------- loss and delay

    def attenuation_db_per_km(self) -> float:
        """Attenuation at the quantum wavelength: the override, else the table."""
        return self.db_per_km if self.db_per_km is not None else attenuation_db_per_km(self.wavelength_nm)

    def transmittance(self) -> float:
        """``10^(-α_dB L / 10)`` (Beer–Lambert in dB)."""
        return 10.0 ** (-self.attenuation_db_per_km() * self.length_km / 10.0)

    def delay_ns(self) -> float:
        """Group delay ``L n_g / c`` in ns (not rounded)."""
        return self.length_km * self.group_index / SPEED_OF_LIGHT_KM_PER_S * 1e9

    def to_fibre_params(self) -> FibreParams:
        """The heralding models' :class:`FibreParams` at this wavelength."""
        return FibreParams(db_per_km=self.attenuation_db_per_km(), refractive_index=self.group_index)

    # ---------------------------------------------------------- qubit noise

    def depolarising_probability(self) -> float:
        """``d(L) = 1 - (1-d)^L``: the depolarising channel of the whole span."""
        return 1.0 - (1.0 - self.depolarising_per_km) ** self.length_km

    def dephasing_probability(self) -> float:
        """``z(L) = (1 - (1-2z)^L) / 2``: the phase-flip channel of the whole span."""
        return 0.5 * (1.0 - (1.0 - 2.0 * self.dephasing_per_km) ** self.length_km)

    def pauli_probabilities(self) -> tuple[float, float, float, float]:
        """``(p_I, p_X, p_Y, p_Z)`` of the span's depolarising and dephasing together."""
        d = self.depolarising_probability()
        depolarising = (1.0 - 0.75 * d, 0.25 * d, 0.25 * d, 0.25 * d)
        z = self.dephasing_probability()
        return compose_pauli_channels(depolarising, (1.0 - z, 0.0, 0.0, z))

    def drift_fidelity(self, t_s: float) -> float:
        """Mean fidelity of a polarisation qubit with its input after drifting
        for ``t_s`` seconds uncompensated: ``(1 + exp(-2 D t)) / 2``."""
        if t_s < 0:
            raise ValueError(f"t_s must be >= 0, got {t_s}")
        return 0.5 * (1.0 + math.exp(-2.0 * self.polarisation_drift_rad2_per_s * t_s))

    def drift_depolarising_probability(self, t_s: float) -> float:
        """The drift averaged over its randomness as a depolarising probability ``1 - exp(-2 D t)``."""
        return 2.0 * (1.0 - self.drift_fidelity(t_s))

    def sample_drift_unitary(self, t_s: float, rng: np.random.Generator, steps: int = 100) -> np.ndarray:
        """One random drift rotation after ``t_s`` seconds, as a 2x2 SU(2) matrix."""
        return sample_drift_unitaries(self.polarisation_drift_rad2_per_s, t_s, 1, rng, steps)[0]

    # ---------------------------------------------------------- Raman noise

    def raman_noise_rate_hz(self) -> float:
        """Forward Raman noise photons per second in the quantum channel's filter
        at the far end; 0 without co-propagating classical light."""
        if self.raman is None or self.length_km == 0.0:
            return 0.0
        alpha_q = self.attenuation_db_per_km() * _DB_TO_NEPER
        alpha_c = self.raman.attenuation_db_per_km() * _DB_TO_NEPER
        length = self.length_km
        if math.isclose(alpha_c, alpha_q, rel_tol=1e-9, abs_tol=1e-15):
            effective_length = length * math.exp(-alpha_q * length)
        else:
            # (e^{-α_q L} - e^{-α_c L}) / (α_c - α_q), written to stay accurate for close α's
            effective_length = math.exp(-alpha_q * length) * -math.expm1(-(alpha_c - alpha_q) * length) / (alpha_c - alpha_q)
        power_w = (
            self.raman.launch_power_mw * 1e-3 * self.raman.raman_coefficient_per_km_nm * self.raman.filter_bandwidth_nm * effective_length
        )
        photon_energy_j = PLANCK_CONSTANT_J_S * _SPEED_OF_LIGHT_M_PER_S / (self.wavelength_nm * 1e-9)
        return power_w / photon_energy_j

    def noise_photons_per_window(self, window_ns: float) -> float:
        """Mean Raman noise photons in a detection window of ``window_ns``."""
        if window_ns <= 0:
            raise ValueError(f"window_ns must be > 0, got {window_ns}")
        return self.raman_noise_rate_hz() * window_ns * 1e-9

    def apply(self, budget: LinkBudget) -> LinkBudget:
        """The budget after this span: signal and upstream noise attenuated, Raman noise added."""
        t = self.transmittance()
        return budget.model_copy(
            update={
                "transmittance": budget.transmittance * t,
                "noise_photons": budget.noise_photons * t + self.noise_photons_per_window(budget.window_ns),
            }
        )


# ------------------------------------------------------------------ Pauli and drift helpers

# With the order I, X, Y, Z as 0, 1, 2, 3, Pauli products up to phase are XOR
# of the indices: XY ∝ Z (1^2 = 3), XZ ∝ Y (1^3 = 2), YZ ∝ X (2^3 = 1).


def compose_pauli_channels(
    first: tuple[float, float, float, float], second: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """Pauli channel ``(p_I, p_X, p_Y, p_Z)`` of ``second ∘ first`` (Nielsen &
    Chuang 2000, §8.3: Paulis multiply to Paulis up to a phase, XY ∝ Z etc.)."""
    out = [0.0, 0.0, 0.0, 0.0]
    for a in range(4):
        for b in range(4):
            out[a ^ b] += first[a] * second[b]
    return (out[0], out[1], out[2], out[3])


_PAULIS = (
    np.eye(2, dtype=complex),
    np.array([[0, 1], [1, 0]], dtype=complex),
    np.array([[0, -1j], [1j, 0]], dtype=complex),
    np.array([[1, 0], [0, -1]], dtype=complex),
)


def apply_pauli_channel(rho: np.ndarray, probabilities: tuple[float, float, float, float]) -> np.ndarray:
    """``Σ_P p_P P ρ P`` on a one-qubit density matrix (P in I, X, Y, Z)."""
    return sum(p * (s @ rho @ s) for p, s in zip(probabilities, _PAULIS))


def sample_drift_unitaries(
    diffusion_rad2_per_s: float, t_s: float, n_samples: int, rng: np.random.Generator, steps: int = 100
) -> np.ndarray:
    """``n_samples`` independent drift rotations after ``t_s`` seconds, shape (n, 2, 2).

    Each is a product of ``steps`` small rotations ``exp(-i (ω·σ)/2)`` with
    ``ω`` Gaussian, variance ``2 D t/steps`` per component (module docstring).
    The per-step mean overlap is ``1/3 + (2/3)(1-σ²)exp(-σ²/2)`` for
    σ² = 2 D t/steps, which differs from ``exp(-σ²)`` by ``σ⁴/12 + O(σ⁶)``, so
    the discretisation error of ``<s(t)·s(0)>`` is about ``(2Dt)²/(12 steps)``.
    """
    if diffusion_rad2_per_s < 0 or t_s < 0 or steps < 1 or n_samples < 0:
        raise ValueError("need diffusion >= 0, t_s >= 0, steps >= 1, n_samples >= 0")
    sigma = math.sqrt(2.0 * diffusion_rad2_per_s * t_s / steps)
    total = np.broadcast_to(np.eye(2, dtype=complex), (n_samples, 2, 2)).copy()
    pauli_x, pauli_y, pauli_z = _PAULIS[1], _PAULIS[2], _PAULIS[3]
    for _ in range(steps):
        omega = rng.normal(0.0, sigma, size=(n_samples, 3))
        angle = np.linalg.norm(omega, axis=1)
        axis = omega / np.where(angle > 0, angle, 1.0)[:, None]
        generator = axis[:, 0, None, None] * pauli_x + axis[:, 1, None, None] * pauli_y + axis[:, 2, None, None] * pauli_z
        step = np.cos(angle / 2)[:, None, None] * np.eye(2) - 1j * np.sin(angle / 2)[:, None, None] * generator
        total = step @ total
    return total


# ------------------------------------------------------------------ free space


class FreeSpaceOptics(HardwareParams):
    """Gaussian-beam optics shared by free-space links (module docstring).

    ``beam_waist_m``: 1/e² intensity radius at the transmitter; ``None``
    (default) means the transmitter aperture radius ``D_T/2`` (the convention
    of the far-field comparison in the module docstring). ``pointing_jitter_urad``:
    rms pointing error per axis; default 0 (perfect tracking, an
    idealisation). ``receiver_efficiency``: fixed optics/coupling efficiency
    of the receiver; default 1 (idealisation; detector efficiency belongs to
    the detector, not here).
    """

    wavelength_nm: float = Field(gt=0.0)
    transmitter_aperture_m: float = Field(gt=0.0)
    receiver_aperture_m: float = Field(gt=0.0)
    beam_waist_m: float | None = Field(None, gt=0.0)
    pointing_jitter_urad: float = Field(0.0, ge=0.0)
    receiver_efficiency: Probability = 1.0

    @model_validator(mode="after")
    def _waist_fits_the_aperture(self) -> FreeSpaceOptics:
        if self.beam_waist_m is not None and self.beam_waist_m > self.transmitter_aperture_m / 2:
            raise ValueError(
                f"beam_waist_m={self.beam_waist_m} exceeds the transmitter aperture radius "
                f"{self.transmitter_aperture_m / 2}; it must be in (0, transmitter_aperture_m/2]"
            )
        return self

    @property
    def waist_m(self) -> float:
        return self.beam_waist_m if self.beam_waist_m is not None else self.transmitter_aperture_m / 2

    def rayleigh_range_m(self) -> float:
        """``z_R = π w0² / λ``."""
        return math.pi * self.waist_m**2 / (self.wavelength_nm * 1e-9)

    def beam_radius_m(self, distance_km: float) -> float:
        """``w(z) = w0 sqrt(1 + (z/z_R)²)``."""
        return self.waist_m * math.hypot(1.0, distance_km * 1e3 / self.rayleigh_range_m())

    def diffraction_transmittance(self, distance_km: float) -> float:
        """Fraction collected by the centred receiver aperture, ``1 - exp(-2 a²/w²)``."""
        a = self.receiver_aperture_m / 2
        return -math.expm1(-2.0 * a**2 / self.beam_radius_m(distance_km) ** 2)

    def pointing_transmittance(self, distance_km: float) -> float:
        """Mean factor from random jitter, ``1 / (1 + 4 σ² z² / w²)``."""
        offset_m = self.pointing_jitter_urad * 1e-6 * distance_km * 1e3
        return 1.0 / (1.0 + 4.0 * offset_m**2 / self.beam_radius_m(distance_km) ** 2)

    def _optics_transmittance(self, distance_km: float) -> float:
        return self.diffraction_transmittance(distance_km) * self.pointing_transmittance(distance_km) * self.receiver_efficiency


class FreeSpaceChannel(FreeSpaceOptics):
    """A terrestrial free-space link of fixed length.

    ``atmospheric_db_per_km``: extinction along the horizontal path; default 0
    (vacuum, an idealisation — set it from the local visibility).
    """

    distance_km: float = Field(ge=0.0)
    atmospheric_db_per_km: float = Field(0.0, ge=0.0)

    def transmittance(self) -> float:
        """Diffraction × pointing × atmosphere × receiver efficiency."""
        atmosphere = 10.0 ** (-self.atmospheric_db_per_km * self.distance_km / 10.0)
        return self._optics_transmittance(self.distance_km) * atmosphere

    def delay_ns(self) -> float:
        """``L / c`` in ns (air index neglected, module docstring)."""
        return self.distance_km / SPEED_OF_LIGHT_KM_PER_S * 1e9

    def apply(self, budget: LinkBudget) -> LinkBudget:
        """Signal and upstream noise attenuated; background light is not modelled."""
        t = self.transmittance()
        return budget.model_copy(update={"transmittance": budget.transmittance * t, "noise_photons": budget.noise_photons * t})


def slant_range_km(altitude_km: float, elevation_deg: float, earth_radius_km: float = EARTH_RADIUS_KM) -> float:
    """``d(ε) = sqrt(r² - R² cos² ε) - R sin ε`` with ``r = R + h``."""
    r = earth_radius_km + altitude_km
    eps = math.radians(elevation_deg)
    return math.sqrt(r**2 - (earth_radius_km * math.cos(eps)) ** 2) - earth_radius_km * math.sin(eps)


class SatellitePass(FreeSpaceOptics):
    """A downlink from a satellite in a circular orbit during one pass.

    The transmitter is the satellite's telescope, the receiver the ground
    station's. ``zenith_transmittance``: of the atmosphere straight up at this
    wavelength; default 1 (no atmosphere, an idealisation — set it from a
    radiative-transfer model or measurement). ``cross_track_km``: the
    station's ground distance from the satellite's ground track (default 0:
    an overhead pass). Time ``t_s`` runs from 0 at closest approach (zenith
    when overhead); the pass lasts ``[-half_duration_s(), +half_duration_s()]``.
    """

    altitude_km: float = Field(gt=0.0)
    min_elevation_deg: float = Field(gt=0.0, le=90.0)
    zenith_transmittance: Probability = 1.0
    cross_track_km: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _station_sees_the_pass(self) -> SatellitePass:
        if self.cross_track_km > 0 and self._cross_track_angle() >= self._max_central_angle():
            reach = self._max_central_angle() * EARTH_RADIUS_KM
            raise ValueError(
                f"cross_track_km={self.cross_track_km:g} puts the station out of the pass: the satellite never rises above "
                f"min_elevation_deg={self.min_elevation_deg:g} there (reach {reach:.0f} km from the ground track)"
            )
        return self

    @property
    def orbit_radius_km(self) -> float:
        return EARTH_RADIUS_KM + self.altitude_km

    def _cross_track_angle(self) -> float:
        """β: the station's central angle from the ground track (arc length over R)."""
        return self.cross_track_km / EARTH_RADIUS_KM

    def angular_rate_rad_per_s(self) -> float:
        """Kepler: ``ω = sqrt(GM / r³)``."""
        return math.sqrt(EARTH_GM_KM3_PER_S2 / self.orbit_radius_km**3)

    def _max_central_angle(self) -> float:
        eps = math.radians(self.min_elevation_deg)
        return math.acos(EARTH_RADIUS_KM * math.cos(eps) / self.orbit_radius_km) - eps

    def half_duration_s(self) -> float:
        """Time from closest approach to the minimum elevation: ``cos(ω t) = cos γ_max / cos β``."""
        if self.cross_track_km == 0:
            return self._max_central_angle() / self.angular_rate_rad_per_s()
        along_track = math.acos(min(1.0, math.cos(self._max_central_angle()) / math.cos(self._cross_track_angle())))
        return along_track / self.angular_rate_rad_per_s()

    def _cos_central_angle(self, t_s: float) -> float:
        # spherical right triangle (station, its foot on the ground track, sub-satellite point):
        # cos γ = cos β cos(ω t)
        return math.cos(self._cross_track_angle()) * math.cos(self.angular_rate_rad_per_s() * t_s)

    def slant_range_km(self, t_s: float) -> float:
        """``sqrt(R² + r² - 2 R r cos γ)`` with ``cos γ = cos β cos(ω t)``."""
        r, big_r = self.orbit_radius_km, EARTH_RADIUS_KM
        return math.sqrt(big_r**2 + r**2 - 2 * big_r * r * self._cos_central_angle(t_s))

    def elevation_deg(self, t_s: float) -> float:
        """``asin((r cos γ - R) / d)``; below 0 the satellite is under the horizon."""
        d = self.slant_range_km(t_s)
        sin_eps = (self.orbit_radius_km * self._cos_central_angle(t_s) - EARTH_RADIUS_KM) / d
        return math.degrees(math.asin(max(-1.0, min(1.0, sin_eps))))

    def transmittance_at_elevation(self, elevation_deg: float) -> float:
        """Diffraction × pointing × atmosphere ``T_z^(1/sin ε)`` × receiver
        efficiency, at the slant range of that elevation."""
        if not 0.0 < elevation_deg <= 90.0:
            raise ValueError(f"elevation_deg must be in (0, 90], got {elevation_deg}")
        d = slant_range_km(self.altitude_km, elevation_deg)
        air_mass = 1.0 / math.sin(math.radians(elevation_deg))
        return self._optics_transmittance(d) * self.zenith_transmittance**air_mass

    def transmittance(self, t_s: float) -> float:
        """Transmittance at time ``t_s`` of the pass; 0 outside it (not tracked)."""
        if abs(t_s) > self.half_duration_s():
            return 0.0
        return self.transmittance_at_elevation(max(self.elevation_deg(t_s), self.min_elevation_deg))

    def delay_ns(self, t_s: float) -> float:
        """Light time over the slant range, ``d / c``, in ns."""
        return self.slant_range_km(t_s) / SPEED_OF_LIGHT_KM_PER_S * 1e9

    def apply(self, budget: LinkBudget, t_s: float) -> LinkBudget:
        """Signal and upstream noise attenuated at time ``t_s``; background light not modelled."""
        t = self.transmittance(t_s)
        return budget.model_copy(update={"transmittance": budget.transmittance * t, "noise_photons": budget.noise_photons * t})


# ------------------------------------------------------------------ free-space arms of a heralded link
#
# The heralding schemes read a link's loss and delay from its ``fibre`` over
# half the link (node to midpoint station). A free-space or satellite arm
# enters them as the uniform attenuation and group index that give the same
# transmittance and delay over that half: exact at the one length the
# schemes evaluate, and nowhere else (diffraction loss is not linear in
# distance). :class:`SatellitePassArm` additionally carries the pass, so a
# backend that follows simulated time can take the transmittance at each
# attempt's time.


def equivalent_fibre(transmittance: float, arm_km: float, delay_ns: float) -> FibreParams:
    """The :class:`FibreParams` whose span of ``arm_km`` has this transmittance and delay.

    ``db_per_km = -10 log10(T) / arm_km``; ``refractive_index = c τ / arm_km``
    (at least 1: a delay shorter than light's over ``arm_km`` is raised to it).
    ``ValueError`` for a transmittance of 0 (no finite attenuation gives it).
    """
    if not 0.0 < transmittance <= 1.0:
        raise ValueError(f"transmittance must be in (0, 1], got {transmittance}")
    if not arm_km > 0.0:
        raise ValueError(f"arm_km must be > 0, got {arm_km}")
    index = delay_ns * 1e-9 * SPEED_OF_LIGHT_KM_PER_S / arm_km
    return FibreParams(db_per_km=max(0.0, -10.0 * math.log10(transmittance) / arm_km), refractive_index=max(1.0, index))


class SatellitePassArm(FibreParams):
    """One arm (satellite to a ground station) of a link fed from a satellite,
    in the place of the link's fibre, with the pass it follows in time.

    ``satellite_pass``: the pass as one station sees it; both stations of the
    link see the same curve (the scenario puts them on either side of the
    ground track, at the same distance from it). ``arm_km``: the length the
    heralding schemes evaluate the fibre over (half the link). ``zenith_at_ns``:
    the simulated time of closest approach. ``step_ns``: the longest block of
    simulated time over which the model backend holds the success probability
    constant (:meth:`blocks`).

    The inherited ``db_per_km`` and ``refractive_index`` must be those of the
    arm at closest approach (:func:`equivalent_fibre`, with the delay at the
    pass's edge, the longest): a backend that does not follow time sees the
    link at its best. Build it with :meth:`build`.
    """

    satellite_pass: SatellitePass
    arm_km: float = Field(gt=0.0)
    zenith_at_ns: int = Field(ge=0)
    step_ns: int = Field(gt=0)

    @classmethod
    def build(cls, satellite_pass: SatellitePass, arm_km: float, zenith_at_ns: int, step_ns: int) -> SatellitePassArm:
        best = equivalent_fibre(satellite_pass.transmittance(0.0), arm_km, cls._edge_delay_ns(satellite_pass))
        return cls(
            satellite_pass=satellite_pass,
            arm_km=arm_km,
            zenith_at_ns=zenith_at_ns,
            step_ns=step_ns,
            db_per_km=best.db_per_km,
            refractive_index=best.refractive_index,
        )

    @staticmethod
    def _edge_delay_ns(satellite_pass: SatellitePass) -> float:
        return satellite_pass.delay_ns(satellite_pass.half_duration_s())

    @model_validator(mode="after")
    def _static_fields_at_zenith(self) -> SatellitePassArm:
        t_zenith = self.satellite_pass.transmittance(0.0)
        if not t_zenith > 0.0:
            raise ValueError("the arm transmits nothing even at closest approach (an efficiency or transmittance is 0)")
        best = equivalent_fibre(t_zenith, self.arm_km, self._edge_delay_ns(self.satellite_pass))
        if not (
            math.isclose(self.db_per_km, best.db_per_km, rel_tol=1e-12, abs_tol=1e-15)
            and math.isclose(self.refractive_index, best.refractive_index, rel_tol=1e-12)
        ):
            raise ValueError(
                "db_per_km and refractive_index must be the arm's at closest approach; build the arm with SatellitePassArm.build"
            )
        return self

    def pass_time_s(self, t_ns: float) -> float:
        """Time in the pass (0 at closest approach) of simulated time ``t_ns``."""
        return (t_ns - self.zenith_at_ns) * 1e-9

    def transmittance_at(self, t_ns: float) -> float:
        """The arm's transmittance at simulated time ``t_ns`` (0 outside the pass)."""
        return self.satellite_pass.transmittance(self.pass_time_s(t_ns))

    def blocks(self) -> tuple[int, float, float]:
        """``(n, start_ns, width_ns)``: the pass cut into n equal blocks of at most ``step_ns``,
        the first starting when the satellite rises above the minimum elevation."""
        half_ns = self.satellite_pass.half_duration_s() * 1e9
        n = max(1, math.ceil(2 * half_ns / self.step_ns))
        return n, self.zenith_at_ns - half_ns, 2 * half_ns / n

    def block_of(self, t_ns: float) -> int | None:
        """The block holding simulated time ``t_ns``, or ``None`` outside the pass."""
        n, start, width = self.blocks()
        index = math.floor((t_ns - start) / width)
        return index if 0 <= index < n else None

    def block_fibre(self, index: int) -> FibreParams | None:
        """The equivalent fibre of block ``index``: the arm's transmittance at the block's
        middle, the delay of the pass's edge; ``None`` when that transmittance is 0."""
        _, start, width = self.blocks()
        t = self.transmittance_at(start + (index + 0.5) * width)
        if not t > 0.0:
            return None
        return equivalent_fibre(t, self.arm_km, self._edge_delay_ns(self.satellite_pass))


# ------------------------------------------------------------------ frequency conversion


class FrequencyConversion(HardwareParams):
    """A quantum frequency converter (module docstring).

    ``efficiency``: end-to-end probability that an input photon leaves at the
    output wavelength in the output mode. ``noise_rate_hz``: noise photons
    per second it adds in the output mode after its filter. No defaults: both
    depend on the device (demonstrations: van Leent et al. 2022; Dréau et al.
    2018).
    """

    input_wavelength_nm: float = Field(gt=0.0)
    output_wavelength_nm: float = Field(gt=0.0)
    efficiency: Probability
    noise_rate_hz: float = Field(0.0, ge=0.0)

    def noise_photons_per_window(self, window_ns: float) -> float:
        """Mean added noise photons in a window of ``window_ns``."""
        if window_ns <= 0:
            raise ValueError(f"window_ns must be > 0, got {window_ns}")
        return self.noise_rate_hz * window_ns * 1e-9

    def apply(self, budget: LinkBudget) -> LinkBudget:
        """Transmittance and upstream noise times η, plus the converter's own noise."""
        return budget.model_copy(
            update={
                "transmittance": budget.transmittance * self.efficiency,
                "noise_photons": budget.noise_photons * self.efficiency + self.noise_photons_per_window(budget.window_ns),
            }
        )


# ------------------------------------------------------------------ noise at a heralding detector


def noise_click_probability(dark_count_probability: float, detector_efficiency: float, noise_photons: float) -> float:
    """Probability that a threshold detector clicks in a window without a signal
    photon, when besides its own dark counts (probability ``p_dc``) a mean of
    ``n̄ = noise_photons`` noise photons reach it: ``1 - (1 - p_dc) exp(-η_d n̄)``.

    Raman and converter noise spread over far more spectral-temporal modes than
    one window resolves, so their photon number in a window is Poisson (the
    multimode limit of thermal light, Mandel & Wolf, *Optical Coherence and
    Quantum Optics*, 1995, §9.8); a detector of efficiency η_d keeps each photon
    with probability η_d, which leaves a Poisson number of mean ``η_d n̄``
    (Bernoulli thinning, Kelley & Kleiner, Phys. Rev. 136, A316 (1964)), and it
    stays silent only with no noise detection and no dark count. The noise
    photons carry no information on the memories' state and arrive independently
    of the signal, so to a heralding scheme they are dark counts at this
    probability (the treatment of Raman counts in Eraerds et al., NJP 12, 063027
    (2010)).
    """
    for name, value in (("dark_count_probability", dark_count_probability), ("detector_efficiency", detector_efficiency)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if not (noise_photons >= 0.0 and math.isfinite(noise_photons)):
        raise ValueError(f"noise_photons must be finite and >= 0, got {noise_photons}")
    return -math.expm1(math.log1p(-dark_count_probability) - detector_efficiency * noise_photons) if dark_count_probability < 1.0 else 1.0
