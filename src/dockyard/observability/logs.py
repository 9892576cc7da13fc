"""Logging set-up: text for a terminal, JSON lines for a pipeline.

Every line logged while a request is handled carries its id (a context variable the request
middleware sets), and every line passes through `redact`, so a password, token or URL
signature that reaches a message or a traceback is masked before it is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR}


request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dockyard_request_id", default=None)
"""The id of the request being handled; aiohttp runs each request in its own task."""

_SECRET_WORDS = (r"password|passwd|secret|secretkey|secret_key|token|access_token|"
                 r"refresh_token|client_secret|signature|x-amz-signature|x-amz-credential|"
                 r"x-amz-security-token|sig|apikey|api_key")
_SECRETS = re.compile(
    rf"(?i)(?P<kv>\b(?:{_SECRET_WORDS})=)[^&\s\"',;\\]+"
    rf"|(?P<json>\"(?:{_SECRET_WORDS})\"\s*:\s*\")[^\"]*"
    r"|(?P<auth>\b(?:basic|bearer)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|(?P<userinfo>[a-z][a-z0-9+.-]*://[^:/\s@]*:)[^@\s/]+(?=@)"
)
MASK = "***"


def _mask(match: re.Match[str]) -> str:
    return (match.group("kv") or match.group("json") or match.group("auth")
            or match.group("userinfo")) + MASK


def redact(text: str) -> str:
    """`text` with credentials masked: key=value and JSON secrets, auth headers, URL passwords."""
    return _SECRETS.sub(_mask, text)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record ("-" outside a request) for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class RedactingFormatter(logging.Formatter):
    """For text lines: masks the whole formatted line, traceback included."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self._fields = fields

    def format(self, record: logging.LogRecord) -> str:
        # Redacted before encoding: masking the encoded line could break its escapes.
        message = redact(record.getMessage())
        try:
            document = json.loads(message) if record.name == "dockyard.access" else None
        except ValueError:
            document = None
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            **self._fields,
        }
        current = getattr(record, "request_id", "-")
        if current != "-":
            entry["request_id"] = current
        if isinstance(document, dict):
            entry.update(document)
        else:
            entry["msg"] = message
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


def configure_logging(level: str, formatter: str, fields: dict[str, str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if formatter == "json":
        handler.setFormatter(JsonFormatter(fields))
    else:
        handler.setFormatter(RedactingFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    # Access lines are requests, not diagnostics: keep them at info whatever the level.
    logging.getLogger("dockyard.access").setLevel(logging.INFO)


def set_level(level: str) -> None:
    """The root level (SIGHUP applies a changed log.level this way)."""
    logging.getLogger().setLevel(_LEVELS[level])
