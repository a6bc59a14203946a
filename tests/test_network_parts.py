"""The network layer's pure parts: frames, routing, the link-pair store, policies."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

from qnetstack.entity.machine import IllegalTransition
from qnetstack.link.service import EntanglementId, LinkOkKeep
from qnetstack.network.frames import chain_frame, chain_goodness, outcome_flips, werner_swap_fidelity
from qnetstack.network.pairs import PairEvent, PairState, PairStore
from qnetstack.network.policy import POLICIES, SwapAsapPolicy, make_policy, register_policy
from qnetstack.network.routing import NoRoute, shortest_route
from qnetstack.physical.service import Basis, BellState


@pytest.mark.parametrize("states", list(itertools.product(BellState, repeat=3)))
def test_a_chain_frame_is_the_xor_of_its_parts_in_any_order(states):
    a, m, c = states
    bits = [s.pauli_bits for s in states]
    expected = BellState.from_bits(bits[0][0] ^ bits[1][0] ^ bits[2][0], bits[0][1] ^ bits[1][1] ^ bits[2][1])
    assert chain_frame([a, c], [m]) is expected
    assert chain_frame([c, a], [m]) is expected


def test_chain_goodness_is_the_werner_product_of_the_links():
    """Werner parameters w = (4F − 1)/3 multiply under swaps (Dür et al. 1999):
    F = 1/4 + 3/4 · Π w_i, computed here independently of the fold."""
    links = [0.9, 0.8, 0.95]
    w = [(4 * f - 1) / 3 for f in links]
    assert chain_goodness(links) == pytest.approx(0.25 + 0.75 * w[0] * w[1] * w[2], abs=1e-12)
    assert chain_goodness([0.7]) == 0.7
    assert werner_swap_fidelity(1.0, 0.8) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        chain_goodness([])


@pytest.mark.parametrize(
    "frame, basis, flips",
    [
        (BellState.PHI_PLUS, Basis.Z, False),
        (BellState.PSI_PLUS, Basis.Z, True),
        (BellState.PHI_MINUS, Basis.X, True),
        (BellState.PSI_PLUS, Basis.X, False),
        (BellState.PSI_MINUS, Basis.Y, False),
        (BellState.PHI_MINUS, Basis.Y, True),
    ],
)
def test_outcome_flips_follow_the_parity_table(frame, basis, flips):
    assert outcome_flips(frame, basis) is flips


def test_outcome_flips_refuses_a_basis_no_flip_corrects():
    with pytest.raises(ValueError):
        outcome_flips(BellState.PSI_PLUS, Basis.ZX_PLUS)


def test_routing_metric_is_a_parameter():
    """a-b-c is 2 hops and 20 km; a-d-e-c is 3 hops and 3 km."""
    graph = nx.Graph()
    graph.add_edge("a", "b", length_km=10.0)
    graph.add_edge("b", "c", length_km=10.0)
    graph.add_edge("a", "d", length_km=1.0)
    graph.add_edge("d", "e", length_km=1.0)
    graph.add_edge("e", "c", length_km=1.0)
    graph.add_node("island")
    assert shortest_route(graph, "a", "c") == ["a", "d", "e", "c"]
    assert shortest_route(graph, "a", "c", metric="hops") == ["a", "b", "c"]
    with pytest.raises(NoRoute):
        shortest_route(graph, "a", "island")
    with pytest.raises(NoRoute):
        shortest_route(graph, "a", "nowhere")
    with pytest.raises(ValueError):
        shortest_route(graph, "a", "c", metric="latency")  # type: ignore[arg-type]


def ok(seq: int, label: int = 0, handle: int = 0) -> LinkOkKeep:
    return LinkOkKeep(
        create_id=0,
        origin_node="a",
        ent_id=EntanglementId(creator="a", peer="b", sequence=seq),
        purpose_id=label,
        remote_node="b",
        bell_state=BellState.PHI_PLUS,
        goodness=0.9,
        goodness_time_ns=0,
        handle=handle,
    )


def test_the_pair_store_files_pairs_by_hop_and_keeps_only_held_ones():
    traces = []
    store = PairStore(lambda event, **fields: traces.append((event, fields)))
    first, second, other = store.add(ok(1)), store.add(ok(2)), store.add(ok(3, label=1))
    assert store.oldest(("b", "a", 0)) is first and store.held(("b", "a", 1)) == [other]
    store.end(first, PairEvent.SWAP)
    assert first.state is PairState.SWAPPED and store.oldest(("b", "a", 0)) is second and len(store) == 2
    with pytest.raises(IllegalTransition):
        first.fire(PairEvent.FREE)  # a swapped pair is gone: it cannot be freed as well
    assert traces[0][1]["to_state"] == "swapped" and traces[0][1]["session"] == ("a", "b", 1)


def test_policies_are_registered_by_name():
    assert isinstance(make_policy("swap-asap"), SwapAsapPolicy)
    with pytest.raises(KeyError, match="swap-asap"):
        make_policy("swap-later")

    @register_policy
    class Lazy(SwapAsapPolicy):
        name = "test-lazy"

    try:
        assert isinstance(make_policy("test-lazy"), Lazy)
    finally:
        del POLICIES["test-lazy"]
