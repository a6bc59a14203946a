"""Heralding schemes as analytic models: what one attempt of a link does.

The :class:`~qnetstack.physical.schemes.model.HeraldingModel` interface
(:mod:`.model`), the schemes that implement it — single-click
(:mod:`.single_click`), Barrett–Kok (:mod:`.barrett_kok`), a midpoint pair
source (:mod:`.midpoint_source`) — and the registry from link-parameter type
to scheme (:mod:`.registry`).

May import: the components, the engines (for Bell kets and memory channels),
:mod:`qnetstack.physical.service` and :mod:`qnetstack.physical.params`. Never
the backends (contract "Physical tiers" in ``pyproject.toml``): a scheme says
what an attempt does, a backend decides how a run simulates it.
"""
