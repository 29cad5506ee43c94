"""Invitation links: an admin makes one for a role, and whoever opens it joins the project,
signed in or with a new account. The key is returned once and only its hash is stored."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.models import Invitation, Membership, Project, Removal
from feedback.models.projects import INVITABLE_ROLES
from feedback.services.projects import create_account, free_username
from feedback.services.tokens import hash_key

MAX_DAYS = 30
GONE = "This invitation link has expired or was revoked; ask the project's admin for a new one."


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    key: str  # goes into the link shown once to the admin; only its hash is kept


@transaction.atomic
def create_invitation(
    *, project_id: int, role: str, created_by_id: int | None, days: int = 7
) -> IssuedInvitation:
    if role not in INVITABLE_ROLES:
        raise ServiceError(
            f"Invitation links make annotators or reviewers; got {role!r}. Add admins by name."
        )
    if not 1 <= days <= MAX_DAYS:
        raise ServiceError(f"An invitation link lasts 1 to {MAX_DAYS} days.")
    if not Project.objects.filter(pk=project_id).exists():
        raise ServiceError(f"No project with id {project_id}.", code="not_found")
    key = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        project_id=project_id,
        role=role,
        key_hash=hash_key(key),
        created_by_id=created_by_id,
        expires_at=timezone.now() + timedelta(days=days),
    )
    return IssuedInvitation(invitation, key)


@transaction.atomic
def revoke_invitation(*, project_id: int, invitation_id: int) -> None:
    revoked = Invitation.objects.filter(
        pk=invitation_id, project_id=project_id, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    if not revoked:
        raise ServiceError("No such invitation link in this project.", code="not_found")


def open_invitation(key: str, *, lock: bool = False) -> Invitation:
    """The invitation behind a link's key, if it is still open; refused otherwise."""
    invitations = Invitation.objects.select_related("project")
    if lock:
        invitations = invitations.select_for_update(of=("self",))
    invitation = invitations.filter(
        key_hash=hash_key(key), revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).first()
    if invitation is None:
        raise ServiceError(GONE, code="not_found")
    return invitation


@transaction.atomic
def accept_invitation(*, key: str, user_id: int) -> Membership:
    """Make the user a member in the invitation's role. Someone who is a member already keeps
    the role they have: a link never demotes, nor promotes past what an admin chose."""
    invitation = open_invitation(key, lock=True)
    if Removal.objects.filter(
        project_id=invitation.project_id, user_id=user_id, removed_at__gte=invitation.created_at
    ).exists():
        raise ServiceError(
            "You were taken off this project after this link was made; ask its admins for a "
            "new one.",
            code="forbidden",
        )
    membership, created = Membership.objects.get_or_create(
        project_id=invitation.project_id, user_id=user_id, defaults={"role": invitation.role}
    )
    if created:
        Invitation.objects.filter(pk=invitation.pk).update(uses=F("uses") + 1)
    return membership


@transaction.atomic
def join_with_new_account(*, key: str, username: str, password: str) -> Membership:
    """A new account, and its membership through the invitation: both or neither."""
    open_invitation(key)  # a dead link makes no account
    username = free_username(username, taken="sign in to join with it")
    users = get_user_model()
    try:
        validate_password(password, user=users(username=username))
    except ValidationError as error:
        raise ServiceError(" ".join(error.messages)) from None
    user = create_account(username, password)
    return accept_invitation(key=key, user_id=user.pk)
