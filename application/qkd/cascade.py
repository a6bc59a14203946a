"""Cascade error correction (Brassard & Salvail, EUROCRYPT 1993), with the parameters of a modern variant.

Cascade is interactive: both parties split the key into blocks, Alice
discloses each block's parity, and where Bob's parity differs the block holds
an odd number of errors, one of which BINARY finds by bisection (disclosing one
parity per halving). Each pass first shuffles the key (a permutation both
parties know), so errors that pair up in one pass's block are split in
another's; correcting a bit in a later pass flips the parity of every block of
the earlier passes that holds it, which reopens them ("cascading").

Parameters (Martinez-Mateo, Pacher, Peev, Ciurana & Martin, "Demystifying the
information reconciliation protocol Cascade", Quantum Inf. Comput. 15, 453,
2015, their optimised versions): block sizes are powers of two,

* ``opt7`` (their "Cascade opt. (7)"): k1 = 2^⌈log2(1/q)⌉, k2 = 4·k1, and
  k = n/2 from the third pass on;
* ``opt8`` (their "Cascade opt. (8)", tuned for frames of 2^14 bits):
  α = log2(1/q) − 1/2, k1 = 2^⌈α⌉, k2 = 2^⌈(α+12)/2⌉, k3 = 4096, then n/2;

14 passes in both. What we took from their conclusions:

* no separate BICONF stage: the passes with blocks of n/2 do its work (two
  halves compared, then cascaded), which they find at least as good;
* block reuse when cascading: every block whose parity Alice has disclosed,
  top-level blocks *and* the sub-blocks BINARY has bisected, of every earlier
  pass, is checked again when a bit in it is corrected; the smallest
  reopened block is bisected first (cheapest);
* parity inference: when BINARY discloses the left half's parity the right
  half's follows from its parent's, so a bisection costs one disclosed bit per
  level, and a parity already known (a reused sub-block) is never disclosed
  again; likewise, from the second pass on, one top-level block's parity
  follows from the whole key's (the XOR of the first pass's blocks).

Accounting: ``leaked_bits`` counts the parities Alice discloses (Bob's replies
say only "same/differs" about parities Alice has already disclosed).
``channel_uses`` counts round trips when the bisections of one wave run side
by side: per pass, one for the top-level parities, and per wave of
bisections (those of the pass, then each wave of reopened blocks) as many as
its deepest bisection. Shuffles come from the ``rng`` passed in, so a run is a
function of its inputs and seed.

Vectorised with numpy where the work is bulk (shuffles, top-level parities,
Alice's parities of any range from prefix XORs); the bisections are a loop
per error, each step a slice sum over a contiguous copy of Bob's shuffled key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qnetstack.application.qkd.reconcile import Outcome, ReconciliationResult, check_keys, efficiency

# below this QBER the first block would exceed any key; the sizes are capped at n/2 anyway
_MIN_QBER = 1e-5


@dataclass(frozen=True)
class CascadeParameters:
    """Which block-size schedule (``opt7`` or ``opt8``, see the module docstring) and how many passes."""

    schedule: str = "opt7"
    passes: int = 14

    def __post_init__(self) -> None:
        if self.schedule not in ("opt7", "opt8"):
            raise ValueError(f"schedule must be 'opt7' or 'opt8', got {self.schedule!r}")
        if self.passes < 1:
            raise ValueError(f"passes must be at least 1, got {self.passes}")

    def block_sizes(self, n: int, qber: float) -> list[int]:
        """The block size of each pass for an n-bit key at this QBER, each in [1, max(1, n // 2)]."""
        q = max(qber, _MIN_QBER)
        half = max(1, n // 2)
        if self.schedule == "opt7":
            first = 2 ** math.ceil(math.log2(1.0 / q))
            sizes = [first, 4 * first]
        else:
            alpha = math.log2(1.0 / q) - 0.5
            sizes = [2 ** math.ceil(alpha), 2 ** math.ceil((alpha + 12.0) / 2.0), 4096]
        sizes = sizes[: self.passes] + [half] * max(0, self.passes - len(sizes))
        return [max(1, min(size, half)) for size in sizes]


class _Pass:
    """One pass's view of the key: its permutation, Alice's prefix parities, Bob's shuffled copy, and the ranges whose parity Alice disclosed."""

    def __init__(self, alice: np.ndarray, bob: np.ndarray, order: np.ndarray, block: int) -> None:
        self.order = order
        self.where = np.empty_like(order)
        self.where[order] = np.arange(order.size)
        self.block = block
        # alice_prefix[i] = parity of Alice's first i shuffled bits: any range's parity in O(1)
        self.alice_prefix = np.zeros(order.size + 1, dtype=np.uint8)
        np.bitwise_xor.accumulate(alice[order], out=self.alice_prefix[1:])
        self.bob = bob[order]
        # ranges [a, b) of shuffled positions whose parity Alice disclosed or that follows from disclosed ones
        self.known: set[tuple[int, int]] = set()

    def alice_parity(self, a: int, b: int) -> int:
        return int(self.alice_prefix[b] ^ self.alice_prefix[a])

    def bob_parity(self, a: int, b: int) -> int:
        return int(np.count_nonzero(self.bob[a:b]) & 1)

    def known_ranges_holding(self, bit: int) -> list[tuple[int, int]]:
        """The disclosed ranges containing ``bit``: down the bisection tree of its block until a range never disclosed."""
        position = int(self.where[bit])
        a = position - position % self.block
        b = min(a + self.block, self.order.size)
        found = []
        while (a, b) in self.known:
            found.append((a, b))
            if b - a == 1:
                break
            middle = (a + b) // 2
            a, b = (a, middle) if position < middle else (middle, b)
        return found


class Cascade:
    """Cascade with Martinez-Mateo et al.'s (2015) parameters; see the module docstring."""

    name = "cascade"

    def __init__(self, parameters: CascadeParameters | None = None) -> None:
        self.parameters = parameters or CascadeParameters()

    def reconcile(self, alice: np.ndarray, bob: np.ndarray, qber_estimate: float, rng: np.random.Generator) -> Outcome:
        check_keys(alice, bob, qber_estimate)
        n = alice.size
        corrected = bob.copy()
        passes: list[_Pass] = []
        leaked = 0
        channel_uses = 0

        def bisect(view: _Pass, a: int, b: int) -> tuple[int, int]:
            """BINARY on a range with odd error count: the key index of one error, and the parities disclosed."""
            disclosed = 0
            while b - a > 1:
                middle = (a + b) // 2
                if (a, middle) not in view.known:
                    disclosed += 1
                    view.known.add((a, middle))
                    view.known.add((middle, b))
                if view.alice_parity(a, middle) != view.bob_parity(a, middle):
                    b = middle
                else:
                    a = middle
            return int(view.order[a]), disclosed

        def correct(bit: int) -> list[tuple[int, int, int]]:
            """Flip Bob's bit everywhere and return the disclosed ranges (pass, a, b) holding it, now reopened."""
            corrected[bit] ^= 1
            reopened: list[tuple[int, int, int]] = []
            for index, view in enumerate(passes):
                view.bob[view.where[bit]] ^= 1
                reopened.extend((index, a, b) for a, b in view.known_ranges_holding(bit))
            return reopened

        for block in self.parameters.block_sizes(n, qber_estimate):
            view = _Pass(alice, corrected, rng.permutation(n), block)
            passes.append(view)
            starts = np.arange(0, n, block)
            ends = np.minimum(starts + block, n)
            alice_parities = view.alice_prefix[ends] ^ view.alice_prefix[starts]
            bob_parities = np.add.reduceat(view.bob, starts) & 1
            view.known.update(zip(starts.tolist(), ends.tolist()))
            # after the first pass the whole key's parity is known (the XOR of its blocks'), so one block per pass is inferred
            leaked += starts.size if len(passes) == 1 else starts.size - 1
            channel_uses += 1
            wave = [
                (len(passes) - 1, int(a), int(b))
                for a, b in zip(starts[alice_parities != bob_parities], ends[alice_parities != bob_parities])
            ]
            while wave:
                # smallest block first: cheapest to bisect, and its correction may close the larger ones
                wave.sort(key=lambda item: item[2] - item[1])
                deepest = 0
                reopened: list[tuple[int, int, int]] = []
                for index, a, b in wave:
                    target = passes[index]
                    if target.alice_parity(a, b) == target.bob_parity(a, b):
                        continue  # closed by a correction earlier in this wave
                    bit, disclosed = bisect(target, a, b)
                    leaked += disclosed
                    deepest = max(deepest, disclosed)
                    reopened.extend(correct(bit))
                channel_uses += deepest
                wave = list(dict.fromkeys(reopened))
        return ReconciliationResult(
            method=self.name,
            key=corrected,
            leaked_bits=leaked,
            efficiency=efficiency(leaked, n, qber_estimate),
            channel_uses=channel_uses,
            passes=len(passes),
        )
