"""Heralding schemes as analytic models: per-attempt outcomes and post-herald states.

Theory of operation
-------------------
A heralded entanglement scheme (single-click, Barrett–Kok double-click, a
midpoint pair source, ...) turns one *attempt* into one of several detector
patterns. Some patterns herald success and name a Bell state; the rest are
failures. Attempts are independent and identically distributed as long as the
parameters do not change, so everything the layers above need is, per
successful pattern ("branch"):

* its probability per attempt, and
* the normalised two-qubit state of the memories it leaves, basis
  ``|q_A q_B>`` (node A first), as a 4x4 numpy array.

From these, the number of attempts up to the first success is geometric with
parameter ``p = Σ p_branch``, and the branch of that success is drawn with
probability ``p_branch / p`` (independence of attempts; e.g. Rozpędek et al.,
PRA 99, 052330 (2019), Sec. III, for the single-click case). That is what a
link layer's fast-forward mode samples, see :func:`sample_success`; attempt by
attempt simulation must agree with it in distribution, and each scheme's tests
show that it does.

Every scheme module exposes a model implementing :class:`HeraldingModel`
(:class:`qnetstack.physical.schemes.single_click.SingleClickModel`,
:class:`qnetstack.physical.schemes.barrett_kok.BarrettKokModel`,
:class:`qnetstack.physical.schemes.midpoint_source.MidpointSourceModel`); the
registry :mod:`qnetstack.physical.schemes.registry` maps link parameters to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from qnetstack.physical.engines.world import bell_vector
from qnetstack.physical.service import BellState

__all__ = [
    "HeraldBranch",
    "HeraldingModel",
    "branch_fidelity",
    "sample_success",
]


@dataclass(frozen=True)
class HeraldBranch:
    """One successful detector pattern of an attempt.

    ``bell_state``: the Bell state the herald announces. ``probability``: of
    this pattern, per attempt. ``state``: normalised 4x4 density matrix of
    the two memories right after the herald (node A first).
    """

    bell_state: BellState
    probability: float
    state: np.ndarray

    @property
    def fidelity(self) -> float:
        """Fidelity of ``state`` to the announced Bell state."""
        return branch_fidelity(self.state, self.bell_state)


@runtime_checkable
class HeraldingModel(Protocol):
    """What every heralding scheme tells about one attempt, from its parameters."""

    def branches(self) -> tuple[HeraldBranch, ...]:
        """The successful patterns; their probabilities sum to the success probability."""
        ...

    def success_probability(self) -> float:
        """Probability that one attempt heralds success."""
        ...


def branch_fidelity(state: np.ndarray, bell_state: BellState) -> float:
    """``<B|ρ|B>`` clipped into [0, 1] (rounding can step just outside)."""
    psi = bell_vector(bell_state)
    return min(1.0, max(0.0, float(np.real(np.conj(psi) @ state @ psi))))


def sample_success(model: HeraldingModel, rng: np.random.Generator) -> tuple[int, HeraldBranch]:
    """Attempts up to and including the first success (≥ 1), and its branch.

    Geometric number of attempts, then a branch in proportion to its
    probability (see the module docstring). Raises ``ValueError`` when the
    scheme can never succeed, since the wait would be infinite.
    """
    branches = model.branches()
    p = sum(b.probability for b in branches)
    if not p > 0.0:
        raise ValueError("this scheme never heralds success with these parameters")
    attempts = int(rng.geometric(min(p, 1.0)))
    # the branch, in proportion to its probability (a plain scan: few branches,
    # and numpy's choice() costs more than the whole draw)
    u = rng.random() * p
    for branch in branches[:-1]:
        if u < branch.probability:
            return attempts, branch
        u -= branch.probability
    return attempts, branches[-1]
