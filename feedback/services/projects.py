"""Creating projects, members, prompts, model versions and completions one at a time."""

import hashlib
import secrets
from dataclasses import dataclass
from json.encoder import encode_basestring as quote_json

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.models import (
    AnnotationTask,
    Completion,
    ImportBatch,
    Membership,
    ModelVersion,
    Project,
    Prompt,
    PromptSet,
    Removal,
    Role,
)
from feedback.models.projects import DEFAULT_GOLD_PERCENT, MAX_GOLD_PERCENT, JudgmentMode
from feedback.models.prompts import ModelMethod, PromptSplit
from feedback.models.tasks import TaskStatus
from feedback.services.queue import release_leases, takes_checks
from feedback.wording import counted, one_or_many

CHAT_ROLES = {"system", "user", "assistant", "tool"}


@transaction.atomic
def create_project(
    *,
    name: str,
    guidelines: str = "",
    modes: tuple[str, ...] = ("pairwise",),
    overlap: int = 1,
    gold_percent: int = DEFAULT_GOLD_PERCENT,
    admin_id: int | None = None,
) -> Project:
    """A new project; `admin_id`, when given, becomes its first admin member."""
    name = name.strip()
    if not name:
        raise ServiceError("A project needs a name.")
    check_settings(modes, overlap, gold_percent)
    if Project.objects.filter(name=name).exists():
        raise ServiceError(f"A project named {name!r} exists already.", code="conflict")
    project = Project.objects.create(
        name=name,
        guidelines=guidelines,
        pairwise_enabled="pairwise" in modes,
        ranking_enabled="ranking" in modes,
        rating_enabled="rating" in modes,
        overlap=overlap,
        gold_percent=gold_percent,
    )
    if admin_id is not None:
        Membership.objects.create(project=project, user_id=admin_id, role=Role.ADMIN)
    return project


def add_member_named(*, project_id: int, username: str, role: str = Role.ANNOTATOR) -> Membership:
    """add_member for the active account called `username`."""
    user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise ServiceError(
            f"No active user is called {username.strip()!r}; make them an account or send them "
            "an invitation link.",
            code="not_found",
        )
    return add_member(project_id=project_id, user_id=user.pk, role=role)


@transaction.atomic
def add_member(*, project_id: int, user_id: int, role: str = Role.ANNOTATOR) -> Membership:
    if role not in Role.values:
        raise ServiceError(f"Role must be one of {', '.join(Role.values)}; got {role!r}.")
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise ServiceError(f"No user with id {user_id}.", code="not_found")
    # Adding someone who is a member already changes their role, under the same rule as
    # change_member_role; the lock keeps two such changes from racing.
    Project.objects.select_for_update().filter(pk=project_id).first()
    current = Membership.objects.filter(project_id=project_id, user_id=user_id).first()
    if current is not None and current.role == Role.ADMIN and role != Role.ADMIN:
        keeps_an_admin(project_id, user_id)
    membership, _ = Membership.objects.update_or_create(
        project_id=project_id, user_id=user_id, defaults={"role": role}
    )
    checks_for_annotators_only(membership)
    Removal.objects.filter(project_id=project_id, user_id=user_id).delete()
    return membership


def check_settings(modes: tuple[str, ...], overlap: int, gold_percent: int) -> None:
    unknown = set(modes) - set(JudgmentMode.values)
    if unknown or not modes:
        raise ServiceError("Enable at least one of pairwise, ranking and rating judgments.")
    if not 1 <= overlap <= 100:
        raise ServiceError("Overlap (judgments wanted per task) is 1 to 100.")
    if not 0 <= gold_percent <= MAX_GOLD_PERCENT:
        raise ServiceError(f"Gold checks are 0 to {MAX_GOLD_PERCENT}% of the tasks served.")


