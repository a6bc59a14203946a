"""Swap-as-soon-as-possible along a shortest path: the reference network layer.

Theory of operation
-------------------
:class:`SwapAsap` is the network entity of :mod:`qnetstack.network.node`
configured with the ``"swap-asap"`` policy (:mod:`qnetstack.network.policy`)
and routing by fibre length (:mod:`qnetstack.network.routing`): a repeater
Bell-measures as soon as it holds a link pair of a circuit on both sides, and
an end delivers every chain as soon as it holds its link pair and the swap
records joining it to the other end. The module keeps the registry name
``swap-asap`` (``qnetstack.network.swap_asap:SwapAsap``) and re-exports the
peer messages and the Werner swap formula that users import from here.
"""

from __future__ import annotations

from qnetstack.network.frames import werner_swap_fidelity
from qnetstack.network.node import NetworkNode
from qnetstack.network.peer import CircuitFailed, Forward, SwapRecord

__all__ = ["SwapAsap", "Forward", "SwapRecord", "CircuitFailed", "werner_swap_fidelity"]


class SwapAsap(NetworkNode):
    """Reference network-layer entity: the swap-asap policy over fibre-length routes."""

    POLICY = "swap-asap"
    METRIC = "length_km"
