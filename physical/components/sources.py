"""Photon sources: SPDC pair sources, deterministic single emitters, weak coherent pulses.

Theory of operation
-------------------
**SPDC pair source** (:class:`SpdcSource`). A pulsed down-conversion process
emits a two-mode squeezed state. With ``μ`` the mean number of pairs per
pulse *per mode* (here: per down-conversion process, e.g. the HH or the VV
process of a polarisation-entangled source), the pair number ``n`` of one
process is

* ``"thermal"`` with ``K`` effective Schmidt (spectral) modes: a sum of K
  independent thermal distributions of mean μ/K each, i.e. the negative
  binomial
  ``P(n) = Γ(n+K) / (Γ(K) n!) · (μ/K)^n / (1+μ/K)^(n+K)``,
  mean μ, variance ``μ + μ²/K``, so ``g⁽²⁾ = 1 + 1/K``
  (Avenhaus et al., PRL 101, 053601 (2008); Christ et al., NJP 13, 033027
  (2011)). ``K = 1/purity`` (the Schmidt number is the inverse of the
  heralded photon's spectral purity, Christ et al. 2011, Sec. 2). K = 1 is
  the single-mode thermal law ``μ^n/(1+μ)^(n+1)``;
* ``"poisson"``: ``e^(-μ) μ^n / n!``, the K → ∞ limit (many modes).

A polarisation-entangled source is two such processes (HH and VV) with the
same μ; its total pair number is the convolution of the two laws, e.g.
``(n+1) μ^n / (1+μ)^(n+2)`` for K = 1 (Ma, Fung & Lo, PRA 76, 012307 (2007),
Eq. (1), their λ is our μ): :meth:`SpdcSource.pair_number_distribution`
with ``entangled=True``.

*Two-photon interference visibility.* Analyse the entangled source with a
polariser at 0 on side A and at φ on side B, then a detector of small
efficiency on each side, so the coincidence rate is proportional to
``<n_A n_B>``. Each process is K independent two-mode squeezers of mean
m = μ/K, for which ``<n_a n_b> = m + 2m²`` within a squeezer and ``m²``
between independent ones. Summing over modes gives
``C(φ) ∝ μ² + cos²φ (μ + μ²/K)``, so

    V = (C(0) - C(π/2)) / (C(0) + C(π/2)) = (1 + μ/K) / (1 + 2μ + μ/K).

Its two limits are the formulas of Takesue & Shimizu, Opt. Commun. 283, 276
(2010): ``V = (1+μ)/(1+3μ)`` for a single-mode ("indistinguishable") source
and ``V = 1/(1+2μ)`` for the Poisson ("distinguishable", K → ∞) case; to
first order both are ``1 - 2μ`` (Scarani et al., Eur. Phys. J. D 32, 129
(2005), ``V = 1 - 2ρ``). The general-K interpolation is derived here from
the moments above; tests check it against a Fock-space computation (K = 1)
and a Monte-Carlo of independent pairs (Poisson).

**Single emitters** (:class:`EmitterSource`): an atom, ion, NV centre or
quantum dot emits at most one photon per excitation, entangled with its
spin. The usable-photon probability is the product of independent
efficiencies, excitation × fraction into the coherent (zero-phonon) line ×
collection, see :meth:`EmitterSource.photon_efficiency`.

**Weak coherent pulses** (:class:`WeakCoherentSource`): a phase-randomised
laser pulse of mean photon number μ has Poisson photon statistics; decoy-state
BB84 picks the intensity of each pulse at random among a signal and decoys
(Hwang, PRL 91, 057901 (2003); Lo, Ma & Chen, PRL 94, 230504 (2005)).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from qnetstack.physical.params import HardwareParams
from qnetstack.physical.service import Probability

__all__ = [
    "SpdcSource",
    "EmitterSource",
    "WeakCoherentSource",
    "spdc_visibility",
]


def spdc_visibility(mean_pairs_per_mode: float, schmidt_number: float | None) -> float:
    """Low-efficiency two-photon interference visibility ``(1 + μ/K)/(1 + 2μ + μ/K)``.

    ``schmidt_number=None`` is the Poisson (K → ∞) limit ``1/(1+2μ)``. See the
    module docstring (Takesue & Shimizu, Opt. Commun. 283, 276 (2010)).
    """
    mu = mean_pairs_per_mode
    if mu < 0:
        raise ValueError(f"mean_pairs_per_mode must be >= 0, got {mu}")
    bunched = 0.0 if schmidt_number is None else mu / schmidt_number
    return (1.0 + bunched) / (1.0 + 2.0 * mu + bunched)


class SpdcSource(HardwareParams):
    """A pulsed spontaneous parametric down-conversion pair source.

    * ``mean_pair_number``: μ, mean pairs per pulse per down-conversion
      process (per mode; a polarisation-entangled source runs two). Default
      0.01, a typical low-multi-pair operating point (Takesue & Shimizu 2010
      discuss μ from 0.001 to 0.1).
    * ``statistics``: ``"thermal"`` (default: SPDC is thermal per Schmidt mode)
      or ``"poisson"`` (many-mode limit).
    * ``heralding_efficiency``: probability that a photon's partner leaves the
      source into its fibre (Klyshko efficiency). Default 0.8, of the order
      of the 0.8-0.9 reached by fibre-coupled sources (e.g. Weston et al.,
      Opt. Express 24, 10869 (2016)).
    * ``spectral_purity``: in (0, 1]; Schmidt number K = 1/purity (Christ et
      al., NJP 13, 033027 (2011)). Default 1 (an ideal single-mode source).
    * ``repetition_rate_hz``: pump pulses per second. Default 1e8 Hz, the
      order of the mode-locked pumps (76-80 MHz Ti:sapphire) used by most
      pulsed sources; the pair rate is μ × repetition rate.
    * ``wavelength_nm``: default 1550 (telecom C band).
    """

    mean_pair_number: float = Field(0.01, ge=0.0)
    statistics: Literal["thermal", "poisson"] = "thermal"
    heralding_efficiency: Probability = 0.8
    spectral_purity: float = Field(1.0, gt=0.0, le=1.0)
    repetition_rate_hz: float = Field(1e8, gt=0.0)
    wavelength_nm: float = Field(1550.0, gt=0.0)

    @property
    def schmidt_number(self) -> float | None:
        """Effective number of modes K = 1/purity; ``None`` for Poisson statistics (K → ∞)."""
        return None if self.statistics == "poisson" else 1.0 / self.spectral_purity

    @property
    def pair_rate_hz(self) -> float:
        """Mean pairs per second of one process: μ × repetition rate."""
        return self.mean_pair_number * self.repetition_rate_hz

    def pair_number_probability(self, n: int) -> float:
        """Probability of exactly ``n`` pairs in one pulse of one process (module docstring)."""
        if n < 0:
            return 0.0
        mu = self.mean_pair_number
        if mu == 0.0:
            return 1.0 if n == 0 else 0.0
        k = self.schmidt_number
        if k is None:
            return math.exp(-mu + n * math.log(mu) - math.lgamma(n + 1))
        m = mu / k  # mean per Schmidt mode
        log_p = math.lgamma(n + k) - math.lgamma(k) - math.lgamma(n + 1) + n * math.log(m) - (n + k) * math.log1p(m)
        return math.exp(log_p)

    def pair_number_distribution(self, max_pairs: int, entangled: bool = False) -> np.ndarray:
        """P(0), ..., P(max_pairs), truncated (the tail is left out, not folded in).

        ``entangled=True``: the total over the two processes of an entangled
        source (the convolution of two copies), exact for every n listed.
        """
        if max_pairs < 0:
            raise ValueError(f"max_pairs must be >= 0, got {max_pairs}")
        one = np.array([self.pair_number_probability(n) for n in range(max_pairs + 1)])
        return np.convolve(one, one)[: max_pairs + 1] if entangled else one

    def truncation_error(self, max_pairs: int, entangled: bool = False) -> float:
        """Probability mass above ``max_pairs``, ``1 - Σ_{n ≤ max_pairs} P(n)``."""
        return max(0.0, 1.0 - float(self.pair_number_distribution(max_pairs, entangled).sum()))

    def multi_pair_probability(self, entangled: bool = False) -> float:
        """Probability of two or more pairs in one pulse, ``1 - P(0) - P(1)``."""
        return self.truncation_error(1, entangled)

    def visibility(self) -> float:
        """Low-efficiency two-photon interference visibility, :func:`spdc_visibility`."""
        return spdc_visibility(self.mean_pair_number, self.schmidt_number)


class EmitterSource(HardwareParams):
    """A deterministic single emitter whose photon is entangled with its spin memory.

    ``photon_efficiency() = excitation_probability × zero_phonon_line_fraction
    × collection_efficiency``: the probability that one excitation puts a
    photon usable for interference (coherent line) into the collection fibre.

    Defaults are NV-centre-like:

    * ``zero_phonon_line_fraction`` 0.03: about 3 % of NV emission is in the
      zero-phonon line (Bernien et al., Nature 497, 86 (2013); Humphreys et
      al., Nature 558, 268 (2018));
    * ``collection_efficiency`` 0.1: solid-immersion-lens collection into the
      fibre, order of magnitude consistent with the few 1e-4 total detection
      probability per attempt reported by Humphreys et al. 2018 after ZPL
      filtering and detection;
    * ``indistinguishability`` 0.9: two-photon (HOM) visibility of photons from
      two NV centres, 0.90 (Bernien et al. 2013);
    * ``excitation_probability`` 0.99: near-deterministic optical π pulse.

    Typical other platforms (orders of magnitude, not presets):
    trapped ions emit directly into the coherent line (ZPL fraction ≈ 1, up to
    the decay branching ratio), with collection ≈ 0.1 and HOM visibility
    ≈ 0.95 (Stephenson et al., PRL 124, 110501 (2020)); trapped atoms in
    cavities similar (Ritter et al., Nature 484, 195 (2012)); self-assembled
    quantum dots in open microcavities reach ZPL fraction ≈ 0.9, ≈ 0.57
    end-to-end efficiency and indistinguishability ≈ 0.975 (Tomm et al.,
    Nat. Nanotechnol. 16, 399 (2021)).
    """

    zero_phonon_line_fraction: Probability = 0.03
    collection_efficiency: Probability = 0.1
    indistinguishability: Probability = 0.9
    excitation_probability: Probability = 0.99
    wavelength_nm: float = Field(637.0, gt=0.0)  # NV ZPL at 637 nm (Bernien et al. 2013)

    def photon_efficiency(self) -> float:
        """Probability that one excitation gives a usable photon after the collection optics."""
        return self.excitation_probability * self.zero_phonon_line_fraction * self.collection_efficiency


class WeakCoherentSource(HardwareParams):
    """Phase-randomised attenuated laser with selectable intensities (decoy-state BB84).

    ``intensities``: mean photon numbers (signal first, then decoys, e.g.
    μ, ν, 0); ``probabilities``: the chance of choosing each, summing to 1.
    Photon numbers are Poisson with the chosen mean (Hwang, PRL 91, 057901
    (2003); Lo, Ma & Chen, PRL 94, 230504 (2005)). Defaults: μ = 0.5, ν = 0.1,
    vacuum, near the optimised values of Ma, Qi, Zhao & Lo, PRA 72, 012326
    (2005) (μ ≈ 0.48 and a weak decoy of order 0.1); the choice
    probabilities 0.8/0.1/0.1 are illustrative.
    """

    intensities: tuple[float, ...] = (0.5, 0.1, 0.0)
    probabilities: tuple[float, ...] = (0.8, 0.1, 0.1)
    repetition_rate_hz: float = Field(1e8, gt=0.0)
    wavelength_nm: float = Field(1550.0, gt=0.0)

    @model_validator(mode="after")
    def _check_choices(self) -> WeakCoherentSource:
        if not self.intensities:
            raise ValueError("intensities must not be empty")
        if len(self.intensities) != len(self.probabilities):
            raise ValueError(f"intensities ({len(self.intensities)}) and probabilities ({len(self.probabilities)}) differ in length")
        for i, mu in enumerate(self.intensities):
            if not mu >= 0.0 or math.isinf(mu):
                raise ValueError(f"intensities[{i}]={mu} must be a finite mean photon number >= 0")
        for i, p in enumerate(self.probabilities):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"probabilities[{i}]={p} must be in [0, 1]")
        if abs(sum(self.probabilities) - 1.0) > 1e-9:
            raise ValueError(f"probabilities must sum to 1, got {sum(self.probabilities)}")
        return self

    def photon_number_probability(self, intensity_index: int, n: int) -> float:
        """Poisson ``e^(-μ) μ^n / n!`` for the intensity with that index."""
        mu = self.intensities[intensity_index]
        if n < 0:
            return 0.0
        if mu == 0.0:
            return 1.0 if n == 0 else 0.0
        return math.exp(-mu + n * math.log(mu) - math.lgamma(n + 1))

    def sample(self, rng: np.random.Generator) -> tuple[int, int]:
        """One pulse: (index of the chosen intensity, its photon number)."""
        index = int(rng.choice(len(self.intensities), p=np.asarray(self.probabilities)))
        return index, int(rng.poisson(self.intensities[index]))

    def sample_many(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` pulses at once: arrays of intensity indices and photon numbers."""
        index = rng.choice(len(self.intensities), size=size, p=np.asarray(self.probabilities))
        photons = rng.poisson(np.asarray(self.intensities)[index])
        return index, photons