@transaction.atomic
def update_project(
    *,
    project_id: int,
    guidelines: str | None = None,
    modes: tuple[str, ...] | None = None,
    overlap: int | None = None,
    gold_percent: int | None = None,
) -> Project:
    """Change what annotators read and do; a setting left out (None) keeps its value. A mode
    that open tasks still use cannot be turned off (their annotators would be served tasks the
    project no longer takes); a new overlap applies to tasks created from now on."""
    project = Project.objects.select_for_update().filter(pk=project_id).first()
    if project is None:
        raise ServiceError(f"No project with id {project_id}.", code="not_found")
    guidelines = project.guidelines if guidelines is None else guidelines
    modes = tuple(project.enabled_modes if modes is None else modes)
    overlap = project.overlap if overlap is None else overlap
    gold_percent = project.gold_percent if gold_percent is None else gold_percent
    check_settings(modes, overlap, gold_percent)
    for mode in set(project.enabled_modes) - set(modes):
        still_open = AnnotationTask.objects.filter(
            project_id=project_id, mode=mode, status=TaskStatus.OPEN
        ).count()
        if still_open:
            raise ServiceError(
                f"{counted(still_open, f'open {mode} tasks')} "
                f"{one_or_many(still_open, 'remains', 'remain')}; they must be finished before "
                f"{mode} judgments can be turned off."
            )
    project.guidelines = guidelines
    project.pairwise_enabled = "pairwise" in modes
    project.ranking_enabled = "ranking" in modes
    project.rating_enabled = "rating" in modes
    project.overlap = overlap
    project.gold_percent = gold_percent
    project.save(
        update_fields=[
            "guidelines",
            "pairwise_enabled",
            "ranking_enabled",
            "rating_enabled",
            "overlap",
            "gold_percent",
        ]
    )
    return project


@dataclass(frozen=True)
class NewAccount:
    membership: Membership
    password: str  # shown once to whoever made the account; only its hash is kept


@transaction.atomic
def create_member_account(*, project_id: int, username: str, role: str) -> NewAccount:
    """A new sign-in for someone joining the project, with a random password to hand over once
    (they change it at /account/password/), as a member in `role`."""
    if not Project.objects.filter(pk=project_id).exists():
        raise ServiceError(f"No project with id {project_id}.", code="not_found")
    username = free_username(username, taken="add it as a member instead")
    password = secrets.token_urlsafe(12)
    user = create_account(username, password)
    return NewAccount(add_member(project_id=project_id, user_id=user.pk, role=role), password)


def create_account(username: str, password: str):
    """A new user, once free_username has passed its name; a name taken meanwhile is refused."""
    try:
        with transaction.atomic():
            return get_user_model().objects.create_user(username=username, password=password)
    except IntegrityError:
        raise ServiceError(
            f"An account named {username!r} was made a moment ago; choose another name.",
            code="conflict",
        ) from None


# Imported battles' judgments belong to this account, which cannot sign in (services/imports.py).
IMPORT_USERNAME = "arbiter-import"


def free_username(username: str, *, taken: str) -> str:
    """`username` stripped, if it is a valid name no account has (in any letter case); `taken`
    finishes the sentence refusing one that exists."""
    users = get_user_model()
    username = username.strip()
    try:
        users.username_validator(username)
    except ValidationError:
        raise ServiceError(
            "A username is letters, digits and @ . + - _ only, up to 150 characters."
        ) from None
    if not username or len(username) > 150:
        raise ServiceError("A username is 1 to 150 characters.")
    if username.lower() == IMPORT_USERNAME:
        raise ServiceError(f"{IMPORT_USERNAME!r} is Arbiter's own account; choose another name.")
    if users.objects.filter(username__iexact=username).exists():
        raise ServiceError(
            f"An account named {username!r} exists already; {taken}.", code="conflict"
        )
    return username


def keeps_an_admin(project_id: int, user_id: int) -> None:
    """Refuse a change that would leave the project without an admin member."""
    others = Membership.objects.filter(project_id=project_id, role=Role.ADMIN).exclude(
        user_id=user_id
    )
    if not others.exists():
        raise ServiceError(
            "This is the project's last admin; make someone else an admin first.",
            code="conflict",
        )


