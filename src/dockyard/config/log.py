"""The `log` section: level, format and fixed fields of the server's log lines."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from dockyard.config.section import Section


class AccessLogConfig(Section):
    """distribution's `log.accesslog`: one line per request unless disabled."""

    disabled: bool = False


class LogConfig(Section):
    """distribution's `log` section; `fields` are added to every line to tell nodes apart."""

    level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    formatter: Literal["text", "json"] = "text"
    accesslog: AccessLogConfig = Field(default_factory=AccessLogConfig)
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value
