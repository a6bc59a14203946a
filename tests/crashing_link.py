"""A link layer that divides by zero on every message from below.

docs/conformance.md shows the report of the conformance kit on it (each
distinct exception once), quoting the line below: keep this file as it is.
"""

from typing import Any

from qnetstack.link.egp import SingleClickEgp


class CrashesOnHeralds(SingleClickEgp):
    def handle_below(self, msg: Any) -> None:
        1 / 0  # noqa: B018 - the crash is the point
