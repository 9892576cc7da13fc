"""The `tracing` section (Dockyard's): OpenTelemetry spans, off by default."""

from __future__ import annotations

from pydantic import Field

from dockyard.config.section import Section


class TracingConfig(Section):
    """OpenTelemetry spans over OTLP/HTTP; off unless enabled (needs dockyard[tracing])."""

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    servicename: str = "dockyard"
    samplingratio: float = Field(default=1.0, ge=0.0, le=1.0)
    headers: dict[str, str] = Field(default_factory=dict)
