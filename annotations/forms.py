"""Parsing what the annotator pages post into the plain inputs that feedback services take.

Forms check shape only (types, lengths, JSON); the rules of a valid judgment live in the services.
"""

import json

from django import forms

from feedback.forms import IdChoiceField
from feedback.models import ModelVersion
from feedback.models.judgments import JUDGMENT_FLAGS, AdjudicationAction
from feedback.models.projects import JudgmentMode
from feedback.models.prompts import PromptSplit
from feedback.models.tasks import SkipReason
from feedback.services import JudgmentInput

RATING_FIELD_PREFIX = "rating-"  # one radio group per output: rating-<completion id>


def parse_ranking(raw: str) -> list[list[int]] | None:
    """A ranking posted as JSON (groups of completion ids, best first); None when empty."""
    if not raw.strip():
        return None
    try:
        ranking = json.loads(raw)
    except json.JSONDecodeError:
        raise forms.ValidationError("The ranking could not be read; reload the page.") from None
    if not isinstance(ranking, list):
        raise forms.ValidationError("The ranking could not be read; reload the page.")
    return ranking


def form_error_message(form: forms.Form) -> str:
    return " ".join(str(message) for errors in form.errors.values() for message in errors)


class JudgmentForm(forms.Form):
    kind = forms.ChoiceField(choices=JudgmentMode.choices)
    idempotency_key = forms.CharField(max_length=100)
    choice = forms.CharField(required=False, max_length=16)
    strength = forms.CharField(required=False, max_length=16)
    ranking = forms.CharField(required=False, max_length=10_000)
    rationale = forms.CharField(required=False, max_length=10_000, strip=True)
    time_spent_ms = forms.IntegerField(required=False, min_value=0, max_value=24 * 3600 * 1000)
    flags = forms.MultipleChoiceField(
        required=False, choices=[(flag, flag) for flag in JUDGMENT_FLAGS]
    )

    def clean_ranking(self) -> list[list[int]] | None:
        return parse_ranking(self.cleaned_data["ranking"])

    def clean(self) -> dict:
        cleaned = super().clean()
        ratings: dict[int, int] = {}
        for key, value in self.data.items():
            if not key.startswith(RATING_FIELD_PREFIX) or value == "":
                continue
            try:
                ratings[int(key.removeprefix(RATING_FIELD_PREFIX))] = int(value)
            except ValueError:
                raise forms.ValidationError("A rating is a whole number.") from None
        cleaned["ratings"] = ratings or None
        return cleaned

    def judgment_input(self) -> JudgmentInput:
        data = self.cleaned_data
        return JudgmentInput(
            kind=data["kind"],
            idempotency_key=data["idempotency_key"],
            choice=data["choice"] or None,
            strength=data["strength"] or None,
            ranking=data["ranking"],
            ratings=data["ratings"],
            rationale=data["rationale"],
            time_spent_ms=data["time_spent_ms"],
            flags=list(data["flags"]),
        )


class SkipForm(forms.Form):
    reason = forms.ChoiceField(choices=SkipReason.choices, initial=SkipReason.SKIP)
    note = forms.CharField(required=False, max_length=2000, strip=True)


class AdjudicationForm(forms.Form):
    action = forms.ChoiceField(choices=AdjudicationAction.choices)
    judgment_id = forms.IntegerField(required=False)
    choice = forms.CharField(required=False, max_length=16)
    ranking = forms.CharField(required=False, max_length=10_000)
    note = forms.CharField(required=False, max_length=10_000, strip=True)

    def clean_ranking(self) -> list[list[int]] | None:
        return parse_ranking(self.cleaned_data["ranking"])


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, e.g. 'training box', so you can tell it apart later.",
    )


class NewAccountForm(forms.Form):
    """A newcomer's own account, made on an invitation link; the password validators run in
    the service, beside the username checks."""

    username = forms.CharField(max_length=150)
    password = forms.CharField(strip=False, widget=forms.PasswordInput)
    password_again = forms.CharField(strip=False, widget=forms.PasswordInput)

    def clean(self):
        data = super().clean()
        if data.get("password") != data.get("password_again"):
            raise forms.ValidationError("The two passwords differ.")
        return data


class PromptSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    split = forms.ChoiceField(
        required=False, choices=[("", "Both splits"), *PromptSplit.choices], label="Split"
    )
    model_version = IdChoiceField(
        queryset=ModelVersion.objects.none(),
        required=False,
        empty_label="Any model",
        label="Answered by",
    )
    tasks = forms.ChoiceField(
        required=False,
        choices=[("", "With or without"), ("without", "Without tasks"), ("with", "With tasks")],
        label="Tasks",
    )
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, project_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].queryset = ModelVersion.objects.filter(
            project_id=project_id
        ).order_by("name")

    def clean_q(self) -> str:
        return self.cleaned_data["q"].strip()
