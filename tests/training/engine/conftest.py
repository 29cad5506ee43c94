"""Fixtures for the engine tests: one tiny pretrained Llama per session, and synthetic preferences."""

import pytest
import torch

from training.engine.examples import PreferencePair
from training.engine.tiny import OBJECTS, build_tiny_model, demo_conversations

TARGET = "the blue sky"


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The tiny models gain nothing from threads, and OpenMP threads spin badly on a shared
    2-core machine (a test run with two threads was measured five times slower there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer Llama pretrained on the demo conversations (built once, a few seconds)."""
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0))


def blue_sky_pairs(count: int, seed: int = 1) -> list[PreferencePair]:
    """Pairs whose chosen response mentions "the blue sky" and whose rejected one does not;
    otherwise the two responses are the same sentence."""
    pairs = []
    for prompt, response in demo_conversations(count, seed=seed):
        first_object = next(o for o in OBJECTS if o in response)
        chosen = response.replace(first_object, TARGET, 1)
        rejected = response.replace(TARGET, "a red apple")
        if chosen != rejected:
            pairs.append(
                PreferencePair(
                    prompt=[{"role": "user", "content": prompt}], chosen=chosen, rejected=rejected
                )
            )
    return pairs


@pytest.fixture(scope="session")
def preference_pairs():
    """`preference_pairs(count, seed=1)` builds the blue-sky pairs."""
    return blue_sky_pairs
