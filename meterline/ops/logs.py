"""Log setup for every meterline process: ``METERLINE_LOG_LEVEL`` and ``METERLINE_LOG_FORMAT``.

``text`` (default): ``time level logger: message``. ``json``: one object per line with
``ts``, ``level``, ``logger``, ``message``, the ``extra=`` fields of the call (``event_id``,
``trace_id``, ``topic``, ``partition``, ``offset``, ...), the source coordinates of an
:class:`~meterline.stream_processors.errors.InvalidMessage` passed as an argument, and ``exc``.
Passwords in URLs (``scheme://user:secret@host``) are masked in either format.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from meterline.settings import Settings

#: METERLINE_LOG_LEVEL uses Faust's names (crit/error/warn/info/debug) for every process.
LOG_LEVELS = {
    "crit": logging.CRITICAL,
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@\s/]+@")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
#: attributes of an argument (e.g. InvalidMessage) copied into the JSON object
_SOURCE_FIELDS = ("topic", "partition", "offset", "error_type")


def mask_secrets(text: str) -> str:
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_secrets(record.getMessage()),
        }
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if all(hasattr(arg, f) for f in _SOURCE_FIELDS):
                out.update({f: getattr(arg, f) for f in _SOURCE_FIELDS})
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            out["exc"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def level_of(settings: Settings) -> int:
    return LOG_LEVELS.get(settings.log_level.lower(), logging.WARNING)


def formatter_for(settings: Settings) -> logging.Formatter:
    if settings.log_format not in FORMATS:
        raise ValueError(
            f"METERLINE_LOG_FORMAT must be one of {FORMATS}, not {settings.log_format!r}"
        )
    return JsonFormatter() if settings.log_format == "json" else TextFormatter()


def configure_logging(settings: Settings) -> None:
    """Root logger to stderr in ``settings.log_format`` at ``settings.log_level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(settings))
    logging.basicConfig(level=level_of(settings), handlers=[handler], force=True)


def faust_logging_config(settings: Settings) -> dict[str, Any] | None:
    """``logging_config`` for Faust's worker (dictConfig); None keeps Faust's own text logs."""
    if settings.log_format != "json":
        return None
    level = logging.getLevelName(level_of(settings))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "json", "level": level}
        },
        "root": {"level": level, "handlers": ["default"]},
    }
