"""What every layer's conformance suite judges the same way.

Each layer's suite judges runs of its own harness against its own spec, but
some judgements do not depend on the layer: a run in which the implementation
raised fails the check with that exception; a finding about a message sent up
names the message, its node and its time; every message sent up must be one of
the service's responses and validate as one; an entity must refuse, with
:class:`~qnetstack.entity.EntityError`, input from above that it does not
serve; the misuse a harness records (operations on qubits that are not the
layer's own) fails the check. A property over generated scenarios runs the
same way in every layer: each drawn scenario (conditions, script, how long to
run) with a drawn seed, a crash failing it before the check judges the run.
A harness's run and its records of what was sent
up need only the attributes named here (``crashed``, ``misuse``; ``time_ns``,
``node``, ``msg``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from qnetstack.entity import EntityError
from qnetstack.entity.conformance import ClauseFailure, explore

__all__ = [
    "ENTITY_METHODS",
    "failure",
    "missing_methods",
    "no_misuse",
    "raise_if_crashed",
    "refuses_from_above",
    "still_held",
    "check_responses",
    "judge_runs",
]

ENTITY_METHODS = ("start", "handle_above", "handle_below", "handle_peer", "handle_timer")


def missing_methods(obj: Any) -> list[str]:
    """The methods of :class:`~qnetstack.entity.Entity` that ``obj`` lacks."""
    return [m for m in ENTITY_METHODS if not callable(getattr(obj, m, None))]


def raise_if_crashed(run: Any) -> None:
    """Raise the exception the implementation raised during ``run``, if any."""
    if run.crashed is not None:
        raise run.crashed


def failure(text: str, at: Any = None) -> ClauseFailure:
    """A finding, naming the message sent up it is about (``at``) when there is one."""
    where = f" (t={at.time_ns} ns at {at.node}: {at.msg!r})" if at is not None else ""
    return ClauseFailure(text + where)


def still_held(held_at_end: Mapping[str, Mapping[int, Any]], owner: str) -> dict[str, list[int]]:
    """The handles ``owner`` still holds at each node when the run ended (``held_at_end``:
    node -> handle -> owner), nodes where it holds none left out."""
    held = {node: sorted(h for h, o in book.items() if o == owner) for node, book in held_at_end.items()}
    return {node: handles for node, handles in held.items() if handles}


def no_misuse(run: Any, before: str = "") -> None:
    """Fail with the first three misuses the harness recorded in ``run``, if any."""
    if run.misuse:
        raise ClauseFailure(before + "; ".join(run.misuse[:3]))


def check_responses(sent_up: Iterable[Any], responses: tuple[type[BaseModel], ...], adapter: TypeAdapter[Any], service: str) -> None:
    """Every message in ``sent_up`` is one of ``responses`` and validates with ``adapter``
    (``service`` names them in a finding: "a link-service response")."""
    for up in sent_up:
        if not isinstance(up.msg, responses):
            raise failure(f"sent up a {type(up.msg).__name__}, which is not {service}", up)
        try:
            adapter.validate_python(up.msg.model_dump())
        except ValidationError as exc:
            raise failure(f"sent up a message that does not validate: {exc.errors()[0]['msg']}", up) from None


def refuses_from_above(entity: Any, msg: Any, what: str | None = None) -> None:
    """Hand ``entity`` (started) ``msg`` from above, which it does not serve: it must
    raise :class:`~qnetstack.entity.EntityError`. ``what`` describes ``msg`` in a
    finding (default: its repr)."""
    what = repr(msg) if what is None else what
    try:
        entity.handle_above(msg)
    except EntityError:
        return
    except Exception as exc:
        raise ClauseFailure(f"handle_above({what}) raised {type(exc).__name__}, not EntityError") from None
    raise ClauseFailure(f"handle_above({what}) was accepted silently")


def judge_runs(
    run: Callable[..., Any],
    impl: Any,
    scenarios: st.SearchStrategy[tuple[Any, list[Any], int]],
    check: Callable[[Any], None],
    examples: int,
) -> None:
    """Judge with ``check`` the runs of ``impl`` on ``examples`` scenarios drawn
    from ``scenarios``, each with a drawn seed. A scenario is (conditions, the
    scripted input, how long to run); ``run`` is the harness's run function,
    ``run(impl, conditions, script, until_ns=..., seed=...)``. A run in which
    the implementation raised fails with its exception before ``check`` sees it."""

    @explore(examples)
    @given(scenario=scenarios, seed=st.integers(0, 2**16))
    def prop(scenario: tuple[Any, list[Any], int], seed: int) -> None:
        conditions, script, horizon = scenario
        outcome = run(impl, conditions, script, until_ns=horizon, seed=seed)
        raise_if_crashed(outcome)
        check(outcome)

    prop()
