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

Every scheme module exposes a model implementing :class:`HeraldingModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, runtime_checkable

import numpy as np

from qnetstack.physical.engine import bell_ket
from qnetstack.physical.params import NodeHardware, SingleClickLinkParams
from qnetstack.physical.service import BellState
from qnetstack.physical import single_click

__all__ = [
    "HeraldBranch",
    "HeraldingModel",
    "SingleClickModel",
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
    psi = bell_ket(bell_state).full().ravel()
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


@dataclass(frozen=True)
class SingleClickModel:
    """The single-click scheme (:mod:`qnetstack.physical.single_click`) as a :class:`HeraldingModel`.

    Both ends use the link's bright-state population α; photon efficiencies
    are emission × fibre over L/2 × detector, the closed form of
    :func:`qnetstack.physical.single_click.unnormalised_herald_state`.
    """

    params: SingleClickLinkParams
    hardware_a: NodeHardware = NodeHardware()
    hardware_b: NodeHardware = NodeHardware()

    def _etas(self) -> tuple[float, float]:
        eta_d = self.params.detector.efficiency
        return (
            single_click.arrival_efficiency(self.params, self.hardware_a) * eta_d,
            single_click.arrival_efficiency(self.params, self.hardware_b) * eta_d,
        )

    @cached_property
    def _branches(self) -> tuple[HeraldBranch, ...]:
        eta_a, eta_b = self._etas()
        alpha = self.params.bright_state_population
        p_dc = self.params.detector.dark_count_probability
        out = []
        for bell in (BellState.PSI_PLUS, BellState.PSI_MINUS):
            rho = single_click.unnormalised_herald_state(alpha, eta_a, eta_b, p_dc, bell)
            weight = float(np.real(np.trace(rho)))
            state = rho / weight if weight > 0 else rho
            out.append(HeraldBranch(bell_state=bell, probability=weight, state=state))
        return tuple(out)

    def branches(self) -> tuple[HeraldBranch, ...]:
        return self._branches  # the model is immutable, so computed once

    def success_probability(self) -> float:
        return sum(b.probability for b in self.branches())

    @cached_property
    def _instrument(self) -> tuple[tuple[float, BellState, np.ndarray], ...]:
        """Per herald: (probability, Bell state, normalised spin state), from the optics.

        Built once per link from the operator model the QuTiP backend runs,
        independently of the closed form: each node's spin–photon state
        (:func:`qnetstack.physical.single_click.emission_state`, photon loss included),
        the herald POVM on the two photons (beam splitter and detectors,
        :func:`qnetstack.physical.single_click.herald_povm`), the photons traced out.
        """
        alpha = self.params.bright_state_population
        trans_a = single_click.arrival_efficiency(self.params, self.hardware_a)
        trans_b = single_click.arrival_efficiency(self.params, self.hardware_b)
        rho_a = single_click.emission_state(alpha, trans_a).full()
        rho_b = single_click.emission_state(alpha, trans_b).full()
        # order (s_A, p_A, s_B, p_B) -> (s_A, s_B, p_A, p_B)
        joint = np.kron(rho_a, rho_b).reshape([2] * 8).transpose(0, 2, 1, 3, 4, 6, 5, 7).reshape(16, 16)
        povm = single_click.herald_povm(self.params.detector)
        out = []
        for outcome, bell in single_click.HERALD_BELL_STATES.items():
            lifted = np.kron(np.eye(4), povm[outcome].full())
            spins = (lifted @ joint).reshape(4, 4, 4, 4).trace(axis1=1, axis2=3)  # trace out the photons
            weight = float(np.real(np.trace(spins)))
            out.append((weight, bell, spins / weight if weight > 0 else spins))
        return tuple(out)

    def simulate_attempt(self, rng: np.random.Generator) -> HeraldBranch | None:
        """One attempt: sample the herald from the optics' instrument (see
        ``_instrument``); ``None`` when no single detector clicked."""
        u = rng.random()
        for weight, bell, state in self._instrument:
            if u < weight:
                return HeraldBranch(bell_state=bell, probability=weight, state=state)
            u -= weight
        return None
