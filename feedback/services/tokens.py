"""Issuing and revoking per-user API tokens. The full key is returned once and never stored."""

import hashlib
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from feedback.errors import ServiceError
from feedback.models import ApiToken

KEY_PREFIX = "arb"
MAX_ACTIVE_TOKENS = 20


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown to the user once; only its hash is kept


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key `arb_<prefix>_<secret>`, else None."""
    parts = key.split("_", 2)  # the secret may itself contain "_"
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@transaction.atomic
def issue_token(*, user_id: int, name: str) -> IssuedToken:
    name = name.strip()
    if not name or len(name) > 100:
        raise ServiceError("Name the token (1 to 100 characters) so you can tell it apart later.")
    active = ApiToken.objects.filter(user_id=user_id, revoked_at__isnull=True).count()
    if active >= MAX_ACTIVE_TOKENS:
        raise ServiceError(
            f"You have {active} active tokens; revoke one before creating another.", code="conflict"
        )
    # token_hex(6) gives 12 hex characters: collisions are checked by the unique constraint.
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user_id=user_id, name=name, prefix=prefix, key_hash=hash_key(key)
    )
    return IssuedToken(token=token, key=key)


@transaction.atomic
def revoke_token(*, user_id: int, token_id: int) -> ApiToken:
    token = ApiToken.objects.select_for_update().filter(pk=token_id, user_id=user_id).first()
    if token is None:
        raise ServiceError(f"You have no token with id {token_id}.", code="not_found")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def user_for_key(key: str):
    """The active user a key belongs to, or None. Records when the token was last used."""
    parts = split_key(key)
    if parts is None:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(prefix=parts[0], revoked_at__isnull=True)
        .first()
    )
    if token is None or not secrets.compare_digest(token.key_hash, hash_key(key)):
        return None
    if not token.user.is_active:
        return None
    now = timezone.now()
    # One write a minute at most: a busy client should not turn every read into an UPDATE.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
