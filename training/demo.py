"""The demo's alignment loop: a tiny policy built locally (no download), with prompts it can answer.

`make demo` calls `load_alignment_demo`, so a new user can launch a round on a laptop with no GPU:
the policy trains on the CPU in minutes.
"""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from feedback import services as feedback_services
from feedback.demo import ensure_users
from feedback.models import ModelVersion, Project, PromptSet
from feedback.models.prompts import PromptSplit
from training.models import RoundDefaults

ALIGNMENT_PROJECT = "Demo: alignment loop"
TINY_BASE_NAME = "tiny-base"
HELD_OUT_EVERY = 8  # one prompt in eight is kept for evaluation
# The engine's defaults suit real models; a tiny one needs bigger steps to move in a demo round.
# The closed-loop test (tests/training/test_closed_loop.py) runs on these and found them: two DPO
# and two PPO rounds teach the tiny policy the annotator's hidden preference.
TINY_LORA = {"rank": 8, "alpha": 16, "dropout": 0.0}
DEMO_ROUND_DEFAULTS = {
    "generation": {"max_new_tokens": 20, "temperature": 1.0},
    "dpo": {
        "learning_rate": 5e-4,
        "beta": 0.1,
        "epochs": 6,
        "batch_size": 16,
        "max_length": 64,
        "lora": TINY_LORA,
    },
    "reward": {
        "learning_rate": 2e-3,
        "epochs": 4,
        "batch_size": 16,
        "max_length": 64,
        "lora": TINY_LORA,
        "eval_fraction": 0.1,
    },
    "ppo": {
        "learning_rate": 3e-3,
        "total_steps": 100,
        "prompts_per_step": 16,
        "ppo_epochs": 4,
        # Two minibatches of 8 responses: steadier steps than four of 4 under the adaptive KL below.
        "num_minibatches": 2,
        # At 0.1 the policy drifts into subject-less fragments ("ants a g ap ...") that the
        # reward model never saw. Seen with seeds 0 and 1 (100 steps where not said):
        # 0.3 and 60 steps won 0.73-0.81 at 19-21 nats from the base; 0.6 wins 0.82 at 11-12
        # nats; 0.8 with 140 steps 0.67-0.76 at 7 nats.
        # With reward normalisation these are in units of the reward's std (2.4-3.5 raw), and
        # the coefficient adapts (from 0.15) towards 8 nats per rollout (Ziegler et al. 2019).
        "kl_coef": 0.15,
        "target_kl": 8.0,
        "kl_horizon": 100,
        "reward_normalization_samples": 64,
        "missing_eos_penalty": 0.4,
        "max_length": 64,
        "lora": TINY_LORA,
        # As long as the samples annotators judged: with 16 tokens a two-clause sentence never
        # ends, and the missing-EOS penalty then rewards cutting sentences short.
        "generation": {"max_new_tokens": 20, "temperature": 1.0, "num_samples": 1},
    },
}
GUIDELINES = """\
The demo policy is a tiny model that answers in short sentences. Pick the answer you like better:
for a quick experiment, prefer answers that mention **apples**, and watch the next version learn it
(a PPO round teaches it most).
"""


def tiny_base_path() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "demo" / TINY_BASE_NAME


def ensure_tiny_base() -> Path:
    """Build the tiny base model once (about half a minute on two CPU cores)."""
    from training.engine.tiny import build_tiny_model

    path = tiny_base_path()
    if not (path / "config.json").exists():
        partial = path.with_name(path.name + ".partial")
        build_tiny_model(partial)
        partial.rename(path)
    return path


@transaction.atomic
def load_alignment_demo() -> Project:
    from training.engine.tiny import demo_prompts

    project = Project.objects.filter(
        name=ALIGNMENT_PROJECT
    ).first() or feedback_services.create_project(
        name=ALIGNMENT_PROJECT, guidelines=GUIDELINES, modes=("pairwise", "ranking"), overlap=1
    )
    ensure_users(project)
    RoundDefaults.objects.get_or_create(
        project=project, defaults={"hyperparameters": DEMO_ROUND_DEFAULTS}
    )
    base_path = ensure_tiny_base()
    if not ModelVersion.objects.filter(project=project, name=TINY_BASE_NAME).exists():
        feedback_services.create_model_version(
            project_id=project.pk, name=TINY_BASE_NAME, base_model=str(base_path), method="base"
        )
    prompt_set, created = PromptSet.objects.get_or_create(project=project, name="Demo prompts")
    if created:
        prompts = [
            feedback_services.create_prompt(
                project_id=project.pk,
                text=text,
                split=PromptSplit.HELD_OUT if index % HELD_OUT_EVERY == 0 else PromptSplit.TRAIN,
            )
            for index, text in enumerate(demo_prompts())
        ]
        prompt_set.prompts.set(prompts)
    return project
