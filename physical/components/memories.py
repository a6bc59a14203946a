"""Quantum memories: decoherence, gate and readout errors, and platform presets.

Theory of operation
-------------------
A :class:`MemoryModel` describes one node's memory qubits: *communication*
qubits (those that can be entangled with a photon) and *storage* qubits (that
can only be reached by local gates, e.g. the carbon-13 nuclear spins next to an
NV centre), with their coherence times, gate, measurement and readout figures.

**Waiting** (Nielsen & Chuang, *Quantum Computation and Quantum Information*,
2000, §8.3.5-8.3.6). A qubit left alone for t undergoes amplitude damping with
γ = 1 - e^{-t/T1} and dephasing such that the coherence ρ01 decays by e^{-t/T2}
in total; this is :func:`qnetstack.physical.components.memory_noise.memory_kraus`, reused here. ``None``
means no decay of that kind; physics requires T2 ≤ 2·T1 (N&C §8.3.6) and a
finite T1 implies a finite T2.

**Bell pair after waiting** (derived for this module from those channels).
Write a_i = e^{-t_i/T1_i} (the surviving |1> population) and c_i = e^{-t_i/T2_i}
(the surviving coherence) for qubit i ∈ {A, B} waiting t_i. The channel maps
|0><0| → |0><0|, |1><1| → a|1><1| + (1-a)|0><0|, |0><1| → c|0><1|. Applied
to |Φ±> = (|00> ± |11>)/√2, the weight left on |00> and |11> and the
surviving coherence give

    F_Φ = [1 + a_A a_B + (1-a_A)(1-a_B) + 2 c_A c_B] / 4,

and applied to |Ψ±> = (|01> ± |10>)/√2 (relaxation moves |01>, |10> to |00>,
which is orthogonal to Ψ±)

    F_Ψ = [a_A + a_B + 2 c_A c_B] / 4.

Special cases (used by the tests): pure dephasing, one qubit waiting,
F = (1 + e^{-t/T2})/2; pure dephasing, both waiting t with equal T2,
F = (1 + e^{-2t/T2})/2; one qubit waiting with T1 and T2,
F = (1 + e^{-t/T1} + 2 e^{-t/T2})/4 for every Bell state.

Note: F_Φ with *both* qubits relaxing is **not** monotone in t when T2 is
short compared with T1. Both qubits end in |00>, which overlaps |Φ±> with
weight 1/2, so once the coherence is gone F_Φ = [1 + a² + (1-a)²]/4 falls to
3/8 at a = 1/2 and then climbs back to 1/2.

**Gate errors** (depolarising model, N&C 2000 §8.3.4). A gate on d-dimensional
qubits (d = 2 or 4) is the ideal unitary followed by
ρ → λρ + (1-λ) I/d. Its average gate fidelity is F = λ + (1-λ)/d (every pure
input has this fidelity), so λ = (dF - 1)/(d - 1) (average gate fidelity as in
Nielsen, Phys. Lett. A 303, 249 (2002), the figure randomized benchmarking
reports). F ≥ 1/d keeps λ ≥ 0. The Kraus operators are the Paulis:
√(1 - (d²-1)p/d²)·I and √(p/d²)·P for the d²-1 non-identity Pauli strings P,
with p = 1 - λ.

**Measurement errors**: a symmetric bit flip; the outcome is right with
probability F_m for both |0> and |1> (POVM E0 = F_m|0><0| + (1-F_m)|1><1|,
E1 = I - E0). Real platforms are often asymmetric (NV: ~0.95 for |0>, ~0.995
for |1>); the presets use the mean.

**Readout** (retrieving a stored qubit, e.g. re-emitting it as a photon from an
ensemble memory, or swapping a storage qubit back to the communication qubit):
it succeeds with probability ``readout_efficiency`` (a failure loses the qubit)
and, given success, the qubit has passed a depolarising channel of fidelity
``readout_fidelity``. For ensemble memories the loss of collective rephasing
during storage shows up as *loss*, not as qubit dephasing (the retrieved
photon's qubit keeps its fidelity; Afzelius et al., PRA 79, 052329 (2009),
Sec. II): ``efficiency_lifetime_ns`` is the 1/e time of the readout efficiency
(an exponential approximation to the measured decay).

Copying presets: ``preset.replace(t2_ns=...)`` validates the new values;
pydantic's ``model_copy(update=...)`` does not.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, model_validator

from qnetstack.physical.components.memory_noise import memory_kraus
from qnetstack.physical.components.preset_lookup import preset_lookup
from qnetstack.physical.lazy_qutip import as_qobj
from qnetstack.physical.params import HardwareParams, MemoryParams
from qnetstack.physical.service import BellState, Probability

if TYPE_CHECKING:
    from qutip import Qobj

__all__ = [
    "CoherenceTimes",
    "MemoryModel",
    "bell_fidelity_after_wait",
    "depolarising_kraus",
    "depolarising_kraus_arrays",
    "NV_ELECTRON",
    "NV_CARBON",
    "RB_ATOM",
    "TRAPPED_ION",
    "SIV",
    "AFC_ENSEMBLE",
    "MEMORY_PRESETS",
    "memory_preset",
]

Noise = tuple[float, float | None, float | None]  # (elapsed_ns, t1_ns, t2_ns), as physical.schemes.single_click


def _check_t1_t2(t1_ns: float | None, t2_ns: float | None, prefix: str = "") -> None:
    if t1_ns is not None and t2_ns is not None and t2_ns > 2 * t1_ns:
        raise ValueError(f"{prefix}t2_ns={t2_ns} exceeds 2*{prefix}t1_ns={2 * t1_ns}; physics requires T2 <= 2*T1")
    if t1_ns is not None and t2_ns is None:
        raise ValueError(
            f"{prefix}t2_ns=None (no dephasing) with finite {prefix}t1_ns is unphysical; give {prefix}t2_ns <= 2*{prefix}t1_ns"
        )


class CoherenceTimes(HardwareParams):
    """T1 and T2 of one kind of qubit, in ns (``None``: no decay of that kind)."""

    t1_ns: float | None = Field(None, gt=0.0)
    t2_ns: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _t2_within_two_t1(self) -> CoherenceTimes:
        _check_t1_t2(self.t1_ns, self.t2_ns)
        return self


class MemoryModel(HardwareParams):
    """A node's memory (module docstring for the models).

    ``t1_ns``/``t2_ns``: the communication qubits' coherence times;
    ``storage_coherence``: the storage qubits' times, ``None`` meaning the same
    as the communication qubits. Gate, measurement and readout fidelities
    ``None`` mean the platform cannot perform that operation.

    Defaults (an idealised memory, consistent with
    :class:`qnetstack.physical.params.MemoryParams`): 4 qubits (1 communication + 3
    storage), T1 = ∞, T2 = 1 s ("memory lifetimes of order seconds",
    RFC 9340 §5.4, 2023), perfect and instantaneous gates, measurement and
    readout.
    """

    t1_ns: float | None = Field(None, gt=0.0)
    t2_ns: float | None = Field(1e9, gt=0.0)
    storage_coherence: CoherenceTimes | None = None
    num_communication_qubits: int = Field(1, ge=0, le=64)
    num_storage_qubits: int = Field(3, ge=0, le=64)
    readout_efficiency: Probability = 1.0
    readout_fidelity: float = Field(1.0, ge=0.5, le=1.0)
    efficiency_lifetime_ns: float | None = Field(None, gt=0.0)
    single_qubit_gate_fidelity: float | None = Field(1.0, ge=0.5, le=1.0)
    single_qubit_gate_duration_ns: float = Field(0.0, ge=0.0)
    two_qubit_gate_fidelity: float | None = Field(1.0, ge=0.25, le=1.0)
    two_qubit_gate_duration_ns: float = Field(0.0, ge=0.0)
    measurement_fidelity: float | None = Field(1.0, ge=0.5, le=1.0)
    measurement_duration_ns: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _physical(self) -> MemoryModel:
        _check_t1_t2(self.t1_ns, self.t2_ns)
        total = self.num_communication_qubits + self.num_storage_qubits
        if not 1 <= total <= 64:
            raise ValueError(f"num_communication_qubits + num_storage_qubits = {total}; must be between 1 and 64")
        return self

    # ------------------------------------------------------------ waiting

    def coherence(self, storage: bool = False) -> tuple[float | None, float | None]:
        """(T1, T2) in ns of a communication qubit, or of a storage qubit."""
        if storage and self.storage_coherence is not None:
            return self.storage_coherence.t1_ns, self.storage_coherence.t2_ns
        return self.t1_ns, self.t2_ns

    def kraus(self, wait_ns: float, storage: bool = False) -> list[Qobj]:
        """Kraus operators of one qubit left alone for ``wait_ns``
        (:func:`qnetstack.physical.components.memory_noise.memory_kraus` with this memory's T1, T2)."""
        return memory_kraus(wait_ns, *self.coherence(storage))

    def bell_pair_fidelity(
        self,
        wait_ns: float,
        *,
        both_wait: bool = False,
        storage: bool = False,
        bell_state: BellState = BellState.PHI_PLUS,
    ) -> float:
        """Fidelity to ``bell_state`` of a perfect pair after one qubit (or both, each
        held in a memory like this one) waited ``wait_ns`` (closed form, module docstring)."""
        t1, t2 = self.coherence(storage)
        idle: Noise = (0.0, None, None)
        return bell_fidelity_after_wait(bell_state, (wait_ns, t1, t2), (wait_ns, t1, t2) if both_wait else idle)

    def readout_efficiency_after(self, wait_ns: float) -> float:
        """Readout efficiency after storing for ``wait_ns``: η·e^{-t/τ} (τ = ``efficiency_lifetime_ns``)."""
        if wait_ns < 0:
            raise ValueError(f"wait_ns must be >= 0, got {wait_ns}")
        if self.efficiency_lifetime_ns is None:
            return self.readout_efficiency
        return self.readout_efficiency * math.exp(-wait_ns / self.efficiency_lifetime_ns)

    # ------------------------------------------------------------ operations

    def single_qubit_gate_kraus(self) -> list[Qobj]:
        """Depolarising error channel applied after each single-qubit gate."""
        return depolarising_kraus(_supported(self.single_qubit_gate_fidelity, "single_qubit_gate_fidelity"), 1)

    def two_qubit_gate_kraus(self) -> list[Qobj]:
        """Depolarising error channel on both qubits after each two-qubit gate."""
        return depolarising_kraus(_supported(self.two_qubit_gate_fidelity, "two_qubit_gate_fidelity"), 2)

    def readout_kraus(self) -> list[Qobj]:
        """Error channel on a successfully retrieved qubit (depolarising, ``readout_fidelity``)."""
        return depolarising_kraus(self.readout_fidelity, 1)

    def measurement_povm(self) -> list[Qobj]:
        """``[E0, E1]`` of a Z measurement with symmetric error 1 - ``measurement_fidelity``."""
        f = _supported(self.measurement_fidelity, "measurement_fidelity")
        return [as_qobj(np.diag([f, 1.0 - f]), [[2], [2]]), as_qobj(np.diag([1.0 - f, f]), [[2], [2]])]

    def to_memory_params(self) -> MemoryParams:
        """The coarser model the device and the heralding code use: all qubits, the
        communication qubits' T1/T2 rounded to whole ns, and the gate and
        measurement fidelities and durations (durations rounded to whole ns;
        storage times and readout figures are dropped)."""
        t1 = None if self.t1_ns is None else max(1, round(self.t1_ns))
        t2 = None if self.t2_ns is None else max(1, round(self.t2_ns))
        if t1 is not None and t2 is not None:
            t2 = min(t2, 2 * t1)  # rounding must not break T2 <= 2*T1
        return MemoryParams(
            num_qubits=self.num_communication_qubits + self.num_storage_qubits,
            t1_ns=t1,
            t2_ns=t2,
            single_qubit_gate_fidelity=self.single_qubit_gate_fidelity,
            two_qubit_gate_fidelity=self.two_qubit_gate_fidelity,
            measurement_fidelity=self.measurement_fidelity,
            single_qubit_gate_duration_ns=round(self.single_qubit_gate_duration_ns),
            two_qubit_gate_duration_ns=round(self.two_qubit_gate_duration_ns),
            measurement_duration_ns=round(self.measurement_duration_ns),
        )


def _supported(value: float | None, field: str) -> float:
    if value is None:
        raise ValueError(f"this memory has {field}=None: it cannot perform that operation")
    return value


# ------------------------------------------------------------------ closed forms and channels


def bell_fidelity_after_wait(bell_state: BellState, noise_a: Noise, noise_b: Noise = (0.0, None, None)) -> float:
    """Fidelity to ``bell_state`` of that perfect Bell pair after qubit A waits under
    ``noise_a = (elapsed_ns, t1_ns, t2_ns)`` and qubit B under ``noise_b``
    (F_Φ and F_Ψ of the module docstring; Nielsen & Chuang 2000, §8.3.5-8.3.6)."""
    a_a, c_a = _decay(*noise_a)
    a_b, c_b = _decay(*noise_b)
    if BellState(bell_state) in (BellState.PHI_PLUS, BellState.PHI_MINUS):
        return (1.0 + a_a * a_b + (1.0 - a_a) * (1.0 - a_b) + 2.0 * c_a * c_b) / 4.0
    return (a_a + a_b + 2.0 * c_a * c_b) / 4.0


def _decay(elapsed_ns: float, t1_ns: float | None, t2_ns: float | None) -> tuple[float, float]:
    """(e^{-t/T1}, e^{-t/T2}): surviving |1> population and coherence."""
    if elapsed_ns < 0:
        raise ValueError(f"elapsed time must be >= 0, got {elapsed_ns}")
    _check_t1_t2(t1_ns, t2_ns)
    keep = 1.0 if t1_ns is None else math.exp(-elapsed_ns / t1_ns)
    coherence = 1.0 if t2_ns is None else math.exp(-elapsed_ns / t2_ns)
    return keep, coherence


_PAULIS = [np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])]


