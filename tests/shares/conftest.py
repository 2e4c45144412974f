"""Fixtures for sharing tests."""

from __future__ import annotations

import time

import pytest

from relay import access
from shares import permissions


@pytest.fixture
def clock(monkeypatch):
    """Freeze the sharing clock at the current second; `clock.advance(seconds)` moves it."""

    class Clock:
        now = int(time.time())

        def advance(self, seconds: int) -> None:
            self.now += seconds

    c = Clock()
    monkeypatch.setattr(permissions, "now", lambda: c.now)
    monkeypatch.setattr(access, "now", lambda: c.now)
    return c
