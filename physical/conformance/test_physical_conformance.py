"""The physical conformance suite under pytest: ``pytest --pyargs qnetstack.physical.conformance``.

Checks ``$QNETSTACK_CONFORM_IMPL`` (``module:Class``) or, unset, the reference
backend ``qnetstack.physical.backends.qutip_backend:QutipSingleClickBackend``.
"""

from qnetstack.physical.conformance.suite import SUITE

test_physical_conformance = SUITE.pytest_function()
