"""The application conformance suite under pytest: ``pytest --pyargs qnetstack.application.conformance``.

Checks ``$QNETSTACK_CONFORM_IMPL`` (``module:Class``) or, unset, the reference
implementation ``qnetstack.application.apps:BasicApps``.
"""

from qnetstack.application.conformance.suite import SUITE

test_application_conformance = SUITE.pytest_function()
