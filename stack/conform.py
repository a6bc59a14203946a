"""Runs a layer's conformance suite against an implementation: ``qnetstack conform``.

The suites live in the layer packages (``<layer>.conformance.SUITE``); this
module only finds the suite and the implementation and turns problems with
either into one-line :class:`ConformError` s.
"""

from __future__ import annotations

import importlib
from typing import Any

from qnetstack.entity.conformance import ConformanceReport, ImplementationError, Suite
from qnetstack.stack import registry

__all__ = ["ConformError", "LAYERS", "suite_for", "run_conformance"]

LAYERS = registry.LAYERS


class ConformError(ValueError):
    """Bad input to the runner: unknown layer, missing implementation, wrong shape."""


def suite_for(layer: str) -> Suite:
    if layer not in LAYERS:
        raise ConformError(f"unknown layer {layer!r} (layers: {', '.join(LAYERS)})")
    return importlib.import_module(f"qnetstack.{layer}.conformance").SUITE


def run_conformance(layer: str, implementation: str | Any | None = None, select: list[str] | None = None) -> ConformanceReport:
    """Run ``layer``'s suite against ``implementation`` (a registered name,
    ``module:Class``, the class itself, or ``None`` for the reference)."""
    suite = suite_for(layer)
    spec = suite.reference if implementation is None else implementation
    try:
        impl = registry.resolve(layer, spec)
    except registry.RegistryError as exc:
        raise ConformError(str(exc)) from None
    name = spec if isinstance(spec, str) else f"{getattr(impl, '__module__', '?')}:{getattr(impl, '__qualname__', impl)}"
    if select:
        unknown = sorted(set(select) - suite.clause_ids)
        if unknown:
            raise ConformError(f"no clause {', '.join(unknown)} in the {layer} suite (see {suite.spec})")
    try:
        return suite.run(impl, name=name, select=select)
    except ImplementationError as exc:
        raise ConformError(f"{name}: {exc}") from None
