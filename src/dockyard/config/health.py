"""The `health` section: checks reported on the debug listener's /debug/health."""

from __future__ import annotations

from pydantic import Field

from dockyard.config.section import Section
from dockyard.config.values import HostPort, PositiveDuration


class StorageDriverHealthConfig(Section):
    """Probe the blob store, so a node whose store is gone is taken out of rotation."""

    enabled: bool = False
    interval: PositiveDuration = "10s"
    threshold: int = Field(default=1, ge=1)
    """Consecutive failures before the check reports unhealthy."""


class FileHealthConfig(Section):
    """Unhealthy while the file exists (a maintenance switch), as in distribution."""

    file: str = Field(min_length=1)
    interval: PositiveDuration = "10s"


class HttpHealthConfig(Section):
    """Unhealthy while a URL this node depends on answers another status."""

    uri: str = Field(min_length=1)
    headers: dict[str, list[str]] = Field(default_factory=dict)
    statuscode: int = 200
    timeout: PositiveDuration = "1s"
    interval: PositiveDuration = "10s"
    threshold: int = Field(default=1, ge=1)


class TcpHealthConfig(Section):
    """Unhealthy while an address this node depends on refuses connections."""

    addr: HostPort
    timeout: PositiveDuration = "1s"
    interval: PositiveDuration = "10s"
    threshold: int = Field(default=1, ge=1)


class HealthConfig(Section):
    """distribution's `health` section: checks reported on the debug address's /debug/health."""

    storagedriver: StorageDriverHealthConfig = Field(default_factory=StorageDriverHealthConfig)
    file: list[FileHealthConfig] = Field(default_factory=list)
    http: list[HttpHealthConfig] = Field(default_factory=list)
    tcp: list[TcpHealthConfig] = Field(default_factory=list)
