"""Hardware presets by name, the light's wavelength, frequency conversion and Raman noise in scenarios.

The closed forms checked here are stated in ``LinkSpec``'s docstring and
specs/physical.md §9: a converter of efficiency η_c on each arm of a
midpoint station is loss equal on both arms, so the scheme sees detector
efficiency η_d·η_c; noise photons (n̄ per window at each detector) click a
detector like dark counts, ``p_dc' = 1 - (1 - p_dc) exp(-η_d n̄)``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from qnetstack.physical.components.channels import PLANCK_CONSTANT_J_S, noise_click_probability
from qnetstack.physical.components.presets import PRESETS, preset
from qnetstack.physical.params import SPEED_OF_LIGHT_KM_PER_S, DetectorParams
from qnetstack.physical.schemes.registry import scheme_named
from qnetstack.physical.schemes.single_click import success_probability
from qnetstack.stack import assemble, load_scenario, parse_scenario
from qnetstack.stack.cli import main
from qnetstack.stack.scenario import ScenarioError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NV = "nv-delft-2021"
CONVERT_NV = {"input_wavelength_nm": 637.0, "output_wavelength_nm": 1588.0, "efficiency": 0.17}


def scenario_data(nodes: list[dict], **link) -> dict:
    return {
        "nodes": nodes,
        "links": [{"a": nodes[0]["name"], "b": nodes[1]["name"], "length_km": 4.0, **link}],
        "applications": [{"node": nodes[0]["name"], "request": {"kind": "pairs", "remote_node": nodes[1]["name"], "number": 3}}],
    }


def two_nv(**link) -> dict:
    return scenario_data([{"name": "a", "hardware": {"preset": NV}}, {"name": "b", "hardware": {"preset": NV}}], **link)


# ------------------------------------------------------------------ presets by name


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_by_name_is_the_presets_hardware_and_wavelength(name):
    nodes = [{"name": "a", "hardware": {"preset": name}}, {"name": "b", "preset": name}]  # both spellings
    data = scenario_data(nodes, fibre={"db_per_km": 0.2}, detector={"efficiency": 0.9})
    if PRESETS[name].scheme == "midpoint-source":
        data["links"][0]["scheme"] = "midpoint-source"
    scenario = parse_scenario(data)
    for node in scenario.nodes:
        assert node.preset == name
        assert node.hardware == preset(name).node_hardware()
        assert node.wavelength_nm == preset(name).wavelength_nm


def test_an_override_changes_that_field_and_no_other():
    scenario = parse_scenario(
        two_nv(conversion=CONVERT_NV)
        | {"nodes": [{"name": "a", "hardware": {"preset": NV, "memory": {"t2_ns": 5_000_000}}}, {"name": "b", "preset": NV}]}
    )
    base = preset(NV).node_hardware()
    changed = scenario.nodes[0].hardware
    assert changed.memory.t2_ns == 5_000_000 != base.memory.t2_ns
    assert changed == base.replace(memory=base.memory.replace(t2_ns=5_000_000))
    assert scenario.nodes[1].hardware == base


def test_written_back_a_preset_node_keeps_its_preset_and_only_the_changed_fields():
    data = two_nv(conversion=CONVERT_NV)
    data["nodes"][0]["hardware"]["memory"] = {"t2_ns": 5_000_000}
    scenario = parse_scenario(data)
    dumped = scenario.model_dump(mode="json")
    assert dumped["nodes"][0]["preset"] == NV and dumped["nodes"][0]["hardware"] == {"memory": {"t2_ns": 5_000_000}}
    assert "detector" not in dumped["links"][0] and "db_per_km" not in dumped["links"][0]["fibre"]  # they came from the nodes
    again = parse_scenario(dumped)
    assert again == scenario and again.links[0].physics() == scenario.links[0].physics()
    # so a sweep that changes the preset of the written-back form changes the node
    dumped["nodes"][1]["preset"] = "siv-harvard-2020"
    dumped["nodes"][1]["emission_wavelength_nm"] = 637.0  # SiV's own 737 nm would not match node a
    swapped = parse_scenario(dumped)
    assert swapped.nodes[1].hardware == preset("siv-harvard-2020").node_hardware()


# ------------------------------------------------------------------ link defaults from the nodes


def test_a_link_between_preset_nodes_takes_their_detector_and_the_fibre_at_its_wavelength():
    link = parse_scenario(two_nv(conversion=CONVERT_NV)).links[0]
    assert link.detector == preset(NV).detector.to_detector_params(link.detection_window_ns)
    assert link.fibre.db_per_km == 0.20  # L band, 1588 nm (ATTENUATION_BANDS)
    assert link.fibre_wavelength_nm == 1588.0


def test_what_the_link_gives_wins_over_the_nodes():
    link = parse_scenario(two_nv(conversion=CONVERT_NV, detector={"efficiency": 0.5}, fibre={"db_per_km": 0.3})).links[0]
    assert link.detector == DetectorParams(efficiency=0.5)
    assert link.fibre.db_per_km == 0.3


def test_nodes_without_presets_or_wavelengths_keep_the_links_as_they_were():
    data = scenario_data([{"name": "a"}, {"name": "b"}])
    link = parse_scenario(data).links[0]
    assert link.fibre.db_per_km == 0.2 and link.detector == DetectorParams()
    assert link.physics().detector == DetectorParams()


# ------------------------------------------------------------------ errors: one line naming the field, exit 2

ERRORS = [
    (
        "unknown preset",
        scenario_data([{"name": "a", "hardware": {"preset": "nv-delft-2099"}}, {"name": "b"}]),
        "nodes.0.hardware.preset",
        "unknown preset 'nv-delft-2099' (presets: nv-delft-2021, rb-munich-2022",
    ),
    (
        "bad override value",
        scenario_data([{"name": "a", "hardware": {"preset": NV, "memory": {"t2_ns": -1}}}, {"name": "b"}]),
        "nodes.0.hardware.memory.t2_ns",
        "greater than 0",
    ),
    ("unconverted 637 nm", two_nv(), "links.0.fibre.db_per_km", "no attenuation figure at 637 nm"),
    (
        "converter input not the nodes' wavelength",
        two_nv(conversion={**CONVERT_NV, "input_wavelength_nm": 780.0}),
        "links.0.conversion.input_wavelength_nm",
        "is 780 nm but the nodes emit at 637 nm",
    ),
    (
        "ends of different colours",
        scenario_data([{"name": "a", "preset": NV}, {"name": "b", "preset": "rb-munich-2022"}], conversion=CONVERT_NV),
        "links.0",
        "the nodes emit at different wavelengths",
    ),
    (
        "conversion efficiency above one",
        two_nv(conversion={**CONVERT_NV, "efficiency": 1.5}),
        "links.0.conversion.efficiency",
        "less than or equal to 1",
    ),
    (
        "raman without a known wavelength",
        scenario_data(
            [{"name": "a"}, {"name": "b"}],
            raman={
                "launch_power_mw": 1.0,
                "raman_coefficient_per_km_nm": 1e-9,
                "filter_bandwidth_nm": 1.0,
                "classical_wavelength_nm": 1550.0,
            },
        ),
        "links.0.raman",
        "needs the wavelength in the fibre",
    ),
]


@pytest.mark.parametrize(("label", "data", "field", "problem"), ERRORS, ids=[case[0] for case in ERRORS])
def test_bad_light_settings_are_one_line_naming_the_field(tmp_path, capsys, label, data, field, problem):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    assert caught.value.field == field and problem in caught.value.problem
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{field}: " in err and problem in err


# ------------------------------------------------------------------ conversion and noise in the link's physics


def test_conversion_efficiency_scales_the_single_click_success_probability_as_the_closed_form_says():
    """p_succ = 2αη(1 − αη/2) (Humphreys et al. 2018; no dark counts), η = η_emit T(L/2) η_d η_c."""
    nodes = [{"name": "a", "emission_wavelength_nm": 1550.0}, {"name": "b", "emission_wavelength_nm": 1550.0}]
    for eta_c in (1.0, 0.5, 0.1):
        conversion = {"input_wavelength_nm": 1550.0, "output_wavelength_nm": 1310.0, "efficiency": eta_c}
        scenario = parse_scenario(scenario_data(nodes, conversion=conversion, bright_state_population=0.2))
        link, hw = scenario.links[0], scenario.nodes[0].hardware
        eta = hw.emission_efficiency * 10 ** (-0.32 * 2.0 / 10) * 0.8 * eta_c  # O band 0.32 dB/km, default detector 0.8
        model = scheme_named("single-click").model(link.physics(), hw, hw, 0.2, 0.2)
        assert model.success_probability() == pytest.approx(2 * 0.2 * eta * (1 - 0.2 * eta / 2), rel=1e-12)


def test_a_seeded_run_succeeds_at_the_converted_closed_form_rate():
    """One seeded run (fast-forward): the measured success probability against the closed form at
    η_c = 0.5, within 5 standard errors. Attempts run to n = 400 successes, so
    var(p̂) ≈ p²(1 − p)/n (negative-binomial sampling), the binomial p(1 − p)/attempts to first order."""
    nodes = [{"name": "a", "emission_wavelength_nm": 1550.0}, {"name": "b", "emission_wavelength_nm": 1550.0}]
    conversion = {"input_wavelength_nm": 1550.0, "output_wavelength_nm": 1550.0, "efficiency": 0.5}
    data = scenario_data(nodes, conversion=conversion, bright_state_population=0.3, length_km=2.0)
    data["applications"][0]["request"]["number"] = 400
    data["implementations"] = {"physical": "model-heralding", "link": "fast-forward-egp"}
    data["seed"] = 7
    scenario = parse_scenario(data)
    hw = scenario.nodes[0].hardware
    eta = hw.emission_efficiency * 10 ** (-0.18 * 1.0 / 10) * 0.8  # C band 0.18 dB/km over L/2 = 1 km
    p = success_probability(0.3, eta * 0.5, eta * 0.5)
    unconverted = success_probability(0.3, eta, eta)
    (stats,) = assemble(scenario).run().links
    assert stats.successes >= 400
    se = p * math.sqrt((1 - p) / stats.successes)
    assert abs(stats.success_probability - p) < 5 * se
    assert abs(stats.success_probability - unconverted) > 20 * se  # the check tells conversion from none


def test_raman_noise_raises_the_dark_count_probability_by_the_closed_form_amount():
    """Forward Raman noise over each half fibre (Eraerds et al. 2010), worked out here from its
    closed form P β Δλ (e^{-α_q L} − e^{-α_c L})/(α_c − α_q) / (h c / λ_q), then
    p_dc' = 1 − (1 − p_dc) e^{−η_d n̄}."""
    nodes = [{"name": "a", "emission_wavelength_nm": 1310.0}, {"name": "b", "emission_wavelength_nm": 1310.0}]
    raman = {"launch_power_mw": 5.0, "raman_coefficient_per_km_nm": 3e-9, "filter_bandwidth_nm": 0.5, "classical_wavelength_nm": 1550.0}
    detector = {"efficiency": 0.7, "dark_count_probability": 1e-6}
    quiet = parse_scenario(scenario_data(nodes, length_km=20.0, detector=detector)).links[0]
    noisy = parse_scenario(scenario_data(nodes, length_km=20.0, detector=detector, raman=raman, detection_window_ns=2.0)).links[0]
    alpha_q, alpha_c, half = 0.32 * math.log(10) / 10, 0.18 * math.log(10) / 10, 10.0
    power_w = 5e-3 * 3e-9 * 0.5 * (math.exp(-alpha_q * half) - math.exp(-alpha_c * half)) / (alpha_c - alpha_q)
    photons = power_w / (PLANCK_CONSTANT_J_S * SPEED_OF_LIGHT_KM_PER_S * 1e3 / 1310e-9) * 2e-9
    assert noisy.station_noise_photons() == pytest.approx(photons, rel=1e-9)
    expected = 1 - (1 - 1e-6) * math.exp(-0.7 * photons)
    assert noisy.physics().detector.dark_count_probability == pytest.approx(expected, rel=1e-9)
    assert quiet.physics().detector.dark_count_probability == 1e-6
    assert noisy.physics().detector.efficiency == quiet.physics().detector.efficiency == 0.7  # noise costs no signal
    assert expected - 1e-6 > 1e-6  # the noise at least doubles the dark counts here: the check has teeth


