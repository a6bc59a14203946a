"""Single-photon detectors: closed-form click statistics and a time-resolved simulator.

Theory of operation
-------------------
A :class:`Detector` is described by its kind (``"threshold"``: click / no
click; ``"pnr"``: photon-number resolving), its detection efficiency η, its
dark-count rate r, its dead time τ_d, its timing jitter and its after-pulsing
probability.

**Dark counts.** Dark counts are modelled as a homogeneous Poisson process of
rate r, independent of the light (the standard model, e.g. Hadfield, Nature
Photonics 3, 696 (2009), "Single-photon detectors for optical quantum
information applications", Sec. "Figures of merit"). The number of dark counts
in a window of length τ is Poisson with mean λ = r·τ, so the probability of
at least one is ``p_dc = 1 - exp(-r·τ)``.

**Threshold detector, n incident photons.** Each photon is detected
independently with probability η (a detector of efficiency η is a perfect one
behind a beam splitter of transmittance η; the Bernoulli thinning of photon
statistics, Kelley & Kleiner, Phys. Rev. 136, A316 (1964)). The detector stays
silent only if no photon is detected and no dark count occurs:

    P(no click | n) = (1 - p_dc) (1 - η)^n,   P(click | n) = 1 - P(no click | n).

This is the no-click POVM element of :func:`qnetstack.physical.schemes.single_click.detector_no_click`.

**Photon-number-resolving detector (model stated here).** An ideal PNR
detector reports the number of detection events in the window: the number of
detected photons, Binomial(n, η), plus an independent Poisson(λ) number of dark
counts, so ``P(k) = Σ_j C(n, j) η^j (1-η)^(n-j) · e^{-λ} λ^(k-j)/(k-j)!``.
Its mean is ``n·η + λ``; its no-event probability ``(1-η)^n e^{-λ}`` equals
the threshold no-click probability above. Dead time, jitter and after-pulsing
*inside* one window are ignored by this closed form (real PNR detectors
saturate; e.g. transition-edge sensors resolve up to ~10 photons, Lita, Miller
& Nam, Opt. Express 16, 3032 (2008)).

**Time-resolved simulation** (:meth:`Detector.simulate_clicks`), given photon
arrival times on ``[0, duration)``:

1. *efficiency*: each photon is kept with probability η (thinning);
2. *jitter*: each kept photon's time is shifted by a Gaussian of standard
   deviation σ = FWHM / (2√(2 ln 2)) ≈ FWHM / 2.355 (the FWHM of a Gaussian);
3. *dark counts*: a Poisson number of mean r·T at independent uniform times
   on ``[0, T)`` (a homogeneous Poisson process conditioned on its count is a
   set of i.i.d. uniform points, e.g. Ross, *Stochastic Processes*, 2nd ed.
   1996, §2.3);
4. *dead time*, **non-paralysable**: after a click the detector ignores every
   event for τ_d, and ignored events do not extend the dead time. For a
   Poisson input of rate n the recorded rate is then ``m = n / (1 + n·τ_d)``
   (Müller, Nucl. Instrum. Methods 112, 47 (1973); Knoll, *Radiation Detection
   and Measurement*, 4th ed. 2010, §4.VII);
5. *after-pulsing*, **simplified model**: after each click the detector clicks
   again with probability P_ap exactly when it re-arms, i.e. τ_d later; that
   after-pulse can itself be followed by another (a geometric cascade, mean
   number of clicks per primary 1/(1-P_ap)). In a real avalanche photodiode
   trapped carriers are released with a decaying probability density after
   the dead time (Itzler et al., J. Mod. Opt. 58, 174 (2011); Zhang et al.,
   Light Sci. Appl. 4, e286 (2015), Sec. "Afterpulsing"); putting all of it at
   the re-arm time keeps the total after-pulse probability and the worst-case
   timing. With τ_d = 0 an after-pulse coincides with its parent click.

Clicks are reported on ``[0, duration)``; a click that jitter pushes outside
that interval is dropped. The detector is armed at t = 0. The timeline is the
same for both kinds: it returns detection events, which a PNR user counts per
window (photons closer together than the dead time give one event).

Presets (module constants, copy with ``preset.replace(...)``, which
validates; pydantic's ``model_copy(update=...)`` does not): :data:`SNSPD` and
:data:`INGAAS_APD`, see their docstrings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from qnetstack.physical.components.preset_lookup import preset_lookup
from qnetstack.physical.params import DetectorParams, HardwareParams
from qnetstack.physical.service import Probability

__all__ = [
    "FWHM_PER_SIGMA",
    "Detector",
    "SNSPD",
    "INGAAS_APD",
    "DETECTOR_PRESETS",
    "detector_preset",
]

# FWHM of a Gaussian in units of its standard deviation: 2·sqrt(2·ln 2) ≈ 2.3548.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

# below this the PNR distribution's tail is lumped into its last entry
_PNR_TAIL = 1e-15


class Detector(HardwareParams):
    """A single-photon detector (see the module docstring for the model).

    Defaults: an ideal-but-lossy threshold detector with efficiency 0.8 (the
    default of :class:`qnetstack.physical.params.DetectorParams`, after SeQUeNCe's
    example links, Wu et al., Quantum Sci. Technol. 6, 045027 (2021)), no dark
    counts, no dead time, no jitter, no after-pulsing.
    """

    kind: Literal["threshold", "pnr"] = "threshold"
    efficiency: Probability = 0.8
    dark_count_rate_hz: float = Field(0.0, ge=0.0)
    dead_time_ns: float = Field(0.0, ge=0.0)
    jitter_fwhm_ps: float = Field(0.0, ge=0.0)
    afterpulse_probability: float = Field(0.0, ge=0.0, lt=1.0)  # 1 would click forever

    # ------------------------------------------------------------ closed forms

    def dark_count_probability(self, window_ns: float) -> float:
        """P(at least one dark count in a window of ``window_ns``) = 1 - exp(-r·τ)."""
        return -math.expm1(-self.dark_count_rate_hz * _check_window(window_ns) * 1e-9)

    def dark_count_mean(self, window_ns: float) -> float:
        """Mean number of dark counts in the window, λ = r·τ."""
        return self.dark_count_rate_hz * _check_window(window_ns) * 1e-9

    def no_click_probability(self, n_photons: int, window_ns: float) -> float:
        """Threshold detector: P(no click | n photons) = (1 - p_dc)(1 - η)^n."""
        n = _check_photons(n_photons)
        return (1.0 - self.dark_count_probability(window_ns)) * (1.0 - self.efficiency) ** n

    def click_probability(self, n_photons: int, window_ns: float) -> float:
        """Threshold detector: P(click | n photons) = 1 - (1 - p_dc)(1 - η)^n."""
        return 1.0 - self.no_click_probability(n_photons, window_ns)

    def pnr_distribution(self, n_photons: int, window_ns: float, max_count: int | None = None) -> np.ndarray:
        """P(k events) for k = 0 .. max_count of an ideal PNR detector (module docstring).

        The last entry is P(k ≥ max_count), so the vector sums to 1. By default
        ``max_count`` is large enough that the lumped tail is below 1e-15.
        """
        n = _check_photons(n_photons)
        lam = self.dark_count_mean(window_ns)
        if max_count is None:
            max_count = n + _poisson_cutoff(lam)
        if max_count < 0:
            raise ValueError(f"max_count must be >= 0, got {max_count}")
        eta = self.efficiency
        detected = np.array([math.comb(n, j) * eta**j * (1.0 - eta) ** (n - j) for j in range(n + 1)])
        dark = _poisson_pmf(lam, max_count + 1)
        dist = np.convolve(detected, dark)[: max_count + 1]
        dist[-1] += max(0.0, 1.0 - dist.sum())
        return dist

    def to_detector_params(self, window_ns: float) -> DetectorParams:
        """The window-level threshold model used by the heralding schemes
        (η and p_dc = 1 - e^{-r·τ}; dead time, jitter and after-pulsing are dropped)."""
        return DetectorParams(efficiency=self.efficiency, dark_count_probability=self.dark_count_probability(window_ns))

    @property
    def jitter_sigma_ns(self) -> float:
        """Standard deviation of the Gaussian timing jitter, FWHM / 2.355, in ns."""
        return self.jitter_fwhm_ps * 1e-3 / FWHM_PER_SIGMA

    # ------------------------------------------------------------ simulation

    def simulate_clicks(self, arrival_times_ns: Sequence[float] | np.ndarray, duration_ns: float, rng: np.random.Generator) -> np.ndarray:
        """Click times (sorted, ns) on ``[0, duration_ns)`` for photons arriving at
        ``arrival_times_ns``: efficiency, jitter, dark counts, non-paralysable dead
        time and after-pulsing as in the module docstring."""
        duration = float(duration_ns)
        if not math.isfinite(duration) or duration < 0:
            raise ValueError(f"duration_ns must be finite and >= 0, got {duration_ns}")
        arrivals = np.asarray(arrival_times_ns, dtype=float).ravel()
        if not np.all(np.isfinite(arrivals)):
            raise ValueError("arrival times must be finite")
        detected = arrivals[rng.random(arrivals.size) < self.efficiency]
        if self.jitter_fwhm_ps > 0 and detected.size:
            detected = detected + rng.normal(0.0, self.jitter_sigma_ns, detected.size)
        n_dark = rng.poisson(self.dark_count_rate_hz * duration * 1e-9)
        dark = rng.uniform(0.0, duration, n_dark)
        events = np.concatenate([detected, dark])
        events = np.sort(events[(events >= 0.0) & (events < duration)])
        if self.dead_time_ns == 0 and self.afterpulse_probability == 0:
            return events
        return self._apply_dead_time_and_afterpulses(events, duration, rng)

    def _apply_dead_time_and_afterpulses(self, events: np.ndarray, duration: float, rng: np.random.Generator) -> np.ndarray:
        dead = self.dead_time_ns
        p_ap = self.afterpulse_probability
        clicks: list[float] = []
        armed_at = -math.inf  # the detector is armed from t = 0 on
        afterpulse: float | None = None  # pending after-pulse time
        i, n = 0, events.size
        while True:
            # the pending after-pulse falls exactly at the re-arm time, before any later event
            if afterpulse is not None and (i >= n or afterpulse <= events[i]):
                t, afterpulse = afterpulse, None
            elif i < n:
                t = float(events[i])
                i += 1
            else:
                break
            if t >= duration:
                break  # events are sorted and an after-pulse is never earlier than the next event
            if t < armed_at:
                continue  # lost in the dead time; non-paralysable: armed_at stays
            clicks.append(t)
            armed_at = t + dead
            if p_ap > 0 and rng.random() < p_ap:
                afterpulse = armed_at
        return np.array(clicks)


def _check_window(window_ns: float) -> float:
    if not (window_ns >= 0 and math.isfinite(window_ns)):
        raise ValueError(f"window_ns must be finite and >= 0, got {window_ns}")
    return float(window_ns)


def _check_photons(n_photons: int) -> int:
    if isinstance(n_photons, bool) or int(n_photons) != n_photons or n_photons < 0:
        raise ValueError(f"n_photons must be a non-negative integer, got {n_photons!r}")
    return int(n_photons)


def _poisson_pmf(lam: float, size: int) -> np.ndarray:
    """e^{-λ} λ^k / k! for k < size, by the recurrence p_k = p_{k-1} λ / k."""
    out = np.zeros(size)
    p = math.exp(-lam)
    for k in range(size):
        out[k] = p
        p *= lam / (k + 1)
    return out


def _poisson_cutoff(lam: float) -> int:
    """Smallest m with P(Poisson(λ) > m) < _PNR_TAIL (at least 1)."""
    m, p, cdf = 0, math.exp(-lam), 0.0
    while True:
        cdf += p
        if 1.0 - cdf < _PNR_TAIL or m > 10_000:
            return max(m, 1)
        m += 1
        p *= lam / m


SNSPD = Detector(
    kind="threshold",
    efficiency=0.93,
    dark_count_rate_hz=1.0,
    dead_time_ns=40.0,
    jitter_fwhm_ps=150.0,
    afterpulse_probability=0.0,
)
"""Superconducting nanowire single-photon detector (WSi) at 1550 nm.

