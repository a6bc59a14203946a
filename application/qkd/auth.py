"""Wegman–Carter authentication of the classical channel, paid for from a pre-shared key pool.

QKD needs an authenticated classical channel; information-theoretic
authentication consumes secret key. The construction (Wegman & Carter,
J. Comput. Syst. Sci. 22, 265, 1981): a hash h_k from an ε-almost
universal family, with the key k kept for the whole session, and a fresh
one-time pad r per message:

    tag(M) = (h_k(M) + r) mod p.

Here h_k is polynomial evaluation over the prime field GF(p), p = 2^61 − 1
(den Boer 1993; Bierbrauer, Johansson, Kabatianskii & Smeets, CRYPTO 1993;
Stinson 1994): the message is cut into L blocks of 56 bits m_1 … m_L, one
block holding its length in bytes is appended (so messages of different
lengths never collide trivially), and h_k(M) = Σ_i m_i k^(L+2−i) mod p
(Horner's rule). Two different messages give polynomials that differ and
have degree at most L + 1, so they collide for at most L + 1 keys:
ε = (L + 1)/p. With the pad, the family is ε-almost strongly universal: an
adversary who saw (M, tag) forges a tag for M' ≠ M with probability at most
(L + 1)/p, plus 2^−61 because the pad is 61 uniform bits reduced mod p
(the value p itself maps to 0).

Key accounting: the hash key (61 bits) is taken from the pool when the
authenticator is made; each tag takes 61 more bits of pad, on both sides in
the same order (the receiver's check takes its pad even when it refuses, as
a pad is never used twice). When the pool cannot pay,
:class:`KeyPoolExhausted` is raised and nothing is taken. QKD keys can refill
the pool (:meth:`KeyPool.replenish`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRIME = (1 << 61) - 1
KEY_BITS = 61
BLOCK_BYTES = 7  # 56-bit blocks, each below p


class KeyPoolExhausted(RuntimeError):
    """The pool holds fewer bits than a tag (or hash key) needs."""

    def __init__(self, needed: int, remaining: int) -> None:
        super().__init__(f"authentication key pool exhausted: {needed} bits needed, {remaining} left")
        self.needed = needed
        self.remaining = remaining


class KeyPool:
    """Pre-shared secret bits (uint8 0/1), consumed front to back; each party holds an identical copy."""

    def __init__(self, bits: np.ndarray) -> None:
        if bits.ndim != 1 or bits.dtype != np.uint8 or np.any(bits > 1):
            raise ValueError("the key pool must be a 1-D uint8 array of 0s and 1s")
        self._bits = bits.copy()
        self._used = 0

    @property
    def remaining(self) -> int:
        """Bits not yet consumed."""
        return self._bits.size - self._used

    @property
    def consumed(self) -> int:
        """Bits consumed so far."""
        return self._used

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` bits; :class:`KeyPoolExhausted` (nothing taken) if fewer remain."""
        if count > self.remaining:
            raise KeyPoolExhausted(count, self.remaining)
        taken = self._bits[self._used : self._used + count]
        self._used += count
        return taken

    def replenish(self, bits: np.ndarray) -> None:
        """Append fresh secret bits (e.g. part of a QKD key) at the end of the pool."""
        if bits.ndim != 1 or bits.dtype != np.uint8 or np.any(bits > 1):
            raise ValueError("replenishing bits must be a 1-D uint8 array of 0s and 1s")
        self._bits = np.concatenate([self._bits[self._used :], bits])
        self._used = 0


def _field_element(bits: np.ndarray) -> int:
    return (
        int.from_bytes(np.packbits(bits, bitorder="big").tobytes(), "big") >> (8 * ((bits.size + 7) // 8) - bits.size) if bits.size else 0
    )


def polynomial_hash(message: bytes, key: int) -> int:
    """h_k(M) over GF(2^61 − 1): 56-bit blocks of M, then its length, evaluated at k by Horner's rule."""
    value = 0
    for start in range(0, len(message), BLOCK_BYTES):
        value = (value + int.from_bytes(message[start : start + BLOCK_BYTES], "big")) * key % PRIME
    return (value + len(message)) * key % PRIME


@dataclass(frozen=True)
class AuthTag:
    """A tag and the index of the message it was made for (the pad's place in the sequence)."""

    index: int
    value: int


class WegmanCarter:
    """One party's authenticator: ``sign`` on the sending side, ``check`` on the receiving side, each taking the next pad."""

    def __init__(self, pool: KeyPool) -> None:
        self.pool = pool
        self._hash_key = _field_element(pool.take(KEY_BITS)) % PRIME
        self._messages = 0

    @property
    def messages(self) -> int:
        """Messages signed or checked so far (the pads used)."""
        return self._messages

    def epsilon(self, message_bytes: int) -> float:
        """Forgery probability bound for a message of this length: (L + 1)/p + 2^−61, L its 56-bit blocks."""
        blocks = -(-message_bytes // BLOCK_BYTES)
        return (blocks + 1) / PRIME + 2.0**-KEY_BITS

    def _next_pad(self) -> tuple[int, int]:
        pad = _field_element(self.pool.take(KEY_BITS)) % PRIME
        index = self._messages
        self._messages += 1
        return index, pad

    def sign(self, message: bytes) -> AuthTag:
        """The tag of ``message`` with the next pad."""
        index, pad = self._next_pad()
        return AuthTag(index=index, value=(polynomial_hash(message, self._hash_key) + pad) % PRIME)

    def check(self, message: bytes, tag: AuthTag) -> bool:
        """True only if ``tag`` is the tag of ``message`` under the next pad (which is used up either way)."""
        index, pad = self._next_pad()
        return tag.index == index and tag.value == (polynomial_hash(message, self._hash_key) + pad) % PRIME


# The applications' use of the authenticator: a pool that cannot pay makes no
# tag, and a missing tag fails the check, so an exhausted pool ends a session
# by a failed check (AUTH_FAILED) instead of an exception inside a handler.


def authenticator_or_none(pool: KeyPool) -> WegmanCarter | None:
    """A Wegman–Carter authenticator on ``pool``, or None when the pool cannot key one."""
    try:
        return WegmanCarter(pool)
    except KeyPoolExhausted:
        return None


def sign_or_none(auth: WegmanCarter | None, message: bytes) -> AuthTag | None:
    """The tag of ``message``, or None when there is no authenticator or the pool cannot pay for it."""
    if auth is None:
        return None
    try:
        return auth.sign(message)
    except KeyPoolExhausted:
        return None


def check_or_false(auth: WegmanCarter | None, message: bytes, tag: AuthTag | None) -> bool:
    """Whether ``tag`` authenticates ``message``; False without an authenticator, a tag, or pool bits to check it."""
    if auth is None or tag is None:
        return False
    try:
        return auth.check(message, tag)
    except KeyPoolExhausted:
        return False