@transaction.atomic
def change_member_role(*, project_id: int, user_id: int, role: str) -> Membership:
    if role not in Role.values:
        raise ServiceError(f"Role must be one of {', '.join(Role.values)}; got {role!r}.")
    # Lock the project: two admins demoting each other at once must not both succeed.
    Project.objects.select_for_update().filter(pk=project_id).first()
    membership = Membership.objects.filter(project_id=project_id, user_id=user_id).first()
    if membership is None:
        raise ServiceError("That user is not a member of this project.", code="not_found")
    if membership.role == Role.ADMIN and role != Role.ADMIN:
        keeps_an_admin(project_id, user_id)
    membership.role = role
    membership.save(update_fields=["role"])
    checks_for_annotators_only(membership)
    return membership


def checks_for_annotators_only(membership: Membership) -> None:
    """A reviewer or admin reads the gold answers (Review tab): a gold check they were leased as
    an annotator goes back."""
    if not takes_checks(membership.user_id, membership.project_id):
        release_leases(
            annotator_id=membership.user_id, project_id=membership.project_id, checks_only=True
        )


@transaction.atomic
def remove_member(*, project_id: int, user_id: int) -> None:
    """Take a user off the project. Their judgments stay; tasks leased to them go back to the
    queue now (a lease, not membership, is what lets an answer in)."""
    Project.objects.select_for_update().filter(pk=project_id).first()
    membership = Membership.objects.filter(project_id=project_id, user_id=user_id).first()
    if membership is None:
        raise ServiceError("That user is not a member of this project.", code="not_found")
    if membership.role == Role.ADMIN:
        keeps_an_admin(project_id, user_id)
    membership.delete()
    Removal.objects.update_or_create(
        project_id=project_id, user_id=user_id, defaults={"removed_at": timezone.now()}
    )
    release_leases(annotator_id=user_id, project_id=project_id)


# Ids checked per statement: PostgreSQL takes at most 65,535 parameters.
LOOKUP_BATCH = 10_000


def ids_in_project(model, project_id: int, ids: list[int], what: str) -> list[int]:
    """`ids`, sorted and without repeats, once each is known to be a row of the project."""
    wanted = sorted(set(ids))
    found: set[int] = set()
    # In slices: PostgreSQL takes at most 65,535 parameters a statement.
    for start in range(0, len(wanted), LOOKUP_BATCH):
        found.update(
            model.objects.filter(
                project_id=project_id, pk__in=wanted[start : start + LOOKUP_BATCH]
            ).values_list("pk", flat=True)
        )
    missing = [pk for pk in wanted if pk not in found]
    if missing:
        raise ServiceError(
            f"{what} {missing[:10]}{' ...' if len(missing) > 10 else ''} are not in this project."
        )
    return wanted


@transaction.atomic
def create_prompt_set(
    *,
    project_id: int,
    name: str,
    prompt_ids: list[int] | None = None,
    import_batch_id: int | None = None,
    split: str | None = PromptSplit.TRAIN,
) -> PromptSet:
    """A named set of the project's prompts for rounds and comparisons: `prompt_ids`, or every
    prompt of the project (of one import batch, when given) in `split` (None: either split)."""
    if not Project.objects.filter(pk=project_id).exists():
        raise ServiceError(f"No project with id {project_id}.", code="not_found")
    name = name.strip()
    if not name or len(name) > 200:
        raise ServiceError("Name the prompt set (1 to 200 characters).")
    if PromptSet.objects.filter(project_id=project_id, name=name).exists():
        raise ServiceError(f"A prompt set named {name!r} exists already.", code="conflict")
    if split is not None and split not in PromptSplit.values:
        raise ServiceError(f"Split must be one of {', '.join(PromptSplit.values)}.")
    prompts = Prompt.objects.filter(project_id=project_id)
    if prompt_ids is not None:
        chosen = ids_in_project(Prompt, project_id, prompt_ids, "Prompts")
    else:
        if import_batch_id is not None:
            if not ImportBatch.objects.filter(pk=import_batch_id, project_id=project_id).exists():
                raise ServiceError(f"Import {import_batch_id} is not one of this project's.")
            prompts = prompts.filter(import_batch_id=import_batch_id)
        if split is not None:
            prompts = prompts.filter(split=split)
        chosen = list(prompts.order_by("pk").values_list("pk", flat=True))
    if not chosen:
        raise ServiceError("No prompts match; import some, or choose others.")
    prompt_set = PromptSet.objects.create(project_id=project_id, name=name)
    links = PromptSet.prompts.through
    links.objects.bulk_create(
        links(promptset_id=prompt_set.pk, prompt_id=prompt_id) for prompt_id in chosen
    )
    return prompt_set


