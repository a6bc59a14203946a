"""The shortcuts taken for speed give what the long way gives.

Each test here builds a result both ways (shared or cached, and computed
afresh) and compares them exactly: a shortcut that changed a number would
change a run's results for the same seed.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from qnetstack.physical.backends.heralding_backend import HeraldingModelBackend, _PreparedLink, prepared_link
from qnetstack.physical.params import LinkSide, NodeHardware
from qnetstack.physical.schemes.registry import scheme_named
from qnetstack.stack.assembler import AssemblyError
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


def _scenario(nodes: dict[str, int], links: list[tuple[str, str]], head: str = "a", tail: str = "c") -> dict:
    return {
        "nodes": [{"name": n, "hardware": {"memory": {"num_qubits": q}}} for n, q in nodes.items()],
        "links": [{"a": a, "b": b, "length_km": 1, "scheme": "barrett-kok"} for a, b in links],
        "applications": [{"node": head, "request": {"kind": "pairs", "remote_node": tail, "number": 1}}],
    }


def test_servable_checks_found_once_for_all_requests_refuse_what_the_searches_refused():
    """Components found once stand for a search per request; a repeater of one qubit
    still forces the search of the paths around it."""
    from qnetstack.stack.assembler import check_servable
    from qnetstack.stack.scenario import parse_scenario

    check_servable(parse_scenario(_scenario({"a": 2, "b": 2, "c": 2}, [("a", "b"), ("b", "c")])))
    with pytest.raises(AssemblyError, match="no chain of links joins 'a' and 'c'"):
        check_servable(parse_scenario(_scenario({"a": 2, "b": 2, "c": 2, "d": 2}, [("a", "b"), ("c", "d")])))
    with pytest.raises(AssemblyError, match=r"passes a repeater with fewer than 2 memory qubits \(b\)"):
        check_servable(parse_scenario(_scenario({"a": 2, "b": 1, "c": 2}, [("a", "b"), ("b", "c")])))
    # the same weak repeater with a way around it
    check_servable(parse_scenario(_scenario({"a": 2, "b": 1, "c": 2, "d": 2}, [("a", "b"), ("b", "c"), ("a", "d"), ("d", "c")])))


def test_a_run_leaves_the_garbage_collector_as_it_found_it():
    from qnetstack.stack import assemble
    from qnetstack.stack.scenario import parse_scenario

    before = gc.get_threshold()
    simulation = assemble(parse_scenario(_scenario({"a": 2, "b": 2, "c": 2}, [("a", "b"), ("b", "c")])))
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    seen: list[tuple[int, int]] = []
    simulation.network.kernel.schedule(0, lambda: seen.append((gc.get_threshold()[0], gc.get_freeze_count())))
    assert simulation.run().status == "done"
    assert seen[0][0] >= 20_000 and seen[0][1] > 0  # while it ran: collected rarely, what existed frozen
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_context_makes_its_random_stream_when_first_asked_with_the_draws_of_one_made_at_once():
    from qnetstack.stack.runtime import Network, entity_rng

    network = Network(7, lambda a, b: 0)
    late, other = network.make_context("alice", "link"), network.make_context("bob", "network")
    other.rng.random(3)  # another entity drawing first changes nothing for alice
    assert late.rng is late.rng
    assert late.rng.random(4).tolist() == entity_rng(7, "alice", "link").random(4).tolist()


def test_entities_are_checked_once_per_class_and_what_is_not_one_is_still_refused():
    from qnetstack.stack.assembler import _ENTITY_CLASSES, _checked

    class Whole:
        def start(self) -> None: ...
        def handle_above(self, msg: object) -> None: ...
        def handle_below(self, msg: object) -> None: ...
        def handle_peer(self, sender: str, msg: object) -> None: ...
        def handle_timer(self, tag: object) -> None: ...

    class Partial:
        def start(self) -> None: ...

    entity = Whole()
    assert _checked(entity, "link", "n") is entity and Whole in _ENTITY_CLASSES
    assert _checked(Whole(), "link", "n") is not None
    # methods set on an instance make that instance an entity, not its class
    lent = Partial()
    for name in ("handle_above", "handle_below", "handle_peer", "handle_timer"):
        setattr(lent, name, lambda *args: None)
    assert _checked(lent, "link", "n") is lent and Partial not in _ENTITY_CLASSES
    with pytest.raises(AssemblyError, match=r"missing \['handle_above', 'handle_below', 'handle_peer', 'handle_timer'\]"):
        _checked(Partial(), "link", "n")
