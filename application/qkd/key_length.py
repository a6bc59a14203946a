"""How many secret bits the estimates allow: asymptotic rates, finite-key lengths, the repeaterless bound.

(a) Asymptotic decoy BB84, the GLLP rate (Gottesman, Lo, Lütkenhaus & Preskill,
Quantum Inf. Comput. 4, 325, 2004; with decoys Lo, Ma & Chen, PRL 94, 230504,
2005), per pulse sent:

    R >= q { -Q_mu f h(E_mu) + Q_1 [1 - h(e_1)] }

and its expected value for a fibre and a threshold detector (Ma, Qi, Zhao &
Lo, PRA 72, 012326, 2005): eta = eta_Bob 10^(-alpha L / 10), the i-photon
yield Y_i = Y0 + 1 - (1 - eta)^i, so Q_mu = Y0 + 1 - e^(-eta mu),
E_mu Q_mu = e0 Y0 + e_det (1 - e^(-eta mu)), Y1 = Y0 + eta,
e1 = (e0 Y0 + e_det eta) / Y1 (:class:`FibreDetectorModel`). With infinitely
many decoys Q_1 and e_1 are known exactly (:func:`decoy_bb84_rate`); with a
vacuum and one weak decoy they are the bounds of ``estimation``
(:func:`vacuum_weak_decoy_rate`).

(b) Finite keys. Decoy BB84 after Lim, Curty, Walenta, Xu & Zbinden (PRA 89,
022307, 2014), three intensities mu1 > mu2 + mu3, mu2 > mu3 >= 0, the key from
one basis and the phase error from the other (:func:`finite_key_decoy_bb84`):

    l = floor( s_0 + s_1 - s_1 h(phi) - leak_EC - 6 log2(21/eps_sec) - log2(2/eps_cor) )

with Hoeffding bounds on the vacuum and single-photon counts s_0, s_1 and the
phase error rate phi. Lim et al. call the key basis X; here the key basis is
the one whose counts are passed as ``key_basis`` (Z, basis 0, by convention).
Entanglement-based BB84/BBM92 after Tomamichel, Lim, Gisin & Renner (Nat.
Commun. 3, 634, 2012) (:func:`finite_key_entanglement`):

    l <= n (1 - h(Q + mu)) - leak_EC - log2(2 / (eps_sec^2 eps_cor)),
    mu = sqrt((n + k)/(n k) (k + 1)/k ln(2/eps_sec))

A bound that is not positive gives a :class:`KeyLengthResult` of length 0
with a typed abort, never a negative length.

(c) The repeaterless bound on the secret-key capacity of a pure-loss channel
of transmittance eta, -log2(1 - eta) bits per use (Pirandola, Laurenza,
Ottaviani & Banchi, Nat. Commun. 8, 15043, 2017) (:func:`plob_bound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qnetstack.application.qkd.estimation import BACKGROUND_ERROR, serfling_deviation, vacuum_weak_bounds
from qnetstack.application.qkd.types import AbortReason, BasisCounts, KeyLengthResult, check_count, check_probability

__all__ = [
    "binary_entropy",
    "plob_bound",
    "gllp_rate",
    "FibreDetectorModel",
    "GYS",
    "decoy_bb84_rate",
    "vacuum_weak_decoy_rate",
    "optimal_mu",
    "max_distance",
    "finite_key_decoy_bb84",
    "expected_basis_counts",
    "decoy_bb84_rate_limit",
    "finite_key_entanglement",
]


def binary_entropy(p: float) -> float:
    """h(p) = -p log2 p - (1 - p) log2(1 - p), with h(0) = h(1) = 0."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: must be in [0, 1], got {p}")
    if p in (0.0, 1.0):
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def plob_bound(eta: float) -> float:
    """Secret bits per channel use no repeaterless protocol exceeds on a pure-loss channel of transmittance eta: -log2(1 - eta) (Pirandola et al. 2017)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta: must be in [0, 1], got {eta}")
    return math.inf if eta == 1.0 else -math.log2(1.0 - eta)


def gllp_rate(
    sifting_factor: float, gain: float, qber: float, single_photon_gain: float, single_photon_error: float, ec_efficiency: float
) -> float:
    """q { -Q_mu f h(E_mu) + Q_1 [1 - h(e_1)] }, secret bits per pulse; a value <= 0 means no key."""
    e1 = min(single_photon_error, BACKGROUND_ERROR)
    return sifting_factor * (-gain * ec_efficiency * binary_entropy(min(qber, 0.5)) + single_photon_gain * (1.0 - binary_entropy(e1)))


@dataclass(frozen=True)
class FibreDetectorModel:
    """A fibre of loss ``attenuation_db_per_km`` to a receiver of efficiency ``bob_efficiency`` (Ma et al. 2005).

    ``dark_yield`` is Y0, the probability of a click with no photon;
    ``detector_error`` is e_det, the probability a photon hits the wrong
    detector; ``ec_efficiency`` is f; ``sifting_factor`` is q (1/2 for BB84
    with bases chosen at random).
    """

    attenuation_db_per_km: float
    bob_efficiency: float
    dark_yield: float
    detector_error: float
    ec_efficiency: float
    sifting_factor: float = 0.5

    def transmittance(self, distance_km: float) -> float:
        """eta = eta_Bob 10^(-alpha L / 10)."""
        check_count("distance_km", distance_km)
        return self.bob_efficiency * 10.0 ** (-self.attenuation_db_per_km * distance_km / 10.0)

    def gain(self, distance_km: float, mu: float) -> float:
        """Q_mu = Y0 + 1 - exp(-eta mu)."""
        return self.dark_yield + 1.0 - math.exp(-self.transmittance(distance_km) * mu)

    def qber(self, distance_km: float, mu: float) -> float:
        """E_mu = (e0 Y0 + e_det (1 - exp(-eta mu))) / Q_mu."""
        eta = self.transmittance(distance_km)
        return (BACKGROUND_ERROR * self.dark_yield + self.detector_error * (1.0 - math.exp(-eta * mu))) / self.gain(distance_km, mu)

    def single_photon(self, distance_km: float) -> tuple[float, float]:
        """(Y1, e1) = (Y0 + eta, (e0 Y0 + e_det eta) / Y1)."""
        eta = self.transmittance(distance_km)
        y1 = self.dark_yield + eta
        return y1, (BACKGROUND_ERROR * self.dark_yield + self.detector_error * eta) / y1


# The GYS experiment (Gobby, Yuan & Shields, Appl. Phys. Lett. 84, 3762, 2004) as
# Ma, Qi, Zhao & Lo (2005) model it: alpha = 0.21 dB/km, eta_Bob = 4.5 %,
# Y0 = 1.7e-6, e_det = 3.3 %, f = 1.22, q = 1/2.
GYS = FibreDetectorModel(attenuation_db_per_km=0.21, bob_efficiency=0.045, dark_yield=1.7e-6, detector_error=0.033, ec_efficiency=1.22)


def decoy_bb84_rate(model: FibreDetectorModel, distance_km: float, mu: float) -> float:
    """Expected asymptotic rate (bits per pulse, >= 0) with infinitely many decoys: Y1 and e1 known exactly."""
    y1, e1 = model.single_photon(distance_km)
    rate = gllp_rate(
        model.sifting_factor, model.gain(distance_km, mu), model.qber(distance_km, mu), mu * math.exp(-mu) * y1, e1, model.ec_efficiency
    )
    return max(0.0, rate)


def vacuum_weak_decoy_rate(model: FibreDetectorModel, distance_km: float, mu: float, nu: float) -> float:
    """Expected asymptotic rate (>= 0) with a vacuum and one weak decoy nu: Q1 and e1 from the bounds of Ma et al. (2005)."""
    y1_lower, e1_upper = vacuum_weak_bounds(
        mu, nu, model.gain(distance_km, mu), model.gain(distance_km, nu), model.qber(distance_km, nu), model.dark_yield
    )
    rate = gllp_rate(
        model.sifting_factor,
        model.gain(distance_km, mu),
        model.qber(distance_km, mu),
        mu * math.exp(-mu) * y1_lower,
        e1_upper,
        model.ec_efficiency,
    )
    return max(0.0, rate)


def optimal_mu(model: FibreDetectorModel, distance_km: float, low: float = 1e-3, high: float = 1.5) -> tuple[float, float]:
    """(mu, rate) maximising :func:`decoy_bb84_rate` over mu in [low, high], by golden-section search (the rate is unimodal in mu)."""
    ratio = (math.sqrt(5.0) - 1.0) / 2.0

    def rate(mu: float) -> float:
        y1, e1 = model.single_photon(distance_km)
        # unclipped, so the search still has a slope where the rate is negative
        return gllp_rate(
            model.sifting_factor, model.gain(distance_km, mu), model.qber(distance_km, mu), mu * math.exp(-mu) * y1, e1, model.ec_efficiency
        )

    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = rate(c), rate(d)
    while b - a > 1e-6:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = rate(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = rate(d)
    mu = (a + b) / 2.0
    return mu, decoy_bb84_rate(model, distance_km, mu)


def max_distance(model: FibreDetectorModel, high_km: float = 500.0) -> float:
    """The distance (km, to 1 m) beyond which the optimal-mu asymptotic rate is 0, by bisection."""
    low, high = 0.0, high_km
    if optimal_mu(model, low)[1] <= 0.0:
        return 0.0
    while high - low > 1e-3:
        middle = (low + high) / 2.0
        if optimal_mu(model, middle)[1] > 0.0:
            low = middle
        else:
            high = middle
    return low


# ------------------------------------------------------------------ finite keys


def _check_three_intensities(intensities: tuple[float, float, float], probabilities: tuple[float, float, float]) -> None:
    if len(intensities) != 3 or len(probabilities) != 3:
        raise ValueError(f"intensities: three intensities and three probabilities needed, got {intensities}, {probabilities}")
    mu1, mu2, mu3 = intensities
    if not (mu1 > mu2 + mu3 and mu2 > mu3 >= 0.0):
        raise ValueError(f"intensities: need mu1 > mu2 + mu3 and mu2 > mu3 >= 0, got {intensities}")
    for p in probabilities:
        check_probability("probabilities", p)
    if abs(sum(probabilities) - 1.0) > 1e-9:
        raise ValueError(f"probabilities: must sum to 1, got {sum(probabilities)}")


def _gamma(epsilon_sec: float, b: float, c: float, d: float) -> float:
    """Lim et al. (2014)'s deviation of the phase error rate between the bases (random sampling without replacement)."""
    if b <= 0.0 or b >= 1.0:
        return 0.0
    argument = (c + d) / (c * d * (1.0 - b) * b) * (21.0**2 / epsilon_sec**2)
    if argument <= 1.0:
        return 0.0
    return math.sqrt((c + d) * (1.0 - b) * b / (c * d * math.log(2.0)) * math.log2(argument))