def normalise_messages(messages: object) -> list[dict[str, str]]:
    """Check a chat is a list of {"role", "content"} with known roles; return a clean copy."""
    if not isinstance(messages, list) or not messages:
        raise ServiceError("A chat prompt must be a non-empty list of messages.")
    clean = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ServiceError(f"Message {index} is not an object with role and content.")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or role not in CHAT_ROLES:
            raise ServiceError(
                f"Message {index} has role {role!r}; use one of {', '.join(sorted(CHAT_ROLES))}."
            )
        if not isinstance(content, str):
            raise ServiceError(f"Message {index} needs text content.")
        clean.append({"role": role, "content": content})
    return clean


def prompt_content_hash(text: str, messages: list[dict[str, str]] | None) -> str:
    payload = canonical_messages(messages) if messages else text.strip()
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def canonical_messages(messages: list[dict[str, str]]) -> str:
    """`json.dumps(messages, ensure_ascii=False, sort_keys=True)` of normalised messages, whose
    only keys are content and role, and whose roles are CHAT_ROLES words that need no escaping.
    Stored hashes depend on these exact characters; built by hand because the general encoder took
    a third of a chat import's parsing time."""
    items = [f'{{"content": {quote_json(m["content"])}, "role": "{m["role"]}"}}' for m in messages]
    return f"[{', '.join(items)}]"


def prompt_fields(text: str = "", messages: object = None) -> dict:
    """Validated field values for a Prompt, shared by single creation and bulk import."""
    clean_messages = normalise_messages(messages) if messages is not None else None
    if not clean_messages and not text.strip():
        raise ServiceError("A prompt needs text or chat messages.")
    return {
        "text": "" if clean_messages else text,
        "messages": clean_messages,
        "content_hash": prompt_content_hash(text, clean_messages),
    }


@transaction.atomic
def create_prompt(
    *,
    project_id: int,
    text: str = "",
    messages: list[dict[str, str]] | None = None,
    metadata: dict | None = None,
    split: str = "train",
) -> Prompt:
    """Create a prompt, or return the project's existing prompt with the same content."""
    fields = prompt_fields(text, messages)
    prompt, _ = Prompt.objects.get_or_create(
        project_id=project_id,
        content_hash=fields["content_hash"],
        defaults={**fields, "metadata": metadata or {}, "split": split},
    )
    return prompt


MODEL_NAME_LENGTH = ModelVersion._meta.get_field("name").max_length


def locked_version(project_id: int, version_id: int) -> ModelVersion:
    version = (
        ModelVersion.objects.select_for_update()
        .filter(pk=version_id, project_id=project_id)
        .first()
    )
    if version is None:
        raise ServiceError("No such model version in this project.", code="not_found")
    return version


def name_taken(name: str) -> ServiceError:
    return ServiceError(
        f"A model version named {name!r} exists already in this project.", code="conflict"
    )


def check_version_name(name: str) -> None:
    if not name.strip():
        raise ServiceError("A model version needs a name.")
    if len(name.strip()) > MODEL_NAME_LENGTH:
        raise ServiceError(f"A model version's name is at most {MODEL_NAME_LENGTH} characters.")
    if "\x00" in name:  # PostgreSQL text cannot hold it
        raise ServiceError("A model version's name cannot contain a NUL character.")


