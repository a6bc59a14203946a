"""Platform presets: named, documented hardware a user can pick, copy and change.

A :class:`PlatformPreset` bundles what one kind of node brings to a link:
the photon source (an emitter entangled with its memory, or an SPDC pair
source), the memory, the detectors the experiments used, an optional
frequency converter, the wavelength in the fibre and the heralding scheme
the platform is usually run with. :meth:`PlatformPreset.node_hardware` and
:meth:`PlatformPreset.detector_params` turn it into the coarser parameters
the heralding models and backends take today.

Each preset's docstring names the experiment its figures come from; the
component models (:mod:`qnetstack.physical.components.sources`, :mod:`qnetstack.physical.components.memories`,
:mod:`qnetstack.physical.components.detectors`, :mod:`qnetstack.physical.components.channels`) cite the figure for
each parameter, and say where a value is an assumed order of magnitude
rather than a published number. Presets are immutable: change one with
``preset.replace(wavelength_nm=1310.0)`` (which validates) rather than
``model_copy(update=...)`` (which does not).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qnetstack.physical.components.channels import FibreChannel, FrequencyConversion
from qnetstack.physical.components.detectors import SNSPD, Detector
from qnetstack.physical.components.memories import AFC_ENSEMBLE, NV_ELECTRON, RB_ATOM, SIV, TRAPPED_ION, MemoryModel
from qnetstack.physical.components.preset_lookup import preset_lookup
from qnetstack.physical.components.sources import EmitterSource, SpdcSource
from qnetstack.physical.params import DetectorParams, FibreParams, HardwareParams, MemoryParams, NodeHardware

__all__ = [
    "PlatformPreset",
    "PRESETS",
    "PresetName",
    "preset",
    "NV_DELFT_2021",
    "RB_MUNICH_2022",
    "TRAPPED_ION_2023",
    "SIV_HARVARD_2020",
    "AFC_ENSEMBLE_2021",
    "TELECOM_SPDC",
]

Scheme = Literal["single-click", "barrett-kok", "midpoint-source"]


class PlatformPreset(HardwareParams):
    """One platform's node hardware, with where the numbers come from.

    ``emitter``: the memory's own photon source (None for an ensemble memory
    fed by an SPDC source). ``spdc``: a pair source, for platforms that use
    one. ``wavelength_nm``: the wavelength that travels in the fibre (after
    ``conversion``, if any). ``references``: the experiments the preset
    follows.
    """

    name: str = Field(min_length=1)
    description: str
    scheme: Scheme
    memory: MemoryModel
    detector: Detector
    wavelength_nm: float = Field(gt=0.0)
    emitter: EmitterSource | None = None
    spdc: SpdcSource | None = None
    conversion: FrequencyConversion | None = None
    references: tuple[str, ...] = Field(min_length=1)

    def photon_efficiency(self) -> float:
        """Probability that an attempt puts a usable photon into the long fibre:
        the emitter's efficiency (or the SPDC heralding efficiency) times the
        converter's."""
        if self.emitter is not None:
            base = self.emitter.photon_efficiency()
        elif self.spdc is not None:
            base = self.spdc.heralding_efficiency
        else:
            base = 1.0
        return base * (1.0 if self.conversion is None else self.conversion.efficiency)

    def memory_params(self) -> MemoryParams:
        return self.memory.to_memory_params()

    def node_hardware(self) -> NodeHardware:
        """The node as the heralding models see it: memory and photon efficiency."""
        return NodeHardware(memory=self.memory_params(), emission_efficiency=self.photon_efficiency())

    def detector_params(self, window_ns: float = 10.0) -> DetectorParams:
        """Threshold-detector parameters for a detection window of ``window_ns``."""
        return self.detector.to_detector_params(window_ns)

    def fibre(self, length_km: float) -> FibreChannel:
        """Standard fibre at this platform's wavelength (refused if the
        attenuation table does not cover it, e.g. NV's 637 nm unconverted)."""
        return FibreChannel(length_km=length_km, wavelength_nm=self.wavelength_nm)

    def fibre_params(self) -> FibreParams:
        return self.fibre(1.0).to_fibre_params()


