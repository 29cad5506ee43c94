"""Training examples as plain dataclasses: prompts and preference pairs, and the held-out split.

Like `config.py` this imports no ML library, so the Django side can build examples from the database
cheaply before handing them to a run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

ChatMessage = dict[str, str]
# A plain string, or a chat: [{"role": "user", "content": "..."}, ...].
Prompt = str | list[ChatMessage]


@dataclass(frozen=True)
class PreferencePair:
    """One judgment: `chosen` was preferred to `rejected` as a response to `prompt`.

    `margin` (optional) says by how much, in reward units; the reward loss then asks for
    r(chosen) - r(rejected) > margin (Touvron et al. 2023, Llama 2, eq. 2).
    """

    chosen: str
    rejected: str
    prompt: Prompt = ""
    margin: float | None = None


def split_holdout(
    pairs: Sequence[PreferencePair], eval_fraction: float, seed: int
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Shuffle with `seed` and hold out `eval_fraction` of the pairs (at least one when any is asked)."""
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    if eval_fraction <= 0 or len(shuffled) < 2:
        return shuffled, []
    held_out = max(1, round(len(shuffled) * eval_fraction))
    return shuffled[held_out:], shuffled[:held_out]