def _lim_terms(
    intensities: tuple[float, float, float],
    probabilities: tuple[float, float, float],
    key_basis: BasisCounts,
    test_basis: BasisCounts,
    epsilon_sec: float,
    finite: bool,
) -> tuple[float, float, float]:
    """(s_0, s_1, phi) of the key basis; with ``finite`` false the Hoeffding and sampling deviations are left out (the N -> infinity limit)."""
    mu = intensities
    p = probabilities
    tau0 = sum(pk * math.exp(-mk) for mk, pk in zip(mu, p))
    tau1 = sum(pk * mk * math.exp(-mk) for mk, pk in zip(mu, p))
    hoeffding = math.log(21.0 / epsilon_sec) if finite else 0.0

    def bounds(counts: tuple[int, ...]) -> tuple[list[float], list[float]]:
        delta = math.sqrt(sum(counts) / 2.0 * hoeffding)
        low = [math.exp(mk) / pk * (nk - delta) for mk, pk, nk in zip(mu, p, counts)]
        high = [math.exp(mk) / pk * (nk + delta) for mk, pk, nk in zip(mu, p, counts)]
        return low, high

    def vacuum_and_single(counts: tuple[int, ...]) -> tuple[float, float]:
        low, high = bounds(counts)
        s0 = max(0.0, tau0 * (mu[1] * low[2] - mu[2] * high[1]) / (mu[1] - mu[2]))
        s1 = (
            tau1
            * mu[0]
            * (low[1] - high[2] - (mu[1] ** 2 - mu[2] ** 2) / mu[0] ** 2 * (high[0] - s0 / tau0))
            / (mu[0] * (mu[1] - mu[2]) - mu[1] ** 2 + mu[2] ** 2)
        )
        return s0, max(0.0, s1)

    s0_key, s1_key = vacuum_and_single(key_basis.detections)
    _, s1_test = vacuum_and_single(test_basis.detections)
    errors_low, errors_high = bounds(test_basis.errors)
    v1_test = max(0.0, tau1 * (errors_high[1] - errors_low[2]) / (mu[1] - mu[2]))
    if s1_test <= 0.0 or s1_key <= 0.0:
        return s0_key, s1_key, 0.5
    ratio = v1_test / s1_test
    phi = ratio + (_gamma(epsilon_sec, ratio, s1_test, s1_key) if finite else 0.0)
    return s0_key, s1_key, min(0.5, phi)


