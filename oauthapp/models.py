"""Durable OAuth entities of our own. Codes and refresh tokens are django-oauth-toolkit's `Grant` and `RefreshToken`.

- `User`: one row per signed-in identity, keyed by the uid (`sub`) that every ownership check compares.
- `TokenFamily`: the identity and scope captured at sign-in, shared by every refresh token of one rotation chain
  (DOT's `RefreshToken.token_family` points here), so a refreshed access token carries the original claims.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager
from django.db import models

UID_MAX_LENGTH = 255


class UserManager(BaseUserManager["User"]):
    def for_uid(self, uid: str) -> User:
        user, created = self.get_or_create(uid=uid)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user


class User(AbstractBaseUser):
    """A gateway identity. Sign-in happens at the upstream provider (or demo); there are no local passwords."""

    uid = models.CharField(max_length=UID_MAX_LENGTH, unique=True)
    created = models.DateTimeField(auto_now_add=True)

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
