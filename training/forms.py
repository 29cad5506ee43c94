"""Forms for the training pages. They check shape (types, ranges, JSON); the rules of a valid round
or comparison live in training.rounds and training.comparisons."""

from __future__ import annotations

import json

from django import forms

from feedback.forms import IdChoiceField, id_field
from training import selectors
from training.comparisons import SHOW_CHOICES
from training.hyperparameters import default_hyperparameters, project_defaults
from training.models import RoundMethod

DEFAULT_METHOD = RoundMethod.DPO
SECTION_LABELS = {
    "generation": "Sampling",
    "reward": "Reward model",
    "dpo": "DPO",
    "ppo": "PPO",
}
SECTION_HELP = {
    "generation": "How the policy samples the completions annotators judge.",
    "reward": "Training the reward model on this round's preference pairs.",
    "dpo": "Direct preference optimisation of the policy on the pairs.",
    "ppo": "PPO against the reward model, with a KL penalty to the starting policy.",
}
HYPERPARAMETER_PREFIX = "hp_"


def form_error_message(form: forms.Form) -> str:
    return " ".join(str(message) for errors in form.errors.values() for message in errors)


def chosen_method(data, initial: dict | None = None) -> str:
    """The method a (possibly unbound) launch form is for: posted, then initial, then the default."""
    for source in (data or {}, initial or {}):
        method = source.get("method")
        if method in RoundMethod.values:
            return method
    return DEFAULT_METHOD


class PromptSetChoiceField(IdChoiceField):
    def label_from_instance(self, obj) -> str:
        count = getattr(obj, "train_count", None)
        return obj.name if count is None else f"{obj.name} ({count} training prompts)"


class VersionChoiceField(IdChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.name} ({obj.get_method_display()})"


class LaunchRoundForm(forms.Form):
    policy = VersionChoiceField(
        queryset=None,
        label="Policy model version",
        help_text="The version that samples this round's completions and is trained on the judgments.",
    )
    prompt_set = PromptSetChoiceField(
        queryset=None,
        label="Prompt set",
        help_text="Its training prompts are sampled; held-out prompts are kept for evaluation.",
    )
    method = forms.ChoiceField(
        choices=RoundMethod.choices, widget=forms.RadioSelect, initial=DEFAULT_METHOD
    )
    samples_per_prompt = forms.IntegerField(
        min_value=2,
        max_value=9,
        label="Samples per prompt",
        help_text="2 makes one pairwise task per prompt; more make a ranking when the project ranks.",
    )
    judgments_wanted = forms.IntegerField(
        min_value=1,
        required=False,
        label="Judgments wanted",
        help_text="Training starts when this many are in. Empty: one per task, times the project's overlap.",
    )
    mix_parent_outputs = forms.BooleanField(
        required=False,
        label="Also compare new samples with the parent version's answers",
    )

    def __init__(self, project, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["policy"].queryset = selectors.trainable_versions(project.pk)
        self.fields["prompt_set"].queryset = selectors.prompt_sets_with_counts(project.pk)
        # Suggest the newest trainable version and the first prompt set, so the common case
        # (the next round from the latest model) is one click.
        for name in ("policy", "prompt_set"):
            first = self.fields[name].queryset.first()
            if first is not None:
                self.initial.setdefault(name, first.pk)
        # A ranking of four gives six pairs for one judgment (InstructGPT ranked 4 to 9).
        self.initial.setdefault("samples_per_prompt", 4 if project.ranking_enabled else 2)
        self.chosen_method = chosen_method(self.data if self.is_bound else None, self.initial)
        self.defaults = project_defaults(project.pk, self.chosen_method)
        for section, values in self.defaults.items():
            self.fields[HYPERPARAMETER_PREFIX + section] = forms.CharField(
                label=SECTION_LABELS.get(section, section),
                help_text=SECTION_HELP.get(section, ""),
                initial=json.dumps(values, indent=2),
                widget=forms.Textarea(
                    attrs={
                        # Tall enough for the defaults without a scrollbar, within reason.
                        "rows": min(18, len(json.dumps(values, indent=2).splitlines()) + 1),
                        "spellcheck": "false",
                        "class": "code",
                        "autocomplete": "off",
                    }
                ),
            )

    @classmethod
    def for_method(cls, project, typed) -> LaunchRoundForm:
        """An unbound form for `typed["method"]` that keeps the JSON already typed into sections
        the method also uses (when an admin switches between PPO and DPO)."""
        method = chosen_method(typed)
        carried = {
            HYPERPARAMETER_PREFIX + section: typed[HYPERPARAMETER_PREFIX + section]
            for section in default_hyperparameters(method)
            if typed.get(HYPERPARAMETER_PREFIX + section)
        }
        return cls(project, initial={"method": method, **carried})

    @property
    def hyperparameter_fields(self) -> list[forms.BoundField]:
        return [self[HYPERPARAMETER_PREFIX + section] for section in self.defaults]

    def clean(self) -> dict:
        cleaned = super().clean()
        for section in self.defaults:
            name = HYPERPARAMETER_PREFIX + section
            raw = cleaned.get(name)
            if raw is None:
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as error:
                self.add_error(
                    name,
                    f"Not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}.",
                )
                continue
            if not isinstance(value, dict):
                self.add_error(name, 'Write the settings as a JSON object: { "name": value, ... }.')
                continue
            cleaned[name] = value
        return cleaned

    def hyperparameters(self) -> dict:
        return {
            section: self.cleaned_data[HYPERPARAMETER_PREFIX + section] for section in self.defaults
        }


class CompareForm(forms.Form):
    """Which two versions and which prompts the side-by-side page shows."""

    a = VersionChoiceField(queryset=None, label="Version A")
    b = VersionChoiceField(queryset=None, label="Version B")
    prompt_set = PromptSetChoiceField(
        queryset=None, label="Prompts", required=False, empty_label="All prompts of the project"
    )
    show = forms.ChoiceField(choices=SHOW_CHOICES, label="Show")

    def __init__(self, project, *args, **kwargs):
        super().__init__(*args, **kwargs)
        versions = selectors.versions_of_project(project.pk)
        self.fields["a"].queryset = versions
        self.fields["b"].queryset = versions
        self.fields["prompt_set"].queryset = selectors.prompt_sets_with_counts(project.pk)

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("a") and cleaned.get("a") == cleaned.get("b"):
            self.add_error("b", "Pick a different version than A.")
        return cleaned


class BlindTasksForm(forms.Form):
    a = id_field()
    b = id_field()
    prompt_set = id_field(required=False)
    judgments_wanted = forms.IntegerField(min_value=1, max_value=20, required=False)


class GenerateForm(forms.Form):
    version = id_field()
    prompt_set = id_field(required=False)
