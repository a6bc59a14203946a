"""entity.machine: transition tables as data, sessions that refuse illegal events."""

from __future__ import annotations

import enum

import pytest

from qnetstack.entity import EntityError
from qnetstack.entity.machine import IllegalTransition, Machine, Session, drop_unknown, render_markdown


class S(enum.Enum):
    IDLE = "idle"
    BUSY = "busy"
    DONE = "done"


class E(enum.Enum):
    GO = "go"
    FINISH = "finish"
    ABORT = "abort"


DOOR = Machine(
    name="test.door",
    initial=S.IDLE,
    transitions={(S.IDLE, E.GO): S.BUSY, (S.BUSY, E.FINISH): S.DONE, (S.IDLE, E.ABORT): S.DONE, (S.BUSY, E.ABORT): S.DONE},
    final=frozenset({S.DONE}),
    doc="A door that opens once.",
)


class Door(Session):
    machine = DOOR
    __slots__ = ()


def test_fire_follows_the_table_and_traces_each_transition():
    traces = []
    door = Door(("alice", 7), trace=lambda event, **f: traces.append((event, f)))
    assert door.state is S.IDLE and not door.ended
    door.fire(E.GO)
    door.fire(E.FINISH, pairs=3)
    assert door.state is S.DONE and door.ended
    assert traces == [
        ("transition", {"machine": "test.door", "session": ("alice", 7), "trigger": "go", "from_state": "idle", "to_state": "busy"}),
        (
            "transition",
            {"machine": "test.door", "session": ("alice", 7), "trigger": "finish", "from_state": "busy", "to_state": "done", "pairs": 3},
        ),
    ]


def test_an_event_the_table_lacks_is_refused_naming_machine_session_state_and_event():
    door = Door("d1")
    door.fire(E.GO)
    door.fire(E.FINISH)
    with pytest.raises(IllegalTransition) as info:
        door.fire(E.GO)
    assert isinstance(info.value, EntityError)
    assert str(info.value) == "test.door session 'd1': event 'go' is not allowed in state 'done'"
    assert door.state is S.DONE  # a refused event changes nothing
    with pytest.raises(IllegalTransition):
        DOOR.next_state("d1", S.IDLE, E.FINISH)


def test_tables_with_a_way_out_of_a_final_state_or_unreachable_states_are_refused():
    with pytest.raises(ValueError, match="final states done have transitions"):
        Machine("bad", S.IDLE, {(S.IDLE, E.GO): S.DONE, (S.DONE, E.GO): S.IDLE}, frozenset({S.DONE}))
    with pytest.raises(ValueError, match="states busy cannot be reached"):
        Machine("bad", S.IDLE, {(S.IDLE, E.GO): S.DONE, (S.BUSY, E.FINISH): S.DONE}, frozenset({S.DONE}))
    # a loop of states that nothing leads into is unreachable too, though each is some transition's target
    with pytest.raises(ValueError, match="states busy, idle cannot be reached from done"):
        Machine("bad", S.DONE, {(S.IDLE, E.GO): S.BUSY, (S.BUSY, E.GO): S.IDLE})


def test_rendered_diagram_and_table_list_every_transition():
    mermaid = DOOR.mermaid()
    assert mermaid.splitlines()[:2] == ["stateDiagram-v2", "    [*] --> idle"]
    for (state, event), target in DOOR.transitions.items():
        assert f"    {state.value} --> {target.value}: {event.value}" in mermaid
        assert f"| `{state.value}` | `{event.value}` | `{target.value}` |" in DOOR.markdown_table()
    assert "    done --> [*]" in mermaid
    page = render_markdown([DOOR], "Test layer")
    assert "### `test.door`" in page and "A door that opens once." in page and "```mermaid" in page
    assert DOOR.states == [S.IDLE, S.BUSY, S.DONE]


def test_drop_unknown_traces_and_changes_nothing():
    traces = []
    drop_unknown(lambda event, **f: traces.append((event, f)), "LinkOkKeep", ("bob", 3), remote="bob")
    assert traces == [("unknown_session", {"kind": "LinkOkKeep", "session": ("bob", 3), "remote": "bob"})]


def test_transitions_are_kept_in_the_trace_records_but_not_counted():
    from qnetstack.stack.runtime import Trace

    kept = Trace(keep_records=True)
    kept.record(5, "alice", "link", "transition", {"machine": "m", "session": 1})
    kept.record(6, "alice", "link", "link.ok", {})
    assert dict(kept.counts) == {"link.ok": 1}
    assert [r["event"] for r in kept.records] == ["transition", "link.ok"]


def test_sessions_of_a_run_without_a_kept_trace_skip_the_transition_call():
    from qnetstack.entity.machine import transition_trace
    from qnetstack.stack.runtime import Network

    quiet = Network(1, {"n": {}}, keep_trace=False).make_context("n", "link")
    kept = Network(1, {"n": {}}, keep_trace=True).make_context("n", "link")
    assert transition_trace(quiet) is None
    assert transition_trace(kept) == kept.trace

    class Bare:  # a context that says nothing about it (e.g. a test harness) gets every transition
        def trace(self, event, **fields):
            pass

    bare = Bare()
    assert transition_trace(bare) == bare.trace