NV_DELFT_2021 = PlatformPreset(
    name="nv-delft-2021",
    description="NV centre in diamond, Delft network nodes, single-click heralding at 637 nm",
    scheme="single-click",
    memory=NV_ELECTRON,
    emitter=EmitterSource(),  # the defaults are the NV figures, cited there
    detector=SNSPD,
    wavelength_nm=637.0,
    references=(
        "Humphreys et al., Nature 558, 268 (2018): single-click entanglement of NV nodes",
        "Pompili et al., Science 372, 259 (2021): three-node NV network",
    ),
)
"""NV centres (Delft). Memory: :data:`qnetstack.physical.components.memories.NV_ELECTRON`; photon:
:class:`qnetstack.physical.components.sources.EmitterSource` defaults (3 % ZPL, 0.1 collection,
indistinguishability 0.9). Photons stay at 637 nm, which standard telecom
fibre models do not cover: :meth:`fibre` refuses it. Use a converter (Dréau
et al., Phys. Rev. Applied 9, 064031 (2018): 637 nm to 1588 nm) or give the
fibre's attenuation explicitly. The detector is the SNSPD preset; the Delft
papers report detection efficiency only as part of the end-to-end figure.
"""

RB_MUNICH_2022 = PlatformPreset(
    name="rb-munich-2022",
    description="single 87Rb atom, photons converted from 780 nm to the telecom S band, Barrett-Kok-type two-photon heralding",
    scheme="barrett-kok",
    memory=RB_ATOM,
    emitter=EmitterSource(
        zero_phonon_line_fraction=1.0,  # an atom has no phonon sideband
        collection_efficiency=0.1,  # order of magnitude, assumed
        indistinguishability=0.9,  # assumed, as for NV (no figure checked for the Munich photons)
        excitation_probability=0.99,
        wavelength_nm=780.0,
    ),
    conversion=FrequencyConversion(input_wavelength_nm=780.0, output_wavelength_nm=1522.0, efficiency=0.57),
    detector=SNSPD,
    wavelength_nm=1522.0,
    references=(
        "van Leent et al., Nature 607, 69 (2022): two Rb atoms entangled over 33 km of fibre",
        "van Leent et al., PRL 124, 010510 (2020): polarisation-preserving conversion 780 -> 1522 nm, 57 % external efficiency",
    ),
)
"""Rb atoms (Munich). Memory :data:`qnetstack.physical.components.memories.RB_ATOM`; conversion
efficiency 0.57 from van Leent et al. 2020. Photons interfere at a station
in a two-photon (double-click) measurement, hence Barrett–Kok."""

TRAPPED_ION_2023 = PlatformPreset(
    name="trapped-ion-2023",
    description="trapped ion with a cavity or free-space collection; a second ion for storage",
    scheme="barrett-kok",
    memory=TRAPPED_ION,
    emitter=EmitterSource(
        zero_phonon_line_fraction=1.0,  # atomic transition: no phonon sideband
        collection_efficiency=0.1,  # Stephenson et al. 2020, order of magnitude (see EmitterSource)
        indistinguishability=0.95,  # Stephenson et al. 2020 (see EmitterSource)
        excitation_probability=0.99,
        wavelength_nm=422.0,  # Sr+ 422 nm line of Stephenson et al. 2020
    ),
    detector=SNSPD,
    wavelength_nm=1550.0,
    conversion=FrequencyConversion(input_wavelength_nm=422.0, output_wavelength_nm=1550.0, efficiency=0.25),
    references=(
        "Stephenson et al., PRL 124, 110501 (2020): ion-ion entanglement at 182 /s",
        "Krutyanskiy et al., PRL 130, 050803 (2023): telecom-wavelength ion network over 230 m",
        "Drmota et al., PRL 130, 090803 (2023): memory qubit in a networked ion node",
    ),
)
"""Trapped ions. The conversion efficiency 0.25 is an assumed order of magnitude
for a two-stage conversion of a blue photon; the 2020 experiment itself ran at
422 nm over a few metres."""

