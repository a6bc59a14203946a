"""The network conformance suite under pytest: ``pytest --pyargs qnetstack.network.conformance``.

Checks ``$QNETSTACK_CONFORM_IMPL`` (``module:Class``) or, unset, the reference
implementation ``qnetstack.network.swap_asap:SwapAsap``.
"""

from qnetstack.network.conformance.suite import SUITE

test_network_conformance = SUITE.pytest_function()
