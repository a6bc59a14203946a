"""The reference network layer driven alone: fake link layer and device, no kernel."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

from qnetstack.entity.machine import IllegalTransition
from qnetstack.link.service import EntanglementId, LinkAck, LinkCreate, LinkError, LinkErrorCode, LinkOkKeep, RequestType
from qnetstack.network.circuit import LabelsExhausted, LabelTable
from qnetstack.network.peer import LABELS, Reserve, Reserved
from qnetstack.network.service import NetAccepted, NetError, NetErrorCode, NetRejected, NetRequest, PairDelivered, PairId
from qnetstack.network.swap_asap import CircuitFailed, Forward, SwapAsap, SwapRecord, werner_swap_fidelity
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


def accept(head: SwapAsap, ctx: FakeContext, request: NetRequest) -> None:
    """Send ``request`` to ``head`` and grant each reservation it asks of the nodes of the path
    (as nodes with free memory would), so the circuit is set up."""
    head.handle_above(request)
    answered = 0
    while True:
        asked = [(dest, m) for dest, m in ctx.peer if isinstance(m, Reserve)]
        if len(asked) == answered:
            return
        for dest, reserve in asked[answered:]:
            answered += 1
            head.handle_peer(dest, Reserved(head=reserve.head, circuit=reserve.circuit, node=dest))


def ent(creator: str, peer: str, seq: int) -> EntanglementId:
    return EntanglementId(creator=creator, peer=peer, sequence=seq)


def link_ok(
    remote: str,
    handle: int,
    state: BellState,
    label: int,
    origin: str,
    goodness: float = 0.9,
    seq: int = 0,
    create_id: int = 0,
    at: str = "r",
) -> LinkOkKeep:
    """A link pair at node ``at`` with ``remote``, made by a CREATE of ``origin`` under ``label``."""
    peer = remote if origin != remote else at
    return LinkOkKeep(
        create_id=create_id,
        origin_node=origin,
        ent_id=ent(origin, peer, seq),
        purpose_id=label,
        remote_node=remote,
        bell_state=state,
        goodness=goodness,
        goodness_time_ns=0,
        handle=handle,
    )


def unknown_sessions(ctx: FakeContext) -> list[dict]:
    return [fields for event, fields in ctx.traces if event == "unknown_session"]


def test_head_accepts_sets_up_hop_by_hop_and_asks_its_link_under_its_label_and_a_tag():
    graph = chain("alice", "r", "bob")
    head, ctx, _ = make("alice", graph)
    accept(head, ctx, NetRequest(request_id=4, remote_node="bob", number=3))
    (accepted,) = ctx.take(NetAccepted)
    assert accepted.path == ["alice", "r", "bob"]
    # the Forward goes to the next node only: r chooses the label of the hop r-bob and passes it on
    assert [dest for dest, m in ctx.peer if isinstance(m, Forward)] == ["r"]
    (forward,) = ctx.take(Forward)
    (create,) = ctx.take(LinkCreate)
    # one link pair at a time, so a fast link cannot fill the memories (SwapAsapPolicy)
    assert create.remote_node == "r" and create.number == 1 and create.type is RequestType.K
    assert create.purpose_id == forward.label and create.tag is not None


def test_a_repeater_passes_the_forward_on_with_its_own_label():
    repeater, ctx, _ = make("r", chain("alice", "r", "bob"))
    repeater.handle_peer("alice", forward(label=7))
    ((dest, passed),) = [(d, m) for d, m in ctx.peer if isinstance(m, Forward)]
    (create,) = ctx.take(LinkCreate)
    assert dest == "bob" and passed.label == create.purpose_id
    assert passed.model_copy(update={"label": 7}) == forward(label=7)


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


def forward(number: int = 1, request_id: int = 0, label: int = 0, kind: RequestType = RequestType.K) -> Forward:
    return Forward(
        head="alice",
        circuit=request_id,
        request_id=request_id,
        path=["alice", "r", "bob"],
        number=number,
        type=kind,
        basis=Basis.Z,
        link_min_fidelity=0.0,
        label=label,
    )


def record(
    up: EntanglementId, down: EntanglementId, swap: BellState, up_state: BellState, down_state: BellState, swap_index: int = 0
) -> SwapRecord:
    return SwapRecord(
        head="alice",
        circuit=0,
        request_id=0,
        position=1,
        swap_index=swap_index,
        outcome=swap,
        upstream_ent_id=up,
        downstream_ent_id=down,
        upstream_bell_state=up_state,
        downstream_bell_state=down_state,
        upstream_goodness=0.9,
        downstream_goodness=0.8,
    )


def test_repeater_swaps_as_soon_as_both_sides_hold_a_pair_and_names_them_to_both_ends():
    repeater, ctx, device = make("r", chain("alice", "r", "bob"))
    repeater.handle_peer("alice", forward(label=5))
    (create,) = ctx.take(LinkCreate)
    assert create.remote_node == "bob"
    device.bell_outcomes.append(BellState.PHI_MINUS)
    repeater.handle_below(link_ok("alice", 0, BellState.PSI_PLUS, 5, origin="alice", seq=11))
    assert not any(isinstance(op, BellMeasure) for op in device.ops)  # one side only: wait
    repeater.handle_below(link_ok("bob", 1, BellState.PSI_MINUS, create.purpose_id, origin="r", seq=12))
    assert BellMeasure(handle_a=0, handle_b=1) in device.ops
    records = [(dest, m) for dest, m in ctx.peer if isinstance(m, SwapRecord)]
    assert sorted(dest for dest, _ in records) == ["alice", "bob"]
    rec = records[0][1]
    assert rec.outcome is BellState.PHI_MINUS and rec.position == 1 and rec.swap_index == 0
    assert rec.upstream_ent_id == ent("alice", "r", 11) and rec.downstream_ent_id == ent("r", "bob", 12)
    assert rec.upstream_bell_state is BellState.PSI_PLUS and rec.downstream_bell_state is BellState.PSI_MINUS


def test_link_pairs_of_circuits_with_the_same_label_from_different_creators_stay_apart():
    """Two circuits through r from alice and from carol, both labelled 0 by their
    creators: the hop key (neighbour, creator, label) keeps their pairs apart."""
    graph = chain("alice", "r", "bob")
    graph.add_edge("carol", "r", length_km=10.0)
    repeater, ctx, device = make("r", graph)
    repeater.handle_peer("alice", forward(label=0))
    repeater.handle_peer(
        "carol",
        Forward(
            head="carol",
            circuit=0,
            request_id=0,
            path=["carol", "r", "bob"],
            number=1,
            type=RequestType.K,
            basis=Basis.Z,
            link_min_fidelity=0.0,
            label=0,
        ),
    )
    creates = ctx.take(LinkCreate)
    assert len({c.purpose_id for c in creates}) == 2  # r labels its two circuits on r-bob apart
    repeater.handle_below(link_ok("carol", 0, BellState.PHI_PLUS, 0, origin="carol", seq=1))
    repeater.handle_below(link_ok("bob", 1, BellState.PHI_PLUS, creates[0].purpose_id, origin="r", seq=2))
    assert not any(isinstance(op, BellMeasure) for op in device.ops)  # carol's pair is not alice's circuit's
    repeater.handle_below(link_ok("alice", 2, BellState.PHI_PLUS, 0, origin="alice", seq=3))
    assert BellMeasure(handle_a=2, handle_b=1) in device.ops


def test_link_pair_that_arrives_before_the_forward_is_kept():
    repeater, ctx, device = make("r", chain("alice", "r", "bob"))
    repeater.handle_below(link_ok("alice", 0, BellState.PSI_PLUS, 3, origin="alice", seq=1))
    repeater.handle_peer("alice", forward(label=3))
    (create,) = ctx.take(LinkCreate)
    repeater.handle_below(link_ok("bob", 1, BellState.PSI_PLUS, create.purpose_id, origin="r", seq=2))
    assert any(isinstance(op, BellMeasure) for op in device.ops)


@pytest.mark.parametrize("swap, up, down", list(itertools.product(BellState, repeat=3))[::5])
def test_end_delivers_with_the_composed_pauli_frame(swap, up, down):
    tail, ctx, _ = make("bob", chain("alice", "r", "bob"))
    tail.handle_peer("r", forward(label=9))
    tail.handle_below(link_ok("r", 2, down, 9, origin="r", goodness=0.8, seq=4, at="bob"))
    assert ctx.take(PairDelivered) == []  # the swap record is still missing
    tail.handle_peer("r", record(ent("alice", "r", 3), ent("r", "bob", 4), swap, up, down))
    (pair,) = ctx.take(PairDelivered)
    assert pair.bell_state is up.compose(swap).compose(down)
    assert pair.pair_id == PairId(head="alice", tail="bob", request_id=0, index=0)
    assert pair.handle == 2 and pair.remote_node == "alice"
    assert pair.goodness == pytest.approx(werner_swap_fidelity(0.9, 0.8))


def test_an_end_joins_link_pairs_to_swap_records_by_ent_id_not_by_arrival_order():
    """The tail holds two link pairs; the record of the one that arrived second comes
    first. It is delivered with that record's frame and index, the other waits."""
    tail, ctx, _ = make("bob", chain("alice", "r", "bob"))
    tail.handle_peer("r", forward(number=2, label=9))
    tail.handle_below(link_ok("r", 2, BellState.PHI_PLUS, 9, origin="r", seq=40, at="bob"))
    tail.handle_below(link_ok("r", 3, BellState.PSI_PLUS, 9, origin="r", seq=41, at="bob"))
    tail.handle_peer(
        "r", record(ent("alice", "r", 30), ent("r", "bob", 41), BellState.PHI_MINUS, BellState.PHI_PLUS, BellState.PSI_PLUS, swap_index=0)
    )
    (pair,) = ctx.take(PairDelivered)
    assert pair.handle == 3 and pair.pair_id.index == 0
    assert pair.bell_state is BellState.PSI_PLUS.compose(BellState.PHI_MINUS)
    tail.handle_peer(
        "r", record(ent("alice", "r", 31), ent("r", "bob", 40), BellState.PHI_PLUS, BellState.PHI_PLUS, BellState.PHI_PLUS, swap_index=1)
    )
    second = ctx.take(PairDelivered)[1]
    assert second.handle == 2 and second.pair_id.index == 1 and second.bell_state is BellState.PHI_PLUS


