"""Conformance kit of the network service: harness and suite (``specs/network.md``).

``SUITE.run(MyNetwork)`` returns a clause-by-clause report; ``qnetstack conform
network my_pkg.module:MyNetwork`` prints it; ``pytest --pyargs
qnetstack.network.conformance`` runs the same checks under pytest (set
``QNETSTACK_CONFORM_IMPL=module:Class`` to check your own implementation
instead of the reference one, ``qnetstack.network.swap_asap:SwapAsap``).
"""

from qnetstack.network.conformance.suite import SUITE

__all__ = ["SUITE"]
