"""Protocol settings that maximise the finite-key length for a given block size, channel and ε.

Decoy BB84 (:func:`optimise_decoy_bb84`). The key length is Lim, Curty,
Walenta, Xu & Zbinden's (PRA 89, 022307, 2014; ``key_length.finite_key_decoy_bb84``)
on the counts a fibre and threshold detector are expected to give
(Ma, Qi, Zhao & Lo, PRA 72, 012326, 2005; ``key_length.expected_basis_counts``),
with error correction leaking f · n_Z · h(E_Z). The free settings are those Lim
et al. optimise numerically for each block size N: the signal and weak-decoy
intensities μ1 > μ2 (> μ3, which stays fixed: 0, a vacuum decoy, by default),
the probabilities p1, p2, p3 of the three intensities and the probability q_Z
that both ends choose the key basis. Their Fig. 1 shows the optimum moving with
N (smaller μ1 and q_Z for small N, where the statistics of the test basis cost
most). The search is scipy's differential evolution (Storn & Price, J. Global
Optim. 11, 341, 1997) over the box below with a fixed seed, so the answer is
deterministic, started from the best point of a coarse grid and polished by
L-BFGS-B; the length it returns is the bound at the settings it returns.

BBM92 (:func:`optimise_sample_fraction`). Tomamichel, Lim, Gisin & Renner's
bound (Nat. Commun. 3, 634, 2012; ``key_length.finite_key_entanglement``) on M
sifted bits of which k are disclosed to estimate the QBER: a larger sample
shrinks the statistical term μ but leaves fewer key bits, n = M − k. The
fraction k/M is searched on a grid in log scale and refined by bounded
Brent's method (scipy's ``minimize_scalar``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import differential_evolution, minimize_scalar

from qnetstack.application.qkd.key_length import (
    FibreDetectorModel,
    binary_entropy,
    expected_basis_counts,
    finite_key_decoy_bb84,
    finite_key_entanglement,
)
from qnetstack.application.qkd.types import check_count, check_probability

__all__ = [
    "DecoySettings",
    "DEFAULT_DECOY_SETTINGS",
    "OptimisedDecoy",
    "decoy_key_length",
    "optimise_decoy_bb84",
    "OptimisedSample",
    "entanglement_key_length",
    "optimise_sample_fraction",
]


@dataclass(frozen=True)
class DecoySettings:
    """Intensities (μ1, μ2, μ3), their probabilities (p1, p2, p3) and the key basis's probability q_Z."""

    intensities: tuple[float, float, float]
    probabilities: tuple[float, float, float]
    key_basis_probability: float


# The settings the finite-key tests use without optimising (tests/test_qkd_key_length.py).
DEFAULT_DECOY_SETTINGS = DecoySettings((0.6, 0.2, 0.0), (0.5, 0.3, 0.2), 0.5)

# The search box: μ1 in [0.05, 1], μ2 = r μ1 with r in [0.02, 0.9] (so μ1 > μ2 + μ3 for a small μ3),
# p1 in [0.05, 0.95], p2 = s (1 − p1) with s in [0.05, 0.95], q_Z in [0.5, 0.99].
_BOUNDS = ((0.05, 1.0), (0.02, 0.9), (0.05, 0.95), (0.05, 0.95), (0.5, 0.99))
_GRID_LEVELS = 3  # coarse grid: 3 levels per setting, 243 points
_SEED = 2014
_GENERATIONS = 60  # enough that more change the length by under 1 % (checked at N = 1e7 ... 1e10, 25 km)


def _settings(x: np.ndarray | tuple[float, ...], mu3: float) -> DecoySettings:
    mu1, ratio, p1, share, q_z = (float(v) for v in x)
    mu2 = max(ratio * mu1, mu3 + 1e-6)
    p2 = share * (1.0 - p1)
    return DecoySettings((mu1, mu2, mu3), (p1, p2, 1.0 - p1 - p2), q_z)


def _bound(
    model: FibreDetectorModel, distance_km: float, pulses: float, settings: DecoySettings, epsilon_sec: float, epsilon_cor: float
) -> tuple[int, float]:
    """(length, real-valued bound) of Lim et al. for the expected counts; the bound guides the search where no key is left."""
    mu, p, q_z = settings.intensities, settings.probabilities, settings.key_basis_probability
    if not (mu[0] > mu[1] + mu[2] and mu[1] > mu[2] >= 0.0):
        return 0, -math.inf
    key = expected_basis_counts(model, distance_km, pulses, mu, p, q_z)
    test = expected_basis_counts(model, distance_km, pulses, mu, p, 1.0 - q_z)
    detections = sum(key.detections)
    if detections == 0:
        return 0, -math.inf
    leak = model.ec_efficiency * detections * binary_entropy(min(0.5, sum(key.errors) / detections))
    result = finite_key_decoy_bb84(mu, p, key, test, leak, epsilon_sec, epsilon_cor)
    return result.length, result.terms.get("bound", -math.inf)


def decoy_key_length(
    model: FibreDetectorModel,
    distance_km: float,
    pulses: float,
    settings: DecoySettings,
    epsilon_sec: float = 1e-10,
    epsilon_cor: float = 1e-15,
) -> int:
    """Lim et al.'s finite-key length (bits, >= 0) for ``pulses`` pulses at ``settings`` over the model's fibre."""
    return _bound(model, distance_km, pulses, settings, epsilon_sec, epsilon_cor)[0]


