"""The link conformance suite under pytest: ``pytest --pyargs link.conformance``.

Checks ``$QNETSTACK_CONFORM_IMPL`` (``module:Class``) or, unset, the reference
implementation ``link.egp:SingleClickEgp``.
"""

from link.conformance.suite import SUITE

test_link_conformance = SUITE.pytest_function()