SIV_HARVARD_2020 = PlatformPreset(
    name="siv-harvard-2020",
    description="silicon-vacancy centre in a diamond nanocavity at ~100 mK",
    scheme="single-click",
    memory=SIV,
    emitter=EmitterSource(
        zero_phonon_line_fraction=0.7,  # ~70 % of SiV emission is in the ZPL (Sukachev et al. 2017)
        collection_efficiency=0.5,  # assumed: tapered-fibre collection from a nanocavity is far better than bulk optics
        indistinguishability=0.9,  # assumed
        excitation_probability=0.99,
        wavelength_nm=737.0,
    ),
    detector=SNSPD,
    wavelength_nm=737.0,
    references=(
        "Bhaskar et al., Nature 580, 60 (2020): memory-enhanced quantum communication with an SiV",
        "Sukachev et al., PRL 119, 223602 (2017): SiV spin coherence and readout",
    ),
)
"""SiV centres. Unconverted 737 nm photons: :meth:`fibre` refuses the wavelength,
as for NV. Several emitter figures are assumed; see the inline comments."""

TELECOM_SPDC = PlatformPreset(
    name="telecom-spdc",
    description="telecom SPDC pair source with SNSPDs, for midpoint-source links",
    scheme="midpoint-source",
    memory=AFC_ENSEMBLE,
    spdc=SpdcSource(mean_pair_number=0.01, statistics="thermal", heralding_efficiency=0.8, wavelength_nm=1550.0),
    detector=SNSPD,
    wavelength_nm=1550.0,
    references=(
        "Takesue & Shimizu, Opt. Commun. 283, 276 (2010): multi-pair statistics and visibility",
        "Weston et al., Opt. Express 24, 10869 (2016): heralding efficiency ~0.8 (see SpdcSource)",
    ),
)
"""A telecom pair source. μ = 0.01 keeps the multi-pair visibility above 0.98
(:meth:`qnetstack.physical.components.sources.SpdcSource.visibility`); the memory is the AFC preset
because a pair source needs an absorptive memory at the nodes."""

AFC_ENSEMBLE_2021 = TELECOM_SPDC.replace(
    name="afc-ensemble-2021",
    description="rare-earth ensemble memory (atomic frequency comb) loaded from a telecom SPDC source",
    references=(
        "Afzelius et al., PRA 79, 052329 (2009): the AFC protocol",
        "Lago-Rivera et al., Nature 594, 37 (2021): telecom-heralded entanglement between two AFC memories",
    ),
)
"""Ensemble memories (AFC). The hardware of :data:`TELECOM_SPDC` (memory
:data:`qnetstack.physical.components.memories.AFC_ENSEMBLE`, the same pair
source), with the experiments it follows."""

PRESETS: dict[str, PlatformPreset] = {
    p.name: p for p in (NV_DELFT_2021, RB_MUNICH_2022, TRAPPED_ION_2023, SIV_HARVARD_2020, AFC_ENSEMBLE_2021, TELECOM_SPDC)
}

PresetName = Literal["nv-delft-2021", "rb-munich-2022", "trapped-ion-2023", "siv-harvard-2020", "afc-ensemble-2021", "telecom-spdc"]
_lookup_preset = preset_lookup(PRESETS, "platform preset name")


def preset(name: str) -> PlatformPreset:
    """The preset called ``name``; a pydantic ``ValidationError`` listing the
    known names otherwise."""
    return _lookup_preset(name)


# Keep the Literal and the table in step (a new preset needs both).
assert set(PresetName.__args__) == set(PRESETS), "PresetName and PRESETS disagree"  # type: ignore[attr-defined]
