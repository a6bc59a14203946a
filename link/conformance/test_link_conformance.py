"""The link conformance suite under pytest: ``pytest --pyargs qnetstack.link.conformance``.

Checks ``$QNETSTACK_CONFORM_IMPL`` (``module:Class``) or, unset, the reference
implementation ``qnetstack.link.egp:SingleClickEgp``.
"""

from qnetstack.link.conformance.suite import SUITE

test_link_conformance = SUITE.pytest_function()
