"""The Barrett–Kok (double-click) heralding scheme: Fock-space optics and closed forms.

Theory of operation
-------------------
Double-click entanglement generation, proposed by Barrett & Kok, PRA 71,
060310(R) (2005), and run between NV centres by Bernien et al., Nature 497,
86 (2013) and Hensen et al., Nature 526, 682 (2015):

1. Each node puts its spin in ``(|0> + |1>)/√2`` and excites it with a
   spin-selective optical π pulse: the bright state ``|1>`` emits one photon,
   the dark state ``|0>`` none (photon-number encoding, the same convention
   as :mod:`qnetstack.physical.schemes.single_click`; not time-bin). Each node's spin and
   photonic mode are then in ``(|0>|0_ph> + |1>|1_ph>)/√2``.
2. The photons travel to a midpoint 50:50 beam splitter, ``a† -> (c† + d†)/√2``
   and ``b† -> (c† - d†)/√2`` (a from node A, b from node B), whose outputs c
   and d feed threshold detectors.
3. Round 1 succeeds when exactly one detector clicks. Both nodes then apply a
   π pulse (X) to their spins and repeat steps 1–2 (round 2), which again
   must end with exactly one click. The attempt succeeds only if both rounds do.

The π pulse is what makes the scheme robust to photon loss: the |11>
component (both spins bright, one photon lost in round 1) becomes |00> and
emits nothing in round 2, so without dark counts it can never herald.
Signs, with the project's frames ``|B(x, z)> = (I ⊗ X^x Z^z)|Φ+>`` (so
Ψ+ = (|01> + |10>)/√2 and Ψ- = (|01> - |10>)/√2, see
:func:`qnetstack.physical.engines.world.bell_ket`): a click in c leaves ``|10> + |01>``, a click
in d ``|10> - |01>``; X ⊗ X keeps Ψ+ and flips the global sign of Ψ-, so
**the same detector twice heralds Ψ+, different detectors herald Ψ-**
(as in Barrett & Kok 2005 and Bernien et al. 2013). The spin state is the
one right after round 2's detection; no further pulse is applied. A stable
optical phase within one attempt is assumed: it cancels between the two rounds
(Barrett & Kok 2005).

Imperfections modelled
----------------------
* **Loss.** Node X's photon reaches a detector with η_X = emission
  efficiency × fibre transmittance over L/2 × detector efficiency. Equal loss
  on both outputs of a beam splitter equals the same loss on both inputs,
  so the detector efficiency can be folded into η_X for the closed form
  (the argument of :mod:`qnetstack.physical.schemes.single_click`); the simulation keeps it
  in the detector POVM and a test checks they agree.
* **Distinguishability.** Each photon's internal (spectral/temporal) state is
  ``|χ_X> = √μ |s> + √(1-μ) |x_X>``: a superposition of a mode |s> shared by
  both nodes and a mode |x_X> of its own (orthogonal to everything else).
  Then ``|<χ_A|χ_B>|² = μ²`` is the Hong–Ou–Mandel visibility of the two
  photons (Hong, Ou & Mandel, PRL 59, 2044 (1987): coincidences
  ``(1 - V)/2`` for single photons with mode overlap V), so ``μ = √V``. The
  detectors do not resolve internal modes. A single click in one round keeps
  a fraction μ of the |10>-|01> coherence (the which-node information left in
  the internal mode), two rounds keep μ² = V.
* **Dark counts.** Each detector clicks spuriously with probability p per
  round window, independently of the light: a threshold detector hit by n
  photons stays silent with probability ``(1-p)(1-η_d)^n``.
* **Emitter.** The bright state emits exactly one photon per optical π pulse;
  double excitation (two photons from one node in one round) is *not*
  modelled (Hermans et al., New J. Phys. 25, 013011 (2023), measure it as a
  source of infidelity; add it here if a hardware preset needs it). Two
  photons in one round from the two nodes (spins |11>) are modelled, with
  their bunching at the beam splitter.

Closed form (derived for this module; basis |s_A s_B>, node A first)
-------------------------------------------------------------------
One round with single-click outcome c (sign σ = +1) or d (σ = -1) acts on the
spins as ``ρ -> G ∘ ρ`` (elementwise product: every Kraus operator is
diagonal in the spin basis, since the spin state only decides which photons
exist), with q = 1 - p and

    G_00 = q p                                   (nothing emitted: dark count)
    G_10 = q (η_A/2 + (1-η_A) p)                 (A's photon to that detector, or lost + dark)
    G_01 = q (η_B/2 + (1-η_B) p)
    G_11 = q (η_A η_B (1+V)/4 + (η_A + η_B - 2η_A η_B)/2 + (1-η_A)(1-η_B) p)
    G_(10,01) = σ q μ √(η_A η_B) / 2              (the only surviving coherence)

(both photons arrive and bunch into one port with probability (1+V)/2, half
of it that detector; one arrives and picks that port with probability 1/2).
Starting from |++><++|, round 1, X ⊗ X, round 2 gives for every one of the
four single-click patterns (σ1, σ2) the unnormalised state

    ρ = (q²/4) [ g_A g_B (|10><10| + |01><01|) + p h (|00><00| + |11><11|) ]
        + σ1 σ2 (q²/16) V η_A η_B (|10><01| + |01><10|)

    g_X = η_X/2 + (1-η_X) p,   h = G_11 / q

so each pattern has probability ``(q²/2)(g_A g_B + p h)`` and the four sum to

    p_succ = 2 q² (g_A g_B + p h)  ->  η_A η_B / 2          (p = 0)

the success probability of Barrett & Kok (2005) (η²/2 for equal ends). The
fidelity to the heralded Bell state is

    F = (q²/4)(g_A g_B + V η_A η_B / 4) / (p_succ / 4)  ->  (1 + V)/2      (p = 0),

independent of loss, which is the scheme's selling point; F = (1+V)/2 is the
distinguishability limit used in the NV error budgets (Bernien et al. 2013,
Supplementary Information; Hensen et al. 2015, Methods).

Photon-number-resolving detectors (derived for this module)
-----------------------------------------------------------
With PNR detectors (:class:`qnetstack.physical.params.DetectorParams`, kind
``"pnr"``: detected photons plus Poisson dark counts of mean λ = -ln(1-p))
a round succeeds only on exactly one event in one detector and none in the
other, so two photons bunched into one detector (spins |11>, the HOM term
``η_A η_B (1+V)/4``) no longer herald, and neither does a photon with a dark
count on top. With η_d folded into η_X as above (exact for PNR too: binomial
thinning is loss before a perfect counter), one round's G is the threshold
one with (1, p, (1+V)/4) replaced by (q, qλ, 0):

    G_00 = q d,  G_10 = q (f η_A/2 + (1-η_A) d),  G_01 likewise,
    G_11 = q (b η_A η_B + f (η_A + η_B - 2η_A η_B)/2 + (1-η_A)(1-η_B) d),
    G_(10,01) = σ q f μ √(η_A η_B) / 2

with (f, d, b) = (1, p, (1+V)/4) for threshold and (q, qλ, 0) for PNR
detectors. Two rounds then give, per pattern,

    ρ = (q²/4) [ g_A g_B (|10><10| + |01><01|) + d h (|00><00| + |11><11|) ]
        + σ1 σ2 (q²/16) f² V η_A η_B (|10><01| + |01><10|),
    g_X = f η_X/2 + (1-η_X) d,   h = G_11 / q,

    p_succ = 2 q² (g_A g_B + d h),
    F = (g_A g_B + f² V η_A η_B / 4) / (2 (g_A g_B + d h)).

Without dark counts both kinds give η_A η_B / 2 and (1+V)/2. With dark
counts the PNR station loses the rate factor ~q² on the photon terms and
drops the bunching term from h, so its fidelity is higher: the |00>/|11>
admixture falls from ``p h`` to ``qλ h_PNR`` (λ ≈ p for small p).

Simulation
----------
:func:`round_instrument` builds each round independently of these formulas:
it writes the photons' Fock state for every spin basis state (creation
operators with their √(n+1) factors on the six output modes c/d × internal
mode s, x_A, x_B, plus a loss mode per node), applies the detector POVMs
with η_d and p, and sums ``E(f) Φ_s(f) Φ_s'(f)*`` over the Fock basis ``f`` to
get each outcome's G. :meth:`BarrettKokModel.simulate_attempt` then runs one
attempt: it samples round 1's click pattern by the Born rule from the spin
state, updates the state, applies X ⊗ X, samples round 2, and on success
returns the normalised conditional state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
from pydantic import Field, model_validator

from qnetstack.physical.components.fock import FockState, create
from qnetstack.physical.params import DetectorParams, FibreParams, HardwareParams, NodeHardware, check_station_timing
from qnetstack.physical.schemes.model import HeraldBranch
from qnetstack.physical.service import BellState, Probability

__all__ = [
    "BarrettKokLinkParams",
    "BarrettKokModel",
    "CLICK_PATTERNS",
    "PATTERN_BELL_STATES",
    "ROUND_NONE",
    "ROUND_C",
    "ROUND_D",
    "ROUND_BOTH",
    "round_instrument",
    "round_optics",
    "unnormalised_pattern_state",
    "success_probability",
    "herald_fidelity",
]

# Outcomes of one round (indices into round_instrument()).
ROUND_NONE = 0  # no click
ROUND_C = 1  # detector c alone
ROUND_D = 2  # detector d alone
ROUND_BOTH = 3  # both detectors

# The four successful (round 1, round 2) patterns, in the order of BarrettKokModel.branches().
CLICK_PATTERNS: tuple[tuple[int, int], ...] = ((ROUND_C, ROUND_C), (ROUND_C, ROUND_D), (ROUND_D, ROUND_C), (ROUND_D, ROUND_D))
PATTERN_BELL_STATES: dict[tuple[int, int], BellState] = {
    (ROUND_C, ROUND_C): BellState.PSI_PLUS,
    (ROUND_D, ROUND_D): BellState.PSI_PLUS,
    (ROUND_C, ROUND_D): BellState.PSI_MINUS,
    (ROUND_D, ROUND_C): BellState.PSI_MINUS,
}


class BarrettKokLinkParams(HardwareParams):
    """A heralded link run with the Barrett–Kok scheme, station at the midpoint.

    ``two_photon_visibility`` is V, the Hong–Ou–Mandel visibility of photons
    from the two nodes (``|<χ_A|χ_B>|²``). Default 0.9, the two-photon
    interference visibility reported for the NV photons of Hensen et al.,
    Nature 526, 682 (2015), Methods (0.90 ± 0.02).
    """

    length_km: float = Field(gt=0.0)
    fibre: FibreParams = FibreParams()
    detector: DetectorParams = DetectorParams()
    two_photon_visibility: Probability = 0.9

    @model_validator(mode="after")
    def _station_timing(self) -> BarrettKokLinkParams:
        check_station_timing(self.length_km, self.fibre, self.detector)
        return self


# ------------------------------------------------------------------ closed forms


def _check(eta_a: float, eta_b: float, visibility: float, p_dc: float) -> None:
    for name, value in (("eta_a", eta_a), ("eta_b", eta_b), ("visibility", visibility), ("p_dc", p_dc)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")


def _round_weights(p_dc: float, visibility: float, pnr: bool) -> tuple[float, float, float]:
    """(f, d, b) of the module docstring: threshold (1, p, (1+V)/4), PNR (q, qλ, 0), λ = -ln q."""
    q = 1.0 - p_dc
    if not pnr:
        return 1.0, p_dc, (1.0 + visibility) / 4.0
    return q, (0.0 if q <= 0.0 else -q * math.log(q)), 0.0


def unnormalised_pattern_state(
    eta_a: float, eta_b: float, visibility: float, p_dc: float, bell_state: BellState, *, pnr: bool = False
) -> np.ndarray:
    """ρ of the module docstring for one click pattern heralding ``bell_state``
    (4x4, basis |s_A s_B>, trace = that pattern's probability per attempt).

    ``eta_a``/``eta_b`` are total efficiencies (emission × fibre × detector);
    ``pnr``: photon-number-resolving detectors (module docstring).
    """
    _check(eta_a, eta_b, visibility, p_dc)
    if bell_state not in (BellState.PSI_PLUS, BellState.PSI_MINUS):
        raise ValueError(f"Barrett–Kok heralds PSI_PLUS or PSI_MINUS, not {bell_state}")
    q = 1.0 - p_dc
    f, d, b = _round_weights(p_dc, visibility, pnr)
    g_a = f * eta_a / 2 + (1 - eta_a) * d
    g_b = f * eta_b / 2 + (1 - eta_b) * d
    h = b * eta_a * eta_b + f * (eta_a + eta_b - 2 * eta_a * eta_b) / 2 + (1 - eta_a) * (1 - eta_b) * d
    sign = 1.0 if bell_state is BellState.PSI_PLUS else -1.0
    rho = np.zeros((4, 4), dtype=complex)
    rho[0, 0] = rho[3, 3] = q * q * d * h / 4
    rho[1, 1] = rho[2, 2] = q * q * g_a * g_b / 4
    rho[1, 2] = rho[2, 1] = sign * q * q * f * f * visibility * eta_a * eta_b / 16
    return rho


def success_probability(eta_a: float, eta_b: float, visibility: float, p_dc: float = 0.0, *, pnr: bool = False) -> float:
    """Probability that an attempt heralds (four patterns, each with the same weight)."""
    rho = unnormalised_pattern_state(eta_a, eta_b, visibility, p_dc, BellState.PSI_PLUS, pnr=pnr)
    return 4.0 * float(np.real(np.trace(rho)))


def herald_fidelity(eta_a: float, eta_b: float, visibility: float, p_dc: float = 0.0, *, pnr: bool = False) -> float:
    """Fidelity of the post-herald state to the heralded Bell state (the same for
    every pattern). Raises ``ValueError`` if the scheme cannot herald."""
    rho = unnormalised_pattern_state(eta_a, eta_b, visibility, p_dc, BellState.PSI_PLUS, pnr=pnr)
    weight = float(np.real(np.trace(rho)))
    if weight <= 0.0:
        raise ValueError("this scheme never heralds with these parameters")
    psi_plus = np.array([0.0, 1.0, 1.0, 0.0]) / math.sqrt(2)
    return min(1.0, max(0.0, float(np.real(psi_plus @ rho @ psi_plus)) / weight))


# ------------------------------------------------------------------ Fock-space simulation of one round

# Output modes of one round: detector c or d × internal mode (shared, A's own,
# B's own); then one loss mode per node (the environment keeps lost photons).
_C_MODES = (0, 1, 2)
_D_MODES = (3, 4, 5)
_SHARED, _OWN_A, _OWN_B = 0, 1, 2
_LOSS_A, _LOSS_B = 6, 7
_N_MODES = 8


def _photon_creator(arrival: float, mu: float, own_mode: int, port_sign: float, loss_mode: int) -> list[tuple[int, float]]:
    """One node's photon: reaches the beam splitter with amplitude √arrival in
    internal state √μ|s> + √(1-μ)|own>, else sits in the node's loss mode. The
    beam splitter sends input port a to (c + d)/√2 (port_sign +1) and b to
    (c - d)/√2 (port_sign -1), the same for every internal mode."""
    s = 1.0 / math.sqrt(2.0)
    terms = []
    for internal, amp in ((_SHARED, math.sqrt(mu)), (own_mode, math.sqrt(1.0 - mu))):
        terms.append((_C_MODES[internal], math.sqrt(arrival) * amp * s))
        terms.append((_D_MODES[internal], math.sqrt(arrival) * amp * s * port_sign))
    terms.append((loss_mode, math.sqrt(1.0 - arrival)))
    return terms


@lru_cache(maxsize=256)
def round_instrument(
    arrival_a: float, arrival_b: float, visibility: float, detector_efficiency: float, p_dc: float, pnr: bool = False
) -> np.ndarray:
    """The four outcome maps of one round as a (4, 4, 4) array ``G[k]``: outcome k
    (ROUND_NONE, ROUND_C, ROUND_D, ROUND_BOTH) maps the spin state ρ to the
    unnormalised ``G[k] * ρ`` (elementwise). ``arrival_*`` exclude the detector
    efficiency, which is applied in the detector POVM. Cached per parameters.

    Threshold detectors (default): ROUND_C is a click in c and none in d. With
    ``pnr``: exactly one event in c (Binomial(n, η_d) photons plus Poisson(λ)
    dark counts, λ = -ln(1-p)) and none in d; ROUND_BOTH then holds every
    other pattern (both detectors, or two or more events in one)."""
    amplitudes, povm = round_optics(arrival_a, arrival_b, visibility, detector_efficiency, p_dc, pnr)
    # G[k][s, s'] = Σ_f E_k(f) Φ_s(f) Φ_s'(f)*  (trace over light and environment)
    gram = np.einsum("kf,sf,tf->kst", povm, amplitudes, amplitudes.conj())
    gram.setflags(write=False)
    return gram


@lru_cache(maxsize=256)
def round_optics(
    arrival_a: float, arrival_b: float, visibility: float, detector_efficiency: float, p_dc: float, pnr: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One round's light before detection, and the detectors: ``(Φ, E)`` with
    ``Φ[s, f]`` the amplitude of Fock configuration f (the six detector-side
    modes and the two loss modes) for spin basis state s, and ``E[k, f]`` the
    probability of round outcome k given f (arguments as :func:`round_instrument`).
    Both read-only; cached."""
    _check(arrival_a, arrival_b, visibility, p_dc)
    mu = math.sqrt(visibility)
    vacuum: FockState = {(0,) * _N_MODES: 1.0}
    photon_a = _photon_creator(arrival_a, mu, _OWN_A, +1.0, _LOSS_A)
    photon_b = _photon_creator(arrival_b, mu, _OWN_B, -1.0, _LOSS_B)
    # Φ_s: the light and environment for spin basis state s = |s_A s_B> (bright = 1)
    fields: list[FockState] = []
    for s_a in (0, 1):
        for s_b in (0, 1):
            state = vacuum
            if s_a:
                state = create(state, photon_a)
            if s_b:
                state = create(state, photon_b)
            fields.append(state)
    configurations = sorted(set().union(*fields))
    amplitudes = np.array([[f.get(c, 0.0) for c in configurations] for f in fields], dtype=complex)  # (4, n_conf)

    q = 1.0 - p_dc
    lam_q = 0.0 if q <= 0.0 else -q * math.log(q)  # P(exactly one dark count) = q λ

    def silent(n_photons: int) -> float:
        return q * (1.0 - detector_efficiency) ** n_photons

    def heralds(n_photons: int) -> float:
        if not pnr:
            return 1.0 - silent(n_photons)
        eta = detector_efficiency
        one_photon = n_photons * eta * (1.0 - eta) ** (n_photons - 1) if n_photons else 0.0
        return q * one_photon + lam_q * (1.0 - eta) ** n_photons

    povm = np.zeros((4, len(configurations)))
    for j, occupation in enumerate(configurations):
        n_c = sum(occupation[m] for m in _C_MODES)
        n_d = sum(occupation[m] for m in _D_MODES)
        quiet_c, quiet_d = silent(n_c), silent(n_d)
        povm[ROUND_NONE, j] = quiet_c * quiet_d
        povm[ROUND_C, j] = heralds(n_c) * quiet_d
        povm[ROUND_D, j] = quiet_c * heralds(n_d)
        povm[ROUND_BOTH, j] = 1.0 - povm[ROUND_NONE, j] - povm[ROUND_C, j] - povm[ROUND_D, j]
    amplitudes.setflags(write=False)
    povm.setflags(write=False)
    return amplitudes, povm


# ------------------------------------------------------------------ the model


_PLUS_PLUS = np.full((4, 4), 0.25, dtype=complex)  # |++><++|, both spins in (|0>+|1>)/√2


@dataclass(frozen=True)
class BarrettKokModel:
    """The Barrett–Kok scheme as a :class:`qnetstack.physical.schemes.model.HeraldingModel`.

    ``branches()`` comes from the closed form, one branch per successful click
    pattern in the order of :data:`CLICK_PATTERNS`; ``simulate_attempt`` and
    ``pattern_branch`` come from the Fock-space simulation (module docstring).
    """

    params: BarrettKokLinkParams
    hardware_a: NodeHardware = NodeHardware()
    hardware_b: NodeHardware = NodeHardware()
    _instrument: np.ndarray = field(init=False, repr=False, compare=False)
    _instrument_diagonal: np.ndarray = field(init=False, repr=False, compare=False)
    _branches: tuple[HeraldBranch, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        gram = round_instrument(
            *self._arrivals(),
            self.params.two_photon_visibility,
            self.params.detector.windowed_efficiency(),
            self.params.detector.dark_count_probability,
            self.params.detector.kind == "pnr",
        )
        object.__setattr__(self, "_instrument", gram)
        # outcome x spin basis state: the probability of each outcome for each basis state
        object.__setattr__(self, "_instrument_diagonal", np.ascontiguousarray(np.diagonal(gram, axis1=1, axis2=2).real))
        object.__setattr__(self, "_branches", self._closed_form_branches())

    def _arrivals(self) -> tuple[float, float]:
        fibre = self.params.fibre.transmittance(self.params.length_km / 2)
        return self.hardware_a.emission_efficiency * fibre, self.hardware_b.emission_efficiency * fibre

    def total_efficiencies(self) -> tuple[float, float]:
        """η_A, η_B: emission × fibre over L/2 × detector efficiency (within the gate)."""
        eta_d = self.params.detector.windowed_efficiency()
        arrival_a, arrival_b = self._arrivals()
        return arrival_a * eta_d, arrival_b * eta_d

    # ---------------------------------------------------------- analytic (closed form)

    def branches(self) -> tuple[HeraldBranch, ...]:
        """One branch per pattern of :data:`CLICK_PATTERNS`, from the closed form
        (computed once: the model is immutable)."""
        return self._branches

    def _closed_form_branches(self) -> tuple[HeraldBranch, ...]:
        eta_a, eta_b = self.total_efficiencies()
        v = self.params.two_photon_visibility
        p_dc = self.params.detector.dark_count_probability
        pnr = self.params.detector.kind == "pnr"
        out = []
        for pattern in CLICK_PATTERNS:
            bell = PATTERN_BELL_STATES[pattern]
            rho = unnormalised_pattern_state(eta_a, eta_b, v, p_dc, bell, pnr=pnr)
            weight = float(np.real(np.trace(rho)))
            out.append(HeraldBranch(bell_state=bell, probability=weight, state=rho / weight if weight > 0 else rho))
        return tuple(out)

    def success_probability(self) -> float:
        return sum(b.probability for b in self.branches())

    # ---------------------------------------------------------- simulation (Fock space)

    def pattern_branch(self, pattern: tuple[int, int]) -> HeraldBranch:
        """The simulation's outcome for a given (round 1, round 2) pattern, without
        sampling: its probability and conditional state. Raises ``ValueError``
        for a pattern that does not herald or has probability 0."""
        if pattern not in PATTERN_BELL_STATES:
            raise ValueError(f"pattern {pattern} does not herald (need one click in each round)")
        rho = self._instrument[pattern[0]] * _PLUS_PLUS
        rho = self._instrument[pattern[1]] * rho[::-1, ::-1]  # π pulse X ⊗ X: index i -> 3 - i
        weight = float(np.real(np.trace(rho)))
        if weight <= 0.0:
            raise ValueError(f"pattern {pattern} has probability 0 for these parameters")
        return HeraldBranch(bell_state=PATTERN_BELL_STATES[pattern], probability=weight, state=rho / weight)

    def simulate_attempt(self, rng: np.random.Generator) -> HeraldBranch | None:
        """One attempt, round by round: Born-rule sampling of each round's click
        pattern from the current spin state, the conditional state update, the
        π pulse between rounds. ``None`` on failure; on success the branch's
        ``probability`` is that of the sampled pattern and ``state`` the
        normalised spin state after round 2."""
        first = self._sample_round(_PLUS_PLUS, rng)
        if first is None:
            return None
        k1, p1, rho = first
        second = self._sample_round(rho[::-1, ::-1], rng)  # π pulse X ⊗ X: index i -> 3 - i
        if second is None:
            return None
        k2, p2, rho = second
        return HeraldBranch(bell_state=PATTERN_BELL_STATES[(k1, k2)], probability=p1 * p2, state=rho)

    def _sample_round(self, rho: np.ndarray, rng: np.random.Generator) -> tuple[int, float, np.ndarray] | None:
        """Sample one round's click pattern; ``None`` unless exactly one detector
        clicked, else (outcome, its probability, normalised conditional state)."""
        # P(k) = Tr(G_k ∘ ρ) = Σ_i G_k[i, i] ρ_ii
        p_none, p_c, p_d, _p_both = (self._instrument_diagonal @ rho.diagonal().real).tolist()
        u = rng.random()
        if u < p_none:
            return None
        if u < p_none + p_c:
            return ROUND_C, p_c, self._instrument[ROUND_C] * rho / p_c
        if u < p_none + p_c + p_d:
            return ROUND_D, p_d, self._instrument[ROUND_D] * rho / p_d
        return None  # both detectors clicked

    @cached_property
    def _trajectory_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Φ, the cumulative E over outcomes, and round 1's ψ and cumulative weights (see
        :meth:`sample_trajectory`)."""
        detector = self.params.detector
        amplitudes, povm = round_optics(
            *self._arrivals(),
            self.params.two_photon_visibility,
            detector.windowed_efficiency(),
            detector.dark_count_probability,
            detector.kind == "pnr",
        )
        first = np.full(4, 0.5, dtype=complex)[:, None] * amplitudes  # |++>
        return amplitudes, np.cumsum(povm, axis=0), first, np.cumsum(np.sum(np.abs(first) ** 2, axis=0))

    def sample_trajectory(self, rng: np.random.Generator) -> tuple[BellState, np.ndarray] | None:
        """One attempt as a quantum trajectory: per round, the Fock configuration f of
        the light and the environment (loss modes, internal modes) is drawn by the
        Born rule from the current pure spin state, then the detector outcome from
        ``E[k, f]``, leaving the pure spin state ``Φ[:, f] ∘ v`` normalised.

        Averaged over trajectories with a given pattern this is that pattern's
        conditional state (the instrument is ``Σ_f E_k(f) |ψ_f><ψ_f|``), so
        per-attempt fidelities scatter around the closed form's and their mean
        must agree with it. ``None`` on failure, else (heralded Bell state,
        normalised pure 4x4 spin state)."""
        amplitudes, povm_cumulative, first_psi, first_cumulative = self._trajectory_tables
        psi, cumulative = first_psi, first_cumulative  # round 1 always starts from |++>
        outcomes = []
        for round_index in range(2):
            f = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), cumulative.size - 1)
            k = int(np.searchsorted(povm_cumulative[:, f], rng.random(), side="right"))
            if k not in (ROUND_C, ROUND_D):
                return None
            outcomes.append(k)
            spins = psi[:, f] / math.sqrt(float(np.sum(np.abs(psi[:, f]) ** 2)))
            if round_index == 0:
                psi = spins[::-1, None] * amplitudes  # π pulse X ⊗ X, then round 2's light: ψ_f[s] = v_s Φ_s(f)
                cumulative = np.cumsum(np.sum(np.abs(psi) ** 2, axis=0))
        return PATTERN_BELL_STATES[(outcomes[0], outcomes[1])], np.outer(spins, spins.conj())
