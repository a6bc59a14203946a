"""Information reconciliation: the interface every error-correction method implements, and a registry by name.

Reconciliation (Brassard & Salvail, EUROCRYPT 1993) turns Bob's noisy copy of
Alice's sifted key into Alice's key by public discussion. Every bit of that
discussion may be read by Eve, so a method reports how many bits it disclosed
(``leaked_bits``), which privacy amplification must later remove. Its quality
is the *efficiency*

    f = leaked_bits / (n · h(q)),

with ``h`` the binary entropy and ``q`` the quantum bit error rate: the
Slepian–Wolf limit (Slepian & Wolf 1973) is ``n · h(q)`` disclosed bits, so
``f = 1`` is optimal and practical methods reach 1.05–1.25.

Keys are numpy ``uint8`` arrays of 0s and 1s, one bit per element (Alice's and
Bob's of equal length). A method returns either a :class:`ReconciliationResult`
(Bob's corrected key and the account of what was disclosed) or a
:class:`ReconciliationFailed` (no key at all: a method that knows it failed
never hands on a key). A returned key may still differ from Alice's with small
probability (Cascade's last passes can miss an even number of errors; a
decoder may converge to another word with the same syndrome): the
verification stage (:mod:`qnetstack.application.qkd.verify`) catches it.

Methods are looked up by name (:func:`reconciler`); ``cascade`` and ``ldpc``
are built in and :func:`register_reconciler` adds a user's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qnetstack.application.qkd.key_length import binary_entropy


def efficiency(leaked_bits: int, n: int, qber: float) -> float:
    """f = leaked / (n · h(qber)); infinite when ``h(qber) = 0`` and bits were disclosed (no leak is needed then), 1 when none were."""
    bound = n * binary_entropy(qber)
    if bound == 0.0:
        return 1.0 if leaked_bits == 0 else math.inf
    return leaked_bits / bound


@dataclass(frozen=True)
class ReconciliationResult:
    """A finished reconciliation: Bob's corrected key and what it cost.

    ``key`` is Bob's key after correction (uint8 0/1, the input's length);
    ``leaked_bits`` the bits of information about the key disclosed on the
    public channel; ``efficiency`` f = leaked / (n · h(qber)) with the QBER
    the method was given; ``channel_uses`` the round trips on the classical
    channel; ``passes`` the method's passes (Cascade) or decoding attempts
    (LDPC).
    """

    method: str
    key: np.ndarray
    leaked_bits: int
    efficiency: float
    channel_uses: int
    passes: int


@dataclass(frozen=True)
class ReconciliationFailed:
    """A reconciliation that gave up: no key, and what was disclosed before it did (it still counts against the key)."""

    method: str
    reason: str
    leaked_bits: int
    channel_uses: int


Outcome = ReconciliationResult | ReconciliationFailed


class Reconciler(Protocol):
    """An error-correction method over a simulated classical channel.

    ``reconcile`` sees both parties' arrays only to play both sides of the
    public discussion; what crosses the channel is what it counts in
    ``leaked_bits``. It must be a function of its inputs and of ``rng`` (the
    same seed gives the same result) and must not modify ``alice`` or ``bob``.
    """

    name: str

    def reconcile(self, alice: np.ndarray, bob: np.ndarray, qber_estimate: float, rng: np.random.Generator) -> Outcome: ...


def check_keys(alice: np.ndarray, bob: np.ndarray, qber_estimate: float) -> None:
    """Refuse inputs no method can reconcile, naming what is wrong."""
    if alice.ndim != 1 or bob.ndim != 1 or alice.shape != bob.shape:
        raise ValueError(f"alice and bob must be 1-D keys of equal length, got shapes {alice.shape} and {bob.shape}")
    if alice.size == 0:
        raise ValueError("alice and bob must not be empty")
    if not 0.0 <= qber_estimate < 0.5:
        raise ValueError(f"qber_estimate must be in [0, 0.5), got {qber_estimate}")
    for name, key in (("alice", alice), ("bob", bob)):
        if key.dtype != np.uint8 or np.any(key > 1):
            raise ValueError(f"{name} must be a uint8 array of 0s and 1s")


_REGISTRY: dict[str, Callable[[], Reconciler]] = {}


def register_reconciler(name: str, factory: Callable[[], Reconciler]) -> None:
    """Make ``reconciler(name)`` return ``factory()``; a name already taken is refused."""
    _register_builtins()
    if name in _REGISTRY:
        raise ValueError(f"a reconciler named {name!r} is already registered")
    _REGISTRY[name] = factory


def reconciler(name: str) -> Reconciler:
    """A new reconciler by name (``cascade``, ``ldpc``, or one registered)."""
    _register_builtins()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown reconciler {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory()


def reconciler_names() -> list[str]:
    """The registered names, sorted."""
    _register_builtins()
    return sorted(_REGISTRY)


def _register_builtins() -> None:
    # imported here, not at the top: the built-in methods import this module's types
    if "cascade" in _REGISTRY:
        return
    from qnetstack.application.qkd.cascade import Cascade

    _REGISTRY["cascade"] = Cascade
    _REGISTRY["ldpc"] = _ldpc


def _ldpc() -> Reconciler:
    # imported when first used: the ldpc package pulls in pymatching and matplotlib (about 1 s),
    # which a run that validates a scenario or corrects with Cascade never needs
    from qnetstack.application.qkd.ldpc_code import LdpcReconciler

    return LdpcReconciler()