def depolarising_kraus(fidelity: float, num_qubits: int) -> list[Qobj]:
    """Kraus operators of ρ → λρ + (1-λ) I/d, d = 2^n, with average gate fidelity
    ``fidelity`` = λ + (1-λ)/d (module docstring). Needs 1/d ≤ fidelity ≤ 1."""
    n = [[2] * num_qubits, [2] * num_qubits]
    return [as_qobj(op, n) for op in depolarising_kraus_arrays(fidelity, num_qubits)]


def depolarising_kraus_arrays(fidelity: float, num_qubits: int) -> list[np.ndarray]:
    """:func:`depolarising_kraus`'s operators as complex numpy arrays."""
    if num_qubits not in (1, 2):
        raise ValueError(f"num_qubits must be 1 or 2, got {num_qubits}")
    d = 2**num_qubits
    if not 1.0 / d <= fidelity <= 1.0:
        raise ValueError(f"fidelity must be in [{1.0 / d}, 1] for {num_qubits} qubit(s), got {fidelity}")
    p = 1.0 - (d * fidelity - 1.0) / (d - 1.0)  # 1 - λ
    ops = []
    for i, labels in enumerate(itertools.product(range(4), repeat=num_qubits)):
        weight = 1.0 - (d * d - 1) * p / (d * d) if i == 0 else p / (d * d)
        if weight <= 0.0:
            continue
        pauli = _PAULIS[labels[0]] if num_qubits == 1 else np.kron(_PAULIS[labels[0]], _PAULIS[labels[1]])
        ops.append((math.sqrt(weight) * pauli).astype(complex))
    return ops


