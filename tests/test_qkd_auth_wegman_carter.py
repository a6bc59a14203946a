"""Wegman-Carter authentication from a consumed key pool (application/qkd/auth.py)."""

from __future__ import annotations

import numpy as np
import pytest

from qnetstack.application.qkd.auth import PRIME, AuthTag, KeyPool, KeyPoolExhausted, WegmanCarter, polynomial_hash


def shared_pools(bits: int, seed: int = 1) -> tuple[KeyPool, KeyPool]:
    secret = np.random.default_rng(seed).integers(0, 2, bits, dtype=np.uint8)
    return KeyPool(secret), KeyPool(secret)


def test_a_tag_is_accepted_and_the_pool_pays_61_bits_per_tag():
    alice_pool, bob_pool = shared_pools(1_000)
    alice, bob = WegmanCarter(alice_pool), WegmanCarter(bob_pool)
    assert alice_pool.remaining == 1_000 - 61  # the hash key
    for number in range(5):
        message = f"parities of pass {number}".encode()
        assert bob.check(message, alice.sign(message))
    assert alice_pool.remaining == bob_pool.remaining == 1_000 - 61 * 6
    assert alice_pool.consumed == 61 * 6 and alice.messages == bob.messages == 5


def test_a_flipped_message_bit_or_tag_bit_is_refused():
    message = b"syndrome: 0110100111010001"
    for flip in range(len(message) * 8):
        alice_pool, bob_pool = shared_pools(500, seed=flip)
        alice, bob = WegmanCarter(alice_pool), WegmanCarter(bob_pool)
        tag = alice.sign(message)
        changed = bytearray(message)
        changed[flip // 8] ^= 1 << (flip % 8)
        assert not bob.check(bytes(changed), tag)
    for bit in range(61):
        alice_pool, bob_pool = shared_pools(500, seed=1_000 + bit)
        alice, bob = WegmanCarter(alice_pool), WegmanCarter(bob_pool)
        tag = alice.sign(message)
        assert not bob.check(message, AuthTag(tag.index, tag.value ^ (1 << bit)))


def test_a_tag_replayed_for_the_next_message_is_refused():
    alice_pool, bob_pool = shared_pools(500)
    alice, bob = WegmanCarter(alice_pool), WegmanCarter(bob_pool)
    tag = alice.sign(b"first")
    assert bob.check(b"first", tag)
    assert not bob.check(b"first", tag)  # the next pad differs


def test_an_exhausted_pool_raises_a_typed_error_and_takes_nothing():
    alice_pool, _ = shared_pools(61 * 3 + 10)
    alice = WegmanCarter(alice_pool)
    alice.sign(b"a")
    alice.sign(b"b")
    assert alice_pool.remaining == 10
    with pytest.raises(KeyPoolExhausted) as raised:
        alice.sign(b"c")
    assert (raised.value.needed, raised.value.remaining) == (61, 10)
    assert alice_pool.remaining == 10 and alice.messages == 2
    alice_pool.replenish(np.ones(100, dtype=np.uint8))
    assert alice_pool.remaining == 110
    alice.sign(b"c")
    assert alice_pool.remaining == 49


def test_messages_of_different_lengths_hash_differently():
    # trailing zero bytes change the length block, so they cannot collide with the shorter message for every key
    key = 123_456_789
    assert polynomial_hash(b"abc", key) != polynomial_hash(b"abc\x00", key)
    assert 0 <= polynomial_hash(b"x" * 1_000, key) < PRIME


def test_forgery_bound_grows_with_the_message_blocks():
    alice_pool, _ = shared_pools(200)
    alice = WegmanCarter(alice_pool)
    assert alice.epsilon(7) == pytest.approx(2 / PRIME + 2.0**-61)
    assert alice.epsilon(700) == pytest.approx(101 / PRIME + 2.0**-61)
