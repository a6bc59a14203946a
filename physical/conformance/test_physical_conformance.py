"""The physical conformance suite under pytest: ``pytest --pyargs physical.conformance``.

Checks ``$QNETSTACK_CONFORM_IMPL`` (``module:Class``) or, unset, the reference
backend ``physical.qutip_backend:QutipSingleClickBackend``.
"""

from physical.conformance.suite import SUITE

test_physical_conformance = SUITE.pytest_function()