def test_direct_link_delivers_the_link_pair_as_is():
    head, ctx, _ = make("alice", chain("alice", "bob"))
    accept(head, ctx, NetRequest(request_id=0, remote_node="bob"))
    (create,) = ctx.take(LinkCreate)
    head.handle_below(link_ok("bob", 0, BellState.PSI_MINUS, create.purpose_id, origin="alice", goodness=0.77))
    (pair,) = ctx.take(PairDelivered)
    assert pair.bell_state is BellState.PSI_MINUS and pair.goodness == 0.77


def test_type_m_tail_flips_its_outcome_by_the_frame():
    """For PSI_PLUS (x=1) Z outcomes are anti-correlated: the tail flips its bit."""
    tail, ctx, device = make("bob", chain("alice", "bob"))
    tail.handle_peer(
        "alice",
        Forward(
            head="alice",
            circuit=0,
            request_id=0,
            path=["alice", "bob"],
            number=1,
            type=RequestType.M,
            basis=Basis.Z,
            link_min_fidelity=0,
            label=0,
        ),
    )
    device.measure_outcomes.append(0)
    tail.handle_below(link_ok("alice", 0, BellState.PSI_PLUS, 0, origin="alice"))
    (pair,) = ctx.take(PairDelivered)
    assert pair.outcome == 1 and pair.bell_state is BellState.PHI_PLUS and pair.handle is None