@dataclass(frozen=True)
class OptimisedDecoy:
    """The best settings found, the length they give and that length per pulse."""

    settings: DecoySettings
    length: int
    per_pulse: float


def optimise_decoy_bb84(
    model: FibreDetectorModel,
    distance_km: float,
    pulses: float,
    epsilon_sec: float = 1e-10,
    epsilon_cor: float = 1e-15,
    mu3: float = 0.0,
) -> OptimisedDecoy:
    """The decoy-BB84 settings that maximise Lim et al.'s finite-key length for N = ``pulses`` (module docstring)."""
    check_count("pulses", pulses)
    check_count("distance_km", distance_km)
    check_probability("epsilon_sec", epsilon_sec)
    check_probability("epsilon_cor", epsilon_cor)
    if not 0.0 <= mu3 < 0.01:
        raise ValueError(f"mu3: the fixed weakest intensity must be in [0, 0.01), got {mu3}")

    def score(x: np.ndarray) -> float:
        length, bound = _bound(model, distance_km, pulses, _settings(x, mu3), epsilon_sec, epsilon_cor)
        # a length is whole bits; below one bit the real-valued bound (or a large penalty) steers the search
        return -float(length) if length > 0 else (1e12 if not math.isfinite(bound) else 1.0 - bound * 1e-9)

    levels = [np.linspace(low, high, _GRID_LEVELS + 2)[1:-1] for low, high in _BOUNDS]
    start = min(itertools.product(*levels), key=lambda x: score(np.asarray(x)))
    found = differential_evolution(
        score, _BOUNDS, seed=_SEED, x0=np.asarray(start), popsize=10, tol=1e-8, maxiter=_GENERATIONS, polish=True
    )
    best = found.x if found.fun <= score(np.asarray(start)) else np.asarray(start)
    settings = _settings(best, mu3)
    length = decoy_key_length(model, distance_km, pulses, settings, epsilon_sec, epsilon_cor)
    return OptimisedDecoy(settings, length, length / pulses)


# ------------------------------------------------------------------ BBM92


def entanglement_key_length(
    sifted_bits: int, sample_fraction: float, qber: float, ec_efficiency: float, epsilon_sec: float, epsilon_cor: float
) -> int:
    """Tomamichel et al.'s length for ``sifted_bits`` of expected QBER ``qber``, ``sample_fraction`` of them disclosed,
    error correction leaking f · n · h(Q) (verification's ⌈log2(1/ε_cor)⌉ bits counted too, as the application does)."""
    sample = round(sample_fraction * sifted_bits)
    if not 0 < sample < sifted_bits:
        return 0
    n = sifted_bits - sample
    leak = ec_efficiency * n * binary_entropy(qber) + max(1, math.ceil(-math.log2(epsilon_cor)))
    return finite_key_entanglement(n, sample, round(qber * sample), leak, epsilon_sec, epsilon_cor).length


@dataclass(frozen=True)
class OptimisedSample:
    """The best sample fraction found and the length it gives."""

    sample_fraction: float
    length: int


def optimise_sample_fraction(
    sifted_bits: int, qber: float, ec_efficiency: float = 1.1, epsilon_sec: float = 5e-11, epsilon_cor: float = 5e-11
) -> OptimisedSample:
    """The BBM92 sample fraction that maximises the finite-key length (module docstring); ε defaults are 1e-10 split evenly."""
    check_count("sifted_bits", sifted_bits)
    if not 0.0 <= qber < 0.5:
        raise ValueError(f"qber: must be in [0, 0.5), got {qber}")

    def length(fraction: float) -> int:
        return entanglement_key_length(sifted_bits, fraction, qber, ec_efficiency, epsilon_sec, epsilon_cor)

    grid = np.geomspace(1e-4, 0.9, 60)
    best = max(grid, key=length)
    i = int(np.argmax([length(f) for f in grid]))
    low, high = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    refined = minimize_scalar(lambda f: -length(f), bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    fraction = float(refined.x) if length(float(refined.x)) >= length(float(best)) else float(best)
    return OptimisedSample(fraction, length(fraction))


def _table(distance_km: float = 25.0) -> str:
    """The markdown table of docs/qkd-postprocessing.md: optimised settings against the defaults, N = 1e6 ... 1e10."""
    from qnetstack.application.qkd.key_length import decoy_bb84_rate_limit

    # the illustrative receiver of the finite-key tests (tests/test_qkd_key_length.py), not a cited experiment
    model = FibreDetectorModel(attenuation_db_per_km=0.2, bob_efficiency=0.1, dark_yield=6e-7, detector_error=0.005, ec_efficiency=1.16)
    rows = [
        "| N | μ1 | μ2 | p1 | p2 | p3 | q_Z | length | per pulse | defaults, per pulse | N → ∞ at these settings |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for exponent in range(6, 11):
        pulses = 10.0**exponent
        best = optimise_decoy_bb84(model, distance_km, pulses)
        s = best.settings
        default = decoy_key_length(model, distance_km, pulses, DEFAULT_DECOY_SETTINGS) / pulses
        limit = decoy_bb84_rate_limit(model, distance_km, s.intensities, s.probabilities, s.key_basis_probability)
        mu, p = s.intensities, s.probabilities
        rows.append(
            f"| 1e{exponent} | {mu[0]:.3f} | {mu[1]:.3f} | {p[0]:.3f} | {p[1]:.3f} | {p[2]:.3f} | {s.key_basis_probability:.3f} "
            f"| {best.length} | {best.per_pulse:.3e} | {default:.3e} | {limit:.3e} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(_table())
