"""Click statistics of a midpoint-source link's detectors in closed form.

Theory of operation
-------------------
The midpoint-source scheme (:mod:`qnetstack.physical.schemes.midpoint_source`)
puts four threshold detectors at each node (cH, cV, dH, dV: beam-splitter
port c or d, then a polarising beam splitter). Each detector sees the node's
memory photon and the photons of the SPDC source's arm in its polarisation.
This module gives, from the source's photon statistics alone, the
probability per attempt that detectors click — the figures a run's photon
statistics measure — so that a run can be checked against them.

Ingredients (notation of the scheme's module docstring; η_m = emission ×
η_d and η_s = heralding × T(L/2) × η_d fold the detector efficiency into the
inputs, which is exact for equal loss on every output of passive linear
optics):

* **Source arm.** One arm of a two-mode squeezed vacuum is thermal: the
  photon number of one down-conversion process at one node follows the
  source's law, negative binomial with K Schmidt modes or Poisson
  (:class:`qnetstack.physical.components.sources.SpdcSource`; Avenhaus et al.,
  PRL 101, 053601 (2008)). Its probability generating function (pgf) is
  ``G(z) = (1 + (μ/K)(1-z))^(-K)``, or ``exp(-μ(1-z))`` for Poisson; loss η
  thins it to ``G(1 - η(1-z))`` (Bernoulli thinning; Kelley & Kleiner, Phys.
  Rev. 136, A316 (1964)). The H and V processes are independent, and the two
  arms of one process carry the same photon number, so the joint pgf of the
  numbers detected at A and at B from one process is ``G((1-η_A)(1-η_B))`` at
  "none at either".
* **No photon at all** in a set of outputs that takes every photon of some
  inputs is no photon in those inputs (a beam splitter conserves photon
  number). So a polarisation arm (c and d of one polarisation) is dark with
  probability ``(1-p)² (1 - η_m/2) G(1-η_s)``, a whole node with
  ``(1-p)⁴ (1-η_m) G(1-η_s)²``, and both nodes with
  ``(1-p)⁸ (1-η_m,A)(1-η_m,B) G((1-η_s,A)(1-η_s,B))²``.
* **One detector** (port c, say) is where two-photon interference shows. A
  memory photon in mode e and k source photons in the mode
  ``√V e + √(1-V) x`` on a 50:50 beam splitter leave port c empty with
  probability ``(1 + kV) / 2^(k+1)`` (derived here: the amplitude of all
  photons in d, its norm from ``[d_e, d_χ†] = √V``; for V = 1, k = 1 it is
  the Hong–Ou–Mandel 1/2, Hong, Ou & Mandel, PRL 59, 2044 (1987)). The memory
  photon has the detector's polarisation with probability 1/2, so with
  ``g(z) = G(1 - η_s(1-z))``

      P(silent) = (1-p) [ (1 - η_m/2) g(1/2) + (η_m/4) (g(1/2) + (V/2) g'(1/2)) ].

From these: the click probability ``1 - P(silent)``; the probability that c
and d of one polarisation both click (``1 - 2 P(silent) + P(arm dark)``); its
normalised form, the measured ``g2(0) = P(c ∧ d) / (P(c) P(d))`` of the arm
(Hanbury Brown–Twiss; for a source arm alone, with η → 0 and no dark counts,
``1 + 1/K``, 2 for a single-mode thermal arm and 1 for Poisson, Christ et al.,
NJP 13, 033027 (2011)); the probability that both nodes click
(coincidence); accidentals, a click at A and at B in different attempts,
``P(A) P(B)`` since attempts are independent; and the Klyshko heralding
efficiency of node A, ``P(A ∧ B) / P(B)`` (Klyshko, Sov. J. Quantum Electron.
10, 1112 (1980)), raw (accidentals not subtracted).

These are exact for the source's full photon-number law. The scheme's model
keeps N ≤ 2 pairs and treats two pairs as one Schmidt mode (its module
docstring), so a simulated run matches them up to its truncation error, and
for Poisson or multimode sources only in the figures that do not depend on
two pairs sharing an arm: the arm coincidences and g2(0) of such sources are
the model's, not these (for Poisson the model's two-pair term splits the
pairs between H and V evenly over (2,0), (1,1), (0,2) rather than binomially,
which gives g2(0) → 4/3 instead of 1 at low efficiency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qnetstack.physical.components.sources import SpdcSource
from qnetstack.physical.params import NodeHardware
from qnetstack.physical.schemes.midpoint_source import MidpointSourceLinkParams, MidpointSourceModel

__all__ = ["SourceArmPgf", "MidpointClickProbabilities", "midpoint_click_probabilities"]


@dataclass(frozen=True)
class SourceArmPgf:
    """The pgf G(z) of one down-conversion process's photon number at one node, and G'(z)."""

    source: SpdcSource

    def value(self, z: float) -> float:
        mu = self.source.mean_pair_number
        k = self.source.schmidt_number
        if k is None:
            return math.exp(-mu * (1.0 - z))
        return (1.0 + mu / k * (1.0 - z)) ** (-k)

    def derivative(self, z: float) -> float:
        mu = self.source.mean_pair_number
        k = self.source.schmidt_number
        if k is None:
            return mu * math.exp(-mu * (1.0 - z))
        return mu * (1.0 + mu / k * (1.0 - z)) ** (-k - 1.0)


@dataclass(frozen=True)
class MidpointClickProbabilities:
    """Per attempt, for node A then node B (``[0]``, ``[1]``): a given detector clicks
    (all four alike), both detectors of one polarisation click, any detector clicks;
    and across the nodes: both click (coincidence), in different attempts (accidental)."""

    detector_click: tuple[float, float]
    arm_coincidence: tuple[float, float]
    end_click: tuple[float, float]
    coincidence: float

    @property
    def accidental(self) -> float:
        return self.end_click[0] * self.end_click[1]

    @property
    def g2(self) -> tuple[float, float]:
        """g2(0) of one polarisation arm, P(c ∧ d) / (P(c) P(d)), per node."""
        return (
            self.arm_coincidence[0] / self.detector_click[0] ** 2,
            self.arm_coincidence[1] / self.detector_click[1] ** 2,
        )

    @property
    def heralding_efficiency(self) -> tuple[float, float]:
        """Klyshko efficiency of node A (given a click at B) and of node B (given A)."""
        return self.coincidence / self.end_click[1], self.coincidence / self.end_click[0]


def midpoint_click_probabilities(
    params: MidpointSourceLinkParams, hardware_a: NodeHardware, hardware_b: NodeHardware
) -> MidpointClickProbabilities:
    """The closed forms of the module docstring for this link and its two ends' hardware."""
    eta_m_a, eta_s_a, eta_m_b, eta_s_b = MidpointSourceModel(params, hardware_a, hardware_b).efficiencies()
    pgf = SourceArmPgf(params.source)
    quiet = 1.0 - params.detector.dark_count_probability
    v = params.photon_indistinguishability

    def node(eta_m: float, eta_s: float) -> tuple[float, float, float]:
        def g(z: float) -> float:
            return pgf.value(1.0 - eta_s * (1.0 - z))

        def dg(z: float) -> float:
            return eta_s * pgf.derivative(1.0 - eta_s * (1.0 - z))

        silent = quiet * ((1.0 - eta_m / 2) * g(0.5) + eta_m / 4 * (g(0.5) + v / 2 * dg(0.5)))
        arm_dark = quiet**2 * (1.0 - eta_m / 2) * g(0.0)
        end_dark = quiet**4 * (1.0 - eta_m) * g(0.0) ** 2
        return 1.0 - silent, 1.0 - 2.0 * silent + arm_dark, 1.0 - end_dark

    click_a, arm_a, end_a = node(eta_m_a, eta_s_a)
    click_b, arm_b, end_b = node(eta_m_b, eta_s_b)
    both_dark = quiet**8 * (1.0 - eta_m_a) * (1.0 - eta_m_b) * pgf.value((1.0 - eta_s_a) * (1.0 - eta_s_b)) ** 2
    coincidence = 1.0 - (1.0 - end_a) - (1.0 - end_b) + both_dark
    return MidpointClickProbabilities((click_a, click_b), (arm_a, arm_b), (end_a, end_b), coincidence)