# ------------------------------------------------------------------ presets

NV_ELECTRON = MemoryModel(
    t1_ns=3.6e12,
    t2_ns=1.0e9,
    num_communication_qubits=1,
    num_storage_qubits=0,
    single_qubit_gate_fidelity=0.999,
    single_qubit_gate_duration_ns=100.0,
    two_qubit_gate_fidelity=0.99,
    two_qubit_gate_duration_ns=500_000.0,
    measurement_fidelity=0.97,
    measurement_duration_ns=3_700.0,
)
"""NV-centre electron spin (communication qubit) in diamond.

T1 = 1 h and T2 = 1 s: Abobeih et al., "One-second coherence for a single
electron spin coupled to a multi-qubit nuclear-spin environment", Nat. Commun.
9, 2552 (2018) (T1 of about an hour at 4 K; coherence beyond one second under
tailored dynamical decoupling). Measurement: readout fidelity ~0.95 for
m_s = 0 and ~0.995 for m_s = ±1 in the network nodes of Pompili et al.,
Science 372, 259 (2021) (Supplementary), 0.97 being their mean, with a
readout of a few µs (3.7 µs). Gates: electron-carbon gates of ~0.99 fidelity
lasting hundreds of µs (Bradley et al., PRX 9, 031045 (2019); 500 µs here);
single-qubit microwave gates ≥ 0.999 lasting ~100 ns (order of magnitude,
assumed). During entanglement attempts the *network* T2 is far shorter than
the dynamically decoupled one; use T2 of the experiment at hand.
"""

