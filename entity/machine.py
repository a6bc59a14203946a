"""Protocol state machines as data: states, events and the transition table.

Theory of operation
-------------------
The unit of protocol code is the *session*: a link request, a circuit end, a
circuit at a repeater, an application request. Each session is an object with
an explicit state. What it may do next is not spread over flags and counters:
it is one table, ``(state, event) -> next state``, written as data next to the
code that uses it (the style of h11's ``_state.py``).

* A :class:`Machine` is that table, with its initial state and its final
  states. It is immutable and shared by every session of its kind.
* A :class:`Session` holds one session's key (the id the messages carry end to
  end) and its current state. ``session.fire(event)`` looks the pair up: a
  pair that is not in the table is a bug or a peer breaking the protocol, and
  raises :class:`IllegalTransition` naming the machine, the session, the state
  and the event. Every transition is traced (event ``"transition"`` with the
  fields ``machine``, ``session``, ``from_state``, ``trigger`` and
  ``to_state``) when the context keeps a trace (:func:`transition_trace`; a run
  that keeps none skips the call), so a kept trace shows each session's life
  step by step.
* :meth:`Machine.mermaid` and :meth:`Machine.markdown_table` render a table for
  the docs, so the diagrams there are drawn from the code, not kept by hand.

A session's state says where it is in its protocol; what it has counted or
holds (pairs made, qubits, deadlines) stays in ordinary fields beside it.

Events naming a session that does not exist
-------------------------------------------
One rule for every layer (each spec repeats it with its own clause id): a
message from a peer entity or from the layer below that names a session the
entity does not hold (never opened here, or already ended) is *dropped*; it
changes nothing and is traced as ``unknown_session`` with the kind of message
and the key it named (:func:`drop_unknown`). Late messages of ended sessions
are normal in a network with delays, so they must not raise. A message that
*opens* a session (a CREATE, a circuit set-up) is not covered by the rule.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from qnetstack.entity import EntityError

__all__ = ["IllegalTransition", "Machine", "Session", "drop_unknown", "render_markdown", "transition_trace"]

TRANSITION = "transition"  # the trace event every fired transition records
UNKNOWN_SESSION = "unknown_session"  # the trace event of a dropped message


class IllegalTransition(EntityError):
    """An event that a session's state machine does not allow in its current state."""

    def __init__(self, machine: str, session: Hashable, state: enum.Enum, event: enum.Enum) -> None:
        self.machine = machine
        self.session = session
        self.state = state
        self.event = event
        super().__init__(f"{machine} session {session!r}: event {event.value!r} is not allowed in state {state.value!r}")


