"""Scenario files: a whole experiment as one validated pydantic model.

A scenario names the nodes and their hardware, the links and their physics,
which implementation runs each layer, what the applications are asked to do,
when to stop, and the seed. YAML (or JSON) files map one-to-one onto
:class:`Scenario`; anything a file can say, Python code can say by building
the same models.

Errors in a scenario raise :class:`ScenarioError` naming the field
(``links.0.length_km``) and the problem in one line, quoting what the file
says at most :data:`~qnetstack.stack.messages.ECHO_CHARS` characters long.

Values are taken as written (pydantic's strict mode): a number is a YAML
number, never text (``"3"``) or a boolean (``true`` is not 1); an integer
field takes integers only (``1000000``, not ``1.0e6``). Beyond each field's
own range, every float must be finite (no ``.inf`` or ``.nan``: no length,
attenuation, angle or time of a scenario is infinite) and every integer fit a
signed 64-bit integer (:data:`MAX_INT`; the simulated clock counts
nanoseconds, and 2**63 ns is about 292 years). A request asks for at most
:data:`MAX_REQUEST_NUMBER` items. A file is UTF-8 text of at most
:data:`MAX_FILE_BYTES`, names each mapping key once, nests at most
:data:`MAX_DEPTH` levels and holds at most :data:`MAX_VALUES` values
(aliases counted each time they are used).

A scenario is data: reading one never runs code. Its ``implementations``
name registered implementations (:mod:`qnetstack.stack.registry`); a
``module:Class`` import path in a file or in data given to
:func:`parse_scenario` is refused unless the caller passes
``allow_import=True`` (on the command line, ``--allow-import``). Scenarios
built in Python (``Scenario(...)``, or classes given to ``assemble``) are
code already and take anything.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_serializer,
    model_serializer,
    model_validator,
)

from qnetstack.application.service import AppRequest
from qnetstack.network.policy import POLICIES, PolicyError, make_policy
from qnetstack.network.routing import DEFAULT_METRIC, Metric
from qnetstack.physical.backends.pulses import PulseLink
from qnetstack.physical.components.channels import (
    FibreChannel,
    FreeSpaceChannel,
    FreeSpaceOptics,
    FrequencyConversion,
    RamanNoise,
    SatellitePass,
    SatellitePassArm,
    attenuation_db_per_km,
    equivalent_fibre,
    noise_click_probability,
)
from qnetstack.physical.components.detectors import Detector
from qnetstack.physical.components.presets import PRESETS, PresetName
from qnetstack.physical.components.sources import WeakCoherentSource
from qnetstack.physical.params import (
    SPEED_OF_LIGHT_KM_PER_S,
    Adversary,
    DetectorParams,
    FibreParams,
    HardwareParams,
    NodeHardware,
    SingleClickLinkParams,
    StationOptionError,
)
from qnetstack.physical.schemes.registry import HERALDING_SCHEMES, scheme_named
from qnetstack.physical.service import HeraldingScheme, Probability
from qnetstack.stack.messages import cut, listing, shown, tail
from qnetstack.stack.registry import is_import_path

__all__ = [
    "NodeSpec",
    "LinkSpec",
    "LinkChannel",
    "FibreLinkChannel",
    "FreeSpaceLinkChannel",
    "SatellitePassLinkChannel",
    "Implementations",
    "RoutingSpec",
    "NetworkSpec",
    "LinkLayerSpec",
    "AppSpec",
    "StopSpec",
    "LinkCutSpec",
    "NodeCrashSpec",
    "ClassicalFaultSpec",
    "FaultsSpec",
    "TamperSpec",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INT",
    "MAX_REQUEST_NUMBER",
    "MAX_VALUES",
]

# Every integer of a scenario fits a signed 64-bit integer: times are counted
# in nanoseconds (2**63 ns is about 292 years), and no count in a run comes near.
MAX_INT = 2**63 - 1
# Items (pairs, teleported states) one request may ask for. Each item costs the
# kernel several events (tens of microseconds of CPU at least) and the report
# one result, so 10**9 items are already hours of CPU and tens of gigabytes of
# results: a larger number is a typo, and without a bound it grows memory
# until the machine gives out.
MAX_REQUEST_NUMBER = 10**9
# What a scenario file may be: a description of an experiment, not a data set.
MAX_FILE_BYTES = 4 * 2**20
MAX_DEPTH = 32  # the deepest field of the schema is 6 levels down; a file nesting deeper is malformed
MAX_VALUES = 100_000  # keeps a YAML alias bomb (each alias counted each time it is used) from running on


class ScenarioError(ValueError):
    """A scenario that cannot be run: ``field`` says where, ``problem`` says what."""

    def __init__(self, field: str, problem: str, source: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{tail(source)}: " if source else ""
        super().__init__(f"{where}{field}: {problem}" if field else f"{where}{problem}")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeSpec(_Spec):
    """A node: its name, its hardware and the wavelength its photons leave it at.

    ``preset`` names a platform of :data:`qnetstack.physical.components.presets.PRESETS`
    (``qnetstack presets`` lists them); the file may write it inside the hardware,
    ``hardware: {preset: nv-delft-2021}``, or beside it, ``preset: nv-delft-2021``.
    The node's hardware is then the preset's
    (:meth:`~qnetstack.physical.components.presets.PlatformPreset.node_hardware`:
    its memory, and its photon efficiency, which includes the preset's own
    frequency converter if it has one) with every field the file gives in
    ``hardware`` put over it, field by field: ``hardware: {preset: nv-delft-2021,
    memory: {t2_ns: 500000000}}`` changes the memory's T2 and nothing else.

    ``emission_wavelength_nm``: the wavelength the node's photons enter the
    fibre at. Left out, the preset's (``PlatformPreset.wavelength_nm``, after the
    preset's own converter: 637 nm for NV, 1522 nm for the Munich Rb atoms), or
    unknown for a node without a preset. The links of the node use it (see
    :class:`LinkSpec`).

    A scenario written back (``model_dump``) keeps the preset and only the
    hardware fields that differ from it, so the written form reads back to the
    same node and a sweep may change the preset or one field of it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=lambda schema: _hardware_may_name_a_preset(schema))

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    preset: PresetName | None = None
    hardware: NodeHardware = NodeHardware()
    emission_wavelength_nm: float | None = Field(None, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _hardware_from_preset(cls, data: Any) -> Any:
        # the preset's hardware with the given fields put over it; an unknown name is left to the
        # `preset` field's own validation (which lists the names)
        if not isinstance(data, dict):
            return data
        hardware = data.get("hardware", {})
        if isinstance(hardware, dict) and "preset" in hardware:
            hardware = {key: value for key, value in hardware.items() if key != "preset"}
            data = {**data, "preset": data.get("hardware", {})["preset"], "hardware": hardware}
        name = data.get("preset")
        if not isinstance(name, str) or name not in PRESETS:
            return data
        if isinstance(hardware, NodeHardware):
            hardware = hardware.model_dump(exclude_unset=True)
        if not isinstance(hardware, dict):
            return data  # validation reports it
        return {**data, "hardware": _put_over(PRESETS[name].node_hardware().model_dump(), hardware)}

    @field_serializer("hardware", mode="wrap")
    def _hardware_as_changed(self, value: NodeHardware, handler: Any, info: Any) -> Any:
        data = handler(value)
        if self.preset is None or not isinstance(data, dict):
            return data
        return _changes(data, PRESETS[self.preset].node_hardware().model_dump(mode=info.mode))

    @property
    def wavelength_nm(self) -> float | None:
        """The wavelength the node's photons enter the fibre at: ``emission_wavelength_nm``, else the preset's, else None."""
        if self.emission_wavelength_nm is not None:
            return self.emission_wavelength_nm
        return None if self.preset is None else PRESETS[self.preset].wavelength_nm


def _hardware_may_name_a_preset(schema: dict[str, Any]) -> None:
    """In the JSON Schema, ``hardware`` is either the full hardware or a mapping naming a ``preset``
    (whose overrides the reader checks against the hardware fields; an editor checks the name only)."""
    hardware = schema["properties"]["hardware"]
    names = next(option for option in schema["properties"]["preset"]["anyOf"] if "enum" in option)
    by_name = {"type": "object", "properties": {"preset": names}, "required": ["preset"]}
    plain = {key: value for key, value in hardware.items() if key != "default"}
    schema["properties"]["hardware"] = {"anyOf": [plain, by_name], "default": hardware.get("default")}


def _put_over(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` put over it, mapping by mapping (a value that is not a mapping replaces)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _put_over(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _changes(data: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that differ from ``base`` (the inverse of :func:`_put_over`)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            if changed := _changes(value, base[key]):
                out[key] = changed
        elif key not in base or base[key] != value:
            out[key] = value
    return out


# ------------------------------------------------------------------ link channels by kind
#
# What carries a link's photons between its nodes and its midpoint station:
# LinkSpec.channel, told apart by ``kind``. Every heralding scheme reads the
# link's loss and delay from its ``fibre`` over half the link; a free-space or
# satellite link fills ``fibre`` with the equivalent figures of one arm
# (``qnetstack.physical.components.channels.equivalent_fibre``), so the schemes
# run unchanged. specs/physical.md §10 (channels in a scenario).


class FibreLinkChannel(_Spec):
    """Fibre, the default: loss and delay come from the link's ``fibre``."""

    kind: Literal["fibre"] = "fibre"


class FreeSpaceLinkChannel(FreeSpaceOptics):
    """A terrestrial free-space link, station at the midpoint: each node's
    telescope (``transmitter_aperture_m``) sends over ``length_km/2`` of air to
    the station's (``receiver_aperture_m``; for the midpoint-source scheme the
    light runs the other way, the station transmitting, and the same formula
    holds with the apertures so named). The optics and their defaults are those of
    ``FreeSpaceOptics`` (Gaussian beam, Siegman 1986; pointing jitter,
    Toyoshima et al. 2002); ``atmospheric_db_per_km`` is the extinction along
    the path (default 0: vacuum, set it from the local visibility)."""

    kind: Literal["free-space"]
    atmospheric_db_per_km: float = Field(0.0, ge=0.0)

    def arm(self, length_km: float) -> FreeSpaceChannel:
        """One arm, node to station."""
        optics = self.model_dump(exclude={"kind"})
        return FreeSpaceChannel(distance_km=length_km / 2, **optics)

    def arm_fibre(self, length_km: float) -> FibreParams:
        arm = self.arm(length_km)
        return equivalent_fibre(arm.transmittance(), length_km / 2, arm.delay_ns())


class SatellitePassLinkChannel(FreeSpaceOptics):
    """Both nodes are ground stations fed by one satellite during one pass: an
    entangled-pair source on the satellite sends one photon down to each (the
    midpoint-source scheme, the satellite in the station's place; the double
    downlink of Yin et al., Science 356, 1140 (2017)). The transmitter is the
    satellite's telescope, the receiver each station's. The stations stand on
    either side of the ground track, ``length_km/2`` from it, so both see the
    same loss curve (``SatellitePass`` with ``cross_track_km = length_km/2``).

    ``altitude_km``, ``min_elevation_deg`` (tracking limit) and
    ``zenith_transmittance`` (of the atmosphere) as in ``SatellitePass``.
    ``zenith_at_s``: the simulated time of closest approach; left out, the
    pass starts (the satellite rises above ``min_elevation_deg``) at time 0.
    ``step_s``: the longest span over which the success probability is held
    constant (default 1 s; docs/physical.md bounds the error it makes)."""

    kind: Literal["satellite-pass"]
    altitude_km: float = Field(gt=0.0, le=100_000.0)
    min_elevation_deg: float = Field(gt=0.0, le=90.0)
    zenith_transmittance: Probability = 1.0
    zenith_at_s: float | None = Field(None, ge=0.0, le=1e9)
    step_s: float = Field(1.0, ge=1e-6, le=3600.0)

    def satellite_pass(self, length_km: float) -> SatellitePass:
        """The pass as each of the two stations sees it."""
        optics = self.model_dump(include=set(FreeSpaceOptics.model_fields))
        return SatellitePass(
            **optics,
            altitude_km=self.altitude_km,
            min_elevation_deg=self.min_elevation_deg,
            zenith_transmittance=self.zenith_transmittance,
            cross_track_km=length_km / 2,
        )

    def arm_fibre(self, length_km: float) -> SatellitePassArm:
        satellite_pass = self.satellite_pass(length_km)
        zenith_s = satellite_pass.half_duration_s() if self.zenith_at_s is None else self.zenith_at_s
        return SatellitePassArm.build(satellite_pass, length_km / 2, round(zenith_s * 1e9), max(1, round(self.step_s * 1e9)))


LinkChannel = Annotated[FibreLinkChannel | FreeSpaceLinkChannel | SatellitePassLinkChannel, Field(discriminator="kind")]


def _arm_fibre(link: LinkSpec) -> FibreParams:
    """The ``fibre`` a free-space or satellite link runs with, or a one-line problem naming the field."""
    channel = link.channel
    assert not isinstance(channel, FibreLinkChannel)
    if isinstance(channel, SatellitePassLinkChannel):
        if link.scheme != "midpoint-source":
            raise _LinkProblem(
                "scheme",
                f"a satellite-pass link feeds both nodes from a pair source on the satellite: only the midpoint-source scheme "
                f"works that way (got {link.scheme}); use channel kind free-space for a station between the nodes",
            )
        try:
            channel.satellite_pass(link.length_km)
        except ValidationError as exc:
            raise _LinkProblem(
                "length_km", f"the stations stand length_km/2 either side of the ground track: {cut(exc.errors()[0]['msg'], 200)}"
            ) from None
    try:
        return channel.arm_fibre(link.length_km)
    except ValueError as exc:
        if "transmittance must be in (0, 1]" in str(exc) or "transmits nothing" in str(exc):
            raise _LinkProblem(
                "channel", "the channel transmits nothing (an efficiency or transmittance of 0): no attempt could herald"
            ) from None
        raise _LinkProblem("channel", cut(str(exc), 200)) from None


# Fields of every scheme's parameter model that LinkSpec sets itself.
_LINK_FIELDS = ("length_km", "fibre", "detector", "bright_state_population")
# LinkSpec.two_photon_visibility under each scheme's own name.
_VISIBILITY_FIELD = {
    "single-click": "two_photon_visibility",
    "barrett-kok": "two_photon_visibility",
    "midpoint-source": "photon_indistinguishability",
}


class LinkSpec(_Spec):
    """A heralded link between nodes ``a`` and ``b`` (station at the midpoint).

    ``scheme`` is the heralding scheme; its parameter model (e.g.
    ``qnetstack.physical.params.SingleClickLinkParams``) gets ``length_km``, ``fibre``,
    ``detector``, the single-click ``bright_state_population`` (left out: the
    parameter model's default, 0.1; other schemes have none) and the scheme's own fields from ``scheme_params``
    (e.g. ``two_photon_visibility`` for ``barrett-kok``).

    **Wavelength, frequency conversion and Raman noise** (specs/physical.md §9).
    Photons leave the two nodes at their ``NodeSpec.wavelength_nm`` (the node's
    ``emission_wavelength_nm``, else its preset's); ends that state one must
    agree, photons of different colours do not interfere at the station.
    ``conversion`` (a :class:`~qnetstack.physical.components.channels.FrequencyConversion`)
    puts a converter at each node's output, from ``input_wavelength_nm`` (the
    nodes' wavelength, when they state one) to ``output_wavelength_nm``, the
    wavelength in the fibre; without it the fibre carries the nodes'
    wavelength. The rules, applied when the scenario is validated:

    * ``fibre.db_per_km`` left out and the wavelength in the fibre known: the
      attenuation of standard fibre at that wavelength
      (:data:`~qnetstack.physical.components.channels.ATTENUATION_BANDS`); a
      wavelength the table does not cover (NV's 637 nm unconverted) is refused,
      naming ``fibre.db_per_km``: add a ``conversion`` to a telecom wavelength or
      give ``fibre.db_per_km``. Given, ``fibre.db_per_km`` is taken as it is.
      With no wavelength known the fibre is :class:`FibreParams` as before.
    * ``detector`` left out and both ends named by a preset whose detectors are
      the same: that detector
      (:meth:`~qnetstack.physical.components.detectors.Detector.to_detector_params`
      over ``detection_window_ns``); presets with different detectors need the
      link's own ``detector``. Otherwise :class:`DetectorParams` as before.
    * Each converter passes a photon with probability η_c = ``conversion.efficiency``
      and adds ``noise_rate_hz`` noise photons after its filter. Loss equal on
      both arms of the station commutes with its beam splitter, so the scheme
      gets it as detector efficiency η_d·η_c (the argument the schemes use for
      η_d itself; Kok et al., Rev. Mod. Phys. 79, 135 (2007), §II).
    * ``raman``: classical light launched at each node into its half of the
      fibre with the photons (co-propagating), scattering Raman photons into the
      quantum band (:class:`~qnetstack.physical.components.channels.RamanNoise`,
      Eraerds et al., NJP 12, 063027 (2010)); it needs the wavelength in the
      fibre to be known.
    * Noise photons per window at each arm's end, ``n̄ = n_conv T(L/2) + n_Raman(L/2)``
      (converter noise crosses the half fibre; Raman noise over L/2,
      :meth:`~qnetstack.physical.components.channels.FibreChannel.noise_photons_per_window`),
      reach each of the station's detectors at the same mean (the beam splitter
      sends each photon of either arm to either detector with probability 1/2).
      The scheme gets them as dark counts:
      ``p_dc' = 1 - (1 - p_dc) exp(-η_d n̄)``
      (:func:`~qnetstack.physical.components.channels.noise_click_probability`).
    * ``detection_window_ns``: the window over which rates become probabilities
      (converter and Raman noise, a preset detector's dark counts). 10 ns is the
      window :meth:`~qnetstack.physical.components.presets.PlatformPreset.detector_params`
      assumes, an order of magnitude rather than a published figure: set the
      experiment's.
    * The ``midpoint-source`` scheme's photons come from the station's pair
      source, not from the nodes: the nodes' wavelengths do not apply to it and
      it takes no ``conversion`` or ``raman``.

    ``channel`` says what carries the photons, by ``kind``: ``fibre`` (the default:
    ``fibre`` as given), ``free-space`` or ``satellite-pass`` (``FreeSpaceLinkChannel``,
    ``SatellitePassLinkChannel``). For the last two ``fibre`` is left out and
    becomes the equivalent fibre of one arm, derived from the channel; the
    light's wavelength (above) must be the channel's, a ``conversion`` reaches
    the detector as on fibre, and ``raman`` is refused (no fibre carries it).
    """

    a: str
    b: str
    length_km: float = Field(gt=0.0)
    fibre: FibreParams = FibreParams()
    detector: DetectorParams = DetectorParams()
    scheme: HeraldingScheme = "single-click"
    bright_state_population: Probability | None = None
    scheme_params: dict[str, Any] = {}
    # ---- station options. The detector's own (kind: threshold | pnr, gate_ns,
    # jitter_fwhm_ps, dead_time_ns, afterpulse_probability) live in `detector`;
    # these two are the optics'. Left out: the scheme's default.
    two_photon_visibility: Probability | None = None
    phase_noise_rad: float | None = Field(None, ge=0.0)

    # ---- the channel by kind (fibre, free-space, satellite-pass)
    channel: LinkChannel = FibreLinkChannel()

    # -- wavelength, frequency conversion, Raman noise (see the docstring)
    conversion: FrequencyConversion | None = None
    raman: RamanNoise | None = None
    detection_window_ns: float = Field(10.0, gt=0.0)
    # set when a scenario resolves the link against its nodes (see _with_light): the wavelength in
    # the fibre, and which fields came from the nodes rather than the file (left out when written back)
    _fibre_wavelength_nm: float | None = PrivateAttr(None)
    _from_ends: frozenset[str] = PrivateAttr(frozenset())

    @model_serializer(mode="wrap")
    def _as_written(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            if "detector" in self._from_ends:
                data.pop("detector", None)
            if "fibre.db_per_km" in self._from_ends and isinstance(data.get("fibre"), dict):
                data["fibre"] = {key: value for key, value in data["fibre"].items() if key != "db_per_km"}
            if not isinstance(self.channel, FibreLinkChannel):
                # a free-space or satellite link's fibre is derived from its channel and length: a dump
                # leaves it out, so a dump with another length (a sweep) validates and derives it anew
                data.pop("fibre", None)
        return data

    @property
    def fibre_wavelength_nm(self) -> float | None:
        """The wavelength in the fibre: the converter's output, else the nodes' (once resolved in a scenario), else None."""
        return self.conversion.output_wavelength_nm if self.conversion is not None else self._fibre_wavelength_nm

    def station_noise_photons(self) -> float:
        """Mean noise photons per detection window reaching each detector of the
        station: converter noise after the half fibre plus the Raman noise of the
        half fibre (see the class docstring)."""
        half_km = self.length_km / 2
        noise = 0.0
        if self.conversion is not None:
            noise = self.conversion.noise_photons_per_window(self.detection_window_ns) * self.fibre.transmittance(half_km)
        if self.raman is not None:
            wavelength = self.fibre_wavelength_nm
            if wavelength is None:
                raise ValueError(
                    "the Raman noise needs the wavelength in the fibre: give the nodes a preset or emission_wavelength_nm, or the link a conversion"
                )
            half = FibreChannel(
                length_km=half_km,
                wavelength_nm=wavelength,
                db_per_km=self.fibre.db_per_km,
                group_index=self.fibre.refractive_index,
                raman=self.raman,
            )
            noise += half.noise_photons_per_window(self.detection_window_ns)
        return noise

    def heralding_detector(self) -> DetectorParams:
        """The detector as the heralding scheme sees it: efficiency η_d·η_c and
        dark-count probability ``1 - (1 - p_dc) exp(-η_d n̄)`` (class docstring);
        the link's ``detector`` itself without conversion and Raman noise."""
        if self.conversion is None and self.raman is None:
            return self.detector
        efficiency = self.detector.efficiency
        converted = efficiency * (1.0 if self.conversion is None else self.conversion.efficiency)
        dark = noise_click_probability(self.detector.dark_count_probability, efficiency, self.station_noise_photons())
        return DetectorParams(efficiency=converted, dark_count_probability=dark)

    @model_validator(mode="before")
    @classmethod
    def _single_click_alpha_default(cls, data: Any) -> Any:
        # single-click links always show their α (the parameter model's default when not given)
        if isinstance(data, dict) and data.get("scheme", "single-click") == "single-click" and data.get("bright_state_population") is None:
            data = {**data, "bright_state_population": SingleClickLinkParams.model_fields["bright_state_population"].default}
        return data

    @model_validator(mode="before")
    @classmethod
    def _channel_by_name(cls, data: Any) -> Any:
        # ``channel: fibre`` is short for ``channel: {kind: fibre}``
        if isinstance(data, dict) and isinstance(data.get("channel"), str):
            data = {**data, "channel": {"kind": data["channel"]}}
        return data

    @model_validator(mode="after")
    def _fibre_from_channel(self) -> LinkSpec:
        if isinstance(self.channel, FibreLinkChannel):
            return self
        arm = _arm_fibre(self)
        given = "fibre" in self.model_fields_set
        if given and (self.fibre.db_per_km, self.fibre.refractive_index) != (arm.db_per_km, arm.refractive_index):
            raise _LinkProblem("fibre", f"a {self.channel.kind} link has no fibre: its loss and delay come from channel; leave fibre out")
        object.__setattr__(self, "fibre", arm)  # the link's own, derived value: set once, while validating
        return self

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"

    @property
    def has_station_options(self) -> bool:
        """Whether the link sets a station option beyond efficiency and dark counts
        (the QuTiP reference backend runs ideal single-click stations only)."""
        detector = self.detector
        return (
            detector.kind != "threshold"
            or detector.windowed_efficiency() != detector.efficiency
            or self.two_photon_visibility not in (None, 1.0)
            or self.phase_noise_rad not in (None, 0.0)
        )

    def _station_fields(self) -> dict[str, Any]:
        """The link's optics options under the scheme's own field names."""
        fields: dict[str, Any] = {}
        if self.two_photon_visibility is not None:
            fields[_VISIBILITY_FIELD[self.scheme]] = self.two_photon_visibility
        if self.phase_noise_rad is not None:
            if self.scheme != "single-click":
                raise StationOptionError(
                    "phase_noise_rad",
                    f"the {self.scheme} scheme does not depend on the interferometer phase (it cancels within an attempt "
                    "or there is none); leave it out",
                )
            fields["phase_noise_rad"] = self.phase_noise_rad
        clash = sorted(set(fields) & set(self.scheme_params))
        if clash:
            raise StationOptionError("scheme_params", f"{', '.join(clash)} is set on the link already; give it once")
        return fields

    def physics(self) -> HardwareParams:
        """The link's parameter model for its scheme (raises ``ValueError`` or
        pydantic's ``ValidationError`` for settings the scheme does not take)."""
        entry = scheme_named(self.scheme)
        if entry is None:
            available = ", ".join(e.name for e in HERALDING_SCHEMES)
            raise ValueError(f"scheme {self.scheme!r} is not available in this build (available: {available})")
        fields: dict[str, Any] = {"length_km": self.length_km, "fibre": self.fibre, "detector": self.heralding_detector()}
        if self.bright_state_population is not None:
            if entry.alpha_field is None:
                raise ValueError(f"the {self.scheme} scheme has no bright-state population; leave it out")
            fields["bright_state_population"] = self.bright_state_population
        clash = sorted(set(self.scheme_params) & set(_LINK_FIELDS))
        if clash:
            raise ValueError(f"set {', '.join(clash)} on the link itself, not in scheme_params")
        if self.scheme == "midpoint-source" and (self.conversion is not None or self.raman is not None):
            raise ValueError("the midpoint-source scheme's photons come from the station's source: it takes no conversion or raman")
        fields.update(self.scheme_params)
        fields.update(self._station_fields())
        return entry.params_type.model_validate(fields, strict=True)


class PulseLinkSpec(_Spec):
    """A prepare-and-measure link: ``sender``'s weak coherent source, a fibre, ``receiver``'s BB84 receiver.

    For decoy-BB84 requests (``QkdRequest`` with ``protocol: bb84-decoy``)
    from ``sender`` to ``receiver``; heralded links (``links``) are not used
    by them. The fibre loses ``db_per_km`` (0.2 dB/km: standard single-mode
    fibre at 1550 nm, ITU-T G.652); the receiver has two threshold detectors
    described by ``detector`` (efficiency, dark counts over a gate of
    ``gate_ns``, dead time, after-pulsing) and sends a photon to the wrong one
    with probability ``misalignment`` (e_d of Ma, Qi, Zhao & Lo 2005). The
    source emits ``repetition_rate_hz`` pulses a second.

    ``adversary`` puts an eavesdropper on the line, told apart by ``kind``:
    ``intercept_resend`` (Bennett & Brassard 1984), ``photon_number_splitting``
    (Brassard, Lütkenhaus, Mor & Sanders 2000) or ``beam_splitting`` (Bennett,
    Bessette, Brassard, Salvail & Smolin 1992), the physical layer's models
    (specs/physical.md §8.4). Left out, the line is honest.
    """

    sender: str
    receiver: str
    length_km: float = Field(ge=0.0)
    db_per_km: float = Field(0.2, ge=0.0)
    detector: Detector = Detector(efficiency=0.1)
    gate_ns: float = Field(1.0, gt=0.0)
    misalignment: Probability = 0.01
    repetition_rate_hz: float = Field(1e8, gt=0.0)
    adversary: Adversary | None = None

    @property
    def name(self) -> str:
        return f"{self.sender}>{self.receiver}"

    def pulse_link(self) -> PulseLink:
        """The physical layer's description of this link, as the sender sees it."""
        return PulseLink(
            neighbour=self.receiver,
            fibre=FibreChannel(length_km=self.length_km, db_per_km=self.db_per_km),
            detector=self.detector,
            source=WeakCoherentSource(repetition_rate_hz=self.repetition_rate_hz),
            gate_ns=self.gate_ns,
            misalignment=self.misalignment,
        )


class Implementations(_Spec):
    """Which implementation runs each layer: a registered name or ``module:Class``."""

    # None: "qutip-single-click" when every link is single-click, else "model-heralding"
    physical: str | None = None
    link: str = "single-click-egp"
    network: str = "swap-asap"
    application: str = "basic-apps"


class RoutingSpec(_Spec):
    """How the network layer picks a circuit's route: ``metric`` is one of
    ``qnetstack.network.routing.METRICS`` (fibre length, hop count, latency,
    expected end-to-end fidelity, bottleneck rate; specs/network.md §1.1).
    Left at ``length_km``, the network implementation is built as ``Impl(ctx,
    topology)``; otherwise as ``Impl(ctx, topology, metric=...)``."""

    metric: Metric = DEFAULT_METRIC


class LinkLayerSpec(_Spec):
    """How the link layer runs: ``reliable: true`` has it number, acknowledge and send again
    its peer messages until they arrive (``qnetstack.entity.reliable``) and put every instant
    the two ends agree on by message as far off as that may take, which a classical network
    that loses the link layer's messages (``faults.classical``) needs; passed as
    ``Impl(ctx, reliable=True)`` only when set. Off by default: it adds an acknowledgement
    and a timer to every message and starts every request later."""

    reliable: bool = False


class NetworkSpec(_Spec):
    """How the network layer runs its circuits: ``policy`` names a registered policy
    (``qnetstack.network.policy.POLICIES``: ``swap-asap``, and any a user registers with
    ``register_policy``) and ``policy_options`` its keyword arguments, e.g.
    ``{cutoff_ns: 5000}`` for swap-asap with a cutoff (``qnetstack.network.cutoff``).
    Left out, the network implementation is built as ``Impl(ctx, topology)`` and runs its
    own policy; otherwise as ``Impl(ctx, topology, policy=..., policy_options=...)``.

    ``reliable: true`` has the network layer number, acknowledge and send again its peer
    messages until they arrive (``qnetstack.network.reliable``), which a classical network
    that loses messages (``faults.classical``) needs; passed as ``Impl(..., reliable=True)``
    only when set. Off by default: it adds an acknowledgement and a timer to every message."""

    policy: str | None = None
    policy_options: dict[str, Any] = {}
    reliable: bool = False

    @model_validator(mode="after")
    def _policy_known(self) -> NetworkSpec:
        if self.policy is None:
            if self.policy_options:
                raise _FieldProblem("network.policy", "policy_options are given but no policy to take them; name one")
            return self
        try:
            make_policy(self.policy, self.policy_options)
        except PolicyError as exc:
            field = "network.policy_options" if self.policy in POLICIES else "network.policy"
            raise _FieldProblem(field, cut(str(exc), 300)) from None
        return self


class AppSpec(_Spec):
    """A request handed to the application of ``node`` at ``at_ns``.

    ``request.request_id`` names the request in every response to it. Within
    a scenario the ids of one node's requests must all differ (the scenario
    cannot know when a request will have closed, so it does not reuse ids).
    Left out, a request gets the smallest id that no other request of its node
    has, in the order of ``applications``: a scenario that gives no ids numbers
    each node's requests 0, 1, 2, ...
    """

    node: str
    at_ns: int = Field(0, ge=0, le=MAX_INT)
    request: AppRequest


class StopSpec(_Spec):
    """When to stop: when nothing is left to do, or at ``max_time_ns``, or after
    ``max_events`` events, whichever comes first.

    A run also stops, as stalled, when no application request has progressed
    for ``stall_after_ns`` of simulated time or ``stall_after_events`` events
    (left out: spans derived from the links' expected time per pair, see
    ``qnetstack.stack.runner``), and when ``wall_limit_s`` seconds of wall-clock
    time have passed (left out: no limit)."""

    max_time_ns: int | None = Field(None, gt=0, le=MAX_INT)
    max_events: int | None = Field(10_000_000, gt=0, le=MAX_INT)
    stall_after_ns: int | None = Field(None, gt=0, le=MAX_INT)
    stall_after_events: int | None = Field(None, gt=0, le=MAX_INT)
    wall_limit_s: float | None = Field(None, gt=0, allow_inf_nan=False)


class LinkCutSpec(_Spec):
    """The fibre of link ``link`` (its two nodes, in either order) is cut at ``at_ns``
    and, with ``repair_ns``, repaired then (an absolute time, after ``at_ns``). While
    it is cut no attempt on it heralds: the physical layer reports it down and the
    link's requests end with ``LinkError`` DOWN (specs/link.md §3). Classical
    messages are not cut (the classical network is taken to be separate)."""

    link: list[str] = Field(min_length=2, max_length=2)
    at_ns: int = Field(ge=0, le=MAX_INT)
    repair_ns: int | None = Field(None, gt=0, le=MAX_INT)


class NodeCrashSpec(_Spec):
    """Node ``node`` crashes at ``at_ns`` and, with ``restart_ns``, restarts then (an
    absolute time, after ``at_ns``). A crash loses every entity's state and the
    memory (its qubits are freed at the physical layer), cuts the node's links
    while it is down, drops every message to it and ends its own open requests
    with ``AppError`` ABORTED; a restart brings up fresh entities."""

    node: str
    at_ns: int = Field(ge=0, le=MAX_INT)
    restart_ns: int | None = Field(None, gt=0, le=MAX_INT)


class ClassicalFaultSpec(_Spec):
    """Classical messages of the layers in ``layers`` (link, network and application,
    the default) lost or delayed: each message is lost with ``loss_probability``, else
    delayed by ``extra_delay_ns`` with ``delay_probability``. With ``link`` (two nodes
    joined by a link) only the messages between those two nodes, else every message
    not covered by a per-link entry. Draws come from the run's own stream for faults
    (same seed, same run). The physical layer's heralding signals are never touched:
    they belong to the heralding scheme's own channel."""

    link: list[str] | None = Field(None, min_length=2, max_length=2)
    layers: list[Literal["link", "network", "application"]] = Field(["link", "network", "application"], min_length=1)
    loss_probability: Probability = 0.0
    delay_probability: Probability = 0.0
    extra_delay_ns: int = Field(0, ge=0, le=MAX_INT)


class TamperSpec(_Spec):
    """A man in the middle on the classical channel between the two nodes of ``link``: each
    application message between them that can be altered is altered with ``probability``
    (what it changes is the application's: its messages say which of their fields an
    adversary can rewrite on the wire). Draws come from the run's own stream for faults."""

    link: list[str] = Field(min_length=2, max_length=2)
    probability: Probability = 1.0


class FaultsSpec(_Spec):
    """What goes wrong during the run (none by default: a scenario without faults runs
    exactly as before)."""

    link_cuts: list[LinkCutSpec] = []
    node_crashes: list[NodeCrashSpec] = []
    classical: list[ClassicalFaultSpec] = []
    tamper: list[TamperSpec] = []

    @property
    def any(self) -> bool:
        return bool(self.link_cuts or self.node_crashes or self.classical or self.tamper)


class Scenario(_Spec):
    name: str = "scenario"
    description: str = ""
    seed: int = Field(1, ge=0, le=MAX_INT)
    nodes: list[NodeSpec] = Field(min_length=2)
    links: list[LinkSpec] = Field(min_length=1)
    implementations: Implementations = Implementations()
    routing: RoutingSpec = RoutingSpec()
    link: LinkLayerSpec = LinkLayerSpec()
    network: NetworkSpec = NetworkSpec()
    applications: list[AppSpec] = []
    stop: StopSpec = StopSpec()
    faults: FaultsSpec = FaultsSpec()
    keep_trace: bool = False
    pulse_links: list[PulseLinkSpec] = []

    @model_validator(mode="before")
    @classmethod
    def _number_requests(cls, data: Any) -> Any:
        # fills in the request ids left out (AppSpec); malformed entries are left for validation to report
        if not isinstance(data, dict) or not isinstance(data.get("applications"), list):
            return data
        apps = list(data["applications"])
        taken: dict[Any, set[int]] = {}
        missing = []
        for i, entry in enumerate(apps):
            node, request = _node_and_request(entry)
            if not isinstance(node, str) or request is None:
                continue
            given = _given_request_id(request)
            if given is _LEFT_OUT:
                missing.append((i, node, request))
            elif (number := _given_request_number(given)) is not None:
                taken.setdefault(node, set()).add(number)
        for i, node, request in missing:
            used = taken.setdefault(node, set())
            request_id = next(n for n in range(len(used) + 1) if n not in used)
            used.add(request_id)
            if isinstance(request, BaseModel):
                request = request.model_copy(update={"request_id": request_id})
            else:
                request = {**request, "request_id": request_id}
            entry = apps[i]
            apps[i] = entry.model_copy(update={"request": request}) if isinstance(entry, AppSpec) else {**entry, "request": request}
        return {**data, "applications": apps}

    @model_validator(mode="before")
    @classmethod
    def _presets_known(cls, data: Any) -> Any:
        # here rather than in NodeSpec, to name the field where the file wrote the preset
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            return data
        for i, node in enumerate(data["nodes"]):
            if not isinstance(node, dict):
                continue
            hardware = node.get("hardware")
            named = {"preset": node["preset"]} if node.get("preset") is not None else {}
            if isinstance(hardware, dict) and "preset" in hardware:
                named["hardware.preset"] = hardware["preset"]
            for where, name in named.items():
                if not isinstance(name, str) or name not in PRESETS:
                    raise _FieldProblem(f"nodes.{i}.{where}", f"unknown preset {shown(name)} (presets: {listing(PRESETS, 200)})")
            if len(set(named.values())) > 1:
                raise _FieldProblem(f"nodes.{i}.hardware.preset", f"differs from nodes.{i}.preset; name the preset once")
        return data

    @model_validator(mode="after")
    def _references_resolve(self) -> Scenario:
        _check_numbers(self.model_dump(), ())
        names = [n.name for n in self.nodes]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise _FieldProblem(f"nodes.{i}.name", f"duplicate node name {shown(name)}")
            seen.add(name)
        pairs: set[frozenset[str]] = set()
        by_name = {n.name: n for n in self.nodes}
        for i, link in enumerate(self.links):
            for end in ("a", "b"):
                value = getattr(link, end)
                if value not in seen:
                    raise _FieldProblem(f"links.{i}.{end}", f"unknown node {shown(value)} (nodes: {listing(names)})")
            if link.a == link.b:
                raise _FieldProblem(f"links.{i}.b", f"a link needs two different nodes, got {shown(link.a)} twice")
            link = self.links[i] = _with_light(link, i, by_name[link.a], by_name[link.b])
            _check_physics(link, i)
            _check_delay(link, i)
            pair = frozenset((link.a, link.b))
            if pair in pairs:
                raise _FieldProblem(f"links.{i}", f"second link between {shown(link.a)} and {shown(link.b)}")
            pairs.add(pair)
        for i, app in enumerate(self.applications):
            if app.node not in seen:
                raise _FieldProblem(f"applications.{i}.node", f"unknown node {shown(app.node)}")
            remote = app.request.remote_node
            if remote not in seen:
                raise _FieldProblem(f"applications.{i}.request.remote_node", f"unknown node {shown(remote)}")
            if remote == app.node:
                raise _FieldProblem(f"applications.{i}.request.remote_node", "must differ from the app's own node")
            if app.request.kind == "qkd-relay":
                _check_relay_path(app.node, app.request, i, seen, pairs)
            if app.request.number > MAX_REQUEST_NUMBER:
                raise _FieldProblem(
                    f"applications.{i}.request.number",
                    f"at most {MAX_REQUEST_NUMBER:_} items per request (asked for {shown(app.request.number, 30)})",
                )
        _check_faults(self.faults, seen, pairs)
        _check_pulse_links(self, seen)
        first_with: dict[tuple[str, int], int] = {}
        for i, app in enumerate(self.applications):
            key = (app.node, app.request.request_id)
            if key in first_with:
                raise _FieldProblem(
                    f"applications.{i}.request.request_id",
                    f"request_id {key[1]} is already used by applications.{first_with[key]} at node {shown(app.node)}",
                )
            first_with[key] = i
        return self


def _check_pulse_links(scenario: Scenario, nodes: set[str]) -> None:
    """Pulse links name known nodes, once each way; a decoy-BB84 request runs over one from its node."""
    known: set[tuple[str, str]] = set()
    for i, link in enumerate(scenario.pulse_links):
        for end in ("sender", "receiver"):
            value = getattr(link, end)
            if value not in nodes:
                raise _FieldProblem(f"pulse_links.{i}.{end}", f"unknown node {shown(value)} (nodes: {listing(sorted(nodes))})")
        if link.sender == link.receiver:
            raise _FieldProblem(f"pulse_links.{i}.receiver", f"a pulse link needs two different nodes, got {shown(link.sender)} twice")
        if (link.sender, link.receiver) in known:
            raise _FieldProblem(f"pulse_links.{i}", f"second pulse link from {shown(link.sender)} to {shown(link.receiver)}")
        known.add((link.sender, link.receiver))
    for i, app in enumerate(scenario.applications):
        if getattr(app.request, "protocol", None) == "bb84-decoy" and (app.node, app.request.remote_node) not in known:
            links = listing(sorted(f"{a}>{b}" for a, b in known)) if known else "none"
            raise _FieldProblem(
                f"applications.{i}.request.remote_node",
                f"bb84-decoy needs a pulse link from {shown(app.node)} to {shown(app.request.remote_node)} (pulse links: {links})",
            )


def _check_relay_path(head: str, request: Any, index: int, nodes: set[str], links: set[frozenset[str]]) -> None:
    """A trusted-relay request's relays are nodes other than its ends, and its path runs over links."""
    field = f"applications.{index}.request.relays"
    for k, relay in enumerate(request.relays):
        if relay not in nodes:
            raise _FieldProblem(f"{field}.{k}", f"unknown node {shown(relay)}")
        if relay in (head, request.remote_node):
            raise _FieldProblem(f"{field}.{k}", f"{shown(relay)} is an end of the request, not a relay between them")
    path = [head, *request.relays, request.remote_node]
    for a, b in zip(path, path[1:], strict=False):
        if frozenset((a, b)) not in links:
            raise _FieldProblem(field, f"no link joins {shown(a)} and {shown(b)}; the path {' - '.join(path)} must follow links")


def _check_faults(faults: FaultsSpec, nodes: set[str], links: set[frozenset[str]]) -> None:
    """Every fault names a node or link of the scenario, ends after it starts, and the
    spans of one link's cuts (one node's crashes) do not overlap."""

    def known_link(field: str, link: list[str]) -> frozenset[str]:
        for end, name in enumerate(link):
            if name not in nodes:
                raise _FieldProblem(f"{field}.{end}", f"unknown node {shown(name)}")
        pair = frozenset(link)
        if pair not in links:
            raise _FieldProblem(field, f"no link joins {shown(link[0])} and {shown(link[1])}")
        return pair

    spans: dict[Any, list[tuple[int, int, str]]] = {}
    for i, cut_spec in enumerate(faults.link_cuts):
        field = f"faults.link_cuts.{i}"
        pair = known_link(f"{field}.link", cut_spec.link)
        if cut_spec.repair_ns is not None and cut_spec.repair_ns <= cut_spec.at_ns:
            raise _FieldProblem(f"{field}.repair_ns", f"must be after at_ns ({cut_spec.at_ns})")
        spans.setdefault(pair, []).append((cut_spec.at_ns, cut_spec.repair_ns or MAX_INT, field))
    for i, crash in enumerate(faults.node_crashes):
        field = f"faults.node_crashes.{i}"
        if crash.node not in nodes:
            raise _FieldProblem(f"{field}.node", f"unknown node {shown(crash.node)}")
        if crash.restart_ns is not None and crash.restart_ns <= crash.at_ns:
            raise _FieldProblem(f"{field}.restart_ns", f"must be after at_ns ({crash.at_ns})")
        spans.setdefault(crash.node, []).append((crash.at_ns, crash.restart_ns or MAX_INT, field))
    for listed in spans.values():
        listed.sort()
        for (_, end, first), (start, _, second) in zip(listed, listed[1:]):
            if start < end:
                raise _FieldProblem(f"{second}.at_ns", f"falls while {first} is still in effect")
    covered: dict[frozenset[str] | None, int] = {}
    for i, classical in enumerate(faults.classical):
        field = f"faults.classical.{i}"
        key = None if classical.link is None else known_link(f"{field}.link", classical.link)
        if key in covered:
            what = "every message" if key is None else "this link"
            raise _FieldProblem(field, f"faults.classical.{covered[key]} already covers {what}")
        covered[key] = i
    tampered: dict[frozenset[str], int] = {}
    for i, tamper in enumerate(faults.tamper):
        field = f"faults.tamper.{i}"
        pair = known_link(f"{field}.link", tamper.link)
        if pair in tampered:
            raise _FieldProblem(field, f"faults.tamper.{tampered[pair]} already covers this link")
        tampered[pair] = i


def _node_and_request(entry: Any) -> tuple[Any, Any]:
    if isinstance(entry, AppSpec):
        return entry.node, entry.request
    if isinstance(entry, dict) and isinstance(entry.get("request"), (dict, BaseModel)):
        return entry.get("node"), entry["request"]
    return None, None


_REQUEST_ID = TypeAdapter(int)


def _given_request_number(value: Any) -> int | None:
    """The id a given ``request_id`` names, so numbering never hands out an id the
    data already uses; None for a value validation refuses (``"0"``, ``0.0``, ``true``:
    ids are integers, taken strictly like every field of a scenario)."""
    try:
        return _REQUEST_ID.validate_python(value, strict=True)
    except ValidationError:
        return None


_LEFT_OUT = object()


def _given_request_id(request: Any) -> Any:
    """The request id a request states (an explicit null too: validation refuses it),
    or ``_LEFT_OUT``."""
    if isinstance(request, BaseModel):
        # a name in model_fields_set is a field of the model, so whatever model it is has the attribute
        return cast(Any, request).request_id if "request_id" in request.model_fields_set else _LEFT_OUT
    return request.get("request_id", _LEFT_OUT)


def _with_light(link: LinkSpec, index: int, a: NodeSpec, b: NodeSpec) -> LinkSpec:
    """A copy of ``link`` resolved against its two nodes: the wavelength in the fibre, and the
    fibre attenuation and detector it takes from them (the rules of :class:`LinkSpec`); a
    one-line problem naming the field for a link whose light cannot be worked out."""
    field = f"links.{index}"
    given = link.model_fields_set - link._from_ends  # a copy resolved before keeps what the file gave
    emits = {end.name: end.wavelength_nm for end in (a, b) if end.wavelength_nm is not None}
    emitted: float | None = None
    if link.scheme == "midpoint-source":
        for name in ("conversion", "raman"):
            if getattr(link, name) is not None:
                raise _FieldProblem(
                    f"{field}.{name}", "the midpoint-source scheme's photons come from the station's pair source; leave it out"
                )
    elif emits:
        colours = sorted(set(emits.values()))
        if len(colours) > 1:
            said = ", ".join(f"{shown(name, 30)} at {nm:g} nm" for name, nm in emits.items())
            raise _FieldProblem(field, f"the nodes emit at different wavelengths ({said}); photons must match to interfere at the station")
        emitted = colours[0]
    if link.conversion is not None and emitted is not None and not math.isclose(link.conversion.input_wavelength_nm, emitted):
        raise _FieldProblem(
            f"{field}.conversion.input_wavelength_nm",
            f"is {link.conversion.input_wavelength_nm:g} nm but the nodes emit at {emitted:g} nm",
        )
    in_fibre = link.conversion.output_wavelength_nm if link.conversion is not None else emitted
    updates: dict[str, Any] = {}
    from_ends: set[str] = set()
    db_given = "fibre" in given and "db_per_km" in link.fibre.model_fields_set and "fibre.db_per_km" not in link._from_ends
    channel = link.channel
    over_fibre = isinstance(channel, FibreLinkChannel)
    if not isinstance(channel, FibreLinkChannel):
        # a free-space or satellite link: its loss comes from the channel at the channel's wavelength
        if link.raman is not None:
            raise _FieldProblem(
                f"{field}.raman", f"Raman noise comes from classical light in the same fibre; a {link.channel.kind} link has none"
            )
        if in_fibre is not None and not math.isclose(in_fibre, channel.wavelength_nm):
            source = "the converter's output" if link.conversion is not None else "the wavelength the nodes emit at"
            raise _FieldProblem(
                f"{field}.channel.wavelength_nm",
                f"is {channel.wavelength_nm:g} nm but the light on the link is at {in_fibre:g} nm ({source})",
            )
    if in_fibre is not None and not db_given and over_fibre:
        try:
            db_per_km = attenuation_db_per_km(in_fibre)
        except ValueError:
            source = "the converter's output" if link.conversion is not None else "the wavelength the nodes emit at"
            raise _FieldProblem(
                f"{field}.fibre.db_per_km",
                f"standard fibre has no attenuation figure at {in_fibre:g} nm ({source}): add `conversion:` to a telecom "
                "wavelength (e.g. output_wavelength_nm: 1550) or give fibre.db_per_km",
            ) from None
        updates["fibre"] = link.fibre.replace(db_per_km=db_per_km)
        from_ends.add("fibre.db_per_km")
    if "detector" not in given and a.preset is not None and b.preset is not None:
        detector_a, detector_b = PRESETS[a.preset].detector, PRESETS[b.preset].detector
        if detector_a != detector_b:
            raise _FieldProblem(
                f"{field}.detector", f"the presets {a.preset} and {b.preset} use different detectors; give the link's detector"
            )
        updates["detector"] = detector_a.to_detector_params(link.detection_window_ns)
        from_ends.add("detector")
    resolved = link.model_copy(update=updates)
    resolved._fibre_wavelength_nm = in_fibre
    resolved._from_ends = frozenset(from_ends)
    try:
        resolved.station_noise_photons()
    except ValueError as exc:
        raise _FieldProblem(f"{field}.raman", cut(str(exc), 200)) from None
    return resolved


def _check_physics(link: LinkSpec, index: int) -> None:
    """The link's scheme exists and takes the link's settings, else a one-line problem naming the field."""
    try:
        link.physics()
    except StationOptionError as exc:
        raise _FieldProblem(f"links.{index}.{exc.field}", cut(exc.problem, 200)) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        station = (err.get("ctx") or {}).get("error")
        if isinstance(station, StationOptionError):
            raise _FieldProblem(f"links.{index}.{station.field}", cut(station.problem, 200)) from None
        loc = ".".join(str(part) for part in err["loc"])
        field = f"links.{index}.{loc}" if loc in _LINK_FIELDS else f"links.{index}.scheme_params.{loc}"
        raise _FieldProblem(field, f"{cut(err['msg'], 150)}{_got(err)} (scheme {link.scheme})") from None
    except ValueError as exc:
        where = (
            "scheme"
            if scheme_named(link.scheme) is None
            else ("bright_state_population" if "bright-state" in str(exc) else "scheme_params")
        )
        raise _FieldProblem(f"links.{index}.{where}", cut(str(exc), 200)) from None


def _check_delay(link: LinkSpec, index: int) -> None:
    """The one-way fibre delay of the link is a time the simulated clock can hold."""
    delay_ns = link.length_km * link.fibre.refractive_index / SPEED_OF_LIGHT_KM_PER_S * 1e9
    if not delay_ns <= MAX_INT:
        raise _FieldProblem(
            f"links.{index}",
            f"light needs {delay_ns:.3g} ns to cross this link (length_km x fibre.refractive_index / c), "
            "beyond the simulated clock's 2**63-1 ns",
        )


def _check_numbers(value: Any, path: tuple[Any, ...]) -> None:
    """Every float in ``value`` (plain data) is finite and every integer fits :data:`MAX_INT`."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_numbers(item, (*path, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_numbers(item, (*path, i))
    elif (problem := _number_problem(value)) is not None:
        raise _FieldProblem(_dotted(path), problem)


def _number_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        return f"integer out of range: {shown(value, 30)} (at most 2**63-1 in size)"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    return None


def _dotted(path: tuple[Any, ...]) -> str:
    """A location as the user writes it, each part cut short (a key may be a megabyte)."""
    return ".".join(cut(str(part), 40) for part in path)


class _FieldProblem(ValueError):
    """Raised inside validators so the field path survives pydantic's wrapping."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class _LinkProblem(_FieldProblem):
    """A :class:`_FieldProblem` of one link, ``field`` relative to the link (``channel.step_s``)."""


def parse_scenario(data: Any, source: str | None = None, *, allow_import: bool = False) -> Scenario:
    """Validate a scenario given as plain data (e.g. parsed YAML), strictly (see the
    module docstring). A ``module:Class`` in ``implementations`` is refused unless
    ``allow_import``: data must not make the caller import modules it did not ask for."""
    _check_plain(data, source)
    try:
        scenario = Scenario.model_validate(data, strict=True)
    except ValidationError as exc:
        raise _one_line(exc, source) from None
    if not allow_import:
        for layer in Implementations.model_fields:
            name = getattr(scenario.implementations, layer)
            if isinstance(name, str) and is_import_path(name):
                raise ScenarioError(
                    f"implementations.{layer}",
                    f"{shown(name)} is an import path; scenario files name registered implementations only: "
                    f"pass --allow-import to let this file import Python modules, or give the class with --impl {layer}=module:Class",
                    source,
                )
    return scenario


def load_scenario(path: str | Path, *, allow_import: bool = False) -> Scenario:
    """Read and validate a YAML or JSON scenario file (``.json``: read as JSON,
    anything else as YAML). ``allow_import``: see :func:`parse_scenario`."""
    source = str(path)
    data = _read_data(Path(path), source)
    if not isinstance(data, dict):
        raise ScenarioError("", "a scenario file must hold a mapping at the top level", source)
    return parse_scenario(data, source=source, allow_import=allow_import)


def _read_data(path: Path, source: str) -> Any:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError("", f"cannot read scenario file: {exc.strerror or type(exc).__name__}", source) from None
    except ValueError as exc:  # e.g. a NUL character in the path
        raise ScenarioError("", f"cannot read scenario file: {cut(str(exc), 80)}", source) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(
            "", f"larger than {MAX_FILE_BYTES // 2**20} MiB; a scenario file describes an experiment, it is not a data set", source
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError("", f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})", source) from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text, object_pairs_hook=_json_mapping)
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: tags naming Python objects are refused
    except RecursionError:
        raise ScenarioError("", f"nested too deeply (a scenario nests at most {MAX_DEPTH} levels)", source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(where, f"not valid YAML: {cut(str(problem), 120)}", source) from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"line {exc.lineno}", f"not valid JSON: {cut(exc.msg, 120)}", source) from None
    except (_DuplicateKey, _TooDeep) as exc:
        raise ScenarioError("", str(exc), source) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts, a date that does not exist
        # (the first clause only: Python's own advice on digit limits is not the user's business)
        raise ScenarioError("", f"cannot read a value: {cut(str(exc).split(':')[0], 120)}", source) from None


class _DuplicateKey(ValueError):
    """A mapping that names one key twice (later would silently win)."""


class _TooDeep(ValueError):
    """Nesting beyond :data:`MAX_DEPTH`, found while composing (before Python's recursion limit)."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python objects), refusing a mapping that names a key
    twice or nesting deeper than :data:`MAX_DEPTH`, and reading ``1e-7`` as the
    number it is in YAML 1.2 (PyYAML follows YAML 1.1, where a float needs a dot
    and ``1e-7`` is text)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # the composer recurses once per level: stop it long before Python's recursion limit
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:
                raise _TooDeep(f"nested too deeply (a scenario nests at most {MAX_DEPTH} levels)")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merged keys may be overridden: that is what a merge is for
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"key {shown(key)} appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _json_mapping(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise _DuplicateKey(f"key {shown(key)} appears twice in one object")
        mapping[key] = value
    return mapping


def _check_plain(data: Any, source: str | None) -> None:
    """What a YAML or JSON file can hold, and no more: text keys, finite numbers in
    range, at most :data:`MAX_DEPTH` levels and :data:`MAX_VALUES` values. Models
    already built (in Python code) are taken as they are; the scenario's own
    checks see their numbers."""
    count = 0
    todo: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while todo:
        value, path = todo.pop()
        count += 1
        if count > MAX_VALUES:
            raise ScenarioError("", f"more than {MAX_VALUES:_} values (aliases count each time they are used)", source)
        if len(path) > MAX_DEPTH:
            raise ScenarioError(_dotted(path[:MAX_DEPTH]), f"nested too deeply (a scenario nests at most {MAX_DEPTH} levels)", source)
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise ScenarioError(_dotted(path), f"key {shown(key)} is not text (quote it)", source)
            todo.extend((item, (*path, key)) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            todo.extend((item, (*path, i)) for i, item in reversed(list(enumerate(value))))
        elif (problem := _number_problem(value)) is not None:
            raise ScenarioError(_dotted(path), problem, source)
        elif not (value is None or isinstance(value, str | bool | int | float | BaseModel)):
            raise ScenarioError(_dotted(path), f"{type(value).__name__} is not a scenario value (quote it if it is text)", source)


def _one_line(exc: ValidationError, source: str | None) -> ScenarioError:
    err = exc.errors()[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _LinkProblem):
        where = _dotted(_without_union_tags(err["loc"]))
        return ScenarioError(f"{where}.{ctx_error.field}" if where else ctx_error.field, ctx_error.problem, source)
    if isinstance(ctx_error, _FieldProblem):
        return ScenarioError(ctx_error.field, ctx_error.problem, source)
    loc = _dotted(_without_union_tags(err["loc"]))
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):  # the tag's own field is at fault
        loc = f"{loc}.{str((err.get('ctx') or {}).get('discriminator', '')).strip(chr(39))}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return ScenarioError(loc, cut(msg, 150) + _got(err), source)


def _got(err: Any) -> str:
    """For a wrong type, what was given instead (``true`` where a number belongs)."""
    if not err["type"].endswith("_type") or "input" not in err:
        return ""
    value = err["input"]
    kinds = {bool: "a boolean", str: "text", int: "an integer", float: "a decimal number", list: "a list", dict: "a mapping"}
    kind = "null" if value is None else kinds.get(type(value), type(value).__name__)
    return f", got {kind}"


# pydantic puts the discriminator value ("teleport") into the location of
# errors inside a tagged union; the user never wrote it as a key.
_APP_KINDS = frozenset(member.model_fields["kind"].default for member in get_args(get_args(AppRequest)[0]))
_ADVERSARY_KINDS = frozenset(member.model_fields["kind"].default for member in get_args(get_args(Adversary)[0]))
_CHANNEL_KINDS = frozenset(get_args(member.model_fields["kind"].annotation)[0] for member in get_args(get_args(LinkChannel)[0]))
# the union field -> the tags pydantic adds after it
_UNION_TAGS = {"request": _APP_KINDS, "adversary": _ADVERSARY_KINDS, "channel": _CHANNEL_KINDS}


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """``loc`` without the tags pydantic put in: a kind right after ``request`` or ``adversary``
    (a field of a request may share a kind's name, as ``QkdRequest.pairs`` does the pairs request's)."""
    return tuple(part for i, part in enumerate(loc) if not (i > 0 and part in _UNION_TAGS.get(loc[i - 1], ())))