def test_link_answers_are_matched_to_circuits_by_tag_not_by_order():
    """Two circuits ask the same link; the ERR answering the second CREATE (by its
    tag) fails the second circuit only, even though the ACKs came in another order."""
    head, ctx, _ = make("alice", chain("alice", "bob"))
    accept(head, ctx, NetRequest(request_id=0, remote_node="bob"))
    accept(head, ctx, NetRequest(request_id=1, remote_node="bob"))
    first, second = ctx.take(LinkCreate)
    assert first.tag != second.tag and first.purpose_id != second.purpose_id
    head.handle_below(LinkAck(create_id=8, remote_node="bob", purpose_id=second.purpose_id, tag=second.tag))
    head.handle_below(LinkAck(create_id=9, remote_node="bob", purpose_id=first.purpose_id, tag=first.tag))
    head.handle_below(LinkError(create_id=8, origin_node="alice", code=LinkErrorCode.TIMEOUT, tag=second.tag))
    (err,) = ctx.take(NetError)
    assert err.request_id == 1 and "TIMEOUT" in err.detail
    head.handle_below(link_ok("bob", 0, BellState.PHI_PLUS, first.purpose_id, origin="alice", create_id=9))
    (pair,) = ctx.take(PairDelivered)
    assert pair.pair_id.request_id == 0


