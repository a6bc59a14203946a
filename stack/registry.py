"""Registry of layer implementations, found by name.

Three ways to name an implementation for a layer:

* a registered name: the built-ins below, or any that an installed package
  declares under the entry-point group ``qnetstack.<layer>`` (e.g. in its
  ``pyproject.toml``: ``[project.entry-points."qnetstack.link"] my-egp = "pkg.mod:MyEgp"``);
* an import path ``module:Class``;
* the class itself (from Python code).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

__all__ = ["BUILTIN", "RegistryError", "available", "resolve"]

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
    "application": {"basic-apps": "qnetstack.application.apps:BasicApps"},
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


def resolve(layer: str, spec: str | type | Any) -> Any:
    """The implementation class (or factory) that ``spec`` names for ``layer``."""
    _check_layer(layer)
    if not isinstance(spec, str):
        return spec
    names = available(layer)
    path = names.get(spec, spec)
    if ":" not in path:
        known = ", ".join(sorted(names))
        raise RegistryError(f"unknown {layer} implementation {spec!r} (known: {known}; or give module:Class)")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"cannot import module {module_name!r} for {layer} implementation {spec!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RegistryError(f"module {module_name!r} has no attribute {attr!r} ({layer} implementation {spec!r})") from None


def _check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise RegistryError(f"unknown layer {layer!r} (layers: {', '.join(LAYERS)})")
