"""The `database` section (Dockyard's): where the metadata lives and how it is pooled."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dockyard.config.section import Section
from dockyard.config.values import DatabaseURL, Duration, PositiveDuration


class DatabaseConfig(Section):
    """SQLite beside the blobs by default; a PostgreSQL URL lets several nodes share one."""

    url: DatabaseURL | None = None
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout: PositiveDuration = "10s"
    """How long a request waits for a pooled connection before it is answered 503."""
    connect_timeout: PositiveDuration = "5s"
    statement_timeout: Duration = "30s"
    """PostgreSQL's statement_timeout for every session; 0 disables it."""
    pool_recycle: Duration = "30m"
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None = None
    """PostgreSQL TLS, as libpq names the modes; unset leaves the URL's own settings."""
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    automigrate: bool = True
    """False: `dockyard serve` only checks the schema; `dockyard migrate` upgrades it."""
    echo: bool = False
