"""The whole configuration document: every section, the version, and paths derived from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from dockyard.config.auth import AuthConfig
from dockyard.config.database import DatabaseConfig
from dockyard.config.health import HealthConfig
from dockyard.config.http import HttpConfig
from dockyard.config.limits import LimitsConfig
from dockyard.config.log import LogConfig
from dockyard.config.mirror import MirrorConfig, MirrorList, ProxyConfig
from dockyard.config.notifications import NotificationsConfig
from dockyard.config.redis import RedisConfig
from dockyard.config.section import Section
from dockyard.config.storage import StorageConfig
from dockyard.config.tracing import TracingConfig
from dockyard.config.validation import ValidationConfig

SUPPORTED_VERSION = "0.1"

DATABASE_FILENAME = "dockyard.db"


class Config(Section):
    """A loaded, validated config.yml; every section has defaults, so `{}` is a valid file."""

    version: str = SUPPORTED_VERSION
    log: LogConfig = Field(default_factory=LogConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    redis: RedisConfig | None = None
    auth: AuthConfig = Field(default_factory=AuthConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    proxy: ProxyConfig | None = None
    mirrors: MirrorList = Field(default_factory=list)

    @model_validator(mode="after")
    def _client_certificates_verified(self) -> Config:
        """A certificate names a user only if the handshake checked it against clientcas."""
        tls = self.http.tls
        if self.auth.clientcertificate.enabled and (tls is None or not tls.clientcas):
            raise ValueError("auth.clientcertificate needs http.tls.clientcas")
        return self

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        """Distribution configs write `version: 0.1`, which YAML reads as a float."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value != SUPPORTED_VERSION:
            raise ValueError(f"unsupported version {value!r} (expected {SUPPORTED_VERSION})")
        return value

    def database_url(self) -> str:
        """The configured URL, else a SQLite file beside the blobs so one directory is the state.

        The path is made absolute now, because the server may change directory later and
        SQLAlchemy resolves relative SQLite paths against the current directory.
        """
        if self.database.url is not None:
            return self.database.url
        root = Path(self.storage.filesystem.rootdirectory).resolve()
        return f"sqlite+aiosqlite:///{root / DATABASE_FILENAME}"

    def upstreams(self) -> list[MirrorConfig]:
        """Every mirrored upstream: the `mirrors` entries in their order, then `proxy` (if
        set) as the catch-all with the empty prefix, since it matches every repository."""
        if self.proxy is None:
            return list(self.mirrors)
        return [*self.mirrors, self.proxy.upstream()]

    def token_key_directory(self) -> Path:
        """Where the built-in token service keeps its signing keys: with the data by default."""
        configured = self.auth.tokenservice.keydirectory
        if configured:
            return Path(configured).resolve()
        return Path(self.storage.filesystem.rootdirectory).resolve() / "auth" / "keys"