def test_converter_noise_crosses_the_half_fibre_and_clicks_like_dark_counts():
    conversion = {**CONVERT_NV, "noise_rate_hz": 2000.0}
    link = parse_scenario(two_nv(conversion=conversion, detection_window_ns=5.0)).links[0]
    photons = 2000.0 * 5e-9 * 10 ** (-0.20 * 2.0 / 10)
    assert link.station_noise_photons() == pytest.approx(photons, rel=1e-12)
    eta_d, p_dc = link.detector.efficiency, link.detector.dark_count_probability
    assert link.physics().detector == DetectorParams(
        efficiency=eta_d * 0.17, dark_count_probability=noise_click_probability(p_dc, eta_d, photons)
    )
    assert noise_click_probability(p_dc, eta_d, photons) == pytest.approx(1 - (1 - p_dc) * math.exp(-eta_d * photons), rel=1e-12)


# ------------------------------------------------------------------ the command and the example


def test_qnetstack_presets_lists_every_preset_with_its_sources(capsys):
    assert main(["presets"]) == 0
    text = capsys.readouterr().out
    for p in PRESETS.values():
        assert f"{p.name}: " in text and p.references[0] in text
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["presets"]
    assert [row["name"] for row in rows] == list(PRESETS)
    nv = rows[0]
    assert nv["wavelength_nm"] == 637.0 and nv["photon_efficiency"] == pytest.approx(preset(NV).photon_efficiency())


