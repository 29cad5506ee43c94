"""A Bloom filter over sha256 hex digests: which of them may have been added, in memory that does
not grow with the count. An import into a project without prompts asks it which of a chunk's
prompts an earlier chunk may have written, instead of asking the database for every one."""

from __future__ import annotations

import numpy as np

BITS = 1 << 23  # 8 MiB as one byte a bit; 1M digests answer "maybe" for 5% of new ones
MASK = BITS - 1


class HashFilter:
    def __init__(self):
        self.bits = np.zeros(BITS, dtype=bool)

    @staticmethod
    def positions(digests: list[str]) -> np.ndarray:
        # A digest's bytes are already uniform: two of its 32-bit words, masked, are the filter's
        # two independent hash functions.
        words = np.frombuffer(bytes.fromhex("".join(digests)), dtype="<u4").reshape(-1, 8)
        return words[:, :2] & MASK

    def add(self, digests: list[str]) -> None:
        if digests:
            self.bits[self.positions(digests)] = True

    def maybe_added(self, digests: list[str]) -> list[str]:
        """The digests that may have been added: all that were, and a few that were not."""
        if not digests:
            return []
        hits = self.bits[self.positions(digests)].all(axis=1)
        return [digest for digest, hit in zip(digests, hits.tolist(), strict=True) if hit]