def test_a_failed_link_request_ends_the_circuit_with_an_error_at_the_ends():
    head, ctx, _ = make("alice", chain("alice", "bob"))
    accept(head, ctx, NetRequest(request_id=0, remote_node="bob"))
    (create,) = ctx.take(LinkCreate)
    head.handle_below(LinkAck(create_id=9, remote_node="bob", purpose_id=create.purpose_id, tag=create.tag))
    head.handle_below(LinkError(create_id=9, origin_node="alice", code=LinkErrorCode.TIMEOUT, tag=create.tag))
    (err,) = ctx.take(NetError)
    assert err.request_id == 0 and "TIMEOUT" in err.detail


def test_a_failure_frees_the_link_pairs_at_every_node_of_the_path():
    """The node that sees its link request fail tells every other node of the
    path; a repeater holding a link pair for the circuit frees it, and so does
    any node that gets a link pair for the circuit after it ended."""
    graph = chain("alice", "r", "bob")
    repeater, ctx, device = make("r", graph)
    repeater.handle_peer("alice", forward(label=0))
    (create,) = ctx.take(LinkCreate)
    repeater.handle_below(link_ok("alice", 2, BellState.PHI_PLUS, 0, origin="alice", seq=1))
    repeater.handle_below(LinkAck(create_id=5, remote_node="bob", purpose_id=create.purpose_id, tag=create.tag))
    repeater.handle_below(LinkError(create_id=5, origin_node="r", code=LinkErrorCode.TIMEOUT, tag=create.tag))
    told = sorted(dest for dest, m in ctx.peer if isinstance(m, CircuitFailed))
    assert told == ["alice", "bob"]
    assert [op.handle for op in device.ops if isinstance(op, FreeQubit)] == [2]
    # a late link pair of the ended circuit is freed at once, not kept for a Forward (NET-SESS-1)
    repeater.handle_below(link_ok("alice", 3, BellState.PHI_PLUS, 0, origin="alice", seq=2))
    assert [op.handle for op in device.ops if isinstance(op, FreeQubit)] == [2, 3]
    assert unknown_sessions(ctx)[-1]["kind"] == "ok_keep"
    # the tail, told by the repeater, ends the request
    tail, tail_ctx, tail_device = make("bob", graph)
    tail.handle_peer("r", forward(label=create.purpose_id))
    tail.handle_below(link_ok("r", 1, BellState.PHI_PLUS, create.purpose_id, origin="r", seq=3))
    tail.handle_peer("r", CircuitFailed(head="alice", circuit=0, request_id=0, detail="link to bob failed", path=("alice", "r", "bob")))
    (err,) = tail_ctx.take(NetError)
    assert err.request_id == 0
    assert [op.handle for op in tail_device.ops if isinstance(op, FreeQubit)] == [1]


def test_a_circuit_failure_is_passed_on_downstream_even_by_a_node_that_finished_the_circuit():
    """r has done its one swap (its session ended); the head's CircuitFailed still
    reaches the nodes after r, which may be waiting for pairs."""
    graph = chain("alice", "r", "s", "bob")
    repeater, ctx, _ = make("r", graph)
    failed = CircuitFailed(
        head="alice", circuit=0, request_id=0, detail="max_time_ns ran out", code=NetErrorCode.TIMEOUT, path=("alice", "r", "s", "bob")
    )
    repeater.handle_peer("alice", failed)
    assert ctx.peer == [("s", failed)]
    assert unknown_sessions(ctx)[0]["kind"] == "circuit_failed"
    repeater.handle_peer("s", failed)  # from downstream: not passed back
    assert len(ctx.peer) == 1


def test_messages_naming_unknown_sessions_change_nothing():
    """NET-SESS-1: a swap record or circuit failure for a circuit never set up here,
    and a link ACK or ERR whose tag names no link request of ours, are dropped and traced."""
    head, ctx, device = make("alice", chain("alice", "r", "bob"))
    head.handle_peer("r", record(ent("alice", "r", 1), ent("r", "bob", 2), BellState.PHI_PLUS, BellState.PHI_PLUS, BellState.PHI_PLUS))
    head.handle_peer("r", CircuitFailed(head="alice", circuit=0, request_id=0, detail="?", path=("alice", "r", "bob")))
    head.handle_below(LinkAck(create_id=3, remote_node="r", purpose_id=0, tag=77))
    head.handle_below(LinkError(create_id=3, origin_node="alice", code=LinkErrorCode.TIMEOUT, tag=77))
    assert [f["kind"] for f in unknown_sessions(ctx)] == ["swap_record", "circuit_failed", "ack", "error"]
    assert ctx.up == [] and ctx.down == [] and ctx.peer == [] and device.ops == []


