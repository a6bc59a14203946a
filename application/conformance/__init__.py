"""Conformance kit of the application service: harness and suite (``specs/application.md``).

``SUITE.run(MyApps)`` returns a clause-by-clause report; ``qnetstack conform
application my_pkg.module:MyApps`` prints it; ``pytest --pyargs
qnetstack.application.conformance`` runs the same checks under pytest (set
``QNETSTACK_CONFORM_IMPL=module:Class`` to check your own implementation
instead of the reference one, ``qnetstack.application.apps:BasicApps``).
"""

from qnetstack.application.conformance.suite import SUITE

__all__ = ["SUITE"]
