"""How every anjeon process logs: text for people, or JSON lines for a log pipeline (`--log-format json`).

JSON: one object per line with ``time`` (UTC, ISO 8601), ``level``, ``process``
(the process's name), ``role``, ``logger``, ``message``, and the structured
fields a call site attaches with ``extra=fields(camera=..., event=...)`` as keys
of their own, so a log pipeline can filter by camera or event without parsing
the message.

Logging policy (docs/metrics.md, Logs): one line per state change, never one per
frame. A warning or error repeated with the same words is written once per
REPEAT_WINDOW; the next one after the window says how many were held back.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

FORMATS = ("text", "json")
REPEAT_WINDOW = 60.0  # seconds an identical warning is held back after it was written
REPEAT_KEYS = 512  # distinct messages remembered; the oldest is forgotten first
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_FIELDS = "anjeon_fields"


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: structured fields (camera, event, rule, peer...) that JSON lines carry as keys."""
    return {_FIELDS: {k: v for k, v in values.items() if v is not None}}


class RepeatFilter(logging.Filter):
    """Lets the first of identical warnings through, holds back the rest for ``window`` seconds, then counts them."""

    def __init__(self, window: float = REPEAT_WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window, self._clock = window, clock
        self._seen: OrderedDict[tuple[object, ...], list[float]] = (
            OrderedDict()
        )  # key -> [written at, held back since]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True  # info lines are state changes: never held back
        try:
            key = (record.name, record.levelno, str(record.msg), repr(record.args)[:500])
        except Exception:  # a repr that fails must not lose the line
            return True
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.window:
                entry[1] += 1
                return False
            held = int(entry[1]) if entry is not None else 0
            self._seen[key] = [now, 0]
            self._seen.move_to_end(key)
            while len(self._seen) > REPEAT_KEYS:
                self._seen.popitem(last=False)
        if held:
            record.repeated = held
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        held = getattr(record, "repeated", 0)
        return f"{text} (and {held} more like it in the last {REPEAT_WINDOW:.0f} s)" if held else text


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str, process: str) -> None:
        super().__init__()
        self.role, self.process = role, process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "process": self.process,
            "role": self.role,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in (getattr(record, _FIELDS, None) or {}).items():
            line.setdefault(key, value)
        held = getattr(record, "repeated", 0)
        if held:
            line["repeated"] = held
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str, fmt: str = "text", role: str = "", process: str = "") -> None:
    """Set up the root logger of this process (stderr, one line per record)."""
    role = role or "anjeon"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(role, process or f"{role}@{socket.gethostname()}:{os.getpid()}")
        if fmt == "json"
        else TextFormatter()
    )
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