def test_one_hop_request_asks_its_link_once_and_bounds_it_by_its_deadline():
    """A one-hop circuit asks for all its pairs in one CREATE; with max_time_ns the
    link request ends 1 ns after the request's deadline (when the head has already
    ended it with TIMEOUT), so the link does not go on making unwanted pairs."""
    head, ctx, _ = make("alice", chain("alice", "bob"))
    accept(head, ctx, NetRequest(request_id=0, remote_node="bob", number=5, max_time_ns=1_000))
    (create,) = ctx.take(LinkCreate)
    assert create.number == 5 and create.max_time_ns == 1_001
    relayed, relay_ctx, _ = make("alice", chain("alice", "r", "bob"))
    accept(relayed, relay_ctx, NetRequest(request_id=0, remote_node="bob", number=5, max_time_ns=1_000))
    (create,) = relay_ctx.take(LinkCreate)
    assert create.number == 1 and create.max_time_ns is None  # the circuit's own deadline ends it


# ------------------------------------------------------------------ labels


def test_labels_are_handed_out_round_robin_and_never_wrap_around():
    table = LabelTable("r")
    first = table.acquire("bob")
    second = table.acquire("bob")
    table.release("bob", first)
    assert table.acquire("bob") == second + 1  # a label just released is the last to come back
    assert table.acquire("alice") == 0  # each link has its own labels
    for _ in range(LABELS - 2):
        table.acquire("bob")
    assert table.in_use("bob") == LABELS
    with pytest.raises(LabelsExhausted, match="65536"):
        table.acquire("bob")
    table.release("bob", 123)
    assert table.acquire("bob") == 123


def test_a_label_stays_taken_while_a_link_request_under_it_runs():
    head, ctx, _ = make("alice", chain("alice", "bob"))
    accept(head, ctx, NetRequest(request_id=0, remote_node="bob", number=2, max_time_ns=1_000))
    (create,) = ctx.take(LinkCreate)
    ctx.advance(head, 1_000)  # the circuit times out; its link request still runs
    assert ctx.take(NetError)[0].code is NetErrorCode.TIMEOUT
    assert head.labels.in_use("bob") == 1
    head.handle_below(LinkAck(create_id=0, remote_node="bob", purpose_id=create.purpose_id, tag=create.tag))
    head.handle_below(LinkError(create_id=0, origin_node="alice", code=LinkErrorCode.TIMEOUT, tag=create.tag))
    assert head.labels.in_use("bob") == 0


def test_a_head_without_a_free_label_refuses_the_request():
    head, ctx, _ = make("alice", chain("alice", "bob"))
    for _ in range(LABELS):
        head.labels.acquire("bob")
    head.handle_above(NetRequest(request_id=0, remote_node="bob"))
    (rejected,) = ctx.up
    assert isinstance(rejected, NetRejected) and "in use" in rejected.reason and ctx.down == []


def test_a_repeater_without_a_free_label_ends_the_circuit_with_nores():
    """The upstream nodes are told with CircuitFailed NORES, the Forward goes on
    marked refused, and the tail reports NetError NORES without asking any link."""
    repeater, ctx, _ = make("r", chain("alice", "r", "bob"))
    for _ in range(LABELS):
        repeater.labels.acquire("bob")
    repeater.handle_peer("alice", forward(label=0))
    assert ctx.down == []
    ((to_alice, failed),) = [(d, m) for d, m in ctx.peer if isinstance(m, CircuitFailed)]
    ((to_bob, refused),) = [(d, m) for d, m in ctx.peer if isinstance(m, Forward)]
    assert (to_alice, failed.code) == ("alice", NetErrorCode.NORES)
    assert to_bob == "bob" and refused.refused is NetErrorCode.NORES
    # the late link pair alice's CREATE made for the circuit is freed at r
    repeater.handle_below(link_ok("alice", 0, BellState.PHI_PLUS, 0, origin="alice"))
    assert FreeQubit(handle=0) in repeater.ctx.device.ops
    tail, tail_ctx, _ = make("bob", chain("alice", "r", "bob"))
    tail.handle_peer("r", refused)
    (err,) = tail_ctx.take(NetError)
    assert err.code is NetErrorCode.NORES and tail_ctx.down == []


