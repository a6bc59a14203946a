"""Conformance kit of the physical services: harness and suite (``specs/physical.md``).

``SUITE.run(MyBackend)`` returns a clause-by-clause report; ``qnetstack conform
physical my_pkg.module:MyBackend`` prints it; ``pytest --pyargs
qnetstack.physical.conformance`` runs the same checks under pytest (set
``QNETSTACK_CONFORM_IMPL=module:Class`` to check your own backend instead of
the reference one, ``qnetstack.physical.backends.qutip_backend:QutipSingleClickBackend``).
"""

from qnetstack.physical.conformance.suite import SUITE

__all__ = ["SUITE"]
