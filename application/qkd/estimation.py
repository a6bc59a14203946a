"""Parameter estimation: the QBER with a confidence bound, and the decoy-state bounds.

QBER. A random sample of the sifted key is disclosed, its errors counted, and
the sample removed from the key. The error rate of the *remaining* n bits is
bounded from the k sampled ones by Serfling's inequality for sampling without
replacement (Serfling, Ann. Statist. 2, 39, 1974), in the form Tomamichel,
Lim, Gisin & Renner derive for QKD (Nat. Commun. 3, 634, 2012, Supplementary):

    P[ e_rest >= e_sample + delta ] <= exp(-2 n k^2 delta^2 / ((n + k)(k + 1)))

so ``e_rest <= e_sample + delta`` except with probability epsilon for
``delta = sqrt((n + k)(k + 1) ln(1/epsilon) / (2 n k^2))``
(:func:`serfling_deviation`). The protocol aborts when that bound exceeds the
threshold.

Decoy states. From the gains Q and error rates E of a signal (mu), a weak decoy
(nu < mu) and a vacuum class, the vacuum + weak decoy method of Ma, Qi, Zhao &
Lo (PRA 72, 012326, 2005) bounds the single-photon yield, gain and error:

    Y1 >= Y1_L = mu / (mu nu - nu^2) * (Q_nu e^nu - Q_mu e^mu nu^2/mu^2 - (mu^2 - nu^2)/mu^2 Y0)
    Q1 >= Q1_L = mu e^-mu Y1_L
    e1 <= e1_U = (E_nu Q_nu e^nu - e0 Y0) / (Y1_L nu),   e0 = 1/2

with Y0 = Q_vacuum. Finite-size fluctuations are optional: with
``standard_deviations = u > 0`` each observed rate r from N rounds is moved by
u * sqrt(r / N) in the direction that weakens the bound (the Gaussian
treatment of statistical fluctuations in Ma et al. 2005). This is not a composable bound; the composable
finite-key treatment of decoy BB84 is Lim et al. (2014), in ``key_length``.
"""

from __future__ import annotations

import math

import numpy as np

from qnetstack.application.qkd.types import (
    AbortReason,
    DecoyCounts,
    DecoyEstimate,
    ParameterEstimate,
    SiftedKey,
    check_count,
    check_probability,
)

__all__ = ["serfling_deviation", "estimate_qber", "vacuum_weak_bounds", "decoy_estimate", "BACKGROUND_ERROR"]

# A dark count or background click is a coin toss against Alice's bit (Ma et al. 2005: e0 = 1/2).
BACKGROUND_ERROR = 0.5


def serfling_deviation(remaining: float, sample: float, epsilon: float) -> float:
    """delta such that the error rate of ``remaining`` bits exceeds that of ``sample`` bits drawn without replacement by delta with probability <= epsilon."""
    check_count("remaining", remaining)
    check_count("sample", sample)
    check_probability("epsilon", epsilon)
    if remaining <= 0 or sample <= 0:
        raise ValueError(f"sample: both parts must be non-empty (sample {sample}, remaining {remaining})")
    n, k = float(remaining), float(sample)
    return math.sqrt((n + k) * (k + 1) * math.log(1 / epsilon) / (2 * n * k * k))


def estimate_qber(key: SiftedKey, sample_size: int, rng: np.random.Generator, epsilon: float, threshold: float) -> ParameterEstimate:
    """Disclose ``sample_size`` positions drawn uniformly without replacement, count their errors, and keep the rest.

    ``qber_upper = min(1, qber + serfling_deviation(n, k, epsilon))`` bounds the
    remaining key's error rate except with probability ``epsilon``; the
    estimate carries ``abort`` when it is above ``threshold``.
    """
    check_probability("epsilon", epsilon)
    if not 0.0 < threshold <= 0.5:
        raise ValueError(f"threshold: must be in (0, 0.5], got {threshold}")
    if not 0 < sample_size < len(key):
        raise ValueError(f"sample_size: must be between 1 and {len(key) - 1} (the key has {len(key)} bits), got {sample_size}")
    disclosed = np.zeros(len(key), dtype=np.bool_)
    disclosed[rng.choice(len(key), size=sample_size, replace=False)] = True
    errors = int(np.count_nonzero(key.alice[disclosed] != key.bob[disclosed]))
    kept = ~disclosed
    remaining = SiftedKey(key.alice[kept], key.bob[kept], key.rounds[kept])
    qber = errors / sample_size
    upper = min(1.0, qber + serfling_deviation(len(remaining), sample_size, epsilon))
    return ParameterEstimate(
        key=remaining,
        sample_size=sample_size,
        sample_errors=errors,
        qber=qber,
        qber_upper=upper,
        epsilon=epsilon,
        threshold=threshold,
        abort=AbortReason.QBER_ABOVE_THRESHOLD if upper > threshold else None,
    )