@dataclass(frozen=True)
class Machine:
    """A transition table with its initial and final states.

    ``transitions`` maps ``(state, event)`` to the next state; both are enum
    members (string enums, so traces and diagrams read as words). A final state
    has no way out: the table is checked for that when the machine is built.
    """

    name: str
    initial: enum.Enum
    transitions: Mapping[tuple[enum.Enum, enum.Enum], enum.Enum]
    final: frozenset[enum.Enum] = field(default_factory=frozenset)
    doc: str = ""
    moves: Mapping[enum.Enum, Mapping[enum.Enum, enum.Enum]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        leaving = {state for state, _ in self.transitions}
        trapped = leaving & self.final
        if trapped:
            names = ", ".join(sorted(s.value for s in trapped))
            raise ValueError(f"machine {self.name}: final states {names} have transitions out of them")
        reachable = {self.initial}
        frontier = [self.initial]
        while frontier:  # every state some sequence of events leads to from the initial one
            here = frontier.pop()
            for (state, _), target in self.transitions.items():
                if state is here and target not in reachable:
                    reachable.add(target)
                    frontier.append(target)
        dead = (leaving | set(self.final)) - reachable
        if dead:
            names = ", ".join(sorted(s.value for s in dead))
            raise ValueError(f"machine {self.name}: states {names} cannot be reached from {self.initial.value}")
        # The same table by state, for Session.fire: two plain lookups cost less than building
        # and hashing a (state, event) key, and fire runs several times for every pair.
        moves: dict[enum.Enum, dict[enum.Enum, enum.Enum]] = {state: {} for state in self.states}
        for (state, event), target in self.transitions.items():
            moves[state][event] = target
        object.__setattr__(self, "moves", moves)  # frozen: set once, here

    def next_state(self, session: Hashable, state: enum.Enum, event: enum.Enum) -> enum.Enum:
        """The state after ``event`` in ``state``; :class:`IllegalTransition` if the table has none."""
        try:
            return self.transitions[(state, event)]
        except KeyError:
            raise IllegalTransition(self.name, session, state, event) from None

    @property
    def states(self) -> list[enum.Enum]:
        """Every state, in the order of first appearance (initial first)."""
        seen: dict[enum.Enum, None] = {self.initial: None}
        for (state, _), target in self.transitions.items():
            seen.setdefault(state)
            seen.setdefault(target)
        for state in sorted(self.final, key=lambda s: s.value):
            seen.setdefault(state)
        return list(seen)

    def mermaid(self) -> str:
        """The table as a Mermaid ``stateDiagram-v2`` (GitHub and most doc tools draw it)."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial.value}"]
        for (state, event), target in self.transitions.items():
            lines.append(f"    {state.value} --> {target.value}: {event.value}")
        for state in sorted(self.final, key=lambda s: s.value):
            lines.append(f"    {state.value} --> [*]")
        return "\n".join(lines)

    def markdown_table(self) -> str:
        """The table as Markdown: one row per (state, event) pair the machine allows."""
        rows = ["| state | event | next state |", "|---|---|---|"]
        for (state, event), target in self.transitions.items():
            rows.append(f"| `{state.value}` | `{event.value}` | `{target.value}` |")
        return "\n".join(rows)


SessionKey = TypeVar("SessionKey", bound=Hashable)


class Session(Generic[SessionKey]):
    """One protocol session: its key, its machine and its current state.

    Subclasses set the class attribute ``machine`` and add their own fields;
    ``Session[K]`` says their keys are of type ``K``.
    ``trace`` is the owning entity's ``ctx.trace`` (or ``None`` in code that
    runs outside an entity, e.g. a unit test of the machine alone).
    """

    machine: ClassVar[Machine]
    __slots__ = ("key", "state", "_trace", "_moves")

    def __init__(self, key: SessionKey, trace: Callable[..., None] | None = None) -> None:
        machine = self.machine
        self.key = key
        self.state: Any = machine.initial
        self._trace = trace
        self._moves = machine.moves  # a slot reads faster than the class's machine, in fire

    def fire(self, event: enum.Enum, **details: Any) -> Any:
        """Take the transition for ``event``; raise :class:`IllegalTransition` if there is none."""
        # runs several times per pair through the stack: the lookup, nothing else when untraced
        state = self.state
        new = self._moves[state].get(event)  # every state of the machine has an entry
        if new is None:
            raise IllegalTransition(self.machine.name, self.key, state, event)
        if self._trace is not None:
            self._trace(
                TRANSITION,
                machine=self.machine.name,
                session=self.key,
                trigger=event.value,
                from_state=state.value,
                to_state=new.value,
                **details,
            )
        self.state = new
        return new

    @property
    def ended(self) -> bool:
        return self.state in self.machine.final

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} {self.state.value}>"


def transition_trace(ctx: Any) -> Callable[..., None] | None:
    """What a session built by an entity should trace its transitions with:
    ``ctx.trace``, or ``None`` when the context says it keeps no record of
    transitions (``ctx.keeps_transitions`` false, as in a run without a kept
    trace), which spares every transition a call that would be thrown away."""
    return ctx.trace if getattr(ctx, "keeps_transitions", True) else None


def drop_unknown(trace: Callable[..., None], kind: str, key: Hashable, **details: Any) -> None:
    """Apply the unknown-session rule: trace the dropped message, change nothing."""
    trace(UNKNOWN_SESSION, kind=kind, session=key, **details)


def render_markdown(machines: Iterable[Machine], title: str) -> str:
    """One Markdown section per machine: its doc, its Mermaid diagram and its table."""
    parts = [f"## {title}", ""]
    for machine in machines:
        parts += [f"### `{machine.name}`", ""]
        if machine.doc:
            parts += [machine.doc, ""]
        finals = ", ".join(f"`{s.value}`" for s in sorted(machine.final, key=lambda s: s.value)) or "none"
        parts += [f"Initial state `{machine.initial.value}`; final states {finals}.", ""]
        parts += ["```mermaid", machine.mermaid(), "```", "", machine.markdown_table(), ""]
    return "\n".join(parts)
