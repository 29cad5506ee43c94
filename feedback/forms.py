"""Parsing what the insight pages post into the plain inputs that feedback services take."""

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

from feedback.ids import MAX_ID, parse_id
from feedback.models import Role
from feedback.models.projects import (
    DEFAULT_GOLD_PERCENT,
    INVITABLE_ROLES,
    MAX_GOLD_PERCENT,
    JudgmentMode,
)
from feedback.pairs import PairPolicy
from feedback.services.imports import FORMATS
from feedback.services.invitations import MAX_DAYS as MAX_INVITATION_DAYS
from feedback.wording import counted

FORMAT_LABELS = {
    "completions": "Outputs: prompt, completion, model",
    "prompts": "Prompts",
    "model_versions": "Model versions",
    "trl": "TRL pairs: prompt, chosen, rejected",
    "hh": "Anthropic HH pairs: chosen, rejected",
    "arena": "Chatbot Arena battles",
}


def id_field(**kwargs) -> forms.IntegerField:
    """A row id; a number no row can have is invalid (see IdChoiceField)."""
    return forms.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class IdChoiceField(forms.ModelChoiceField):
    """A model choice by id; a value that spells no id is an invalid choice, not a query (SQLite
    raises on integers past 64 bits instead of finding no row)."""

    def to_python(self, value):
        spelled = value not in self.empty_values and not isinstance(value, models.Model)
        if spelled and parse_id(str(value)) is None:
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class IdMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Model choices by id, checked as IdChoiceField checks one."""

    def _check_values(self, value):
        # clean() has made sure `value` is a list or tuple.
        for pk in value:
            if parse_id(str(pk)) is None:
                raise ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": pk},
                )
        return super()._check_values(value)


def labelled_errors(form: forms.Form) -> list[str]:
    """A bound form's problems, one line a field, each starting with the field's label."""
    return [
        f"{form.fields[name].label or name if name in form.fields else 'Form'}: "
        + " ".join(problems)
        for name, problems in form.errors.items()
    ]


class PairPolicyForm(forms.Form):
    """The choices of a PairPolicy that change which pairs there are; margins keep their
    defaults here (the API takes every setting)."""

    name = forms.CharField(
        max_length=64,
        initial="default",
        help_text="Deriving again under the same name replaces that policy's pairs.",
    )
    ranking_pairs = forms.ChoiceField(
        label="Pairs from a ranking",
        choices=[
            ("all", "Every pair"),
            ("adjacent", "Neighbouring places"),
            ("best_vs_rest", "The best against the rest"),
        ],
    )
    aggregate = forms.ChoiceField(
        label="Several annotators on the same outputs",
        choices=[
            ("majority", "Majority verdict"),
            ("bradley_terry", "Bradley-Terry within the prompt"),
        ],
    )
    ties = forms.ChoiceField(
        label="Ties", choices=[("drop", "Leave out"), ("keep", "Keep, marked as ties")]
    )
    both_bad = forms.ChoiceField(
        label="Both bad",
        choices=[("drop", "Leave out"), ("tie", "Keep as a tie")],
        help_text="Neither output is fit to be chosen, so by default neither is.",
    )

    def policy(self) -> PairPolicy:
        return PairPolicy(**self.cleaned_data)


class ImportForm(forms.Form):
    file = forms.FileField(
        label="JSONL, CSV or Parquet file",
        help_text="JSONL, plain or gzipped (.jsonl.gz); CSV with a header row (.csv or .tsv, "
        "plain or gzipped, as spreadsheets and Kaggle write it); or Parquet (.parquet, as the "
        "Hugging Face Hub stores datasets). A row a record; up to 1 GiB.",
    )
    import_format = forms.ChoiceField(
        label="Format",
        choices=[("auto", "Tell from the first line")]
        + [(name, FORMAT_LABELS[name]) for name in FORMATS],
    )
    dry_run = forms.BooleanField(
        label="Only check the file",
        required=False,
        help_text="Every line checked as an import would, and what it would create; nothing kept.",
    )


class PromptSetForm(forms.Form):
    """A prompt set from the project's prompts: all of them, or one import's, in a split."""

    name = forms.CharField(max_length=200)
    source = forms.ChoiceField(label="Prompts from")
    split = forms.ChoiceField(
        choices=[("train", "Training prompts"), ("held_out", "Held-out prompts"), ("", "Both")],
        required=False,
        initial="train",
        help_text="Rounds sample from training prompts and evaluate on held-out ones.",
    )

    def __init__(self, batches, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [("", "The whole project")] + [
            (
                str(b.pk),
                f"Import #{b.pk}: {b.source or b.format} ({counted(b.line_count, 'lines')})",
            )
            for b in batches
        ]
        self.fields["source"].required = False


class TaskDeletionForm(forms.Form):
    mode = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[("", "Every kind"), *JudgmentMode.choices],
    )


class ImportDeletionForm(forms.Form):
    batch = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class ProjectDeletionForm(forms.Form):
    """Deleting a project takes its name typed out: nothing of it can be brought back."""

    name = forms.CharField(label="Type the project's name to confirm", max_length=200)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name != self.project.name:
            raise forms.ValidationError(f"it does not match; type {self.project.name!r} exactly.")
        return name


class TaskCreationForm(forms.Form):
    """Which of a project's outputs become tasks (create_tasks_from_completions)."""

    mode = forms.ChoiceField(label="Judgment")
    model_versions = IdMultipleChoiceField(
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every output of each prompt.",
    )
    judgments_wanted = forms.IntegerField(
        label="Judgments per task",
        min_value=1,
        max_value=100,
        required=False,
        help_text="Empty: the project's overlap.",
    )

    def __init__(self, project, *args, **kwargs):
        super().__init__(*args, **kwargs)
        labels = {"pairwise": "Pairwise: every pair of a prompt's outputs"}
        labels |= {
            "ranking": "Ranking: all of a prompt's outputs",
            "rating": "Ratings: all of them",
        }
        self.fields["mode"].choices = [(mode, labels[mode]) for mode in project.enabled_modes]
        self.fields["model_versions"].queryset = project.model_versions.order_by("name")


class ProjectSettingsForm(forms.Form):
    guidelines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "dir": "auto"}),
        help_text="Markdown, shown to annotators above every task (G opens it).",
    )
    modes = forms.MultipleChoiceField(
        label="Judgments",
        choices=JudgmentMode.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Enable at least one kind of judgment."},
    )
    overlap = forms.IntegerField(
        min_value=1,
        max_value=100,
        help_text="Judgments wanted per task, each from a different annotator (for new tasks).",
    )
    gold_percent = forms.IntegerField(
        label="Gold checks (%)",
        min_value=0,
        max_value=MAX_GOLD_PERCENT,
        initial=DEFAULT_GOLD_PERCENT,
        help_text="Share of each annotator's tasks that are gold checks: decided tasks a reviewer "
        "made gold, served unmarked to those who have not seen them, while other work remains. "
        "Their answers give gold accuracy. 0 turns checks off.",
    )


class NewProjectForm(ProjectSettingsForm):
    name = forms.CharField(max_length=200)
    field_order = ["name", "modes", "overlap", "gold_percent", "guidelines"]


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)


class InvitationForm(forms.Form):
    role = forms.ChoiceField(
        choices=[(role.value, role.label) for role in INVITABLE_ROLES], initial=Role.ANNOTATOR
    )
    days = forms.IntegerField(
        label="Valid for (days)", min_value=1, max_value=MAX_INVITATION_DAYS, initial=7
    )
