"""Registry of layer implementations, found by name.

Three ways to name an implementation for a layer:

* a registered name: the built-ins below, or any that an installed package
  declares under the entry-point group ``qnetstack.<layer>`` (e.g. in its
  ``pyproject.toml``: ``[project.entry-points."qnetstack.link"] my-egp = "pkg.mod:MyEgp"``);
* an import path ``module:Class`` (``module`` a dotted module name, ``Class``
  an attribute of it, dotted for a nested one);
* the class itself (from Python code).

Resolving an import path imports the module, which runs its code; scenario
files may name registered implementations only unless the user allows imports
(``qnetstack.stack.scenario.load_scenario``). Whatever the module does on
import (raises, has a syntax error, exits) ends as one :class:`RegistryError`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from qnetstack.stack.messages import cut, listing, shown

__all__ = ["BUILTIN", "RegistryError", "available", "import_path_problem", "is_import_path", "resolve"]

LAYERS = ("physical", "link", "network", "application")

BUILTIN: dict[str, dict[str, str]] = {
    "physical": {
        "qutip-single-click": "qnetstack.physical.backends.qutip_backend:QutipSingleClickBackend",
        "model-heralding": "qnetstack.physical.backends.heralding_backend:HeraldingModelBackend",
    },
    "link": {
        "single-click-egp": "qnetstack.link.egp:SingleClickEgp",  # attempt by attempt
        "fast-forward-egp": "qnetstack.link.egp:FastForwardEgp",  # runs of attempts up to the next success
        "multiplexed-egp": "qnetstack.link.egp:MultiplexedEgp",  # several attempts in flight per link, one memory each
    },
    "network": {"swap-asap": "qnetstack.network.swap_asap:SwapAsap"},
    "application": {
        "basic-apps": "qnetstack.application.apps:BasicApps",
        "key-relay-apps": "qnetstack.application.key_relay:KeyRelayApps",  # basic-apps plus trusted-relay keys
    },
}


class RegistryError(LookupError):
    """An implementation name or import path that does not resolve."""


def available(layer: str) -> dict[str, str]:
    """Registered names for ``layer`` and the import paths they stand for."""
    _check_layer(layer)
    names = dict(BUILTIN[layer])
    for ep in entry_points(group=f"qnetstack.{layer}"):
        names.setdefault(ep.name, ep.value)
    return names


def is_import_path(spec: str) -> bool:
    """Whether ``spec`` is meant as ``module:Class`` rather than a registered name."""
    return ":" in spec


def import_path_problem(path: str) -> str | None:
    """Why ``path`` is not a well-formed ``module:Class``, or None if it is."""
    module_name, _, attr = path.partition(":")
    if not _dotted_name(module_name) or not _dotted_name(attr):
        return f"{shown(path)} is not of the form module:Class (dotted Python names)"
    return None


def resolve(layer: str, spec: str | type | Any) -> Any:
    """The implementation class (or factory) that ``spec`` names for ``layer``."""
    _check_layer(layer)
    if not isinstance(spec, str):
        return spec
    # a built-in name wins over an entry point of that name (available), so it needs no scan of them
    names = BUILTIN[layer] if spec in BUILTIN[layer] else available(layer)
    path = names.get(spec, spec)
    if not is_import_path(path):
        raise RegistryError(f"unknown {layer} implementation {shown(spec)} (known: {listing(sorted(names), 120)}; or give module:Class)")
    if (problem := import_path_problem(path)) is not None:
        raise RegistryError(f"{layer} implementation {problem}")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"cannot import module {shown(module_name)} for {layer} implementation {shown(spec)}: {_reason(exc)}") from None
    except (Exception, SystemExit) as exc:  # the module's own code failed: its error, in one line
        raise RegistryError(f"importing {shown(module_name)} for {layer} failed: {type(exc).__name__}: {_reason(exc)}") from None
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise RegistryError(f"module {shown(module_name)} has no attribute {shown(attr)} ({layer} implementation)") from None
    return found


def _dotted_name(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _reason(exc: BaseException) -> str:
    return cut(str(exc) or type(exc).__name__, 100)


def _check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise RegistryError(f"unknown layer {shown(layer)} (layers: {', '.join(LAYERS)})")
