"""The network conformance suite under pytest: ``pytest --pyargs network.conformance``.

Checks ``$QNETSTACK_CONFORM_IMPL`` (``module:Class``) or, unset, the reference
implementation ``network.swap_asap:SwapAsap``.
"""

from network.conformance.suite import SUITE

test_network_conformance = SUITE.pytest_function()