def test_a_circuit_session_refuses_an_event_its_machine_lacks():
    head, _, _ = make("alice", chain("alice", "bob"))
    head.handle_above(NetRequest(request_id=0, remote_node="bob"))
    (circuit,) = head._circuits.values()
    from qnetstack.network.circuit import CircuitEvent

    with pytest.raises(IllegalTransition, match="swap"):
        circuit.fire(CircuitEvent.SWAP)  # an end never swaps


def test_a_refused_set_up_leaves_the_live_circuits_of_the_hop_alone():
    """bob runs a circuit whose hop from r has label 0; a refused Forward passed on
    by r still carries label 0 (the label of the hop *into* the refusing node): it
    must not take over the hop, so the live circuit's pair is still delivered."""
    tail, ctx, _ = make("bob", chain("alice", "r", "bob"))
    tail.handle_peer("r", forward(request_id=0, label=0))
    refused = forward(request_id=1, label=0).model_copy(update={"refused": NetErrorCode.NORES, "detail": "no label"})
    tail.handle_peer("r", refused)
    assert [e.request_id for e in ctx.take(NetError)] == [1]
    tail.handle_below(link_ok("r", 2, BellState.PHI_PLUS, 0, origin="r", seq=4, at="bob"))
    tail.handle_peer("r", record(ent("alice", "r", 3), ent("r", "bob", 4), BellState.PHI_PLUS, BellState.PHI_PLUS, BellState.PHI_PLUS))
    (pair,) = ctx.take(PairDelivered)
    assert pair.pair_id.request_id == 0 and pair.handle == 2


def test_a_request_id_reused_at_the_head_does_not_clash_with_its_old_circuit_at_the_tail():
    """The head may reuse a request id once its request has ended there (NET-REQ-3)
    while the tail still runs the old circuit: circuits are named by the head's
    serial number, so the tail holds both and serves each with its own pairs."""
    tail, ctx, _ = make("bob", chain("alice", "bob"))
    old = Forward(
        head="alice",
        circuit=0,
        request_id=0,
        path=["alice", "bob"],
        number=1,
        type=RequestType.K,
        basis=Basis.Z,
        link_min_fidelity=0,
        label=0,
    )
    tail.handle_peer("alice", old)
    tail.handle_peer("alice", old.model_copy(update={"circuit": 1, "label": 1, "number": 2}))
    tail.handle_below(link_ok("alice", 5, BellState.PSI_PLUS, 1, origin="alice", seq=1, at="bob"))
    tail.handle_below(link_ok("alice", 6, BellState.PHI_PLUS, 0, origin="alice", seq=2, at="bob"))
    first, second = ctx.take(PairDelivered)
    assert (first.handle, first.bell_state) == (5, BellState.PSI_PLUS)
    assert (second.handle, second.bell_state) == (6, BellState.PHI_PLUS)
    assert len(tail._circuits) == 1  # the old circuit is done, the new one waits for its second pair


def test_the_entity_routes_by_the_metric_it_is_configured_with():
    """a-b-c is 2 hops and 20 km, a-d-e-c 3 hops and 3 km: the reference takes the
    short fibre, an entity configured with the hop-count metric the short hop count."""
    from qnetstack.network.node import NetworkNode

    graph = chain("a", "b", "c")
    graph.add_edge("a", "d", length_km=1.0)
    graph.add_edge("d", "e", length_km=1.0)
    graph.add_edge("e", "c", length_km=1.0)
    reference, ctx, _ = make("a", graph)
    reference.handle_above(NetRequest(request_id=0, remote_node="c"))
    assert ctx.take(NetAccepted)[0].path == ["a", "d", "e", "c"]
    by_hops_ctx = FakeContext("a", FakeDevice("a"))
    by_hops = NetworkNode(by_hops_ctx, graph, policy="swap-asap", metric="hops")
    by_hops.handle_above(NetRequest(request_id=0, remote_node="c"))
    assert by_hops_ctx.take(NetAccepted)[0].path == ["a", "b", "c"]
