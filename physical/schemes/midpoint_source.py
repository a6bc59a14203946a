"""Midpoint-source ("MS") heralding: an SPDC pair source between two memory nodes.

Theory of operation
-------------------
The "MS" (midpoint source) scheme of Jones et al., New J. Phys. 18, 083015
(2016), Sec. 2 (the idea goes back to the entangled-source variant of
Simon et al., PRL 98, 190503 (2007)):

1. A polarisation-entangled SPDC source (:class:`qnetstack.physical.components.sources.SpdcSource`)
   at the midpoint emits pairs in ``Φ+ = (|HH> + |VV>)/√2`` and sends one photon
   of each pair to each node over L/2 of fibre.
2. Each node's memory emits a photon entangled with it,
   ``(|0>|H> + |1>|V>)/√2`` (spin |0> ↔ H, |1> ↔ V; a time-bin encoding is
   the same algebra).
3. Each node runs a linear-optics Bell-state measurement (BSM) on its own
   photon (input port m) and the arriving source photon (input port s): a
   50:50 beam splitter ``m† -> (c† + d†)/√2``, ``s† -> (c† - d†)/√2`` (polarisation
   kept), then a polarising beam splitter and a threshold detector on each
   output: four detectors cH, cV, dH, dV. Only Ψ± can be told apart
   (Lütkenhaus, Calsamiglia & Suominen, PRA 59, 3295 (1999): at most 1/2):
   clicks {cH, cV} or {dH, dV} announce Ψ+, {cH, dV} or {cV, dH} announce Ψ-
   (Braunstein & Mann, PRA 51, R1727 (1995); Weinfurter, Europhys. Lett. 25,
   559 (1994)).
4. The attempt succeeds when both nodes see one of these four patterns
   (exactly those two detectors click). Entanglement swapping (Żukowski et
   al., PRL 71, 4287 (1993)) leaves the memories in the source's Bell state
   composed with the two BSM frames: with the project's convention
   ``|B(x, z)> = (I ⊗ X^x Z^z)|Φ+>`` (:func:`qnetstack.physical.engines.world.bell_ket`), a BSM
   of the middle pair of ``|B1>_{12}|B2>_{34}`` with outcome ``B`` leaves qubits
   1, 4 in ``B1 ∘ B ∘ B2`` up to a global phase (transposes of Paulis are Paulis
   up to sign), so Ψ+Ψ+ and Ψ-Ψ- herald Φ+, mixed outcomes Φ-
   (:meth:`BellState.compose`). The Fock-space simulation computes the state
   from the optics without this rule, and the tests check the rule against it.

Imperfections modelled
----------------------
* **Loss.** Memory photon of node X: arrival ``emission_efficiency``; source
  photon: ``heralding_efficiency × 10^(-α L/20)`` (coupling into the fibre,
  fibre over L/2); all four detectors have efficiency η_d. Equal loss on all
  outputs of passive linear optics equals that loss on all inputs, so the
  closed form folds η_d into η_m,X = emission × η_d and
  η_s,X = heralding × T(L/2) × η_d and uses perfect detectors (the argument
  of :mod:`qnetstack.physical.schemes.single_click`); the simulation keeps η_d in the detector
  POVMs and a test shows the two agree.
* **Distinguishability.** Internal (spectral/temporal) states: the memory
  photon in a mode |e>, every source photon in ``√V|e> + √(1-V)|x>``, so the
  Hong–Ou–Mandel visibility of a memory photon and a source photon is
  ``|<χ_m|χ_s>|² = V`` (Hong, Ou & Mandel, PRL 59, 2044 (1987)). Source photons
  are identical to each other (a single Schmidt mode, see below).
* **Dark counts.** Each detector clicks spuriously with probability p per
  window: with n photons it stays silent with probability ``(1-p)(1-η_d)^n``.
  A dark count can complete a BSM pattern in which a photon was lost.
* **Multi-pair emission.** Pair numbers N of the source follow
  :meth:`SpdcSource.pair_number_distribution` (``entangled=True``). Every
  element of the node measurement (beam splitter, loss, photon-number-
  diagonal detector POVMs) commutes with the photon number at that node, and
  an N-pair term carries exactly N source photons to each node, so terms of
  different N do not interfere: the heralded state is ``Σ_N P(N) ρ_N``. We keep
  N ≤ 2 (exact Fock-space treatment of N = 0, 1, 2) and count the rest as a
  failed attempt. The neglected mass is ``ε = truncation_error(2,
  entangled=True)`` (≈ 4μ³ for small μ); it lowers each branch's probability
  by at most ε and moves its normalised state by at most ``2ε/p_branch`` in
  trace distance (:meth:`MidpointSourceModel.truncation_error`).
* **Two-pair state.** The N = 2 term is the single-Schmidt-mode state
  ``∝ (a_H† b_H† + a_V† b_V†)² |0>`` (equal amplitudes on HH·HH, HV·HV, VV·VV;
  Kok & Braunstein, PRA 61, 042304 (2000)). Its *weight* P(2) follows the
  source's statistics and Schmidt number, but for a multimode source
  (spectral purity < 1, or Poisson statistics) the two pairs would partly sit
  in different spectral modes, i.e. be partly distinguishable from each other
  and from the memory photon; that is **not** modelled, so for such sources
  the N = 2 term is an approximation. N ≤ 1 terms do not depend on it.

Closed form (derived for this module; N ≤ 1, basis |s_A s_B>, node A first)
---------------------------------------------------------------------------
Per node X (drop X), with the pair's photon at the node in polarisation j
and the memory's in polarisation s, a given success pattern (two detectors of
opposite polarisation, the other two silent) has the "instrument" G_[(s,j),(s',j')]
(ρ_spin,photon -> G ∘ ρ, then trace), with q = 1-p:

    G_[(s,j),(s,j)] = q² ( η_m η_s / 4 · [s≠j]                       both arrive, one per pattern detector
                          + η_m η_s (1+V) p / 4 · [s=j]               both in one detector (HOM bunching) + dark count
                          + n )
    n = η_m (1-η_s) p/2 + η_s (1-η_m) p/2 + (1-η_m)(1-η_s) p²           one or both lost, dark counts complete it
    G_[(H_m,V_s),(V_m,H_s)] = q² σ V η_m η_s / 4                         σ = +1 for Ψ+ patterns, -1 for Ψ-

(the coherence is the overlap ``<χ_m|χ_s><χ_s|χ_m> = V`` of the two ways
of producing the pattern). With no source photon the node has
``z = q² (η_m p/2 + (1-η_m) p²)`` on the diagonal. The two nodes share the
pair's polarisation j (amplitude 1/√2 each) and start from spins
``|++>``-like amplitudes 1/2, so per pattern pair (σ_A, σ_B)

    ρ = P(0) z_A z_B I/4 + P(1) ρ_1,
    ρ_1[ab, ab]    = (1/8) Σ_j D_A(a, j) D_B(b, j),      D(s, j) = G_[(s,j),(s,j)]
    ρ_1[00, 11]    = ρ_1[11, 00] = (1/8) σ_A σ_B q⁴ V² η_A η_B / 16,   η_X = η_m,X η_s,X

and nothing else. Limits: with p = 0 every pattern has probability
``P(1) η_A η_B / 64``, so (16 patterns)

    p_succ = P(1) η_A η_B (1/2)²

(each BSM succeeds with probability 1/2, Lütkenhaus et al. 1999), and the
state is ``(|00><00| + |11><11| ± V²(|00><11| + h.c.))/2``, fidelity

    F = (1 + V²)/2

to Φ± (each node's BSM dephases with a Z error of probability (1-V)/2, the
two errors cancel with probability (1+V²)/2). More pairs lower the fidelity
(multi-pair emission is the main error of SPDC-based swapping, Jones et al.
2016, Sec. 4; Guha et al., PRA 92, 022357 (2015)).

Two pairs, ideal hardware (derived for this module, used as a test)
-------------------------------------------------------------------
With no loss, no dark counts and V = 1, a two-pair emission puts three
photons on each node's beam splitter; pattern {cH, cV} needs all three in
port c (amplitude 1/√2 each). From ``|m_H; 1_H 1_V>`` the amplitude of
``|2_H 1_V>_c`` is 1/2, from ``|m_V; 2_H>`` it is 1/(2√2) (likewise with H ↔ V),
so with the source amplitudes 1/√3 on HH·HH, HV·HV, VV·VV every pattern
pair heralds with probability ``P(2) · 3/128`` the state

    ρ_2 = [5|00><00| + 4|01><01| + 4|10><10| + 5|11><11| ± 4(|00><11| + h.c.)] / 18,

fidelity 1/2 to the announced Φ±. With the memory photons lost (η_m = 0)
only the HV·HV term can herald, with probability ``P(2) η_s,A² η_s,B² / 48``
per pattern pair, and leaves the spins in I/4.

Simulation
----------
:func:`node_instrument` builds each node's instrument independently of the
formulas above: it writes the output Fock state (creation operators with
their √(n+1) factors on detectors × internal modes plus polarised loss
modes) for every memory polarisation and every source input ``|h, v>`` with
h + v = N, applies the detector POVMs with η_d and p, and sums over the Fock
basis. :meth:`MidpointSourceModel.pattern_branch` contracts the two nodes'
instruments with the source amplitudes; :meth:`MidpointSourceModel.simulate_attempt`
samples node A's click pattern by the Born rule from the joint state of
spins and photons (pair numbers kept as a mixture, never revealed), updates
the state, then samples node B's pattern. ``branches()`` takes N ≤ 1 from
the closed form and N = 2 from the Fock-space contraction (no closed form is
claimed for two pairs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from pydantic import Field, model_validator

from qnetstack.physical.components.fock import FockState, create
from qnetstack.physical.components.sources import SpdcSource
from qnetstack.physical.params import (
    DetectorParams,
    FibreParams,
    HardwareParams,
    NodeHardware,
    StationOptionError,
    check_station_timing,
)
from qnetstack.physical.schemes.model import HeraldBranch
from qnetstack.physical.service import BellState, Probability

__all__ = [
    "MidpointSourceLinkParams",
    "MidpointSourceModel",
    "DETECTORS",
    "NODE_PATTERNS",
    "NODE_PATTERN_BELL_STATES",
    "LINK_PATTERNS",
    "MAX_PAIRS",
    "node_instrument",
    "source_configurations",
    "unnormalised_pattern_state",
    "single_pair_success_probability",
    "ideal_fidelity",
]

MAX_PAIRS = 2  # pair-number cutoff of the model (module docstring)

DETECTORS: tuple[str, ...] = ("cH", "cV", "dH", "dV")
_BIT = {name: 1 << i for i, name in enumerate(DETECTORS)}  # a click pattern is a bitmask over DETECTORS
_N_OUTCOMES = 1 << len(DETECTORS)

# The four successful click patterns of one node's BSM, in the order of branches().
NODE_PATTERNS: tuple[tuple[str, str], ...] = (("cH", "cV"), ("dH", "dV"), ("cH", "dV"), ("cV", "dH"))
NODE_PATTERN_BELL_STATES: dict[tuple[str, str], BellState] = {
    ("cH", "cV"): BellState.PSI_PLUS,
    ("dH", "dV"): BellState.PSI_PLUS,
    ("cH", "dV"): BellState.PSI_MINUS,
    ("cV", "dH"): BellState.PSI_MINUS,
}
# Successful (node A pattern, node B pattern) pairs, the order of MidpointSourceModel.branches().
LINK_PATTERNS: tuple[tuple[tuple[str, str], tuple[str, str]], ...] = tuple((pa, pb) for pa in NODE_PATTERNS for pb in NODE_PATTERNS)
_SOURCE_BELL_STATE = BellState.PHI_PLUS


def _mask(pattern: tuple[str, str]) -> int:
    return _BIT[pattern[0]] | _BIT[pattern[1]]


def _link_bell_state(pattern_a: tuple[str, str], pattern_b: tuple[str, str]) -> BellState:
    return _SOURCE_BELL_STATE.compose(NODE_PATTERN_BELL_STATES[pattern_a]).compose(NODE_PATTERN_BELL_STATES[pattern_b])


class MidpointSourceLinkParams(HardwareParams):
    """A heralded link with an SPDC pair source at the midpoint (MS scheme,
    Jones et al., New J. Phys. 18, 083015 (2016)).

    * ``detector``: the four BSM detectors at *each node* (threshold,
      polarisation-resolving after a PBS); defaults of :class:`DetectorParams`.
    * ``source``: the midpoint :class:`SpdcSource` (μ per process, statistics,
      heralding efficiency = coupling of each photon into its fibre).
    * ``photon_indistinguishability``: V, HOM visibility between a memory
      photon and a source photon. Default 0.9: the two-photon visibility of
      photons from two NV nodes (Hensen et al., Nature 526, 682 (2015),
      Methods, 0.90 ± 0.02), taken as a representative figure for well-filtered
      photons; it is an assumption, not a measured memory–SPDC visibility.

    Station options of ``detector``: gate and jitter act through the windowed
    efficiency, dead time and after-pulsing through the timing check
    (:class:`DetectorParams`). Photon-number-resolving detectors are not
    modelled for this scheme yet (its closed form and instruments are for
    threshold detectors): ``detector.kind: pnr`` is refused.
    """

    length_km: float = Field(gt=0.0)
    fibre: FibreParams = FibreParams()
    detector: DetectorParams = DetectorParams()
    source: SpdcSource = SpdcSource()
    photon_indistinguishability: Probability = 0.9

    @model_validator(mode="after")
    def _station_options(self) -> MidpointSourceLinkParams:
        if self.detector.kind != "threshold":
            raise StationOptionError("detector.kind", "the midpoint-source scheme models threshold detectors only")
        check_station_timing(self.length_km, self.fibre, self.detector)
        return self


# ------------------------------------------------------------------ closed forms


def _check_unit(**values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")


def unnormalised_pattern_state(
    p_zero_pairs: float,
    p_one_pair: float,
    eta_memory_a: float,
    eta_source_a: float,
    eta_memory_b: float,
    eta_source_b: float,
    visibility: float,
    p_dc: float,
    bell_state: BellState,
) -> np.ndarray:
    """The N ≤ 1 closed form of the module docstring for one successful pattern
    pair heralding ``bell_state`` (PHI_PLUS: σ_A σ_B = +1, PHI_MINUS: -1).

    4x4, basis |s_A s_B>; its trace is that pattern pair's probability per
    attempt from zero- and one-pair emissions (weights ``p_zero_pairs``,
    ``p_one_pair``). Efficiencies include the detector efficiency.
    """
    _check_unit(
        p_zero_pairs=p_zero_pairs,
        p_one_pair=p_one_pair,
        eta_memory_a=eta_memory_a,
        eta_source_a=eta_source_a,
        eta_memory_b=eta_memory_b,
        eta_source_b=eta_source_b,
        visibility=visibility,
        p_dc=p_dc,
    )
    if bell_state not in (BellState.PHI_PLUS, BellState.PHI_MINUS):
        raise ValueError(f"the midpoint-source scheme heralds PHI_PLUS or PHI_MINUS, not {bell_state}")
    p, q = p_dc, 1.0 - p_dc
    v = visibility

    def diagonal(eta_m: float, eta_s: float) -> np.ndarray:
        """D(s, j) / q²: rows s (memory H, V), columns j (source photon H, V)."""
        lost = eta_m * (1 - eta_s) * p / 2 + eta_s * (1 - eta_m) * p / 2 + (1 - eta_m) * (1 - eta_s) * p * p
        same = eta_m * eta_s * (1 + v) * p / 4 + lost
        crossed = eta_m * eta_s / 4 + lost
        return np.array([[same, crossed], [crossed, same]])

    d_a = diagonal(eta_memory_a, eta_source_a)
    d_b = diagonal(eta_memory_b, eta_source_b)
    sign = 1.0 if bell_state is BellState.PHI_PLUS else -1.0
    one_pair = np.zeros((4, 4), dtype=complex)
    for a in (0, 1):
        for b in (0, 1):
            one_pair[2 * a + b, 2 * a + b] = q**4 / 8 * float(d_a[a] @ d_b[b])
    coherence = sign * q**4 / 8 * v * v * (eta_memory_a * eta_source_a) * (eta_memory_b * eta_source_b) / 16
    one_pair[0, 3] = one_pair[3, 0] = coherence
    z_a = q * q * (eta_memory_a * p / 2 + (1 - eta_memory_a) * p * p)
    z_b = q * q * (eta_memory_b * p / 2 + (1 - eta_memory_b) * p * p)
    return p_zero_pairs * z_a * z_b / 4 * np.eye(4, dtype=complex) + p_one_pair * one_pair


def single_pair_success_probability(p_one_pair: float, eta_a: float, eta_b: float) -> float:
    """``P(1) η_A η_B (1/2)²``: the success probability without dark counts from
    one-pair emissions, η_X = η_m,X η_s,X the probability that both photons of
    node X are detected; each linear-optics BSM succeeds with probability 1/2
    (Lütkenhaus, Calsamiglia & Suominen, PRA 59, 3295 (1999))."""
    _check_unit(p_one_pair=p_one_pair, eta_a=eta_a, eta_b=eta_b)
    return p_one_pair * eta_a * eta_b / 4


def ideal_fidelity(visibility: float) -> float:
    """``(1 + V²)/2``: fidelity of a one-pair herald with no dark counts, whatever
    the loss (module docstring: a Z error of probability (1-V)/2 per BSM)."""
    _check_unit(visibility=visibility)
    return (1 + visibility * visibility) / 2


# ------------------------------------------------------------------ Fock-space simulation of one node

# Output modes of one node: detector (cH, cV, dH, dV) × internal mode (e: the
# memory photon's, x: the source photon's own), then loss modes that keep the
# polarisation of a lost photon (the environment learns it).
_INTERNAL_E, _INTERNAL_X = 0, 1
_H, _V = 0, 1


def _detector_mode(port: str, pol: int, internal: int) -> int:
    return 2 * DETECTORS.index(f"{port}{'HV'[pol]}") + internal


_LOSS_MEMORY = (8, 9)  # by polarisation
_LOSS_SOURCE = (10, 11)
_N_MODES = 12


def _memory_photon(pol: int, arrival: float) -> list[tuple[int, float]]:
    """Port m of the beam splitter: ``m† -> (c† + d†)/√2``, internal mode e."""
    s = math.sqrt(arrival / 2.0)
    return [
        (_detector_mode("c", pol, _INTERNAL_E), s),
        (_detector_mode("d", pol, _INTERNAL_E), s),
        (_LOSS_MEMORY[pol], math.sqrt(1.0 - arrival)),
    ]


def _source_photon(pol: int, arrival: float, visibility: float) -> list[tuple[int, float]]:
    """Port s: ``s† -> (c† - d†)/√2``, internal state √V|e> + √(1-V)|x>."""
    terms = []
    for internal, amp in ((_INTERNAL_E, math.sqrt(visibility)), (_INTERNAL_X, math.sqrt(1.0 - visibility))):
        a = math.sqrt(arrival / 2.0) * amp
        terms.append((_detector_mode("c", pol, internal), a))
        terms.append((_detector_mode("d", pol, internal), -a))
    terms.append((_LOSS_SOURCE[pol], math.sqrt(1.0 - arrival)))
    return terms


def source_configurations(n_photons: int) -> tuple[tuple[int, int], ...]:
    """The (h, v) photon numbers of an n-photon input at one node, h + v = n, h descending."""
    return tuple((n_photons - v, v) for v in range(n_photons + 1))


@lru_cache(maxsize=256)
def node_instrument(
    memory_arrival: float,
    source_arrival: float,
    visibility: float,
    detector_efficiency: float,
    p_dc: float,
    n_source_photons: int,
) -> np.ndarray:
    """One node's BSM instrument for ``n_source_photons`` arriving source photons.

    Returns ``G`` of shape (16, 2, J, 2, J), J = n + 1: ``G[k, s, j, s', j']``
    = ``Σ_f E_k(f) Φ_{s,j}(f) Φ_{s',j'}(f)*`` where k is the click pattern as a
    bitmask over :data:`DETECTORS`, s the memory photon's polarisation (= the
    spin, 0 ↔ H) and j indexes :func:`source_configurations`. ``*_arrival``
    exclude the detector efficiency, which is in the POVM. Cached.
    """
    _check_unit(
        memory_arrival=memory_arrival,
        source_arrival=source_arrival,
        visibility=visibility,
        detector_efficiency=detector_efficiency,
        p_dc=p_dc,
    )
    if n_source_photons < 0:
        raise ValueError(f"n_source_photons must be >= 0, got {n_source_photons}")
    configs = source_configurations(n_source_photons)
    fields: list[FockState] = []  # index s * J + j
    for pol in (_H, _V):
        for h, v in configs:
            state: FockState = {(0,) * _N_MODES: 1.0}
            state = create(state, _memory_photon(pol, memory_arrival))
            for source_pol, count in ((_H, h), (_V, v)):
                for _ in range(count):
                    state = create(state, _source_photon(source_pol, source_arrival, visibility))
            norm = 1.0 / math.sqrt(math.factorial(h) * math.factorial(v))  # |h, v> = a_H†^h a_V†^v / √(h! v!) |0>
            fields.append({k: a * norm for k, a in state.items()})
    occupations = sorted(set().union(*fields))
    amplitudes = np.array([[f.get(o, 0.0) for o in occupations] for f in fields])

    def silent(n_photons: int) -> float:
        return (1.0 - p_dc) * (1.0 - detector_efficiency) ** n_photons

    povm = np.ones((_N_OUTCOMES, len(occupations)))
    for col, occupation in enumerate(occupations):
        for d in range(len(DETECTORS)):
            quiet = silent(occupation[2 * d] + occupation[2 * d + 1])
            for k in range(_N_OUTCOMES):
                povm[k, col] *= (1.0 - quiet) if k >> d & 1 else quiet
    gram = np.einsum("kf,if,jf->kij", povm, amplitudes, amplitudes)
    n_configs = len(configs)
    gram = gram.reshape(_N_OUTCOMES, 2, n_configs, 2, n_configs)
    gram.setflags(write=False)
    return gram


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class MidpointSourceModel:
    """The MS scheme as a :class:`qnetstack.physical.schemes.model.HeraldingModel`.

    ``branches()``: one branch per pattern pair of :data:`LINK_PATTERNS`, N ≤ 1
    from the closed form plus the N = 2 Fock-space term. ``pattern_branch`` and
    ``simulate_attempt`` come from the Fock-space instruments alone.
    """

    params: MidpointSourceLinkParams
    hardware_a: NodeHardware = NodeHardware()
    hardware_b: NodeHardware = NodeHardware()
    _instruments: tuple[tuple[np.ndarray, np.ndarray], ...] = field(init=False, repr=False, compare=False)
    _pair_probabilities: np.ndarray = field(init=False, repr=False, compare=False)
    _branches: tuple[HeraldBranch, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        arrival_a, arrival_b = self._source_arrivals()
        common = (
            self.params.photon_indistinguishability,
            self.params.detector.windowed_efficiency(),
            self.params.detector.dark_count_probability,
        )
        instruments = tuple(
            (
                node_instrument(self.hardware_a.emission_efficiency, arrival_a, *common, n),
                node_instrument(self.hardware_b.emission_efficiency, arrival_b, *common, n),
            )
            for n in range(MAX_PAIRS + 1)
        )
        object.__setattr__(self, "_instruments", instruments)
        object.__setattr__(self, "_pair_probabilities", self.params.source.pair_number_distribution(MAX_PAIRS, entangled=True))
        object.__setattr__(self, "_branches", self._model_branches())

    def _source_arrivals(self) -> tuple[float, float]:
        """Source photon at each node: coupling into the fibre × fibre over L/2 (the same both sides)."""
        t = self.params.source.heralding_efficiency * self.params.fibre.transmittance(self.params.length_km / 2)
        return t, t

    def efficiencies(self) -> tuple[float, float, float, float]:
        """η_m,A, η_s,A, η_m,B, η_s,B of the closed form (detector efficiency included)."""
        eta_d = self.params.detector.windowed_efficiency()
        arrival_a, arrival_b = self._source_arrivals()
        return (
            self.hardware_a.emission_efficiency * eta_d,
            arrival_a * eta_d,
            self.hardware_b.emission_efficiency * eta_d,
            arrival_b * eta_d,
        )

    def pair_probabilities(self) -> np.ndarray:
        """P(0), P(1), P(2) of the entangled source (the model's weights)."""
        return self._pair_probabilities.copy()

    def truncation_error(self) -> float:
        """ε, the probability of more than :data:`MAX_PAIRS` pairs, counted as failure.

        Worst case (every such emission heralds): a branch's probability is low
        by at most ε and its state off by at most 2ε/p_branch in trace distance.
        That bound ignores that > 2-pair emissions rarely herald, so it is loose
        for lossy links or μ ≳ 0.01."""
        return self.params.source.truncation_error(MAX_PAIRS, entangled=True)

    # ---------------------------------------------------------- the model's branches

    def branches(self) -> tuple[HeraldBranch, ...]:
        return self._branches  # the model is immutable, so computed once

    def success_probability(self) -> float:
        return sum(b.probability for b in self.branches())

    def closed_form_state(self, pattern_a: tuple[str, str], pattern_b: tuple[str, str]) -> np.ndarray:
        """The N ≤ 1 closed form (unnormalised) for this pattern pair."""
        p0, p1 = self._pair_probabilities[:2]
        return unnormalised_pattern_state(
            float(p0),
            float(p1),
            *self.efficiencies(),
            self.params.photon_indistinguishability,
            self.params.detector.dark_count_probability,
            _link_bell_state(pattern_a, pattern_b),
        )

    def _model_branches(self) -> tuple[HeraldBranch, ...]:
        out = []
        for pattern_a, pattern_b in LINK_PATTERNS:
            rho = self.closed_form_state(pattern_a, pattern_b)
            rho = rho + self._pair_probabilities[2] * self.fock_pattern_state(pattern_a, pattern_b, 2)
            out.append(_branch(_link_bell_state(pattern_a, pattern_b), rho))
        return tuple(out)

    # ---------------------------------------------------------- Fock-space simulation

    def fock_pattern_state(self, pattern_a: tuple[str, str], pattern_b: tuple[str, str], n_pairs: int) -> np.ndarray:
        """Unnormalised 4x4 spin state of an N-pair emission heralding this
        pattern pair, from the node instruments (not weighted by P(N))."""
        if pattern_a not in NODE_PATTERN_BELL_STATES or pattern_b not in NODE_PATTERN_BELL_STATES:
            raise ValueError(f"patterns {pattern_a}, {pattern_b} do not herald")
        if not 0 <= n_pairs <= MAX_PAIRS:
            raise ValueError(f"n_pairs must be in [0, {MAX_PAIRS}], got {n_pairs}")
        inst_a, inst_b = self._instruments[n_pairs]
        after_a = _apply_node_a(_initial_state(n_pairs), inst_a[_mask(pattern_a)])
        return _apply_node_b(after_a, inst_b[_mask(pattern_b)])

    def pattern_branch(self, pattern_a: tuple[str, str], pattern_b: tuple[str, str]) -> HeraldBranch:
        """Probability and normalised state of a pattern pair from the Fock-space
        instruments alone, N ≤ 2 weighted by P(N), without sampling."""
        rho = sum(self._pair_probabilities[n] * self.fock_pattern_state(pattern_a, pattern_b, n) for n in range(MAX_PAIRS + 1))
        return _branch(_link_bell_state(pattern_a, pattern_b), rho)

    @cached_property
    def _node_a_distribution(self) -> tuple[list[np.ndarray], np.ndarray]:
        """The joint state before any detection (blocks X_N weighted by P(N)) and
        the Born-rule law of node A's 16 click patterns, the same every attempt:
        ``P(k) = Σ_N Σ_{a,b,j} X_N[a,b,j,a,b,j] G_A[k,a,j,a,j]``."""
        blocks = [self._pair_probabilities[n] * _initial_state(n) for n in range(MAX_PAIRS + 1)]
        probs_a = sum(np.einsum("kajaj,abjabj->k", self._instruments[n][0], blocks[n]) for n in range(MAX_PAIRS + 1))
        return blocks, np.asarray(probs_a).real

    def simulate_attempt(self, rng: np.random.Generator) -> HeraldBranch | None:
        """One attempt: Born-rule sample of node A's click pattern from the joint
        state of spins and photons (a mixture over N ≤ 2, N never revealed),
        conditional update, then node B's pattern likewise. ``None`` on failure
        (including the > 2-pair mass); on success ``probability`` is that of the
        sampled pattern pair and ``state`` the normalised spin state."""
        blocks, probs_a = self._node_a_distribution
        k_a = _sample(probs_a, rng)
        pattern_a = _success_pattern(k_a)
        if pattern_a is None:
            return None
        blocks = [_apply_node_a(blocks[n], self._instruments[n][0][k_a]) for n in range(MAX_PAIRS + 1)]
        # node B: every outcome's unnormalised spin state, then the Born rule
        rho_b = sum(np.einsum("abjcdl,kbjdl->kabcd", blocks[n], self._instruments[n][1]) for n in range(MAX_PAIRS + 1)).reshape(
            _N_OUTCOMES, 4, 4
        )
        joint_b = np.einsum("kii->k", rho_b).real  # P(k_A, k_B)
        k_b = _sample(joint_b / probs_a[k_a], rng)  # P(k_B | k_A)
        pattern_b = _success_pattern(k_b)
        if pattern_b is None:
            return None
        return _branch(_link_bell_state(pattern_a, pattern_b), rho_b[k_b])

    def joint_pattern_probabilities(self) -> np.ndarray:
        """P(k_A, k_B), shape (16, 16): the Born-rule law of both nodes' click patterns in
        one attempt (bitmasks over :data:`DETECTORS`), N ≤ 2 weighted by P(N); the entries
        sum to ``1 - truncation_error()``. The 16 successful pattern pairs carry the
        probabilities of :meth:`pattern_branch`; the rest are the failures' patterns,
        which attempt-level photon statistics draw from."""
        joint = np.zeros((_N_OUTCOMES, _N_OUTCOMES))
        for n in range(MAX_PAIRS + 1):
            inst_a, inst_b = self._instruments[n]
            block = self._pair_probabilities[n] * _initial_state(n)
            joint += np.einsum("abjabl,kajal,mbjbl->km", block, inst_a, inst_b).real
        return joint


def _initial_state(n_pairs: int) -> np.ndarray:
    """X[a, b, j, a', b', j']: spins (amplitude 1/2 each basis state; the memory
    photons are inside the node instruments) and an N-pair source term with
    equal amplitudes 1/√(N+1) on |h, v>_a |h, v>_b (single Schmidt mode)."""
    n_configs = n_pairs + 1
    amplitudes = np.full((2, 2, n_configs), 0.5 / math.sqrt(n_configs))
    return np.einsum("abj,cdl->abjcdl", amplitudes, amplitudes).astype(complex)


def _apply_node_a(state: np.ndarray, instrument: np.ndarray) -> np.ndarray:
    """Elementwise action of node A's outcome on (s_A, j) indices; the b-photons stay."""
    return state * instrument[:, None, :, :, None, :]


def _apply_node_b(state: np.ndarray, instrument: np.ndarray) -> np.ndarray:
    """Node B's outcome on (s_B, j), consuming the b-photons: the 4x4 spin state."""
    return np.einsum("abjcdl,bjdl->abcd", state, instrument).reshape(4, 4)


def _sample(probabilities: np.ndarray, rng: np.random.Generator) -> int | None:
    """An outcome index by the Born rule; ``None`` for the missing mass (> 2 pairs)."""
    u = rng.random()
    cumulative = np.cumsum(probabilities)
    index = int(np.searchsorted(cumulative, u, side="right"))
    return index if index < len(probabilities) else None


_MASK_PATTERNS = {_mask(p): p for p in NODE_PATTERNS}


def _success_pattern(outcome: int | None) -> tuple[str, str] | None:
    return None if outcome is None else _MASK_PATTERNS.get(outcome)


def _branch(bell_state: BellState, rho: np.ndarray) -> HeraldBranch:
    weight = float(np.real(np.trace(rho)))
    if weight < 1e-250:  # impossible, or so rare that normalising would overflow
        return HeraldBranch(bell_state=bell_state, probability=0.0, state=np.eye(4, dtype=complex) / 4)
    return HeraldBranch(bell_state=bell_state, probability=weight, state=rho / weight)