def test_the_nv_conversion_example_runs_and_heralds_at_the_models_rate():
    """20 successes: the 5-SE band is wide (±100 %), so this checks the wiring, the analytic tests the numbers."""
    scenario = load_scenario(EXAMPLES / "nv-conversion.yaml")
    link, hw = scenario.links[0], scenario.nodes[0].hardware
    p = scheme_named("single-click").model(link.physics(), hw, hw, 0.1, 0.1).success_probability()
    result = assemble(scenario).run()
    assert result.pairs.count == 20
    (stats,) = result.links
    assert abs(stats.success_probability - p) < 5 * p * math.sqrt((1 - p) / stats.successes)


def test_a_sweep_over_a_preset_field_and_a_wavelength_changes_what_it_names():
    """The written-back form keeps presets and link fields taken from the nodes open, so a sweep's
    override of a memory field of a preset node, or of the converter's output, reaches the physics."""
    from qnetstack.stack.sweep import parse_sweep

    sweep = parse_sweep(
        {
            "scenario": "nv-conversion.yaml",
            "seeds": [1],
            "points": [{"nodes.0.hardware.memory.t2_ns": 5_000_000}, {"links.0.conversion.output_wavelength_nm": 1310.0}],
        },
        base_folder=EXAMPLES,
    )
    t2_point, o_band_point = (point.scenario for point in sweep.points)
    base = preset(NV).node_hardware()
    assert t2_point.nodes[0].hardware == base.replace(memory=base.memory.replace(t2_ns=5_000_000))
    assert t2_point.nodes[1].hardware == base
    assert t2_point.links[0].fibre.db_per_km == 0.20
    assert o_band_point.links[0].fibre.db_per_km == 0.32  # the table at 1310 nm, not the base's 1588 nm figure
