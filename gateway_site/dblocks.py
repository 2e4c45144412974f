"""Serialising check-then-write rules across processes (docs/scaling.md).

A rule such as "at most 100 routes per owner" counts rows and then inserts one. Inside one transaction that is exact
only if concurrent transactions for the same owner run one after another:

- PostgreSQL (READ COMMITTED) lets two transactions count the same rows; a transaction-level advisory lock on the
  rule's key makes the second wait until the first commits;
- SQLite runs the gateway's transactions as IMMEDIATE (gateway_site.config), one writer at a time for the whole file,
  so nothing more is needed there.
"""

from __future__ import annotations

from django.db import connection


def serialize_on(key: str) -> None:
    """Inside `transaction.atomic()`: wait for every other open transaction that serialised on `key`."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
