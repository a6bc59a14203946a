"""State diagrams of every protocol session, rendered from the code's tables.

Each layer module that defines session state machines lists them in a
module-level tuple ``MACHINES`` (``qnetstack.entity.machine.Machine``). This
module finds those tuples by walking the layer packages, so a new module with
machines shows up in the docs without being registered anywhere, and renders
one Markdown page with a Mermaid diagram and a transition table per machine.
``qnetstack diagrams`` writes it to ``docs/state-machines.md``; a test fails
when the committed page and the code disagree.
"""

from __future__ import annotations

import importlib
import pkgutil

from qnetstack.entity.machine import Machine, render_markdown
from qnetstack.stack.registry import LAYERS

__all__ = ["LAYERS", "collect", "render"]


_HEADER = """# State machines

Every protocol session in qnetstack (a link request, a circuit end, a circuit
at a repeater, an application request, ...) is an object with an explicit
state. What it may do next is one table in the code, `(state, event) -> next
state` (`qnetstack.entity.machine`); an event the table lacks is refused with
an error naming the machine, the session, the state and the event, and every
transition is traced (event `transition`, kept in `qnetstack run --trace`).

This page is generated from those tables: do not edit it by hand, run
`qnetstack diagrams` (a test fails when it is stale). GitHub and most
Markdown tools draw the `mermaid` blocks as diagrams.

Messages that name a session the entity does not hold (never opened, or
already ended) follow one rule at every layer: they are dropped, change
nothing and are traced as `unknown_session` (the specs' `*-SESS-1` clauses).
"""


def collect(layer: str) -> list[Machine]:
    """Every ``Machine`` listed in a ``MACHINES`` tuple of the layer's modules, in module order."""
    found: list[Machine] = []
    for name in _module_names(f"qnetstack.{layer}"):
        module = importlib.import_module(name)
        for machine in getattr(module, "MACHINES", ()):
            if not isinstance(machine, Machine):
                raise TypeError(f"{name}.MACHINES holds {type(machine).__name__}, not a Machine")
            if all(machine is not seen for seen in found):
                found.append(machine)
    return found


def _module_names(package_name: str) -> list[str]:
    """The package's modules, depth first in name order, leaving out the
    ``conformance`` kits (they drive implementations and define no sessions;
    not descending into them also spares importing their suites)."""
    package = importlib.import_module(package_name)
    names = []
    for info in sorted(pkgutil.iter_modules(package.__path__, prefix=f"{package_name}."), key=lambda i: i.name):
        if info.name.rsplit(".", 1)[-1] == "conformance":
            continue
        names.append(info.name)
        if info.ispkg:
            names += _module_names(info.name)
    return names


def render() -> str:
    """The whole page: a section per layer that has machines."""
    parts = [_HEADER]
    for layer in LAYERS:
        machines = collect(layer)
        if machines:
            parts.append(render_markdown(machines, f"{layer.capitalize()} layer"))
    return "\n".join(parts).rstrip() + "\n"
