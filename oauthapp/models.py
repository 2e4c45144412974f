"""Durable OAuth entities of our own. Codes and refresh tokens are django-oauth-toolkit's `Grant` and `RefreshToken`.

- `User`: one row per signed-in identity, keyed by the uid (`sub`) that every ownership check compares, with the email
  of the latest sign-in (and whether the identity provider verified it) and when tokens were last issued to it.
- `TokenFamily`: the identity and scope captured at sign-in, shared by every refresh token of one rotation chain
  (DOT's `RefreshToken.token_family` points here), so a refreshed access token carries the original claims.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager
from django.db import models
from django.utils import timezone

UID_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 320


class UserManager(BaseUserManager["User"]):
    def for_uid(self, uid: str) -> User:
        user, created = self.get_or_create(uid=uid)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user

    def seen(self, uid: str, *, email: str | None = None, email_verified: bool = False) -> None:
        """Tokens were just issued to `uid` (sign-in, refresh, client credentials): record when, and with `email`
        the address of this sign-in (docs/operations.md, "last seen")."""
        changes: dict[str, object] = {"last_seen_at": timezone.now()}
        if email is not None:
            changes.update(email=email[:EMAIL_MAX_LENGTH], email_verified=email_verified and bool(email))
        if not self.filter(uid=uid).update(**changes):
            user = self.for_uid(uid)
            self.filter(pk=user.pk).update(**changes)


class User(AbstractBaseUser):
    """A gateway identity. Sign-in happens at the upstream provider (or demo); there are no local passwords."""

    uid = models.CharField(max_length=UID_MAX_LENGTH, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    # The email of the latest sign-in; `email_verified` only when an identity provider vouched for it (oidc and
    # firebase modes drop unverified addresses, docs/protocol/oauth.md §3.3; demo-mode addresses are never verified).
    email = models.CharField(max_length=320, blank=True)
    email_verified = models.BooleanField(default=False)
    last_seen_at = models.DateTimeField(null=True)

    USERNAME_FIELD = "uid"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects: ClassVar[UserManager] = UserManager()

    def __str__(self) -> str:
        return self.uid


class TokenFamily(models.Model):
    """What a refresh-token family re-issues: the identity and scope of the original sign-in."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    uid = models.CharField(max_length=UID_MAX_LENGTH)
    email = models.TextField(blank=True)
    name = models.TextField(blank=True)
    scope = models.TextField(blank=True)
    client_id = models.CharField(max_length=255)
    auth_mode = models.CharField(max_length=16)
    # SHA-256 of the authorization code the family was issued for: a second exchange of that code revokes the family
    # (decisions.md H6).
    code_digest = models.CharField(max_length=64, blank=True, db_index=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"TokenFamily {self.id}"
