"""The `http` section: where and how the registry listens, its debug listener and TLS."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dockyard.config.section import Section
from dockyard.config.values import (
    BaseURL,
    Duration,
    HostPort,
    URLPath,
    parse_duration,
    split_host_port,
)


class PrometheusConfig(Section):
    """Metrics on the debug listener, so they never share the registry's public port."""

    enabled: bool = False
    path: URLPath = "/metrics"


class DebugConfig(Section):
    """distribution's `http.debug`: a second, private listener for /debug/health and metrics."""

    addr: HostPort | None = None
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)


class TlsConfig(Section):
    """Serving HTTPS: SIGHUP re-reads certificate and key without dropping connections."""

    certificate: str = Field(min_length=1)
    key: str = Field(min_length=1)
    clientcas: list[str] = Field(default_factory=list)
    """CA files; when given, every client must present a certificate they signed (mTLS)."""
    minimumtls: Literal["tls1.2", "tls1.3"] = "tls1.2"


class HttpConfig(Section):
    """distribution's `http` section: the listening address, external URL, headers, drain."""

    addr: HostPort = "127.0.0.1:5000"
    host: BaseURL | None = None
    """External base URL, without a trailing slash once loaded."""
    relativeurls: bool = False
    prefix: URLPath = "/"
    secret: str | None = None
    headers: dict[str, list[str]] = Field(default_factory=dict)
    draintimeout: Duration = "10s"
    debug: DebugConfig = Field(default_factory=DebugConfig)
    tls: TlsConfig | None = None

    @property
    def bind_host(self) -> str:
        """The host part of `addr` (0.0.0.0 when empty, as Go listens on all)."""
        return split_host_port(self.addr)[0]

    @property
    def bind_port(self) -> int:
        """The port part of `addr`."""
        return split_host_port(self.addr)[1]

    @property
    def drain_timeout_seconds(self) -> float:
        """`draintimeout` in seconds."""
        return parse_duration(self.draintimeout)
