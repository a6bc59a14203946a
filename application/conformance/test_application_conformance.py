"""The application conformance suite under pytest: ``pytest --pyargs application.conformance``.

Checks ``$QNETSTACK_CONFORM_IMPL`` (``module:Class``) or, unset, the reference
implementation ``application.apps:BasicApps``.
"""

from application.conformance.suite import SUITE

test_application_conformance = SUITE.pytest_function()