Marsili et al., "Detecting single infrared photons with 93% system
efficiency", Nature Photonics 7, 210 (2013): system detection efficiency 93%,
dark-count rate of order 1 cps, timing jitter ~150 ps FWHM, reset time ~40 ns
(used here as the dead time). SNSPDs show no after-pulsing (Natarajan, Tanner
& Hadfield, Supercond. Sci. Technol. 25, 063001 (2012), review, Sec. 2).
"""

INGAAS_APD = Detector(
    kind="threshold",
    efficiency=0.2,
    dark_count_rate_hz=1_000.0,
    dead_time_ns=10_000.0,
    jitter_fwhm_ps=200.0,
    afterpulse_probability=0.03,
)
"""Free-running InGaAs/InP avalanche photodiode at 1550 nm.

Zhang et al., "Advances in InGaAs/InP single-photon detector systems for
quantum communication", Light Sci. Appl. 4, e286 (2015): efficiency ~10-30%
(0.2 here), dark-count rate ~1e2-1e4 cps (1e3 here), dead time of order
µs to tens of µs set to keep after-pulsing to a few percent (10 µs and 3%
here), timing jitter of order 100-300 ps (200 ps here). Mid-range values of a
review, not one device: take a datasheet's numbers for a specific detector.
"""

DETECTOR_PRESETS: dict[str, Detector] = {"snspd": SNSPD, "ingaas_apd": INGAAS_APD}

_lookup_preset = preset_lookup(DETECTOR_PRESETS, "detector preset name", fold_case=True)


def detector_preset(name: str) -> Detector:
    """The preset called ``name`` (case-insensitive: ``"snspd"``, ``"ingaas_apd"``).

    An unknown name raises a pydantic ValidationError (a ValueError) listing
    the known names.
    """
    return _lookup_preset(name)