NV_CARBON = MemoryModel(
    **{
        **NV_ELECTRON.model_dump(),
        "num_storage_qubits": 1,
        "storage_coherence": CoherenceTimes(t1_ns=None, t2_ns=6.0e10),
    }
)
"""NV node with a carbon-13 nuclear-spin storage qubit next to its electron.

The electron as in :data:`NV_ELECTRON`; the storage qubit's T2 = 60 s from
Bradley et al., "A ten-qubit solid-state spin register with quantum memory up
to one minute", PRX 9, 031045 (2019) (single-qubit coherence of about a
minute under decoupling); nuclear T1 is far longer and taken as infinite.
Not modelled: the dephasing of carbon spins *per entanglement attempt*
(Kalb et al., PRA 97, 062330 (2018)), which dominates in a network.
"""

RB_ATOM = MemoryModel(
    t1_ns=None,
    t2_ns=150_000.0,
    num_communication_qubits=1,
    num_storage_qubits=0,
    single_qubit_gate_fidelity=None,
    two_qubit_gate_fidelity=None,
    measurement_fidelity=0.95,
    measurement_duration_ns=1_000.0,
)
"""Single 87Rb atom in an optical dipole trap (Zeeman ground-state qubit).

The node type of van Leent et al., "Entangling single atoms over 33 km telecom
fibre", Nature 607, 69 (2022). T2 = 150 µs: the atomic dephasing time measured
in the same kind of trap by Rosenfeld et al., PRL 101, 260403 (2008)
("Towards long-distance atom-photon entanglement"); T1 taken as infinite
(ground-state population relaxation is much slower). Readout by
state-selective ionisation: fidelity 0.95 and ~1 µs are assumed orders of
magnitude. No local gates in these nodes (one atom each).
"""