def finite_key_decoy_bb84(
    intensities: tuple[float, float, float],
    probabilities: tuple[float, float, float],
    key_basis: BasisCounts,
    test_basis: BasisCounts,
    leak_ec: float,
    epsilon_sec: float,
    epsilon_cor: float,
) -> KeyLengthResult:
    """Secret key length of decoy BB84 from the per-intensity counts of both bases (Lim, Curty, Walenta, Xu & Zbinden 2014).

    ``leak_ec`` is the number of bits error correction disclosed. The result
    holds for an ``epsilon_sec``-secret and ``epsilon_cor``-correct key.
    """
    _check_three_intensities(intensities, probabilities)
    check_probability("epsilon_sec", epsilon_sec)
    check_probability("epsilon_cor", epsilon_cor)
    check_count("leak_ec", leak_ec)
    for name, counts in (("key_basis", key_basis), ("test_basis", test_basis)):
        if len(counts.detections) != 3:
            raise ValueError(f"{name}: counts for three intensities needed, got {len(counts.detections)}")
    s0, s1, phi = _lim_terms(intensities, probabilities, key_basis, test_basis, epsilon_sec, finite=True)
    terms = {
        "s0": s0,
        "s1": s1,
        "phi": phi,
        "leak_ec": leak_ec,
        "secrecy": 6.0 * math.log2(21.0 / epsilon_sec),
        "correctness": math.log2(2.0 / epsilon_cor),
    }
    if s1 <= 0.0:
        return KeyLengthResult(0, epsilon_sec, epsilon_cor, AbortReason.SINGLE_PHOTON_BOUND_EMPTY, terms)
    bound = s0 + s1 * (1.0 - binary_entropy(phi)) - leak_ec - terms["secrecy"] - terms["correctness"]
    return _length_or_abort(bound, epsilon_sec, epsilon_cor, terms)


