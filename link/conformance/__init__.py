"""Conformance kit of the link service: harness and suite (``specs/link.md``).

``SUITE.run(MyLink)`` returns a clause-by-clause report; ``qnetstack conform
link my_pkg.module:MyLink`` prints it; ``pytest --pyargs qnetstack.link.conformance``
runs the same checks under pytest (set ``QNETSTACK_CONFORM_IMPL=module:Class``
to check your own implementation instead of the reference one).
"""

from qnetstack.link.conformance.suite import SUITE

__all__ = ["SUITE"]
