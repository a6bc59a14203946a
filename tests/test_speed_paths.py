"""The shortcuts taken for speed give what the long way gives.

Each test here builds a result both ways (shared or cached, and computed
afresh) and compares them exactly: a shortcut that changed a number would
change a run's results for the same seed.
"""

from __future__ import annotations

import numpy as np

from qnetstack.physical.backends.heralding_backend import HeraldingModelBackend, _PreparedLink, prepared_link
from qnetstack.physical.params import LinkSide, NodeHardware
from qnetstack.physical.schemes.registry import scheme_named
from tests.fakes import FakeContext


def _link(km: float = 5.0) -> tuple[object, object]:
    entry = scheme_named("barrett-kok")
    assert entry is not None
    return entry, entry.params_type(length_km=km, two_photon_visibility=0.9)


def test_links_with_equal_inputs_share_one_prepared_link_with_the_numbers_of_a_fresh_one():
    entry, params = _link()
    hardware = NodeHardware(memory={"num_qubits": 2, "t2_ns": 10**8})
    backend = HeraldingModelBackend()
    sides = {nb: LinkSide(station=f"{min(nb, 'm')}~{max(nb, 'm')}", params=params, neighbour_hardware=hardware) for nb in ("a", "z")}
    node = backend.node_entity(FakeContext("m"), hardware, sides)
    station = backend.station_entity(FakeContext("a~m"), ("a", "m"), params, {"a": hardware, "m": hardware})
    shared = station.prepared(None, None)
    assert prepared_link(backend.world, entry, params, hardware, hardware, None, None) is shared
    # an equal but distinct parameter object finds the same link
    assert prepared_link(backend.world, entry, params.model_copy(), hardware, hardware, None, None) is shared

    fresh = _PreparedLink(entry.model(params, hardware, hardware, None, None), (None, 10**8), (None, 10**8))
    assert fresh._cumulative == shared._cumulative and fresh.p == shared.p
    for waits in ((25_000, 25_000), (25_000, 1_000_000), (0, 7)):
        for branch in range(len(fresh.branches)):
            state, fidelity, diagonal = shared.state(branch, *waits)
            expected = fresh.state(branch, *waits)
            assert np.array_equal(state, expected[0]) and fidelity == expected[1] and diagonal == expected[2]
    assert node.capabilities().links["a"].fidelity == fresh.mean_fidelity(*(2 * [station.period_ns // 2]))
    for seed in range(3):
        assert [shared.draw(np.random.default_rng(seed), n) for n in (1, 50)] == [
            fresh.draw(np.random.default_rng(seed), n) for n in (1, 50)
        ]


def test_links_differing_in_anything_do_not_share():
    entry, params = _link()
    _, longer = _link(km=6.0)
    hardware, other = NodeHardware(), NodeHardware(memory={"num_qubits": 3})
    world = HeraldingModelBackend().world
    one = prepared_link(world, entry, params, hardware, hardware, None, None)
    assert prepared_link(world, entry, longer, hardware, hardware, None, None) is not one
    assert prepared_link(world, entry, params, hardware, other, None, None) is not one
    # another network (another world) computes its own
    assert prepared_link(HeraldingModelBackend().world, entry, params, hardware, hardware, None, None) is not one