def expected_basis_counts(
    model: FibreDetectorModel,
    distance_km: float,
    pulses: float,
    intensities: tuple[float, float, float],
    probabilities: tuple[float, float, float],
    basis_probability: float,
) -> BasisCounts:
    """Expected detections and errors (rounded to whole counts) in a basis both ends choose with probability ``basis_probability``, over ``pulses`` pulses."""
    check_count("pulses", pulses)
    check_probability("basis_probability", basis_probability)
    both = pulses * basis_probability**2
    detections = tuple(round(both * pk * model.gain(distance_km, mk)) for mk, pk in zip(intensities, probabilities))
    errors = tuple(
        round(both * pk * model.gain(distance_km, mk) * model.qber(distance_km, mk)) for mk, pk in zip(intensities, probabilities)
    )
    return BasisCounts(detections, errors)


def decoy_bb84_rate_limit(
    model: FibreDetectorModel,
    distance_km: float,
    intensities: tuple[float, float, float],
    probabilities: tuple[float, float, float],
    key_basis_probability: float,
) -> float:
    """The N -> infinity limit of Lim et al.'s length per pulse for the model's expected counts (no Hoeffding, sampling or ε terms), >= 0."""
    _check_three_intensities(intensities, probabilities)
    pulses = 1e18  # large enough that rounding the expected counts changes nothing at double precision
    key = expected_basis_counts(model, distance_km, pulses, intensities, probabilities, key_basis_probability)
    test = expected_basis_counts(model, distance_km, pulses, intensities, probabilities, 1.0 - key_basis_probability)
    s0, s1, phi = _lim_terms(intensities, probabilities, key, test, 0.5, finite=False)
    leak = model.ec_efficiency * sum(key.detections) * binary_entropy(sum(key.errors) / sum(key.detections))
    return max(0.0, (s0 + s1 * (1.0 - binary_entropy(phi)) - leak) / pulses)


