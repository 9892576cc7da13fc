"""The `http` section: where and how the registry listens, its debug listener and TLS."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

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
    """Only "/": registry clients find the API at /v2/ on the host, so a prefix that a proxy
    maps must be stripped by the proxy; a value Dockyard would not honour is refused."""
    secret: str | None = None
    """Accepted so distribution configs load unchanged, and unused: distribution signs upload
    state with it, Dockyard keeps that state in its database (serve says so at start)."""
    headers: dict[str, list[str]] = Field(default_factory=dict)
    """Sent on every response, as distribution does (X-Content-Type-Options: [nosniff])."""
    draintimeout: Duration = "10s"
    debug: DebugConfig = Field(default_factory=DebugConfig)
    tls: TlsConfig | None = None

    @field_validator("prefix")
    @classmethod
    def _root_only(cls, value: str) -> str:
        if value != "/":
            raise ValueError(f"{value!r}: only / is served; a reverse proxy in front maps a "
                             "path prefix (and must strip it: clients look for /v2/ at the root)")
        return value

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
