"""Logging set-up: text for a terminal, JSON lines for a pipeline."""

from __future__ import annotations

import json
import logging
import sys

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR}


class JsonFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self._fields = fields

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
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
        if isinstance(document, dict):
            entry.update(document)
        else:
            entry["msg"] = message
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, formatter: str, fields: dict[str, str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if formatter == "json":
        handler.setFormatter(JsonFormatter(fields))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # Access lines are requests, not diagnostics: keep them at info whatever the level.
    logging.getLogger("dockyard.access").setLevel(logging.INFO)
