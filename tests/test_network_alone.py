"""The reference network layer driven alone: fake link layer and device, no kernel."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

from qnetstack.link.service import EntanglementId, LinkAck, LinkCreate, LinkError, LinkErrorCode, LinkOkKeep, RequestType
from qnetstack.network.service import NetAccepted, NetError, NetRejected, NetRequest, PairDelivered, PairId
from qnetstack.network.swap_asap import CircuitFailed, Forward, SwapAsap, SwapRecord, purpose_of, werner_swap_fidelity
from qnetstack.physical.service import Basis, BellMeasure, BellState, FreeQubit
from tests.fakes import FakeContext, FakeDevice


def chain(*names: str) -> nx.Graph:
    graph = nx.Graph()
    for a, b in itertools.pairwise(names):
        graph.add_edge(a, b, length_km=10.0)
    return graph


def make(node: str, graph: nx.Graph):
    device = FakeDevice(node)
    ctx = FakeContext(node, device)
    entity = SwapAsap(ctx, graph)
    entity.start()
    return entity, ctx, device


def link_ok(remote: str, handle: int, state: BellState, purpose: int, goodness: float = 0.9, seq: int = 0) -> LinkOkKeep:
    return LinkOkKeep(
        create_id=0,
        origin_node="x",
        ent_id=EntanglementId(creator="x", peer="y", sequence=seq),
        purpose_id=purpose,
        remote_node=remote,
        bell_state=state,
        goodness=goodness,
        goodness_time_ns=0,
        handle=handle,
    )


def test_head_accepts_forwards_along_the_path_and_asks_its_link():
    graph = chain("alice", "r", "bob")
    head, ctx, _ = make("alice", graph)
    head.handle_above(NetRequest(request_id=4, remote_node="bob", number=3))
    (accepted,) = ctx.take(NetAccepted)
    assert accepted.path == ["alice", "r", "bob"]
    assert sorted(dest for dest, m in ctx.peer if isinstance(m, Forward)) == ["bob", "r"]
    (create,) = ctx.take(LinkCreate)
    # one link pair at a time, so a fast link cannot fill the memories (see _request_next_link_pair)
    assert create.remote_node == "r" and create.number == 1 and create.type is RequestType.K
    assert create.purpose_id == purpose_of("alice", 4)


@pytest.mark.parametrize(
    "graph, remote",
    [(chain("alice", "bob"), "carol"), (chain("alice", "bob"), "alice")],
)
def test_unknown_or_self_remote_is_rejected(graph, remote):
    head, ctx, _ = make("alice", graph)
    head.handle_above(NetRequest(request_id=0, remote_node=remote))
    assert isinstance(ctx.up[0], NetRejected) and ctx.down == []


def test_disconnected_remote_is_rejected():
    graph = chain("alice", "bob")
    graph.add_node("island")
    head, ctx, _ = make("alice", graph)
    head.handle_above(NetRequest(request_id=0, remote_node="island"))
    assert "no path" in ctx.up[0].reason


def forward(number: int = 1, request_id: int = 0) -> Forward:
    return Forward(
        head="alice",
        request_id=request_id,
        path=["alice", "r", "bob"],
        number=number,
        type=RequestType.K,
        basis=Basis.Z,
        link_min_fidelity=0.0,
    )


def test_repeater_swaps_as_soon_as_both_sides_hold_a_pair_and_tells_both_ends():
    repeater, ctx, device = make("r", chain("alice", "r", "bob"))
    repeater.handle_peer("alice", forward())
    purpose = purpose_of("alice", 0)
    (create,) = ctx.take(LinkCreate)
    assert create.remote_node == "bob"
    device.bell_outcomes.append(BellState.PHI_MINUS)
    repeater.handle_below(link_ok("alice", 0, BellState.PSI_PLUS, purpose))
    assert not any(isinstance(op, BellMeasure) for op in device.ops)  # one side only: wait
    repeater.handle_below(link_ok("bob", 1, BellState.PSI_MINUS, purpose))
    assert BellMeasure(handle_a=0, handle_b=1) in device.ops
    records = [(dest, m) for dest, m in ctx.peer if isinstance(m, SwapRecord)]
    assert sorted(dest for dest, _ in records) == ["alice", "bob"]
    record = records[0][1]
    assert record.outcome is BellState.PHI_MINUS and record.position == 1
    assert record.upstream_bell_state is BellState.PSI_PLUS and record.downstream_bell_state is BellState.PSI_MINUS


def test_link_pair_that_arrives_before_the_forward_is_kept():
    repeater, ctx, device = make("r", chain("alice", "r", "bob"))
    purpose = purpose_of("alice", 0)
    repeater.handle_below(link_ok("alice", 0, BellState.PSI_PLUS, purpose))
    repeater.handle_peer("alice", forward())
    repeater.handle_below(link_ok("bob", 1, BellState.PSI_PLUS, purpose))
    assert any(isinstance(op, BellMeasure) for op in device.ops)


@pytest.mark.parametrize("swap, up, down", list(itertools.product(BellState, repeat=3))[::5])
def test_end_delivers_with_the_composed_pauli_frame(swap, up, down):
    tail, ctx, _ = make("bob", chain("alice", "r", "bob"))
    tail.handle_peer("alice", forward())
    purpose = purpose_of("alice", 0)
    tail.handle_below(link_ok("r", 2, down, purpose, goodness=0.8))
    assert ctx.take(PairDelivered) == []  # the swap record is still missing
    tail.handle_peer(
        "r",
        SwapRecord(
            head="alice",
            request_id=0,
            index=0,
            position=1,
            outcome=swap,
            upstream_bell_state=up,
            downstream_bell_state=down,
            upstream_goodness=0.9,
            downstream_goodness=0.8,
        ),
    )
    (pair,) = ctx.take(PairDelivered)
    assert pair.bell_state is up.compose(swap).compose(down)
    assert pair.pair_id == PairId(head="alice", tail="bob", request_id=0, index=0)
    assert pair.handle == 2 and pair.remote_node == "alice"
    assert pair.goodness == pytest.approx(werner_swap_fidelity(0.9, 0.8))


def test_direct_link_delivers_the_link_pair_as_is():
    head, ctx, _ = make("alice", chain("alice", "bob"))
    head.handle_above(NetRequest(request_id=0, remote_node="bob"))
    head.handle_below(link_ok("bob", 0, BellState.PSI_MINUS, purpose_of("alice", 0), goodness=0.77))
    (pair,) = ctx.take(PairDelivered)
    assert pair.bell_state is BellState.PSI_MINUS and pair.goodness == 0.77


def test_type_m_tail_flips_its_outcome_by_the_frame():
    """For PSI_PLUS (x=1) Z outcomes are anti-correlated: the tail flips its bit."""
    tail, ctx, device = make("bob", chain("alice", "bob"))
    tail.handle_peer(
        "alice",
        Forward(head="alice", request_id=0, path=["alice", "bob"], number=1, type=RequestType.M, basis=Basis.Z, link_min_fidelity=0),
    )
    device.measure_outcomes.append(0)
    tail.handle_below(link_ok("alice", 0, BellState.PSI_PLUS, purpose_of("alice", 0)))
    (pair,) = ctx.take(PairDelivered)
    assert pair.outcome == 1 and pair.bell_state is BellState.PHI_PLUS and pair.handle is None


def test_a_failed_link_request_ends_the_circuit_with_an_error_at_the_ends():
    head, ctx, _ = make("alice", chain("alice", "bob"))
    head.handle_above(NetRequest(request_id=0, remote_node="bob"))
    head.handle_below(LinkAck(create_id=9, remote_node="bob", purpose_id=purpose_of("alice", 0)))
    head.handle_below(LinkError(create_id=9, origin_node="alice", code=LinkErrorCode.TIMEOUT))
    (err,) = ctx.take(NetError)
    assert err.request_id == 0 and "TIMEOUT" in err.detail


def test_a_failure_frees_the_link_pairs_at_every_node_of_the_path():
    """The end that sees its link request fail tells every other node of the
    path; a repeater holding a link pair for the circuit frees it, and so does
    any node that gets a link pair for the circuit after it ended."""
    graph = chain("alice", "r", "bob")
    purpose = purpose_of("alice", 0)
    repeater, ctx, device = make("r", graph)
    repeater.handle_peer("alice", forward())
    repeater.handle_below(link_ok("alice", 2, BellState.PHI_PLUS, purpose))
    repeater.handle_below(LinkAck(create_id=5, remote_node="bob", purpose_id=purpose))
    repeater.handle_below(LinkError(create_id=5, origin_node="r", code=LinkErrorCode.TIMEOUT))
    told = sorted(dest for dest, m in ctx.peer if isinstance(m, CircuitFailed))
    assert told == ["alice", "bob"]
    assert [op.handle for op in device.ops if isinstance(op, FreeQubit)] == [2]
    # a late link pair of the ended circuit is freed at once, not kept for a Forward
    repeater.handle_below(link_ok("bob", 3, BellState.PHI_PLUS, purpose))
    assert [op.handle for op in device.ops if isinstance(op, FreeQubit)] == [2, 3]
    # the tail, told by the repeater, ends the request
    tail, tail_ctx, tail_device = make("bob", graph)
    tail.handle_peer("alice", forward())
    tail.handle_below(link_ok("r", 1, BellState.PHI_PLUS, purpose))
    tail.handle_peer("r", CircuitFailed(head="alice", request_id=0, detail="link to bob failed"))
    (err,) = tail_ctx.take(NetError)
    assert err.request_id == 0
    assert [op.handle for op in tail_device.ops if isinstance(op, FreeQubit)] == [1]


def test_one_hop_request_asks_its_link_once_and_bounds_it_by_its_deadline():
    """A one-hop circuit asks for all its pairs in one CREATE; with max_time_ns the
    link request ends 1 ns after the request's deadline (when the head has already
    ended it with TIMEOUT), so the link does not go on making unwanted pairs."""
    head, ctx, _ = make("alice", chain("alice", "bob"))
    head.handle_above(NetRequest(request_id=0, remote_node="bob", number=5, max_time_ns=1_000))
    (create,) = ctx.take(LinkCreate)
    assert create.number == 5 and create.max_time_ns == 1_001
    relayed, relay_ctx, _ = make("alice", chain("alice", "r", "bob"))
    relayed.handle_above(NetRequest(request_id=0, remote_node="bob", number=5, max_time_ns=1_000))
    (create,) = relay_ctx.take(LinkCreate)
    assert create.number == 1 and create.max_time_ns is None  # the circuit's own deadline ends it
