"""Error correction by syndrome decoding of LDPC codes, with the belief-propagation decoder of the ``ldpc`` package.

Protocol (syndrome coding for Slepian–Wolf source coding with side
information: Wyner 1974; for QKD, Pearson 2004 and Elkouss, Leverrier,
Alléaume & Boutros, ISIT 2009):

1. both parties hold the same parity-check matrix H (m × n), built from a
   seed they share;
2. Alice discloses her syndrome s_A = H·x (m bits);
3. Bob computes H·y ⊕ s_A = H·e, the syndrome of the error pattern e = x ⊕ y,
   and decodes e by belief propagation (Gallager 1962; Kschischang, Frey &
   Loeliger 2001) with the prior P(e_i = 1) = q from the estimated QBER, i.e.
   log-likelihood ratios log((1 − q)/q); his key becomes y ⊕ ê.

Rate adaptation. One fixed rate either wastes disclosed bits or fails often
at short lengths, so the syndrome is disclosed in steps: the first
``m_0 = ⌈f_start · n · h(q)⌉`` rows, then, each time the decoder does not
converge (its estimate does not satisfy the syndrome), ``⌈f_step · n · h(q)⌉``
more rows, until it converges or the disclosed rows reach
``f_max · n · h(q)``: then the result is a typed failure
(:class:`~qnetstack.application.qkd.reconcile.ReconciliationFailed`) and no
key is handed on. Every disclosed syndrome bit counts as leaked, also those
of failed steps. Disclosing more syndrome bits on failure is the interactive
rate-adaptive idea of blind reconciliation (Martinez-Mateo, Elkouss & Martin,
Quantum Inf. Comput. 12, 791, 2012), here with extra check rows rather than
revealed punctured symbols.

Codes (built here, seeded; no table of published codes is shipped):

* the first m_0 rows form an irregular code in the style of Luby, Mitzenmacher,
  Shokrollahi & Spielman (IEEE Trans. Inf. Theory 47, 585, 2001) and
  Richardson, Shokrollahi & Urbanke (ibid. 619, 2001): a fraction of the
  columns of each degree (default 25 % degree 2, 60 % degree 3, 15 %
  degree 12: the degree-2 share of edges is ~0.15, under the stability bound
  λ₂ ρ'(1) < 1 / (2 √(q(1 − q))) for q ≤ 5 % and check degrees ≤ 20), each
  column joined to distinct checks drawn from a shuffled pool of sockets so
  that the check degrees differ by at most one (a random construction, not
  progressive edge growth: no girth condition beyond no repeated edge);
* each later row joins ``⌈(edges of the first rows)/m_0⌉`` distinct columns
  drawn at random, so any prefix of rows is itself an LDPC code.

Decoder: ``ldpc.BpDecoder`` (Roffe et al., the ``ldpc`` package, v2),
product-sum BP with the parallel (flooding) schedule and ``max_iter``
iterations. A decoder that converges to another word with the same syndrome
hands on a wrong key; verification (:mod:`qnetstack.application.qkd.verify`)
catches it. Keys are uint8 arrays of 0/1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sparse
from ldpc import BpDecoder

from qnetstack.application.qkd.reconcile import Outcome, ReconciliationFailed, ReconciliationResult, binary_entropy, check_keys, efficiency

# below this the code would need no rows at all; one row is still disclosed so that Bob has something to check
_MIN_QBER = 1e-4


def _default_degrees() -> dict[int, float]:
    return {2: 0.25, 3: 0.60, 12: 0.15}


@dataclass(frozen=True)
class LdpcParameters:
    """How the code is built and how much is disclosed.

    ``column_degrees``: fraction of columns of each degree in the first rows.
    ``f_start``, ``f_step``, ``f_max``: disclosed syndrome rows, as multiples
    of n · h(q), at the first try, added per retry, and at most.
    ``max_iter``: BP iterations per decoding attempt.
    """

    column_degrees: dict[int, float] = field(default_factory=_default_degrees)
    f_start: float = 1.1
    f_step: float = 0.05
    f_max: float = 1.5
    max_iter: int = 100

    def __post_init__(self) -> None:
        if not self.column_degrees or any(d < 1 or share < 0 for d, share in self.column_degrees.items()):
            raise ValueError("column_degrees must map degrees >= 1 to non-negative fractions")
        if abs(sum(self.column_degrees.values()) - 1.0) > 1e-9:
            raise ValueError(f"column_degrees fractions must sum to 1, got {sum(self.column_degrees.values())}")
        if not 0 < self.f_start <= self.f_max or self.f_step <= 0:
            raise ValueError("need 0 < f_start <= f_max and f_step > 0")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter}")


def _distinct_per_column(rows: np.ndarray, columns: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Swap sockets between edges until no column meets the same row twice (a few rounds suffice at these densities)."""
    rows = rows.copy()
    for _ in range(200):
        key = columns.astype(np.int64) * m + rows
        order = np.argsort(key, kind="stable")
        repeated = order[1:][key[order[1:]] == key[order[:-1]]]
        if repeated.size == 0:
            return rows
        partners = rng.integers(0, rows.size, repeated.size)
        rows[repeated], rows[partners] = rows[partners], rows[repeated].copy()
    raise RuntimeError("could not build a parity-check matrix without repeated edges; lower the column degrees")