TRAPPED_ION = MemoryModel(
    t1_ns=None,
    t2_ns=5.0e10,
    num_communication_qubits=1,
    num_storage_qubits=1,
    single_qubit_gate_fidelity=0.99999,
    single_qubit_gate_duration_ns=2_000.0,
    two_qubit_gate_fidelity=0.999,
    two_qubit_gate_duration_ns=100_000.0,
    measurement_fidelity=0.9999,
    measurement_duration_ns=145_000.0,
)
"""Trapped-ion node (43Ca+ hyperfine clock qubit, with a second ion for storage).

T2 ≈ 50 s and single-qubit gate error ~1e-6: Harty et al., PRL 113, 220501
(2014) (T1 of the hyperfine ground states taken as infinite); two-qubit gate
fidelity 0.999 at ~100 µs: Ballance et al., PRL 117, 060504 (2016); readout
0.9999 in 145 µs: Myerson et al., PRL 100, 200502 (2008). Single-qubit gate
duration ~µs (order of magnitude, assumed). Networked trapped-ion nodes of
this kind: Drmota et al., "Robust quantum memory in a trapped-ion quantum
network node", PRL 130, 090803 (2023); Krutyanskiy et al., PRL 130, 050803 (2023).
"""

SIV = MemoryModel(
    t1_ns=1.0e9,
    t2_ns=1.3e7,
    num_communication_qubits=1,
    num_storage_qubits=0,
    single_qubit_gate_fidelity=0.99,
    single_qubit_gate_duration_ns=100.0,
    two_qubit_gate_fidelity=None,
    measurement_fidelity=0.89,
    measurement_duration_ns=10_000.0,
)
"""Silicon-vacancy (SiV-) electron spin in diamond at ~100 mK.

T1 > 1 s, T2 = 13 ms under dynamical decoupling, single-shot readout fidelity
0.89: Sukachev et al., PRL 119, 223602 (2017). Bhaskar et al., Nature 580, 60
(2020) ran memory-enhanced communication with an SiV in a nanophotonic cavity,
whose cavity-enhanced readout is far better than 0.89. Gate fidelity and
durations: orders of magnitude, assumed.
"""

