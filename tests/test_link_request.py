"""The link request's state machine (qnetstack.link.request) and its rendering in specs/link.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qnetstack.entity.machine import IllegalTransition
from qnetstack.link.peer import CREATE_TERMS, PeerCreate
from qnetstack.link.request import MACHINES, REQUEST_MACHINE, LinkRequest, RequestEvent, RequestState
from qnetstack.link.service import LinkCreate, RandomBasis, RequestType
from qnetstack.physical.service import Basis

SPEC = Path(__file__).resolve().parent.parent / "specs" / "link.md"
E, S = RequestEvent, RequestState


def test_the_machine_is_published_in_machines():
    assert MACHINES == (REQUEST_MACHINE,)
    assert REQUEST_MACHINE.initial is S.QUEUED
    assert REQUEST_MACHINE.final == {S.DONE, S.TIMED_OUT, S.REFUSED, S.DOWN, S.CANCELLED}


@pytest.mark.parametrize(
    "events, final",
    [
        ((E.FIRST_ATTEMPT, E.LAST_PAIR), S.DONE),
        ((E.FIRST_ATTEMPT, E.PAIR_HELD, E.LAST_PAIR), S.DONE),  # atomic
        ((E.FIRST_ATTEMPT, E.PAIR_HELD, E.DEADLINE), S.TIMED_OUT),
        ((E.DEADLINE,), S.TIMED_OUT),  # a deadline before the request ever got an attempt
        ((E.PEER_REFUSAL,), S.REFUSED),
        ((E.LINK_DOWN,), S.DOWN),  # the link was cut before the request got an attempt
        ((E.FIRST_ATTEMPT, E.PAIR_HELD, E.LINK_DOWN), S.DOWN),
        ((E.CANCEL,), S.CANCELLED),  # withdrawn before its first attempt
        ((E.FIRST_ATTEMPT, E.PAIR_HELD, E.CANCEL), S.CANCELLED),
    ],
)
def test_every_life_of_a_request_ends_in_a_final_state(events, final):
    traced: list[tuple[str, dict]] = []
    request = LinkRequest(create_id=3, origin="alice", remote="bob", trace=lambda e, **f: traced.append((e, f)))
    for event in events:
        request.fire(event)
    assert request.state is final and request.ended
    # one traced transition per event, naming the session by (origin, create_id)
    assert [f["trigger"] for _, f in traced] == [e.value for e in events]
    assert all(name == "transition" and f["session"] == ("alice", 3) for name, f in traced)


@pytest.mark.parametrize(
    "before, event",
    [
        ((), E.LAST_PAIR),  # no pair without an attempt
        ((), E.PAIR_HELD),
        ((E.FIRST_ATTEMPT,), E.FIRST_ATTEMPT),  # the first attempt happens once
        ((E.FIRST_ATTEMPT, E.PAIR_HELD), E.PEER_REFUSAL),  # the responder refuses before any pair exists
        ((E.FIRST_ATTEMPT, E.LAST_PAIR), E.DEADLINE),  # nothing leaves a final state
        ((E.DEADLINE,), E.FIRST_ATTEMPT),
        ((E.PEER_REFUSAL,), E.PEER_REFUSAL),
        ((E.LINK_DOWN,), E.LINK_DOWN),
    ],
)
def test_illegal_events_are_refused_and_leave_the_state_alone(before, event):
    request = LinkRequest(create_id=0, origin="bob", remote="bob")
    for e in before:
        request.fire(e)
    state = request.state
    with pytest.raises(IllegalTransition) as raised:
        request.fire(event)
    assert request.state is state
    assert raised.value.machine == "link-request" and raised.value.session == ("bob", 0)
    assert raised.value.state is state and raised.value.event is event


def test_a_request_from_a_peer_create_keeps_what_was_asked_and_starts_counting_from_zero():
    msg = PeerCreate(
        create_id=7, origin_node="alice", purpose_id=2, number=3, min_fidelity=0.8, type=RequestType.M, basis=Basis.X,
        start_ns=2_001, deadline_ns=9_000, priority=1, atomic=False, consecutive=True, bright_state_population=0.1,
    )  # fmt: skip
    request = LinkRequest.from_peer_create(msg, remote="alice")
    assert request.key == ("alice", 7) and request.remote == "alice" and request.state is S.QUEUED
    assert (request.number, request.type, request.basis, request.priority, request.consecutive, request.alpha) == (
        3, RequestType.M, Basis.X, 1, True, 0.1,
    )  # fmt: skip
    assert request.order == (2_001, "alice", 7)
    assert (request.made, request.in_flight, request.last_pair, request.tag) == (0, 0, -1, None)
    assert request.unattempted == 3
    assert not request.ready(2_000) and request.ready(2_001)


def test_every_term_of_a_create_reaches_the_request_at_both_ends():
    """The EGP copies the CREATE_TERMS of a LinkCreate into its PeerCreate, and
    each end copies them into its request, each under its own name."""
    assert set(LinkCreate.model_fields) - set(CREATE_TERMS) == {"kind", "remote_node", "max_time_ns", "tag"}
    asked = dict(
        purpose_id=2, number=3, min_fidelity=0.8, type=RequestType.M, basis=Basis.X, remote_basis=Basis.Y,
        random_basis=RandomBasis.XZ, remote_random_basis=RandomBasis.XYZ, priority=1, atomic=True, consecutive=True,
    )  # fmt: skip
    assert set(asked) == set(CREATE_TERMS)
    msg = PeerCreate(create_id=7, origin_node="alice", start_ns=2_001, deadline_ns=None, **asked)
    request = LinkRequest.from_peer_create(msg, remote="alice")
    assert {term: getattr(request, term) for term in CREATE_TERMS} == asked


def test_the_spec_shows_the_machine_the_code_runs():
    """specs/link.md §5 carries the rendering of REQUEST_MACHINE, verbatim."""
    text = SPEC.read_text(encoding="utf-8")
    block = re.search(r"<!-- rendered from qnetstack.link.request.MACHINES[^>]*-->\n(.*?)<!-- end of rendered machine -->", text, re.S)
    assert block is not None, "specs/link.md lost its rendered request machine"
    expected = f"```mermaid\n{REQUEST_MACHINE.mermaid()}\n```\n\n{REQUEST_MACHINE.markdown_table()}\n"
    assert block.group(1) == expected, "specs/link.md §5 differs from qnetstack.link.request.REQUEST_MACHINE: re-render it"
