"""The heralding schemes this build knows: link-parameter type -> name and model.

A link's heralding scheme is a parameter of the link: its parameter object's
type (:class:`~qnetstack.physical.params.SingleClickLinkParams`,
:class:`~qnetstack.physical.schemes.barrett_kok.BarrettKokLinkParams`,
:class:`~qnetstack.physical.schemes.midpoint_source.MidpointSourceLinkParams`)
picks the entry of :data:`HERALDING_SCHEMES`, whose factory builds the
scheme's :class:`~qnetstack.physical.schemes.model.HeraldingModel`. The
backends run whatever model they are given; the scenario model reads the
scheme names and parameter types from here.

Adding a scheme: write its parameter model and its ``HeraldingModel`` in a
module of this package, and add a :class:`HeraldingSchemeEntry` to
:data:`HERALDING_SCHEMES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from qnetstack.physical.params import HardwareParams, NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.barrett_kok import BarrettKokLinkParams, BarrettKokModel
from qnetstack.physical.schemes.midpoint_source import MidpointSourceLinkParams, MidpointSourceModel
from qnetstack.physical.schemes.model import HeraldingModel
from qnetstack.physical.schemes.single_click import SingleClickModel, SingleClickPerEndModel

__all__ = ["HeraldingSchemeEntry", "HERALDING_SCHEMES", "scheme_named", "scheme_of"]


@dataclass(frozen=True)
class HeraldingSchemeEntry:
    """One heralding scheme: its name, its link-parameter model and its model factory.

    ``model(params, hardware_a, hardware_b, alpha_a, alpha_b)`` returns the
    scheme's :class:`HeraldingModel` (node A first); ``alpha_a``/``alpha_b``
    are the bright-state populations of the two ends for schemes that have one
    (``alpha_field`` names it in the parameters) and ``None`` otherwise.
    """

    name: Literal["single-click", "barrett-kok", "midpoint-source"]
    params_type: type[HardwareParams]
    model: Callable[[Any, NodeHardware, NodeHardware, float | None, float | None], HeraldingModel]
    alpha_field: str | None = None

    def link_alpha(self, params: Any) -> float | None:
        return None if self.alpha_field is None else float(getattr(params, self.alpha_field))


def _single_click(
    params: SingleClickLinkParams, hw_a: NodeHardware, hw_b: NodeHardware, alpha_a: float | None, alpha_b: float | None
) -> HeraldingModel:
    a = params.bright_state_population if alpha_a is None else alpha_a
    b = params.bright_state_population if alpha_b is None else alpha_b
    if a == b:
        return SingleClickModel(params.replace(bright_state_population=a), hw_a, hw_b)
    return SingleClickPerEndModel(SingleClickModel(params, hw_a, hw_b), a, b)


def _barrett_kok(
    params: BarrettKokLinkParams, hw_a: NodeHardware, hw_b: NodeHardware, alpha_a: float | None, alpha_b: float | None
) -> HeraldingModel:
    return BarrettKokModel(params, hw_a, hw_b)


def _midpoint_source(
    params: MidpointSourceLinkParams, hw_a: NodeHardware, hw_b: NodeHardware, alpha_a: float | None, alpha_b: float | None
) -> HeraldingModel:
    return MidpointSourceModel(params, hw_a, hw_b)


HERALDING_SCHEMES: tuple[HeraldingSchemeEntry, ...] = (
    HeraldingSchemeEntry("single-click", SingleClickLinkParams, _single_click, alpha_field="bright_state_population"),
    HeraldingSchemeEntry("barrett-kok", BarrettKokLinkParams, _barrett_kok),
    HeraldingSchemeEntry("midpoint-source", MidpointSourceLinkParams, _midpoint_source),
)


def scheme_named(name: str) -> HeraldingSchemeEntry | None:
    """The scheme of that name, or ``None`` if this build does not have it yet."""
    for entry in HERALDING_SCHEMES:
        if entry.name == name:
            return entry
    return None


def scheme_of(params: Any) -> HeraldingSchemeEntry:
    """The scheme whose parameter model ``params`` is; ``ValueError`` if none is."""
    for entry in HERALDING_SCHEMES:
        if type(params) is entry.params_type:
            return entry
    known = ", ".join(e.params_type.__name__ for e in HERALDING_SCHEMES)
    raise ValueError(f"no heralding scheme takes link parameters of type {type(params).__name__} (known: {known})")
