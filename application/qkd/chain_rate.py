"""Asymptotic BBM92 key rate over a two-link repeater chain, in closed form.

The chain is A – R – B: two heralded links attempted in lock-step slots of
one attempt period each, a link holding its pair until the other link has one,
then an ideal Bell measurement at R (entanglement swapping, Żukowski, Zeilinger,
Horne & Ekert, PRL 71, 4287, 1993) and the Pauli-frame correction at the ends.
Per slot:

* **Slots per end-to-end pair.** Both links succeed with probability p per
  slot and stop once they hold a pair, so the wait is the larger of two
  geometric variables, E[max(N1, N2)] = (3 − 2p) / (p (2 − p)) (Collins,
  Jenkins & Kuzmich, PRL 98, 060502, 2007; Shchukin, Schmidt & van Loock,
  PRA 100, 032322, 2019).
* **Memory dephasing.** The pair made first waits D = |N1 − N2| slots for the
  other, both its qubits dephasing with time constant T2: the X-basis
  correlation is multiplied by e^(−2 D τ / T2), and
  E[λ^D] = p/(2 − p) · (1 + 2 (1 − p) λ / (1 − (1 − p) λ)), from
  P(D = 0) = p/(2 − p) and P(D = d) = 2p (1 − p)^d / (2 − p) for d ≥ 1.
  Z-basis correlations do not change under pure dephasing. The other waits
  (a herald's flight back, the swap outcome's flight to the ends) are a few
  slots and are left out; so is amplitude damping (T1).
* **QBER.** From the end-to-end state: Q_Z = ⟨01|ρ|01⟩ + ⟨10|ρ|10⟩ and
  Q_X = (1 − ⟨XX⟩)/2 against Φ+.
* **Secret fraction.** The asymptotic BBM92 fraction with one-way
  post-processing, 1 − h(Q_Z) − h(Q_X) (Shor & Preskill, PRL 85, 441, 2000;
  Ma, Fung & Lo, PRA 76, 012307, 2007), zero when negative, times the
  sifting factor (1/2 with each basis picked with probability 1/2 at each end).

So the rate is ``sifting · fraction / E[max(N1, N2)]`` secret bits per slot,
and per second it is divided by the slot's length. The repeaterless bound it
is compared with is −log2(1 − η) for the direct link (Pirandola, Laurenza,
Ottaviani & Banchi, Nat. Commun. 8, 15043, 2017; ``key_length.plob_bound``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qnetstack.application.qkd.key_length import binary_entropy
from qnetstack.physical.service import BellState

__all__ = [
    "ChainRate",
    "mean_slots_two_links",
    "mean_dephasing_factor",
    "to_phi_plus",
    "swap",
    "qber_z_x",
    "asymptotic_fraction",
    "two_link_chain_rate",
]

_I = np.eye(2)
_X = np.array([[0.0, 1.0], [1.0, 0.0]])
_Z = np.diag([1.0, -1.0])
_PHI_PLUS = np.array([1.0, 0.0, 0.0, 1.0]) / math.sqrt(2.0)


def mean_slots_two_links(p: float) -> float:
    """E[max(N1, N2)] for two independent geometric waits of success probability ``p`` per slot."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p: must be in (0, 1], got {p}")
    return (3.0 - 2.0 * p) / (p * (2.0 - p))


def mean_dephasing_factor(p: float, slot_ns: float, t2_ns: float | None) -> float:
    """E[exp(−2 D slot / T2)] with D = |N1 − N2| (module docstring); 1 without dephasing."""
    if t2_ns is None:
        return 1.0
    lam = math.exp(-2.0 * slot_ns / t2_ns)
    q = 1.0 - p
    return p / (2.0 - p) * (1.0 + 2.0 * q * lam / (1.0 - q * lam))


def _pauli_on_second(rho: np.ndarray, x: int, z: int) -> np.ndarray:
    op = np.kron(_I, np.linalg.matrix_power(_Z, z) @ np.linalg.matrix_power(_X, x))
    return op @ rho @ op.conj().T


def to_phi_plus(rho: np.ndarray, announced: BellState) -> np.ndarray:
    """The two-qubit state after the second qubit's holder undoes the announced frame
    ``(I ⊗ X^x Z^z)|Φ+>`` (``BellState.pauli_bits``)."""
    x, z = announced.pauli_bits
    return _pauli_on_second(rho, x, z)


def swap(rho_ar: np.ndarray, rho_rb: np.ndarray) -> np.ndarray:
    """The A–B state after an ideal Bell measurement of R's two qubits and the frame correction,
    averaged over the four outcomes; both inputs in the Φ+ frame, A's and B's qubit first and last."""
    rho = np.kron(rho_ar, rho_rb).reshape([2] * 8)  # indices a r1 r2 b, then a' r1' r2' b'
    out = np.zeros((4, 4), dtype=complex)
    for x in (0, 1):
        for z in (0, 1):
            # the outcome (I ⊗ X^x Z^z)|Φ+> on R's qubits; B then applies X^x Z^z's inverse
            bell = (np.kron(_I, np.linalg.matrix_power(_X, x) @ np.linalg.matrix_power(_Z, z)) @ _PHI_PLUS).reshape(2, 2)
            projected = np.einsum("ij,aijbckld,kl->abcd", bell.conj(), rho, bell).reshape(4, 4)
            out += _pauli_on_second(projected, x, z)
    return out / np.trace(out).real


