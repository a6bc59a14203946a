"""Link channels by kind in a scenario: fibre (the default), free-space, satellite-pass.

* A free-space link's success probability per attempt agrees with the
  single-click closed form ``p = 2αη(1 - αη/2)`` (Humphreys et al., Nature 558,
  268 (2018), Methods; derived in physical.schemes.single_click) with the
  Gaussian-beam arm transmittance (Siegman, *Lasers*, 1986, ch. 17; jitter:
  Toyoshima et al., JOSA A 19, 567 (2002)) written out here.
* A satellite-pass link's success probability, binned by simulated time,
  follows the scheme's probability along the pass's loss curve at five
  points of the pass; nothing heralds outside the pass.
* The pass geometry of a station beside the ground track matches vector
  geometry; bad values give one line naming the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qnetstack.physical.backends.heralding_backend import PassLink, prepared_link
from qnetstack.physical.components.channels import EARTH_GM_KM3_PER_S2, EARTH_RADIUS_KM, SatellitePass, equivalent_fibre
from qnetstack.physical.engines.world import QuantumWorld
from qnetstack.physical.params import FibreParams, NodeHardware
from qnetstack.physical.schemes.registry import scheme_named
from qnetstack.stack import assemble
from qnetstack.stack.scenario import ScenarioError, load_scenario, parse_scenario

SIGMAS = 5  # two-sided p ~ 6e-7 per comparison for a correct simulation
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

FREE_SPACE = {
    "kind": "free-space",
    "wavelength_nm": 810.0,
    "transmitter_aperture_m": 0.1,
    "receiver_aperture_m": 0.2,
    "pointing_jitter_urad": 5.0,
    "atmospheric_db_per_km": 0.1,
}
SATELLITE = {
    "kind": "satellite-pass",
    "wavelength_nm": 810.0,
    "transmitter_aperture_m": 0.3,
    "receiver_aperture_m": 1.2,
    "pointing_jitter_urad": 0.5,
    "altitude_km": 500.0,
    "min_elevation_deg": 20.0,
    "zenith_transmittance": 0.8,
}


def scenario(link: dict[str, Any], **node_hardware: Any) -> dict[str, Any]:
    return {
        "nodes": [{"name": "a", "hardware": node_hardware}, {"name": "b", "hardware": node_hardware}],
        "links": [{"a": "a", "b": "b", **link}],
    }


def satellite_link(**channel: Any) -> dict[str, Any]:
    return {"length_km": 600.0, "scheme": "midpoint-source", "channel": {**SATELLITE, **channel}}


# ------------------------------------------------------------------ fibre stays the default


def test_a_link_without_channel_is_fibre_as_before():
    """SCN-CHAN-1."""
    link = parse_scenario(scenario({"length_km": 20.0})).links[0]
    assert link.channel.kind == "fibre"
    assert link.fibre == FibreParams()
    assert link.physics().fibre == FibreParams()
    named = parse_scenario(scenario({"length_km": 20.0, "channel": "fibre", "fibre": {"db_per_km": 0.3}})).links[0]
    assert named.channel.kind == "fibre" and named.fibre.db_per_km == 0.3


# ------------------------------------------------------------------ free space


def gaussian_arm_transmittance(distance_km: float) -> float:
    """Arm transmittance written out: diffraction into the receiver aperture ×
    mean jitter factor × Beer–Lambert extinction (FREE_SPACE's figures)."""
    wavelength = FREE_SPACE["wavelength_nm"] * 1e-9
    w0 = FREE_SPACE["transmitter_aperture_m"] / 2
    z = distance_km * 1e3
    w = w0 * math.sqrt(1 + (z * wavelength / (math.pi * w0**2)) ** 2)
    a = FREE_SPACE["receiver_aperture_m"] / 2
    diffraction = 1 - math.exp(-2 * a**2 / w**2)
    jitter = 1 / (1 + 4 * (FREE_SPACE["pointing_jitter_urad"] * 1e-6 * z) ** 2 / w**2)
    return diffraction * jitter * 10 ** (-FREE_SPACE["atmospheric_db_per_km"] * distance_km / 10)


def test_free_space_success_probability_matches_the_single_click_closed_form():
    """SCN-CHAN-2: 4 km single-click link (each arm 2 km of air): 200,000 attempts drawn one by
    one from the model backend; the fraction that herald is within 5 SE of
    2αη(1-αη/2), η = emission × arm transmittance × detector efficiency."""
    length_km, alpha, emission, detector = 4.0, 0.3, 0.9, 0.8
    data = scenario(
        {"length_km": length_km, "bright_state_population": alpha, "detector": {"efficiency": detector}, "channel": FREE_SPACE},
        emission_efficiency=emission,
    )
    link = parse_scenario(data).links[0]
    params = link.physics()
    eta = emission * gaussian_arm_transmittance(length_km / 2) * detector
    expected = 2 * alpha * eta * (1 - alpha * eta / 2)
    assert 0.05 < expected < 0.5  # a regime the sample resolves well
    hardware = NodeHardware(emission_efficiency=emission)
    prepared = prepared_link(QuantumWorld(), scheme_named("single-click"), params, hardware, hardware, alpha, alpha)
    rng = np.random.default_rng(11)
    n = 200_000
    successes = sum(prepared.draw(rng, 1)[1] is not None for _ in range(n))
    se = math.sqrt(expected * (1 - expected) / n)
    assert abs(successes / n - expected) < SIGMAS * se, (successes / n, expected, se)
    # the arm's delay is the light time over the air, not through glass
    assert params.fibre.delay_ns(length_km / 2) == round(length_km / 2 / 299_792.458 * 1e9)


def test_a_dump_with_another_length_derives_the_arm_anew():
    """A sweep changes a dumped scenario and validates it again: the derived fibre is not in the dump."""
    for link in ({"length_km": 4.0, "channel": FREE_SPACE}, satellite_link()):
        data = parse_scenario(scenario(link)).model_dump(mode="json")
        assert "fibre" not in data["links"][0]
        data["links"][0]["length_km"] = 300.0
        again = parse_scenario(data).links[0]
        assert again.fibre == parse_scenario(scenario({**link, "length_km": 300.0})).links[0].fibre
        assert again.fibre != parse_scenario(scenario(link)).links[0].fibre


@pytest.mark.parametrize("scheme", ["single-click", "barrett-kok", "midpoint-source"])
def test_a_free_space_link_runs_end_to_end_with_every_scheme(scheme):
    """The station half-way: every scheme runs on a free-space link, its arm the same."""
    data = scenario({"length_km": 4.0, "scheme": scheme, "channel": FREE_SPACE})
    data["implementations"] = {"physical": "model-heralding", "link": "fast-forward-egp"}
    data["applications"] = [{"node": "a", "request": {"kind": "pairs", "remote_node": "b", "number": 3}}]
    loaded = parse_scenario(data)
    assert loaded.links[0].physics().fibre.transmittance(2.0) == pytest.approx(gaussian_arm_transmittance(2.0), rel=1e-12)
    result = assemble(loaded).run()
    assert result.end.status == "done", result.end


# ------------------------------------------------------------------ satellite pass geometry


def test_pass_beside_the_ground_track_matches_vector_geometry():
    """Station at ground distance s from the track: slant range and elevation from
    position vectors (station on the sphere, satellite on its circular orbit)
    agree with the spherical-triangle formulas of SatellitePass."""
    cross_km = 300.0
    sat = SatellitePass(**{k: v for k, v in SATELLITE.items() if k != "kind"}, cross_track_km=cross_km)
    r = EARTH_RADIUS_KM + SATELLITE["altitude_km"]
    omega = math.sqrt(EARTH_GM_KM3_PER_S2 / r**3)
    beta = cross_km / EARTH_RADIUS_KM
    station = EARTH_RADIUS_KM * np.array([math.cos(beta), math.sin(beta), 0.0])
    for t in (-120.0, -40.0, 0.0, 75.0):
        satellite = r * np.array([math.cos(omega * t), 0.0, math.sin(omega * t)])
        line = satellite - station
        distance = float(np.linalg.norm(line))
        elevation = math.degrees(math.asin(float(line @ station) / (distance * EARTH_RADIUS_KM)))
        assert sat.slant_range_km(t) == pytest.approx(distance, rel=1e-9)
        assert sat.elevation_deg(t) == pytest.approx(elevation, abs=1e-7)
    # the pass ends where the elevation reaches its minimum
    assert sat.elevation_deg(sat.half_duration_s()) == pytest.approx(SATELLITE["min_elevation_deg"], abs=1e-7)
    # an overhead pass is unchanged by the new field
    overhead = SatellitePass(**{k: v for k, v in SATELLITE.items() if k != "kind"})
    assert overhead.elevation_deg(0.0) == pytest.approx(90.0)


# ------------------------------------------------------------------ satellite pass statistics

# A bright test pass: lossless hardware and a strong source, so that p per
# attempt is ~1e-3 and a few hundred passes give thousands of successes per bin.
BRIGHT = {
    "detector": {"efficiency": 1.0},
    "scheme_params": {"source": {"mean_pair_number": 0.1, "heralding_efficiency": 1.0}, "photon_indistinguishability": 1.0},
}


def test_satellite_pass_success_probability_follows_the_loss_curve():
    """SCN-CHAN-3: fast-forward runs back to back over 200 passes: every attempt slot of the pass
    is an attempt, so the attempts per time bin are known. In five bins (10 s,
    one block each, at -0.8, -0.4, 0, +0.4, +0.8 of the half pass) the fraction of
    attempts that herald is within 5 SE of the scheme's success probability along
    the pass's continuous loss curve, averaged over the bin (Gauss–Legendre, 5 points).
    Holding p at the block's middle differs from that average by the midpoint-rule
    error, at most Δ² max|p''|/24: checked below to be under 0.5 SE."""
    data = scenario({**satellite_link(step_s=10.0), **BRIGHT}, emission_efficiency=1.0)
    link = parse_scenario(data).links[0]
    params = link.physics()
    arm = params.fibre
    hardware = NodeHardware(emission_efficiency=1.0)
    entry = scheme_named("midpoint-source")
    world = QuantumWorld()
    pass_link = PassLink(world, entry, params, hardware, hardware)
    period = 2 * params.fibre.delay_ns(params.length_km / 2)
    n_blocks, start, width = arm.blocks()
    end = start + n_blocks * width
    half = arm.satellite_pass.half_duration_s() * 1e9

    def p_at(t_ns: float) -> float:
        """The scheme's p with the arms' transmittance at ``t_ns`` (the continuous curve)."""
        transmittance = arm.transmittance_at(t_ns)
        fibre = equivalent_fibre(transmittance, arm.arm_km, 1.0)
        return entry.model(params.replace(fibre=fibre), hardware, hardware, None, None).success_probability()

    centres = [arm.zenith_at_ns + f * half for f in (-0.8, -0.4, 0.0, 0.4, 0.8)]
    bins = [arm.block_of(c) for c in centres]
    assert None not in bins
    edges = [(start + b * width, start + (b + 1) * width) for b in bins]
    nodes, weights = np.polynomial.legendre.leggauss(5)
    expected = [float(sum(w * p_at((lo + hi) / 2 + x * (hi - lo) / 2) for x, w in zip(nodes, weights)) / 2) for lo, hi in edges]

    rng = np.random.default_rng(5)
    passes = 200
    successes = [0] * len(edges)
    outside = 0
    for _ in range(passes):
        t = int(start) - 50 * period  # from before the pass to after it
        while t < end + 50 * period:
            made, branch, _ = pass_link.draw(rng, t, period, 100_000, None, None)
            if branch is not None:
                herald = t + (made - 1) * period
                if not start <= herald < end:
                    outside += 1
                for i, (lo, hi) in enumerate(edges):
                    if lo <= herald < hi:
                        successes[i] += 1
            t += made * period
    assert outside == 0
    for (lo, hi), p, k, centre in zip(edges, expected, successes, centres):
        attempts = passes * (math.ceil((hi - t_first(lo, start, period)) / period))
        se = math.sqrt(p * (1 - p) / attempts)
        assert abs(k / attempts - p) < SIGMAS * se, (centre, k, attempts, p, se)
        # the block-constant p against the bin's average: the midpoint-rule bias is small against the SE
        assert abs(pass_link.block_link(arm.block_of(centre), None, None).p - p) < 0.5 * se
    # the curve really varies over these points: a constant p would fail the comparison
    assert max(expected) > 3 * min(expected)


def t_first(lo: float, start: float, period: int) -> float:
    """The first attempt time at or after ``lo`` when attempts run every ``period`` from ``start - 50 period``
    (the loop above restarts only at attempt slots, so every slot is one attempt)."""
    origin = int(start) - 50 * period
    return origin + math.ceil((lo - origin) / period) * period


def test_attempt_by_attempt_follows_the_blocks_too():
    """SCN-CHAN-3: one attempt per draw (max_attempts 1) over 2 passes of a brighter link
    (large ground telescope, no jitter or atmosphere: p ~ 0.01): the success
    fraction over the whole pass is within 5 SE of the mean of the block
    probabilities (n = the attempts made, 2 × ~34,000)."""
    brighter = satellite_link(step_s=20.0, receiver_aperture_m=3.0, pointing_jitter_urad=0.0, zenith_transmittance=1.0)
    data = scenario({**brighter, **BRIGHT}, emission_efficiency=1.0)
    params = parse_scenario(data).links[0].physics()
    arm = params.fibre
    hardware = NodeHardware(emission_efficiency=1.0)
    pass_link = PassLink(QuantumWorld(), scheme_named("midpoint-source"), params, hardware, hardware)
    period = 2 * params.fibre.delay_ns(params.length_km / 2)
    n_blocks, start, width = arm.blocks()
    times = np.arange(math.ceil(start), start + n_blocks * width, period)
    p_mean = float(np.mean([pass_link.block_link(arm.block_of(t), None, None).p for t in times]))
    rng = np.random.default_rng(9)
    passes = 2
    hits = sum(pass_link.draw(rng, int(t), period, 1, None, None)[1] is not None for _ in range(passes) for t in times)
    n = passes * len(times)
    se = math.sqrt(p_mean * (1 - p_mean) / n)
    assert abs(hits / n - p_mean) < SIGMAS * se, (hits / n, p_mean, se)


def test_nothing_heralds_before_or_after_the_pass():
    """SCN-CHAN-3: no success outside the pass, fast-forward across either side of it."""
    data = scenario({**satellite_link(zenith_at_s=200.0), **BRIGHT}, emission_efficiency=1.0)
    params = parse_scenario(data).links[0].physics()
    hardware = NodeHardware(emission_efficiency=1.0)
    pass_link = PassLink(QuantumWorld(), scheme_named("midpoint-source"), params, hardware, hardware)
    n_blocks, start, width = params.fibre.blocks()
    period = 2 * params.fibre.delay_ns(params.length_km / 2)
    rng = np.random.default_rng(1)
    before = int(start) - 5_000 * period
    assert before > 0
    assert pass_link.draw(rng, before, period, 4_999, None, None) == (4_999, None, None)
    assert pass_link.draw(rng, int(start + n_blocks * width) + 1, period, 10**5, None, None) == (10**5, None, None)


def test_the_example_runs_and_heralds_only_inside_the_pass():
    loaded = load_scenario(EXAMPLES / "satellite-pass.yaml")
    result = assemble(loaded).run()
    assert result.end.status == "done", result.end
    n_blocks, start, width = loaded.links[0].fibre.blocks()
    (request,) = result.applications
    assert request.results == 5
    # heralds come inside the pass (plus the heralds' flight to the nodes, under 10 ms)
    assert start <= request.first_result_ns <= request.last_result_ns <= start + n_blocks * width + 1e7


def test_a_request_the_pass_cannot_serve_fails_when_the_pass_ends():
    """SCN-CHAN-4: after the pass no attempt can herald and no next pass is modelled: the physical
    layer takes the link down then, and the request ends with the link's DOWN error
    instead of waiting for ever (a run would otherwise end stalled)."""
    data = load_scenario(EXAMPLES / "satellite-pass.yaml").model_dump(exclude_unset=True)
    data["applications"][0]["request"]["number"] = 500
    data.pop("stop", None)
    loaded = parse_scenario(data)
    result = assemble(loaded).run()
    (request,) = result.applications
    assert request.state == "failed" and 0 < request.results < 500
    assert "DOWN" in (request.detail or "")
    n_blocks, start, width = loaded.links[0].fibre.blocks()
    assert request.time_ns is not None and start + n_blocks * width <= request.time_ns <= start + n_blocks * width + 1e9


def test_light_on_a_free_space_link_meets_the_channel():
    """Nodes emitting at the channel's wavelength, or converted to it, run; a converter's
    efficiency reaches the scheme's detector as on fibre (η_d·η_c); the arm stays the channel's."""
    conversion = {"input_wavelength_nm": 780.0, "output_wavelength_nm": 810.0, "efficiency": 0.5}
    data = scenario({"length_km": 4.0, "channel": FREE_SPACE, "conversion": conversion, "detector": {"efficiency": 0.8}})
    data["nodes"] = [{"name": n, "emission_wavelength_nm": 780.0} for n in ("a", "b")]
    link = parse_scenario(data).links[0]
    params = link.physics()
    assert params.detector.efficiency == pytest.approx(0.4)
    assert params.fibre.transmittance(2.0) == pytest.approx(gaussian_arm_transmittance(2.0), rel=1e-12)


RAMAN = {"launch_power_mw": 1.0, "raman_coefficient_per_km_nm": 1e-9, "filter_bandwidth_nm": 1.0, "classical_wavelength_nm": 1550.0}


def test_light_that_does_not_fit_the_channel_is_refused_naming_the_field():
    data = scenario({"length_km": 4.0, "channel": FREE_SPACE, "raman": RAMAN})
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    assert caught.value.field == "links.0.raman", str(caught.value)
    conversion = {"input_wavelength_nm": 780.0, "output_wavelength_nm": 1550.0, "efficiency": 0.5}
    data = scenario({"length_km": 4.0, "channel": FREE_SPACE, "conversion": conversion})
    data["nodes"] = [{"name": n, "emission_wavelength_nm": 780.0} for n in ("a", "b")]
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    assert caught.value.field == "links.0.channel.wavelength_nm", str(caught.value)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------ bad values


BAD = [
    ({"length_km": 4.0, "channel": "laser"}, "links.0.channel.kind"),
    ({"length_km": 4.0, "channel": {**FREE_SPACE, "pointing_jitter_urad": -1.0}}, "links.0.channel.pointing_jitter_urad"),
    ({"length_km": 4.0, "channel": {**FREE_SPACE, "receiver_aperture_m": 0.0}}, "links.0.channel.receiver_aperture_m"),
    ({"length_km": 4.0, "channel": {k: v for k, v in FREE_SPACE.items() if k != "wavelength_nm"}}, "links.0.channel.wavelength_nm"),
    ({"length_km": 4.0, "channel": {**FREE_SPACE, "beam_waist_m": 0.3}}, "links.0.channel"),
    ({"length_km": 4.0, "channel": {**FREE_SPACE, "receiver_efficiency": 0.0}}, "links.0.channel"),
    ({"length_km": 4.0, "channel": {**FREE_SPACE, "atmospheric_db_per_km": -0.1}}, "links.0.channel.atmospheric_db_per_km"),
    ({"length_km": 4.0, "channel": FREE_SPACE, "fibre": {"db_per_km": 0.3}}, "links.0.fibre"),
    ({**satellite_link(), "scheme": "single-click"}, "links.0.scheme"),
    ({**satellite_link(), "length_km": 4000.0}, "links.0.length_km"),
    (satellite_link(min_elevation_deg=0.0), "links.0.channel.min_elevation_deg"),
    (satellite_link(altitude_km=-5.0), "links.0.channel.altitude_km"),
    (satellite_link(zenith_transmittance=1.5), "links.0.channel.zenith_transmittance"),
    (satellite_link(step_s=0.0), "links.0.channel.step_s"),
    (satellite_link(zenith_at_s=-1.0), "links.0.channel.zenith_at_s"),
    (satellite_link(free_space=True), "links.0.channel.free_space"),
    # values as written: no text for numbers, no booleans, nothing infinite
    ({"length_km": 4.0, "channel": {**FREE_SPACE, "transmitter_aperture_m": "0.1"}}, "links.0.channel.transmitter_aperture_m"),
    ({"length_km": 4.0, "channel": {**FREE_SPACE, "receiver_aperture_m": True}}, "links.0.channel.receiver_aperture_m"),
    (satellite_link(altitude_km=float("inf")), "links.0.channel.altitude_km"),
    (satellite_link(step_s=float("nan")), "links.0.channel.step_s"),
    ({"length_km": 4.0, "channel": {"kind": True}}, "links.0.channel.kind"),
]


@pytest.mark.parametrize(("link", "field"), BAD, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD)])
def test_bad_channel_values_are_refused_naming_the_field(link, field):
    """SCN-CHAN-5."""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(scenario(link))
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.field == field, message