AFC_ENSEMBLE = MemoryModel(
    t1_ns=None,
    t2_ns=None,
    num_communication_qubits=1,
    num_storage_qubits=0,
    readout_efficiency=0.2,
    readout_fidelity=1.0,
    efficiency_lifetime_ns=5.3e8,
    single_qubit_gate_fidelity=None,
    two_qubit_gate_fidelity=None,
    measurement_fidelity=None,
)
"""Atomic-frequency-comb (AFC) ensemble memory with spin-wave storage (151Eu:Y2SiO5).

Protocol: Afzelius et al., PRA 79, 052329 (2009) (forward-retrieval efficiency
at most 54%). Efficiency lifetime 0.53 s: the spin-wave coherence time under
dynamical decoupling of Holzäpfel et al., New J. Phys. 22, 063009 (2020),
taken as the 1/e time of the readout efficiency. Readout efficiency 0.2 at zero
storage time (assumed; AFC echo efficiencies of 10-50% are typical). The
stored photonic qubit is not decohered (``t1_ns = t2_ns = None``): decay of the
ensemble's rephasing appears as loss. No gates; it is read out by retrieval.
Multimode capacity is not modelled.
"""

MEMORY_PRESETS: dict[str, MemoryModel] = {
    "nv_electron": NV_ELECTRON,
    "nv_carbon": NV_CARBON,
    "rb_atom": RB_ATOM,
    "trapped_ion": TRAPPED_ION,
    "siv": SIV,
    "afc_ensemble": AFC_ENSEMBLE,
}

_lookup_preset = preset_lookup(MEMORY_PRESETS, "memory preset name", fold_case=True)


def memory_preset(name: str) -> MemoryModel:
    """The preset called ``name`` (case-insensitive, e.g. ``"nv_electron"``).

    An unknown name raises a pydantic ValidationError (a ValueError) listing
    the known names.
    """
    return _lookup_preset(name)