def qber_z_x(rho: np.ndarray) -> tuple[float, float]:
    """(Q_Z, Q_X) of a two-qubit state against Φ+."""
    q_z = float((rho[1, 1] + rho[2, 2]).real)
    xx = np.kron(_X, _X)
    q_x = float((1.0 - np.trace(xx @ rho).real) / 2.0)
    return q_z, q_x


def asymptotic_fraction(q_z: float, q_x: float) -> float:
    """1 − h(Q_Z) − h(Q_X), at least 0 (Shor & Preskill 2000)."""
    return max(0.0, 1.0 - binary_entropy(min(q_z, 0.5)) - binary_entropy(min(q_x, 0.5)))


@dataclass(frozen=True)
class ChainRate:
    """The closed form's parts (module docstring) and the rate per slot and per second."""

    p: float
    slots_per_pair: float
    q_z: float
    q_x: float
    fraction: float
    sifting: float
    rate_per_slot: float
    rate_per_s: float


def two_link_chain_rate(p: float, rho_link: np.ndarray, slot_ns: float, t2_ns: float | None = None, sifting: float = 0.5) -> ChainRate:
    """BBM92 over A – R – B with links of success probability ``p`` per slot delivering ``rho_link``
    (Φ+ frame, after the herald); memories dephasing with ``t2_ns`` (None: no decoherence)."""
    if slot_ns <= 0:
        raise ValueError(f"slot_ns: must be positive, got {slot_ns}")
    ideal = swap(rho_link, rho_link)
    q_z, q_x_ideal = qber_z_x(ideal)
    q_x = (1.0 - (1.0 - 2.0 * q_x_ideal) * mean_dephasing_factor(p, slot_ns, t2_ns)) / 2.0
    slots = mean_slots_two_links(p)
    fraction = asymptotic_fraction(q_z, q_x)
    per_slot = sifting * fraction / slots
    return ChainRate(p, slots, q_z, q_x, fraction, sifting, per_slot, per_slot / (slot_ns * 1e-9))


@dataclass(frozen=True)
class MeasuredChainRate:
    """The rate per slot estimated from one run (:func:`measured_chain_rate`), with its parts' standard errors."""

    pairs: int
    sifted: int
    slots_per_pair: float
    slots_se: float
    q_z: float
    q_z_se: float
    q_x: float
    q_x_se: float
    fraction: float
    rate_per_slot: float
    rate_se: float


def measured_chain_rate(
    head_bases: np.ndarray, head_bits: np.ndarray, tail_bases: np.ndarray, tail_bits: np.ndarray, waits_slots: np.ndarray
) -> MeasuredChainRate:
    """(sifted / pairs) · (1 − h(Q̂_Z) − h(Q̂_X)) / mean(waits), secret bits per slot, from a run's
    frame-corrected bases and bits (0 = Z, 1 = X) and each pair's wait in slots.

    The standard error is the delta method's over the three independent parts: the
    mean wait (sample standard deviation / √n), the sifted fraction (binomial) and
    each basis's QBER (binomial, through d(1 − h(q))/dq = −log2((1 − q)/q)).
    """
    n = len(head_bases)
    waits = np.asarray(waits_slots, dtype=float)
    slots = float(waits.mean())
    slots_se = float(waits.std(ddof=1) / math.sqrt(len(waits)))
    sifted = 0
    qbers = []
    for basis in (0, 1):
        kept = (head_bases == basis) & (tail_bases == basis)
        k = int(kept.sum())
        if k == 0:
            raise ValueError(f"no sifted round in basis {basis}")
        q = float((head_bits[kept] != tail_bits[kept]).mean())
        sifted += k
        qbers.append((q, math.sqrt(q * (1.0 - q) / k)))
    (q_z, se_z), (q_x, se_x) = qbers
    fraction = asymptotic_fraction(q_z, q_x)
    share = sifted / n
    rate = share * fraction / slots
    slope = [math.log2((1.0 - q) / q) * se if 0.0 < q < 0.5 else 0.0 for q, se in qbers]
    fraction_se = math.hypot(*slope) if fraction > 0 else 0.0
    rate_se = math.sqrt(
        (rate * slots_se / slots) ** 2 + (rate * math.sqrt(share * (1.0 - share) / n) / share) ** 2 + (share * fraction_se / slots) ** 2
    )
    return MeasuredChainRate(n, sifted, slots, slots_se, q_z, se_z, q_x, se_x, fraction, rate, rate_se)


__all__ += ["MeasuredChainRate", "measured_chain_rate"]
