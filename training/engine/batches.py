"""Padded token batches: for scoring, and the batches TRL's preference collators make, built faster.

TRL's collators make a tensor of every sequence and pad them one by one: for 32 pairs of ~260 tokens
that took 8-9 ms on a CI core, between training steps, with the GPU idle
(benchmarks/profile_trainer_step.py). These build the same tensors in numpy in under a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch

TRUNCATION_MODES = ("keep_start", "keep_end")


def right_pad(
    rows: Sequence[Sequence[int]], pad_token_id: int, multiple_of: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows right-padded into (input_ids, attention_mask), int64, the width rounded up to
    `multiple_of`."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    width = int(lengths.max())
    if multiple_of:
        width = -(-width // multiple_of) * multiple_of
    mask = np.arange(width) < lengths[:, None]
    input_ids = np.full(mask.shape, pad_token_id, dtype=np.int64)
    input_ids[mask] = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=lengths.sum())
    return torch.from_numpy(input_ids), torch.from_numpy(mask.astype(np.int64))


@dataclass(frozen=True)
class RewardCollator:
    """What TRL's reward DataCollatorForPreference makes: the chosen rows, then the rejected,
    right-padded, with their attention mask and any margins."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        rows = [e["chosen_ids"] for e in examples] + [e["rejected_ids"] for e in examples]
        input_ids, attention_mask = right_pad(rows, self.pad_token_id, self.pad_to_multiple_of)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "margin" in examples[0]:
            batch["margin"] = torch.tensor([e["margin"] for e in examples], dtype=torch.float)
        return batch


@dataclass(frozen=True)
class DPOCollator:
    """What TRL's DPO DataCollatorForPreference makes: prompt + chosen rows, then prompt + rejected,
    each cut to `max_length` from its start or its end, right-padded, with the attention mask, a
    mask of the completion's tokens and any reference log-probabilities."""

    pad_token_id: int
    max_length: int | None = None
    truncation_mode: str = "keep_start"
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if self.truncation_mode not in TRUNCATION_MODES:
            raise ValueError(
                f"Unsupported truncation mode {self.truncation_mode!r}; use one of "
                f"{', '.join(TRUNCATION_MODES)}."
            )

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        rows = [
            [*e["prompt_ids"], *e[side]]
            for side in ("chosen_ids", "rejected_ids")
            for e in examples
        ]
        prompt_lengths = np.array([len(e["prompt_ids"]) for e in examples] * 2, dtype=np.int64)
        # Where each kept row starts in its whole sequence.
        offsets = np.zeros(len(rows), dtype=np.int64)
        if self.max_length is not None:
            if self.truncation_mode == "keep_end":
                offsets = np.maximum(np.array([len(r) for r in rows]) - self.max_length, 0)
                rows = [row[len(row) - min(len(row), self.max_length) :] for row in rows]
            else:
                rows = [row[: self.max_length] for row in rows]
        input_ids, attention_mask = right_pad(rows, self.pad_token_id, self.pad_to_multiple_of)
        positions = np.arange(input_ids.shape[1])[None, :] + offsets[:, None]
        completion = attention_mask.numpy().astype(bool) & (positions >= prompt_lengths[:, None])
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "completion_mask": torch.from_numpy(completion.astype(np.int64)),
        }
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if key in examples[0]:
                batch[key] = torch.tensor([e[key] for e in examples])
        return batch
