"""Log formatting: human-readable text lines by default, one JSON object per line with LOG_FORMAT=json.

Structured fields are passed as `extra={"fields": {...}}` so both formats can show them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any


class GatewayFormatter(logging.Formatter):
    def __init__(self, fmt: str = "text") -> None:
        super().__init__()
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        when = log_timestamp(record.created)
        message = record.getMessage()
        if self.json:
            data = {"time": when, "level": record.levelname.lower(), "logger": record.name, "msg": message}
            data.update(fields)
            if record.exc_info:
                data["exc"] = self.formatException(record.exc_info)
            return json.dumps(data, default=str, separators=(",", ":"))
        parts = [when, record.levelname, record.name, message]
        parts.extend(f"{key}={_text(value)}" for key, value in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def log_timestamp(created: float) -> str:
    """`2006-01-02T15:04:05.123Z` (UTC, milliseconds truncated); the seconds part is formatted once per second."""
    second = int(created)
    micros = round((created - second) * 1_000_000)  # as datetime.fromtimestamp rounds
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    if _second[0] != second:
        _second[1] = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second[0] = second
    return f"{_second[1]}.{micros // 1000:03d}Z"


def _text(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text