@transaction.atomic
def create_model_version(
    *,
    project_id: int,
    name: str,
    base_model: str = "",
    adapter_path: str = "",
    parent_id: int | None = None,
    method: str = ModelMethod.BASE,
    hyperparameters: dict | None = None,
    status: str = "ready",
    metrics: dict | None = None,
    alignment_round_id: int | None = None,
    data_snapshot_id: int | None = None,
) -> ModelVersion:
    check_version_name(name)
    if method not in ModelMethod.values:
        raise ServiceError(f"Method must be one of {', '.join(ModelMethod.values)}.")
    if (
        parent_id is not None
        and not ModelVersion.objects.filter(pk=parent_id, project_id=project_id).exists()
    ):
        raise ServiceError(f"Parent model version {parent_id} is not in this project.")
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(
                project_id=project_id,
                name=name.strip(),
                base_model=base_model,
                adapter_path=adapter_path,
                parent_id=parent_id,
                method=method,
                hyperparameters=hyperparameters or {},
                status=status,
                metrics=metrics or {},
                alignment_round_id=alignment_round_id,
                data_snapshot_id=data_snapshot_id,
            )
    except IntegrityError as error:
        raise name_taken(name) from error


@transaction.atomic
def rename_model_version(*, project_id: int, version_id: int, name: str) -> ModelVersion:
    """Give a version another name (a mistyped import, say): its outputs, judgments and ratings
    stay with it, and every page and export reads the new name from then on."""
    name = name.strip()
    check_version_name(name)
    version = locked_version(project_id, version_id)
    try:
        with transaction.atomic():
            ModelVersion.objects.filter(pk=version.pk).update(name=name)
    except IntegrityError as error:  # the project's names are unique
        raise name_taken(name) from error
    version.name = name
    return version


# What uses a model version, as people call it, by the using model's label.
VERSION_USES = {
    "feedback.completion": "outputs",
    "feedback.modelversion": "child versions",
    "training.alignmentround": "rounds",
    "training.trainingjob": "training jobs",
}


@transaction.atomic
def delete_model_version(*, project_id: int, version_id: int) -> str:
    """Delete a model version nothing uses (a name mistyped, a version whose outputs went with
    their import); its name. Refused, naming what uses it, while any output, version, round or
    job does: those are its history. Files an adapter path points at stay where they are."""
    version = locked_version(project_id, version_id)
    uses: dict[str, int] = {}
    # Found from the model's relations, so that a new one cannot be missed.
    for rel in ModelVersion._meta.related_objects:
        label = rel.related_model._meta.label_lower
        count = rel.related_model._default_manager.filter(**{rel.field.name: version}).count()
        if count:
            word = VERSION_USES.get(label, str(rel.related_model._meta.verbose_name_plural))
            uses[word] = uses.get(word, 0) + count
    if uses:
        said = ", ".join(counted(count, word) for word, count in uses.items())
        hint = " Delete the import that brought its outputs first." if "outputs" in uses else ""
        raise ServiceError(
            f"Model version {version.name!r} is in use ({said}); nothing was deleted.{hint}",
            code="conflict",
        )
    version.delete()
    return version.name


def storable_text(text: str) -> str:
    """Model output as the database can hold it: PostgreSQL text cannot contain NUL, which small or
    broken models do emit, so it becomes U+FFFD (the replacement character)."""
    return text.replace("\x00", "\ufffd")


@transaction.atomic
def create_completion(
    *,
    prompt_id: int,
    text: str,
    model_version_id: int | None = None,
    generation_settings: dict | None = None,
    token_count: int | None = None,
) -> Completion:
    prompt = Prompt.objects.filter(pk=prompt_id).first()
    if prompt is None:
        raise ServiceError(f"No prompt with id {prompt_id}.", code="not_found")
    if (
        model_version_id is not None
        and not ModelVersion.objects.filter(
            pk=model_version_id, project_id=prompt.project_id
        ).exists()
    ):
        raise ServiceError(f"Model version {model_version_id} is not in the prompt's project.")
    if token_count is not None and token_count < 0:
        raise ServiceError("Token count cannot be negative.")
    return Completion.objects.create(
        prompt=prompt,
        text=storable_text(text),
        model_version_id=model_version_id,
        generation_settings=generation_settings or {},
        token_count=token_count,
    )
