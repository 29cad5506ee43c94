"""Django admin for every domain model."""

from django.contrib import admin, messages
from django.shortcuts import redirect

from feedback import models
from feedback.errors import ServiceError
from feedback.services import create_tasks_from_completions
from feedback.services.import_deletion import delete_import
from feedback.services.invitations import revoke_invitation
from feedback.services.project_deletion import delete_project


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 1
    autocomplete_fields = ["user"]


class DeletedByService(admin.ModelAdmin):
    """A model that a service deletes (delete_model), with what goes with it: a refusal comes
    back as a message on the change page, and Django's bulk "delete selected" is left out (it
    would report every row deleted, refused or not)."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceError as error:
            self.message_user(request, error.message, messages.ERROR)
            opts = self.model._meta
            return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", object_id)


@admin.register(models.Project)
class ProjectAdmin(DeletedByService):
    """Deleting a project goes through delete_project, as on its Settings page: the admin's own
    deletion reads and lists every row first, and fails past 65,535 of them."""

    list_display = ["name", "pairwise_enabled", "ranking_enabled", "rating_enabled", "overlap"]
    search_fields = ["name"]
    inlines = [MembershipInline]

    def get_deleted_objects(self, objs, request):
        listed = [f"{project} and everything in it" for project in objs]
        return listed, {"projects": len(listed)}, set(), []

    def delete_model(self, request, obj) -> None:
        delete_project(project_id=obj.pk)


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["role", "project"]


@admin.register(models.Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Links are made on a project's Settings tab, where the key is shown once; here staff see
    them all and revoke them."""

    list_display = [
        "project",
        "role",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "uses",
    ]
    list_filter = ["role", "project"]
    readonly_fields = [field.name for field in models.Invitation._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke the selected invitation links")
    def revoke(self, request, queryset):
        open_links = queryset.filter(revoked_at__isnull=True).values_list("project_id", "pk")
        for project_id, invitation_id in open_links:
            revoke_invitation(project_id=project_id, invitation_id=invitation_id)
        self.message_user(request, f"{len(open_links)} invitation links revoked.", messages.SUCCESS)


@admin.register(models.ImportBatch)
class ImportBatchAdmin(DeletedByService):
    """Deleting an import deletes what it wrote, as on the Imports page (delete_import): the
    record alone would leave its rows unmarked, beyond taking back together."""

    list_display = ["id", "project", "format", "source", "line_count", "made_summary", "created_at"]
    list_filter = ["project", "format"]
    actions = ["delete_with_rows"]

    @admin.action(description="Delete the selected imports and what they wrote")
    def delete_with_rows(self, request, queryset) -> None:
        for batch in queryset.order_by("pk"):
            try:
                deleted = delete_import(project_id=batch.project_id, batch_id=batch.pk)
            except ServiceError as error:
                self.message_user(request, f"Import #{batch.pk}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, deleted.summary(), messages.SUCCESS)

    def delete_model(self, request, obj) -> None:
        delete_import(project_id=obj.project_id, batch_id=obj.pk)


@admin.register(models.Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "__str__", "split", "import_batch", "created_at"]
    list_filter = ["project", "split", "import_batch"]
    search_fields = ["text"]
    actions = ["pairwise_tasks", "ranking_tasks", "rating_tasks"]

    def open_tasks(self, request, queryset, mode: str) -> None:
        """Tasks over the selected prompts' outputs, a call per project (see
        create_tasks_from_completions); a refused project says why and keeps nothing."""
        by_project: dict[models.Project, list[int]] = {}
        for prompt in queryset.select_related("project").only("pk", "project__name"):
            by_project.setdefault(prompt.project, []).append(prompt.pk)
        for project, prompt_ids in by_project.items():
            try:
                result = create_tasks_from_completions(
                    project_id=project.pk, mode=mode, prompt_ids=prompt_ids
                )
            except ServiceError as error:
                self.message_user(request, f"{project.name}: {error.message}", messages.WARNING)
                continue
            self.message_user(
                request,
                f"{project.name}: {result.summary(mode)}",
                messages.SUCCESS if result.created else messages.INFO,
            )

    @admin.action(description="Create pairwise tasks: every pair of each prompt's outputs")
    def pairwise_tasks(self, request, queryset):
        self.open_tasks(request, queryset, "pairwise")

    @admin.action(description="Create ranking tasks: all of each prompt's outputs")
    def ranking_tasks(self, request, queryset):
        self.open_tasks(request, queryset, "ranking")

    @admin.action(description="Create rating tasks: all of each prompt's outputs")
    def rating_tasks(self, request, queryset):
        self.open_tasks(request, queryset, "rating")


@admin.register(models.PromptSet)
class PromptSetAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    filter_horizontal = ["prompts"]


@admin.register(models.ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "method", "status", "parent", "import_batch", "created_at"]
    list_filter = ["project", "method", "status"]
    search_fields = ["name", "base_model"]


@admin.register(models.Completion)
class CompletionAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "model_version", "token_count", "created_at"]
    list_filter = ["model_version"]
    raw_id_fields = ["prompt"]


class TaskItemInline(admin.TabularInline):
    model = models.TaskItem
    raw_id_fields = ["completion"]
    extra = 0


@admin.register(models.AnnotationTask)
class AnnotationTaskAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "mode",
        "status",
        "judgment_count",
        "judgments_wanted",
        "is_gold",
    ]
    list_filter = ["project", "mode", "status", "is_gold"]
    raw_id_fields = ["prompt"]
    inlines = [TaskItemInline]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "status", "expires_at", "skip_reason"]
    list_filter = ["status", "skip_reason"]
    raw_id_fields = ["task"]


@admin.register(models.Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "kind", "choice", "strength", "created_at"]
    list_filter = ["kind", "choice"]
    raw_id_fields = ["task"]


@admin.register(models.Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ["task", "reviewer", "action", "created_at"]
    raw_id_fields = ["task", "accepted_judgment"]


@admin.register(models.PreferencePair)
class PreferencePairAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "prompt", "chosen", "rejected", "margin", "is_tie", "policy"]
    list_filter = ["project", "policy", "is_tie"]
    raw_id_fields = ["prompt", "chosen", "rejected", "judgments"]


@admin.register(models.ExportSnapshot)
class ExportSnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "format", "row_count", "status", "created_at"]
    list_filter = ["project", "kind", "status"]
