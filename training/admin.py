"""Django admin for rounds and jobs, with cancel and resume as actions (through training.rounds)."""

import json

from django import forms
from django.contrib import admin, messages

from feedback.errors import ServiceError
from training import rounds
from training.hyperparameters import check_round_defaults, default_hyperparameters
from training.models import AlignmentRound, RoundDefaults, RoundMethod, TrainingJob


def apply_to_each(modeladmin, request, queryset, service, done: str) -> None:
    """Run `service` on each selected row; say how many it did, and why it refused the others."""
    count = 0
    for pk in queryset.order_by("pk").values_list("pk", flat=True):
        try:
            service(pk)
        except ServiceError as error:
            modeladmin.message_user(request, f"#{pk}: {error.message}", messages.WARNING)
        else:
            count += 1
    if count:
        modeladmin.message_user(request, f"{done}: {count}.", messages.SUCCESS)


@admin.register(AlignmentRound)
class AlignmentRoundAdmin(admin.ModelAdmin):
    list_display = ["__str__", "method", "state", "policy", "result_version", "created_at"]
    list_filter = ["project", "method", "state"]
    actions = ["cancel", "resume"]

    @admin.action(description="Cancel the selected rounds")
    def cancel(self, request, queryset):
        apply_to_each(self, request, queryset, rounds.cancel_round, "Rounds cancelled")

    @admin.action(description="Resume the selected rounds")
    def resume(self, request, queryset):
        apply_to_each(self, request, queryset, rounds.resume_round, "Rounds resumed")


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "progress",
        "model_version",
        "heartbeat_at",
        "created_at",
    ]
    list_filter = ["kind", "status", "project"]
    readonly_fields = ["metrics_history", "log_tail", "artifacts", "heartbeat_at"]
    actions = ["cancel", "resume"]

    @admin.action(description="Cancel the selected jobs (a round's job cancels its round)")
    def cancel(self, request, queryset):
        apply_to_each(self, request, queryset, rounds.cancel_job, "Jobs cancelled")

    @admin.action(description="Resume the selected jobs from their newest checkpoint")
    def resume(self, request, queryset):
        apply_to_each(self, request, queryset, rounds.resume_job, "Jobs resumed")


class RoundDefaultsForm(forms.ModelForm):
    class Meta:
        model = RoundDefaults
        fields = ["project", "hyperparameters"]

    def clean_hyperparameters(self):
        value = self.cleaned_data["hyperparameters"]
        try:
            check_round_defaults(value)
        except ServiceError as error:
            raise forms.ValidationError(error.message) from error
        return value


@admin.register(RoundDefaults)
class RoundDefaultsAdmin(admin.ModelAdmin):
    form = RoundDefaultsForm
    list_display = ["project"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        # Every key a round takes, with the engine's value: what there is to override.
        engine = {}
        for method in RoundMethod.values:
            engine.update(default_hyperparameters(method))
        form.base_fields["hyperparameters"].help_text = (
            'Sections and keys to override, e.g. {"dpo": {"learning_rate": 0.0005}}. '
            "The engine's defaults: " + json.dumps(engine)
        )
        return form