def build_parity_check(n: int, m_first: int, m_total: int, column_degrees: dict[int, float], rng: np.random.Generator) -> sparse.csr_matrix:
    """An m_total × n parity-check matrix (uint8, CSR): an irregular code in the first ``m_first`` rows, check-regular rows after (module docstring)."""
    if not 1 <= m_first <= m_total:
        raise ValueError(f"need 1 <= m_first <= m_total, got {m_first}, {m_total}")
    counts = {degree: int(round(share * n)) for degree, share in sorted(column_degrees.items())}
    counts[max(counts)] += n - sum(counts.values())
    degrees = np.concatenate([np.full(count, min(degree, m_first)) for degree, count in counts.items()])
    rng.shuffle(degrees)
    columns = np.repeat(np.arange(n), degrees)
    sockets = rng.permutation(np.arange(columns.size) % m_first)
    rows = _distinct_per_column(sockets, columns, m_first, rng)
    extra = m_total - m_first
    if extra:
        row_degree = min(n, math.ceil(columns.size / m_first))
        extra_columns = np.concatenate([rng.choice(n, row_degree, replace=False) for _ in range(extra)])
        rows = np.concatenate([rows, np.repeat(np.arange(m_first, m_total), row_degree)])
        columns = np.concatenate([columns, extra_columns])
    ones = np.ones(rows.size, dtype=np.uint8)
    return sparse.csr_matrix((ones, (rows, columns)), shape=(m_total, n), dtype=np.uint8)


def syndrome(matrix: sparse.csr_matrix, key: np.ndarray) -> np.ndarray:
    """H · key over GF(2), as uint8 0/1."""
    return ((matrix @ key.astype(np.int64)) & 1).astype(np.uint8)


class LdpcReconciler:
    """Syndrome reconciliation with rate adaptation by extra syndrome rows; see the module docstring."""

    name = "ldpc"

    def __init__(self, parameters: LdpcParameters | None = None) -> None:
        self.parameters = parameters or LdpcParameters()

    def reconcile(self, alice: np.ndarray, bob: np.ndarray, qber_estimate: float, rng: np.random.Generator) -> Outcome:
        check_keys(alice, bob, qber_estimate)
        p = self.parameters
        n = alice.size
        q = max(qber_estimate, _MIN_QBER)
        bound = n * binary_entropy(q)
        m_first = min(n - 1, max(1, math.ceil(p.f_start * bound)))
        m_step = max(1, math.ceil(p.f_step * bound))
        m_total = min(n - 1, max(m_first, math.ceil(p.f_max * bound)))
        matrix = build_parity_check(n, m_first, m_total, p.column_degrees, rng)
        alice_syndrome = syndrome(matrix, alice)
        bob_syndrome = syndrome(matrix, bob)
        disclosed = m_first
        attempts = 0
        while True:
            attempts += 1
            decoder = BpDecoder(
                matrix[:disclosed],
                error_rate=q,
                max_iter=p.max_iter,
                bp_method="product_sum",
                schedule="parallel",
                random_schedule_seed=1,  # unused by the parallel schedule; 0 would seed from the clock
            )
            error = decoder.decode(alice_syndrome[:disclosed] ^ bob_syndrome[:disclosed])
            if decoder.converge:
                corrected = bob ^ error.astype(np.uint8)
                return ReconciliationResult(
                    method=self.name,
                    key=corrected,
                    leaked_bits=disclosed,
                    efficiency=efficiency(disclosed, n, qber_estimate),
                    channel_uses=attempts,
                    passes=attempts,
                )
            if disclosed >= m_total:
                return ReconciliationFailed(
                    method=self.name,
                    reason=f"belief propagation did not converge with {disclosed} syndrome bits (f = {efficiency(disclosed, n, qber_estimate):.3f})",
                    leaked_bits=disclosed,
                    channel_uses=attempts,
                )
            disclosed = min(m_total, disclosed + m_step)
