"""The single-click heralding scheme: its optics as operators, and its closed forms.

Theory of operation
-------------------
Single-click (single-photon) entanglement generation, as run between NV
centres by Humphreys et al., Nature 558, 268 (2018) and analysed by Rozpędek
et al., PRA 99, 052330 (2019):

1. Each node prepares its memory ("spin") and a photonic mode in
   ``√(1-α)|0>_s|0>_ph + √α|1>_s|1>_ph``: the bright state ``|1>`` emits one
   photon, the dark state none. α is the *bright-state population*.
2. Each photon reaches the midpoint with probability η (emission and coupling
   efficiency times fibre transmittance over L/2): amplitude damping of the
   0/1-photon mode with γ = 1 - η.
3. At the midpoint a 50:50 beam splitter maps the input modes a (from node A)
   and b (from node B) to the detector modes as ``a† -> (c† + d†)/√2`` and
   ``b† -> (c† - d†)/√2``; c and d feed threshold detectors of efficiency
   η_d and dark-count probability p per window. A detector does *not* click
   with probability ``(1-p)(1-η_d)^n`` when n photons hit it.
4. Exactly one click heralds success: c alone ("D+") leaves the spins in
   Ψ+ = (|01> + |10>)/√2, d alone ("D-") in Ψ- (spin order A, B). Which path
   the photon took is erased by the beam splitter, hence the entanglement.

The simulation (:func:`herald_povm`) builds the three-outcome POVM on the two
incoming 0/1-photon modes numerically: embed them into 3-level Fock modes (at
most two photons in total, so a 3-level cutoff loses nothing), apply the
beam-splitter unitary, the detector POVMs, and project back: ``E = V† U† F U V``.
These operators are QuTiP ``Qobj`` (QuTiP is imported when the first is built);
the closed forms below are numpy, so a model-heralding run never needs QuTiP.

Closed form (derived for this module; basis |s_A s_B>)
------------------------------------------------------
Detector efficiency: a threshold detector of efficiency η_d is a perfect one
behind a beam splitter of transmittance η_d. Equal loss on both outputs of a
50:50 beam splitter is the same as equal loss on both inputs, so η_d can be
folded into the photon transmittances, ``η_A = η_emit,A · T_fibre(L/2) · η_d``
and likewise η_B. The closed forms below take these *total* efficiencies and
model perfect-efficiency detectors with dark counts; the simulation keeps η_d
in the POVM. A test checks that both give the same state.

Expand each node's state over "photon arrived" / "photon lost". Allowing a
different α at each end (α_A, α_B), the spins paired with each arriving photon
pattern are:

* nothing arrives: from |00> (no emission), |10> with A's photon lost, |01>
  with B's lost, |11> with both lost. Only a dark count can herald these, so
  they enter incoherently with weight p (dark count in c) times (1-p) (none
  in d);
* exactly one photon arrives: it carries the amplitude
  ``√(α_A(1-α_B)η_A)|10> ± √((1-α_A)α_B η_B)|01>`` coherently (the sign is +
  in c, - in d, from the beam splitter), each with amplitude 1/√2 at a given
  detector. The |11> spins with one of the two photons lost also send one
  photon, which lands in c half the time;
* both photons arrive (spins |11>): they bunch (Hong-Ou-Mandel) into
  ``(|2,0> - |0,2>)/√2``, so half the time both sit in c — a D+ herald.

Collecting the terms, the unnormalised spin state after a D± herald is

    ρ± = (1-p) [ ½ |φ±><φ±|
                 + p (1-α_A)(1-α_B) |00><00|
                 + p α_A(1-α_B)(1-η_A) |10><10|
                 + p (1-α_A)α_B(1-η_B) |01><01|
                 + α_A α_B ( (η_A + η_B - η_A η_B)/2 + p (1-η_A)(1-η_B) ) |11><11| ]

    |φ±> = √(α_A(1-α_B)η_A) |10> ± √((1-α_A)α_B η_B) |01>

(a photon already in c makes c click whatever its dark count does, hence the
factor 1 rather than p on the photon terms). Tr ρ+ = Tr ρ-, so the total
success probability is 2 Tr ρ+, and the fidelity to Ψ± is <Ψ±|ρ±|Ψ±>/Tr ρ±.
For α_A = α_B = α, η_A = η_B = η and p = 0:

    p_succ = 2αη (1 - αη/2),   F = (1-α) / (1 - αη/2),

which tends to the textbook p ≈ 2αη, F ≈ 1-α for small αη (Humphreys et al.
2018, Methods; Rozpędek et al. 2019, Sec. III).

Station options (derived for this module; the defaults give the form above)
--------------------------------------------------------------------------
* **Photon distinguishability.** Each photon's internal (spectral/temporal)
  state is ``|χ_X> = √μ|s> + √(1-μ)|x_X>`` (a shared mode and one of its own,
  as in :mod:`qnetstack.physical.schemes.barrett_kok`), so the Hong–Ou–Mandel
  visibility is ``V = |<χ_A|χ_B>|² = μ²`` (Hong, Ou & Mandel, PRL 59, 2044
  (1987); Barrett & Kok, PRA 71, 060310(R) (2005)). The detectors do not
  resolve internal modes, so one click keeps a fraction ``μ = √V`` of the
  |10>-|01> coherence, and two arriving photons bunch into one detector with
  probability (1 + V)/2 (half of it each detector) instead of 1.
* **Interferometer phase noise.** The optical phase difference φ between the
  arms is Gaussian with standard deviation σ, fresh in each attempt. A phase
  ``e^{iφ n_b}`` on node B's photon mode equals ``e^{iφ}`` on B's bright spin
  state (the emission state pairs spin and photon number, and loss and
  detection act on the photon alone), so the heralded state is
  ``Z_φ ρ Z_φ†`` with ``Z_φ = diag(1, e^{iφ})`` on B; averaged over φ its
  coherence is multiplied by ``E[e^{iφ}] = exp(-σ²/2)`` (the characteristic
  function of the Gaussian; Humphreys et al. 2018, Methods; Rozpędek et al.
  2019, Sec. III). Herald probabilities do not depend on φ.
* **Photon-number-resolving detectors.** A PNR detector (model of
  :class:`qnetstack.physical.params.DetectorParams`: detected photons plus
  Poisson dark counts of mean λ = -ln(1-p)) heralds only on exactly one event
  in one detector and none in the other. Per detector with perfect efficiency
  (η_d folded in as above), a herald then needs a photon *and no* dark count
  in the clicking detector (weight q = 1-p instead of 1), a lone dark count
  has weight ``qλ`` instead of p, and two photons in one detector never
  herald.

With ``c = √V exp(-σ²/2)`` (coherence kept), and (f, d, b) = (1, p, (1+V)/4)
for threshold and (q, qλ, 0) for PNR detectors, the general unnormalised
state is

    ρ± = q [ f ½ |φ±><φ±|_c
             + d (1-α_A)(1-α_B) |00><00|
             + d α_A(1-α_B)(1-η_A) |10><10|
             + d (1-α_A)α_B(1-η_B) |01><01|
             + α_A α_B ( b η_A η_B + f (η_A + η_B - 2η_A η_B)/2 + d (1-η_A)(1-η_B) ) |11><11| ]

where ``|φ±><φ±|_c`` is |φ±><φ±| with its off-diagonal elements times c.
For α_A = α_B = α, η_A = η_B = η and p = 0 the fidelity is

    F = (1-α)(1 + c) / (2 - 2αη(1 - b))        (f = 1)

so F = (1-α)(1 + e^{-σ²/2}) / (2 - αη) for threshold detectors and V = 1,
tending to the dephasing law F = (1 + e^{-σ²/2})/2 as α → 0.
Dead time, jitter and after-pulsing enter through the detector's window-level
efficiency and the link's timing check (:class:`~qnetstack.physical.params.DetectorParams`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from qnetstack.physical.components.memory_noise import memory_kraus_arrays
from qnetstack.physical.engines.world import bell_vector
from qnetstack.physical.lazy_qutip import qutip as load_qutip
from qnetstack.physical.params import DetectorParams, NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.barrett_kok import ROUND_C, ROUND_D, round_instrument
from qnetstack.physical.schemes.model import HeraldBranch
from qnetstack.physical.service import BellState

if TYPE_CHECKING:
    from qutip import Qobj

__all__ = [
    "HERALD_PLUS",
    "HERALD_MINUS",
    "HERALD_FAIL",
    "HERALD_BELL_STATES",
    "beam_splitter_unitary",
    "detector_no_click",
    "detector_one_event",
    "herald_povm",
    "emission_state",
    "photon_loss_kraus",
    "arrival_efficiency",
    "station_options",
    "detector_weights",
    "success_probability",
    "herald_probability",
    "unnormalised_herald_state",
    "post_herald_state",
    "herald_fidelity",
    "decohere_pair",
    "stored_pair_fidelity",
    "fidelity_at_detection",
    "operating_points",
    "SingleClickModel",
    "SingleClickPerEndModel",
]

# Indices of the outcomes of herald_povm().
HERALD_PLUS = 0  # detector c alone clicked
HERALD_MINUS = 1  # detector d alone clicked
HERALD_FAIL = 2  # no click, or both
HERALD_BELL_STATES = {HERALD_PLUS: BellState.PSI_PLUS, HERALD_MINUS: BellState.PSI_MINUS}

_FOCK_CUTOFF = 3  # two incoming single-photon modes carry at most 2 photons in total


# ------------------------------------------------------------------ optics as operators


@lru_cache(maxsize=1)
def beam_splitter_unitary() -> Qobj:
    """The 50:50 beam splitter on two 3-level Fock modes (input a, b -> output c, d).

    Mode transformation ``H = [[1, 1], [1, -1]]/√2`` (``a† -> (c†+d†)/√2``,
    ``b† -> (c†-d†)/√2``). A passive linear-optics network with mode matrix M
    acts on Fock space as ``exp(Σ_ij (log M)_ij a_i† a_j)``; H is Hermitian
    with eigenvalues ±1, so ``log H = iπ (I - H)/2``. The generator conserves
    photon number, so the truncated operator is exact on the ≤ 2-photon sector.
    """
    qutip = load_qutip()
    d = _FOCK_CUTOFF
    modes = [qutip.tensor(qutip.destroy(d), qutip.qeye(d)), qutip.tensor(qutip.qeye(d), qutip.destroy(d))]
    h = np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2)
    log_h = 1j * math.pi * (np.eye(2) - h) / 2
    generator = sum(log_h[i, j] * modes[i].dag() * modes[j] for i in range(2) for j in range(2))
    return generator.expm().to("dense")


def detector_no_click(efficiency: float, dark_count_probability: float, cutoff: int = _FOCK_CUTOFF) -> Qobj:
    """No-click POVM element of a threshold detector: ``(1-p) Σ_n (1-η_d)^n |n><n|``."""
    weights = (1.0 - dark_count_probability) * (1.0 - efficiency) ** np.arange(cutoff)
    return load_qutip().Qobj(np.diag(weights), dims=[[cutoff], [cutoff]]).to("dense")


def detector_one_event(efficiency: float, dark_count_probability: float, cutoff: int = _FOCK_CUTOFF) -> Qobj:
    """Exactly-one-event POVM element of a PNR detector (detected photons plus
    Poisson dark counts of mean λ = -ln(1-p)): ``q Σ_n (nη(1-η)^(n-1) + λ(1-η)^n) |n><n|``."""
    q = 1.0 - dark_count_probability
    lam_q = 0.0 if q <= 0.0 else -q * math.log(q)
    n = np.arange(cutoff)
    weights = q * n * efficiency * (1.0 - efficiency) ** np.maximum(n - 1, 0) + lam_q * (1.0 - efficiency) ** n
    return load_qutip().Qobj(np.diag(weights), dims=[[cutoff], [cutoff]]).to("dense")


_POVM_CACHE: dict[tuple[float, float, bool], list[Qobj]] = {}


def herald_povm(detector: DetectorParams) -> list[Qobj]:
    """POVM ``[D+ only, D- only, fail]`` on the incoming modes (a, b), each 0/1 photon.

    Threshold detectors: "D+ only" is a click in c and none in d; PNR
    detectors: exactly one event in c and none in d. The efficiency is the
    detector's windowed efficiency (:meth:`DetectorParams.windowed_efficiency`).
    Cached per (efficiency, dark-count probability, kind): the same list object
    is returned every time, so callers must not mutate it (the world also uses
    its identity to check completeness only once).
    """
    key = (float(detector.windowed_efficiency()), float(detector.dark_count_probability), detector.kind == "pnr")
    povm = _POVM_CACHE.get(key)
    if povm is None:
        povm = _POVM_CACHE[key] = _build_herald_povm(*key)
    return povm


def _build_herald_povm(efficiency: float, p_dc: float, pnr: bool = False) -> list[Qobj]:
    qutip = load_qutip()
    d = _FOCK_CUTOFF
    no_click = detector_no_click(efficiency, p_dc)
    click = detector_one_event(efficiency, p_dc) if pnr else qutip.qeye(d) - no_click
    c_alone = qutip.tensor(click, no_click)
    d_alone = qutip.tensor(no_click, click)
    out = [c_alone, d_alone, qutip.tensor(qutip.qeye(d), qutip.qeye(d)) - c_alone - d_alone]
    # isometry V: |i, j> (i, j in {0, 1}) -> the same Fock state of two 3-level modes
    embed = np.zeros((d * d, 4))
    for i in range(2):
        for j in range(2):
            embed[d * i + j, 2 * i + j] = 1.0
    w = beam_splitter_unitary().full() @ embed  # U V
    elements = []
    for f in out:
        m = w.conj().T @ f.full() @ w
        elements.append(qutip.Qobj((m + m.conj().T) / 2, dims=[[2, 2], [2, 2]]).to("dense"))
    return elements


@lru_cache(maxsize=64)
def photon_loss_kraus(transmittance: float) -> tuple[Qobj, Qobj]:
    """Loss of a 0/1-photon mode: amplitude damping with γ = 1 - transmittance."""
    qutip = load_qutip()
    k0 = qutip.Qobj(np.diag([1.0, math.sqrt(transmittance)]), dims=[[2], [2]]).to("dense")
    k1 = qutip.Qobj(np.array([[0.0, math.sqrt(1.0 - transmittance)], [0.0, 0.0]]), dims=[[2], [2]]).to("dense")
    return k0, k1


@lru_cache(maxsize=256)
def emission_state(alpha: float, transmittance: float) -> Qobj:
    """Spin ⊗ photon state at the station's door: ``√(1-α)|00> + √α|11>``, then
    photon loss with the given transmittance. Cached: the same per link."""
    qutip = load_qutip()
    ket = math.sqrt(1.0 - alpha) * qutip.tensor(qutip.basis(2, 0), qutip.basis(2, 0)) + math.sqrt(alpha) * qutip.tensor(
        qutip.basis(2, 1), qutip.basis(2, 1)
    )
    rho = qutip.ket2dm(ket)
    lifted = [qutip.tensor(qutip.qeye(2), k) for k in photon_loss_kraus(transmittance)]
    out = sum(k @ rho @ k.dag() for k in lifted)
    return out.to("dense")


def station_options(params: SingleClickLinkParams) -> dict[str, Any]:
    """The link's station options as keyword arguments of the closed forms
    (:func:`unnormalised_herald_state`)."""
    return {
        "pnr": params.detector.kind == "pnr",
        "visibility": params.two_photon_visibility,
        "phase_noise_rad": params.phase_noise_rad,
    }


def arrival_efficiency(params: SingleClickLinkParams, hardware: NodeHardware) -> float:
    """Probability that a node's photon reaches the midpoint station:
    emission efficiency × fibre transmittance over L/2."""
    return hardware.emission_efficiency * params.fibre.transmittance(params.length_km / 2)


# ------------------------------------------------------------------ closed forms


def _check(alpha: float, eta_a: float, eta_b: float, p_dc: float, alpha_b: float | None) -> float:
    alpha_b = alpha if alpha_b is None else alpha_b
    for name, value in (("alpha", alpha), ("alpha_b", alpha_b), ("eta_a", eta_a), ("eta_b", eta_b), ("p_dc", p_dc)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    return alpha_b


def _check_options(pnr: bool, visibility: float, phase_noise_rad: float) -> None:
    if not 0.0 <= visibility <= 1.0:
        raise ValueError(f"visibility must be in [0, 1], got {visibility}")
    if not (phase_noise_rad >= 0.0 and math.isfinite(phase_noise_rad)):
        raise ValueError(f"phase_noise_rad must be finite and >= 0, got {phase_noise_rad}")


def detector_weights(p_dc: float, visibility: float, pnr: bool) -> tuple[float, float, float]:
    """(f, d, b) of the module docstring: weight of a herald by a photon, of a herald
    by a lone dark count, and of two photons bunching into the heralding detector
    (threshold: 1, p, (1+V)/4; PNR: q, qλ with λ = -ln q, 0)."""
    q = 1.0 - p_dc
    if not pnr:
        return 1.0, p_dc, (1.0 + visibility) / 4.0
    return q, (0.0 if q <= 0.0 else -q * math.log(q)), 0.0


def unnormalised_herald_state(
    alpha: float,
    eta_a: float,
    eta_b: float,
    p_dc: float,
    bell_state: BellState,
    alpha_b: float | None = None,
    *,
    pnr: bool = False,
    visibility: float = 1.0,
    phase_noise_rad: float = 0.0,
) -> np.ndarray:
    """ρ± of the module docstring (4x4, basis |s_A s_B>, trace = that herald's probability).

    ``eta_a``/``eta_b`` are total efficiencies (emission × fibre × detector);
    ``alpha`` is node A's bright-state population and ``alpha_b`` node B's
    (default: the same). Station options: ``pnr`` (photon-number-resolving
    detectors), ``visibility`` V of the two photons, ``phase_noise_rad`` σ of
    the arms' phase difference (the state averaged over it).
    """
    alpha_b = _check(alpha, eta_a, eta_b, p_dc, alpha_b)
    _check_options(pnr, visibility, phase_noise_rad)
    if bell_state not in (BellState.PSI_PLUS, BellState.PSI_MINUS):
        raise ValueError(f"single-click heralds PSI_PLUS or PSI_MINUS, not {bell_state}")
    a, b = alpha, alpha_b
    f, d, bunch = detector_weights(p_dc, visibility, pnr)
    coherence = math.sqrt(visibility) * math.exp(-0.5 * phase_noise_rad**2)
    sign = 1.0 if bell_state is BellState.PSI_PLUS else -1.0
    phi = np.zeros(4)
    phi[2] = math.sqrt(a * (1 - b) * eta_a)  # |10>
    phi[1] = sign * math.sqrt((1 - a) * b * eta_b)  # |01>
    rho = 0.5 * f * np.outer(phi, phi)
    rho[1, 2] *= coherence
    rho[2, 1] *= coherence
    rho[0, 0] += d * (1 - a) * (1 - b)
    rho[2, 2] += d * a * (1 - b) * (1 - eta_a)
    rho[1, 1] += d * (1 - a) * b * (1 - eta_b)
    rho[3, 3] += a * b * (bunch * eta_a * eta_b + f * (eta_a + eta_b - 2 * eta_a * eta_b) / 2 + d * (1 - eta_a) * (1 - eta_b))
    return (1 - p_dc) * rho.astype(complex)


def herald_probability(alpha: float, eta_a: float, eta_b: float, p_dc: float = 0.0, alpha_b: float | None = None, **options: Any) -> float:
    """Probability of one given herald (D+ alone, or D- alone; they are equal).
    ``options``: the station options of :func:`unnormalised_herald_state`."""
    return float(np.real(np.trace(unnormalised_herald_state(alpha, eta_a, eta_b, p_dc, BellState.PSI_PLUS, alpha_b, **options))))


def success_probability(alpha: float, eta_a: float, eta_b: float, p_dc: float = 0.0, alpha_b: float | None = None, **options: Any) -> float:
    """Probability that an attempt heralds success (either detector alone clicks)."""
    return 2.0 * herald_probability(alpha, eta_a, eta_b, p_dc, alpha_b, **options)


def post_herald_state(
    alpha: float,
    eta_a: float,
    eta_b: float,
    p_dc: float,
    bell_state: BellState,
    alpha_b: float | None = None,
    **options: Any,
) -> np.ndarray:
    """Normalised 4x4 spin state (order A, B) after the herald of ``bell_state``."""
    rho = unnormalised_herald_state(alpha, eta_a, eta_b, p_dc, bell_state, alpha_b, **options)
    weight = float(np.real(np.trace(rho)))
    if weight <= 0.0:
        raise ValueError("this herald has probability 0 for these parameters")
    return rho / weight


def herald_fidelity(alpha: float, eta_a: float, eta_b: float, p_dc: float = 0.0, alpha_b: float | None = None, **options: Any) -> float:
    """Fidelity of the post-herald state to the heralded Bell state (same for Ψ+ and Ψ-)."""
    rho = post_herald_state(alpha, eta_a, eta_b, p_dc, BellState.PSI_PLUS, alpha_b, **options)
    psi = bell_vector(BellState.PSI_PLUS)
    return min(1.0, max(0.0, float(np.real(np.conj(psi) @ rho @ psi))))


def decohere_pair(
    rho: np.ndarray,
    noise_a: tuple[float, float | None, float | None],
    noise_b: tuple[float, float | None, float | None],
) -> np.ndarray:
    """Apply memory noise ``(elapsed_ns, t1_ns, t2_ns)`` to each spin of a 4x4 state
    (the same channel as the world's, :func:`qnetstack.physical.components.memory_noise.memory_kraus_arrays`)."""
    out = np.asarray(rho, dtype=complex)
    for which, (elapsed, t1, t2) in enumerate((noise_a, noise_b)):
        if elapsed <= 0 or (t1 is None and t2 is None):
            continue
        acc = np.zeros_like(out)
        for m in memory_kraus_arrays(elapsed, t1, t2):
            full = np.kron(m, np.eye(2)) if which == 0 else np.kron(np.eye(2), m)
            acc += full @ out @ full.conj().T
        out = acc
    return out


def stored_pair_fidelity(rho: np.ndarray, bell_state: BellState) -> float:
    """``<B|ρ|B>`` of a 4x4 state to a Bell state, clipped into [0, 1]."""
    psi = bell_vector(bell_state)
    return min(1.0, max(0.0, float(np.real(np.conj(psi) @ rho @ psi))))


def fidelity_at_detection(
    alpha_a: float,
    alpha_b: float,
    eta_a: float,
    eta_b: float,
    p_dc: float,
    bell_state: BellState,
    wait_a: tuple[float, float | None, float | None] = (0.0, None, None),
    wait_b: tuple[float, float | None, float | None] = (0.0, None, None),
    **options: Any,
) -> float:
    """Fidelity of the spins to ``bell_state`` at the moment of detection.

    The closed-form post-herald state, with each spin's memory noise
    ``(elapsed_ns, t1_ns, t2_ns)`` for the time since its emission (the photon's
    flight to the station). Exact for the simulation: the noise acts on the
    spins alone, so it commutes with the detection of the photons.
    Returns 0 if the herald is impossible for these parameters. ``options``:
    the station options of :func:`unnormalised_herald_state`.
    """
    if success_probability(alpha_a, eta_a, eta_b, p_dc, alpha_b, **options) <= 0.0:
        return 0.0
    rho = post_herald_state(alpha_a, eta_a, eta_b, p_dc, bell_state, alpha_b, **options)
    return stored_pair_fidelity(decohere_pair(rho, wait_a, wait_b), bell_state)


def operating_points(
    params: SingleClickLinkParams,
    hardware_a: NodeHardware,
    hardware_b: NodeHardware,
    wait_ns: float,
    count: int = 16,
) -> list[tuple[float, float, float]]:
    """``(α, p_succ, F)`` for bright-state populations from the link's configured
    α down to α/100 (geometric steps), both ends at the same α.

    The configured α is the operator's ceiling (the fastest point offered); a
    link layer may lower α to reach a higher fidelity, trading rate for it,
    as the QuTech link layer does (Dahlberg et al., SIGCOMM 2019, Sec. 5; the
    trade-off p ≈ 2αη, F ≈ 1 − α of Humphreys et al. 2018). ``F`` is the
    fidelity at detection with each spin having waited ``wait_ns`` (the
    photon's flight to the station), as :func:`fidelity_at_detection`.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    top = params.bright_state_population
    eff = params.detector.windowed_efficiency()
    eta_a = arrival_efficiency(params, hardware_a) * eff
    eta_b = arrival_efficiency(params, hardware_b) * eff
    p_dc = params.detector.dark_count_probability
    options = station_options(params)
    wait_a = (wait_ns, hardware_a.memory.t1_ns, hardware_a.memory.t2_ns)
    wait_b = (wait_ns, hardware_b.memory.t1_ns, hardware_b.memory.t2_ns)
    points = []
    for k in range(count):
        alpha = top * 0.01 ** (k / max(1, count - 1)) if top > 0 else 0.0
        p = min(1.0, success_probability(alpha, eta_a, eta_b, p_dc, **options))
        fidelity = fidelity_at_detection(alpha, alpha, eta_a, eta_b, p_dc, BellState.PSI_PLUS, wait_a, wait_b, **options)
        points.append((alpha, p, fidelity))
        if top == 0:
            break
    return points


@dataclass(frozen=True)
class SingleClickModel:
    """The single-click scheme (this module) as a :class:`~qnetstack.physical.schemes.model.HeraldingModel`.

    Both ends use the link's bright-state population α; photon efficiencies
    are emission × fibre over L/2 × detector, the closed form of
    :func:`unnormalised_herald_state`.
    """

    params: SingleClickLinkParams
    hardware_a: NodeHardware = NodeHardware()
    hardware_b: NodeHardware = NodeHardware()

    def _etas(self) -> tuple[float, float]:
        eta_d = self.params.detector.windowed_efficiency()
        return (
            arrival_efficiency(self.params, self.hardware_a) * eta_d,
            arrival_efficiency(self.params, self.hardware_b) * eta_d,
        )

    @cached_property
    def _branches(self) -> tuple[HeraldBranch, ...]:
        eta_a, eta_b = self._etas()
        alpha = self.params.bright_state_population
        p_dc = self.params.detector.dark_count_probability
        out = []
        options = station_options(self.params)
        for bell in (BellState.PSI_PLUS, BellState.PSI_MINUS):
            rho = unnormalised_herald_state(alpha, eta_a, eta_b, p_dc, bell, **options)
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
        """Per herald: (probability, Bell state, normalised spin state), from the optics,
        before the attempt's interferometer phase.

        Built once per link, independently of the closed form. With
        indistinguishable photons (V = 1): the operator model the QuTiP backend
        runs, each node's spin–photon state (:func:`emission_state`, photon loss
        included), the herald POVM on the two photons (beam splitter and
        detectors, :func:`herald_povm`), the photons traced out. With V < 1: the
        Fock-space round of :func:`qnetstack.physical.schemes.barrett_kok.round_instrument`
        (photons with internal modes), applied to the emitted spin state.
        """
        alpha = self.params.bright_state_population
        trans_a = arrival_efficiency(self.params, self.hardware_a)
        trans_b = arrival_efficiency(self.params, self.hardware_b)
        if self.params.two_photon_visibility < 1.0:
            return self._fock_instrument(alpha, trans_a, trans_b)
        rho_a = emission_state(alpha, trans_a).full()
        rho_b = emission_state(alpha, trans_b).full()
        # order (s_A, p_A, s_B, p_B) -> (s_A, s_B, p_A, p_B)
        joint = np.kron(rho_a, rho_b).reshape([2] * 8).transpose(0, 2, 1, 3, 4, 6, 5, 7).reshape(16, 16)
        povm = herald_povm(self.params.detector)
        out = []
        for outcome, bell in HERALD_BELL_STATES.items():
            lifted = np.kron(np.eye(4), povm[outcome].full())
            spins = (lifted @ joint).reshape(4, 4, 4, 4).trace(axis1=1, axis2=3)  # trace out the photons
            weight = float(np.real(np.trace(spins)))
            out.append((weight, bell, spins / weight if weight > 0 else spins))
        return tuple(out)

    def _fock_instrument(self, alpha: float, trans_a: float, trans_b: float) -> tuple[tuple[float, BellState, np.ndarray], ...]:
        detector = self.params.detector
        gram = round_instrument(
            trans_a,
            trans_b,
            self.params.two_photon_visibility,
            detector.windowed_efficiency(),
            detector.dark_count_probability,
            detector.kind == "pnr",
        )
        amp = np.array([math.sqrt(1.0 - alpha), math.sqrt(alpha)])
        emitted = np.outer(np.kron(amp, amp), np.kron(amp, amp)).astype(complex)
        out = []
        for outcome, bell in ((ROUND_C, BellState.PSI_PLUS), (ROUND_D, BellState.PSI_MINUS)):
            spins = gram[outcome] * emitted
            weight = float(np.real(np.trace(spins)))
            out.append((weight, bell, spins / weight if weight > 0 else spins))
        return tuple(out)

    def simulate_attempt(self, rng: np.random.Generator) -> HeraldBranch | None:
        """One attempt: sample the herald from the optics' instrument (see
        ``_instrument``), then, with phase noise, this attempt's phase φ ~ N(0, σ²)
        between the arms as ``diag(1, e^{iφ})`` on node B's spin (module
        docstring); ``None`` when no single detector heralded."""
        u = rng.random()
        for weight, bell, state in self._instrument:
            if u < weight:
                sigma = self.params.phase_noise_rad
                if sigma > 0.0:
                    phase = np.exp(1j * rng.normal(0.0, sigma))
                    z = np.array([1.0, phase, 1.0, phase])  # basis |s_A s_B>: the phase on s_B = 1
                    state = z[:, None] * state * z.conj()[None, :]
                return HeraldBranch(bell_state=bell, probability=weight, state=state)
            u -= weight
        return None


@dataclass(frozen=True)
class SingleClickPerEndModel:
    """Single-click with a different α at each end (a ``HeraldAttempt`` override):
    the closed form :func:`unnormalised_herald_state` with ``alpha_b`` (derived
    there; Humphreys et al. 2018). ``base`` supplies the link and the hardware."""

    base: SingleClickModel
    alpha_a: float
    alpha_b: float

    def branches(self) -> tuple[HeraldBranch, ...]:
        eta_a, eta_b = self.base._etas()
        p_dc = self.base.params.detector.dark_count_probability
        options = station_options(self.base.params)
        out = []
        for bell in (BellState.PSI_PLUS, BellState.PSI_MINUS):
            rho = unnormalised_herald_state(self.alpha_a, eta_a, eta_b, p_dc, bell, self.alpha_b, **options)
            weight = float(np.real(np.trace(rho)))
            out.append(HeraldBranch(bell_state=bell, probability=weight, state=rho / weight if weight > 0 else rho))
        return tuple(out)

    def success_probability(self) -> float:
        return sum(b.probability for b in self.branches())
