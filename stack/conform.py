"""Runs a layer's conformance suite against an implementation: ``qnetstack conform``.

The suites live in the layer packages (``<layer>.conformance.SUITE``); this
module only finds the suite and the implementation and turns problems with
either into one-line :class:`ConformError` s. Each clause has a time limit
(:data:`DEFAULT_CLAUSE_TIMEOUT` unless told otherwise), after which it fails
and the suite goes on.
"""

from __future__ import annotations

import importlib
from typing import Any

from qnetstack.entity.conformance import ConformanceReport, ImplementationError, Progress, Suite
from qnetstack.stack import registry

__all__ = ["ConformError", "DEFAULT_CLAUSE_TIMEOUT", "LAYERS", "suite_for", "run_conformance"]

LAYERS = registry.LAYERS
# seconds a clause may take: the slowest clause of a reference suite takes a few
# seconds, so this is room for a slow machine, not for a handler that never returns
DEFAULT_CLAUSE_TIMEOUT = 120.0


class ConformError(ValueError):
    """Bad input to the runner: unknown layer, missing implementation, wrong shape."""


def suite_for(layer: str) -> Suite:
    if layer not in LAYERS:
        raise ConformError(f"unknown layer {layer!r} (layers: {', '.join(LAYERS)})")
    return importlib.import_module(f"qnetstack.{layer}.conformance").SUITE


def run_conformance(
    layer: str,
    implementation: str | Any | None = None,
    select: list[str] | None = None,
    *,
    clause_timeout: float | None = DEFAULT_CLAUSE_TIMEOUT,
    progress: Progress | None = None,
) -> ConformanceReport:
    """Run ``layer``'s suite against ``implementation`` (a registered name,
    ``module:Class``, the class itself, or ``None`` for the reference).

    ``clause_timeout``: seconds each clause may take (``None``: no limit);
    ``progress`` hears of each clause as it ends (:class:`qnetstack.entity.conformance.TextReport`)."""
    if clause_timeout is not None and not clause_timeout > 0:
        raise ConformError(f"--clause-timeout: must be a positive number of seconds, got {clause_timeout}")
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
        return suite.run(impl, name=name, select=select, clause_timeout=clause_timeout, progress=progress)
    except ImplementationError as exc:
        raise ConformError(f"{name}: {exc}") from None