def vacuum_weak_bounds(mu: float, nu: float, gain_mu: float, gain_nu: float, qber_nu: float, y0: float) -> tuple[float, float]:
    """(Y1_L, e1_U) of Ma et al. (2005) from the signal and weak-decoy gains, the decoy's error rate and the vacuum yield.

    Y1_L is clipped at 0 (a count is never negative, so 0 is still a lower
    bound); e1_U at 1/2, where a single photon carries no key, and is 1/2 when
    Y1_L is 0.
    """
    if not mu > nu > 0:
        raise ValueError(f"nu: the decoy intensity must satisfy 0 < nu < mu, got mu={mu}, nu={nu}")
    y1 = (
        mu
        / (mu * nu - nu * nu)
        * (gain_nu * math.exp(nu) - gain_mu * math.exp(mu) * nu * nu / (mu * mu) - (mu * mu - nu * nu) / (mu * mu) * y0)
    )
    y1 = max(0.0, y1)
    if y1 == 0.0:
        return 0.0, BACKGROUND_ERROR
    e1 = (qber_nu * gain_nu * math.exp(nu) - BACKGROUND_ERROR * y0) / (y1 * nu)
    return y1, min(BACKGROUND_ERROR, max(0.0, e1))


def decoy_estimate(counts: DecoyCounts, signal: int, decoy: int, vacuum: int, standard_deviations: float = 0.0) -> DecoyEstimate:
    """Single-photon bounds from the counts of the signal, weak-decoy and vacuum classes (Ma, Qi, Zhao & Lo 2005)."""
    mu, nu = counts.intensities[signal], counts.intensities[decoy]
    if counts.intensities[vacuum] != 0.0:
        raise ValueError(f"vacuum: class {vacuum} has intensity {counts.intensities[vacuum]}, not 0")
    for name, k in (("signal", signal), ("decoy", decoy), ("vacuum", vacuum)):
        if counts.sent[k] == 0:
            raise ValueError(f"{name}: class {k} has no rounds with agreeing bases")
    check_count("standard_deviations", standard_deviations)
    u = standard_deviations

    def moved(rate: float, rounds: int, direction: int) -> float:
        return max(0.0, rate + direction * u * math.sqrt(rate / rounds))

    gain_mu, gain_nu, y0 = counts.gain(signal), counts.gain(decoy), counts.gain(vacuum)
    qber_mu, qber_nu = counts.error_rate(signal), counts.error_rate(decoy)
    # Y1_L falls as Q_mu and Y0 rise and as Q_nu falls; e1_U rises with E_nu Q_nu and as Y0 falls.
    y1_lower, _ = vacuum_weak_bounds(
        mu,
        nu,
        moved(gain_mu, counts.sent[signal], +1),
        moved(gain_nu, counts.sent[decoy], -1),
        qber_nu,
        moved(y0, counts.sent[vacuum], +1),
    )
    if y1_lower > 0.0:
        errors_nu = moved(qber_nu * gain_nu, counts.sent[decoy], +1)
        y0_low = moved(y0, counts.sent[vacuum], -1)
        e1_upper = min(BACKGROUND_ERROR, max(0.0, (errors_nu * math.exp(nu) - BACKGROUND_ERROR * y0_low) / (y1_lower * nu)))
    else:
        e1_upper = BACKGROUND_ERROR
    return DecoyEstimate(
        signal=mu,
        decoy=nu,
        gain_signal=gain_mu,
        qber_signal=qber_mu,
        y0=y0,
        y1_lower=y1_lower,
        q1_lower=mu * math.exp(-mu) * y1_lower,
        e1_upper=e1_upper,
        standard_deviations=u,
    )
