"""Platform presets (physical.components.presets): complete, valid, usable by the heralding models."""

import pytest
from pydantic import ValidationError

from qnetstack.physical.components.memories import NV_ELECTRON
from qnetstack.physical.components.presets import PRESETS, RB_MUNICH_2022, PlatformPreset, preset
from qnetstack.physical.params import NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.barrett_kok import BarrettKokLinkParams, BarrettKokModel
from qnetstack.physical.schemes.single_click import SingleClickModel


def test_every_preset_is_reachable_by_name_and_cites_its_experiments():
    assert len(PRESETS) >= 6
    for name, p in PRESETS.items():
        assert preset(name) is p and p.name == name
        assert p.references and all(any(ch.isdigit() for ch in ref) for ref in p.references)  # a year or volume
        hw = p.node_hardware()
        assert isinstance(hw, NodeHardware)
        assert 0.0 < hw.emission_efficiency <= 1.0
        assert 0.0 <= p.detector_params(10.0).dark_count_probability < 1e-3


def test_unknown_preset_name_lists_the_known_ones():
    with pytest.raises(ValidationError) as info:
        preset("nv-delft")
    message = str(info.value)
    assert "platform preset name" in message and "nv-delft-2021" in message and "telecom-spdc" in message


def test_a_changed_copy_is_validated():
    data = RB_MUNICH_2022.model_dump()
    data["conversion"]["efficiency"] = 1.5
    with pytest.raises(ValidationError, match="conversion.efficiency"):
        PlatformPreset(**data)
    data["conversion"]["efficiency"] = 0.3
    assert PlatformPreset(**data).photon_efficiency() == pytest.approx(RB_MUNICH_2022.photon_efficiency() * 0.3 / 0.57)


def test_unconverted_visible_photons_are_refused_by_the_telecom_fibre_model():
    with pytest.raises(ValidationError, match="wavelength_nm"):
        preset("nv-delft-2021").fibre(10.0)


def test_presets_drive_the_heralding_models():
    """A Munich-like Barrett–Kok link over 33 km: success probability
    η_A η_B / 2 (Barrett & Kok, PRA 71, 060310 (2005)) with η = photon
    efficiency × fibre(L/2) × detector efficiency, from the preset's parts."""
    rb = preset("rb-munich-2022")
    hw = rb.node_hardware()
    params = BarrettKokLinkParams(
        length_km=33.0, fibre=rb.fibre_params(), detector=rb.detector_params().model_copy(update={"dark_count_probability": 0.0})
    )
    model = BarrettKokModel(params, hw, hw)
    eta = rb.photon_efficiency() * rb.fibre(16.5).transmittance() * rb.detector.efficiency
    assert model.success_probability() == pytest.approx(eta * eta / 2, rel=1e-6)
    siv = preset("siv-harvard-2020")
    sc = SingleClickModel(SingleClickLinkParams(length_km=1.0, detector=siv.detector_params()), siv.node_hardware(), siv.node_hardware())
    assert 0.0 < sc.success_probability() < 1.0


def test_replace_validates_the_changed_fields_and_keeps_the_rest():
    """HardwareParams.replace: a copy validated like a new model (model_copy is not)."""
    hw = NodeHardware()
    changed = hw.replace(emission_efficiency=0.5, memory=hw.memory.replace(t2_ns=5_000))
    assert changed.emission_efficiency == 0.5 and changed.memory.t2_ns == 5_000
    assert changed.memory.num_qubits == hw.memory.num_qubits and hw.emission_efficiency != 0.5  # the original is untouched
    for bad in ({"emission_efficiency": 1.5}, {"emision_efficiency": 0.5}):
        with pytest.raises(ValidationError) as info:
            hw.replace(**bad)
        assert next(iter(bad)) in str(info.value)  # the error names the field
    with pytest.raises(ValidationError, match="t2_ns"):
        NV_ELECTRON.replace(t2_ns=-1.0)
    assert type(NV_ELECTRON.replace(t2_ns=1e6)) is type(NV_ELECTRON)