def finite_key_entanglement(
    key_bits: int, sample_bits: int, sample_errors: int, leak_ec: float, epsilon_sec: float, epsilon_cor: float
) -> KeyLengthResult:
    """Secret key length of entanglement-based BB84/BBM92 from n key bits and k sampled bits (Tomamichel, Lim, Gisin & Renner 2012).

    The deviation mu is Serfling's (``estimation.serfling_deviation``) at
    probability eps_sec^2 / 4, which is the paper's
    sqrt((n + k)/(n k) (k + 1)/k ln(2/eps_sec)).
    """
    check_probability("epsilon_sec", epsilon_sec)
    check_probability("epsilon_cor", epsilon_cor)
    check_count("leak_ec", leak_ec)
    for name, value in (("key_bits", key_bits), ("sample_bits", sample_bits), ("sample_errors", sample_errors)):
        check_count(name, value)
    if sample_errors > sample_bits:
        raise ValueError(f"sample_errors: {sample_errors} errors in {sample_bits} sampled bits")
    terms = {"leak_ec": leak_ec, "epsilons": math.log2(2.0 / (epsilon_sec**2 * epsilon_cor))}
    if key_bits == 0 or sample_bits == 0:
        return KeyLengthResult(0, epsilon_sec, epsilon_cor, AbortReason.NO_POSITIVE_KEY_LENGTH, terms)
    qber = sample_errors / sample_bits
    mu = serfling_deviation(key_bits, sample_bits, epsilon_sec**2 / 4.0)
    terms.update(qber=qber, mu=mu)
    if qber + mu >= 0.5:
        return KeyLengthResult(0, epsilon_sec, epsilon_cor, AbortReason.QBER_ABOVE_THRESHOLD, terms)
    bound = key_bits * (1.0 - binary_entropy(qber + mu)) - leak_ec - terms["epsilons"]
    return _length_or_abort(bound, epsilon_sec, epsilon_cor, terms)


def _length_or_abort(bound: float, epsilon_sec: float, epsilon_cor: float, terms: dict[str, float]) -> KeyLengthResult:
    terms["bound"] = bound
    length = math.floor(bound) if bound >= 1.0 else 0
    if length <= 0:
        return KeyLengthResult(0, epsilon_sec, epsilon_cor, AbortReason.NO_POSITIVE_KEY_LENGTH, terms)
    return KeyLengthResult(length, epsilon_sec, epsilon_cor, None, terms)
