"""The engine's collators make, tensor for tensor, the batches TRL's preference collators make."""

import random

import pytest
import torch
from trl.trainer import dpo_trainer, reward_trainer

from training.engine.batches import DPOCollator, RewardCollator, right_pad


def ids(rng, low, high):
    return [rng.randrange(1, 500) for _ in range(rng.randint(low, high))]


def assert_same_batches(batch, expected):
    assert batch.keys() == expected.keys()
    for key, tensor in expected.items():
        assert batch[key].dtype == tensor.dtype, key
        torch.testing.assert_close(batch[key], tensor, rtol=0, atol=0)


@pytest.mark.parametrize("margins, multiple_of", [(False, None), (True, None), (True, 8)])
def test_reward_batches_are_trls(margins, multiple_of):
    rng = random.Random(7)
    examples = [
        {
            "chosen_ids": ids(rng, 1, 40),
            "rejected_ids": ids(rng, 1, 40),
            **({"margin": rng.random()} if margins else {}),
        }
        for _ in range(9)
    ]
    settings = dict(pad_token_id=3, pad_to_multiple_of=multiple_of)
    assert_same_batches(
        RewardCollator(**settings)(examples),
        reward_trainer.DataCollatorForPreference(**settings)(examples),
    )


@pytest.mark.parametrize(
    "max_length, truncation_mode, multiple_of, reference",
    [
        (None, "keep_start", None, False),
        (30, "keep_start", None, True),
        (30, "keep_end", 8, True),
        (12, "keep_end", None, False),  # cuts into some prompts
    ],
)
def test_dpo_batches_are_trls(max_length, truncation_mode, multiple_of, reference):
    rng = random.Random(11)
    examples = [
        {
            "prompt_ids": ids(rng, 1, 20),
            "chosen_ids": ids(rng, 1, 20),
            "rejected_ids": ids(rng, 1, 20),
            **(
                {"ref_chosen_logps": -rng.random() * 50, "ref_rejected_logps": -rng.random() * 50}
                if reference
                else {}
            ),
        }
        for _ in range(9)
    ]
    settings = dict(
        pad_token_id=3,
        max_length=max_length,
        truncation_mode=truncation_mode,
        pad_to_multiple_of=multiple_of,
    )
    assert_same_batches(
        DPOCollator(**settings)(examples),
        dpo_trainer.DataCollatorForPreference(**settings)(examples),
    )


def test_unknown_truncation_modes_are_refused():
    with pytest.raises(ValueError, match="keep_start, keep_end"):
        DPOCollator(pad_token_id=0, truncation_mode="keep_middle")


def test_right_pad():
    input_ids, mask = right_pad([[5, 6, 7], [8], []], pad_token_id=0, multiple_of=4)
    assert input_ids.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0], [0, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
