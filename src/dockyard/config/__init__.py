"""The registry's configuration: distribution's config.yml layout plus REGISTRY_* overrides.

Operators move between Dockyard and CNCF distribution, so the file layout and the environment
override scheme follow distribution's. Loading is strict: an unknown key or a bad value stops
the server with a message naming the key, because a silently ignored typo (say, a misspelled
`delete` section) changes behaviour in ways that only show up much later.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "REGISTRY_"

RESERVED_SECTIONS: frozenset[str] = frozenset()
"""First segments of REGISTRY_* variables that are never applied.

Variables whose first segment is not a Config section at all are ignored too; this set keeps
such names ignored even after a section of the same name is added.
"""

FOREIGN_VARIABLES: frozenset[str] = frozenset({"REGISTRY_AUTH_FILE"})
"""Variables other tools own in this namespace (podman and buildah read REGISTRY_AUTH_FILE),
often set in the same shell that starts the registry: never applied, even under `auth`."""

SUPPORTED_VERSION = "0.1"

DATABASE_FILENAME = "dockyard.db"


class ConfigError(Exception):
    """The configuration cannot be used; one line per problem, each led by its key path."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems: tuple[str, ...] = problems


# --- value checks -----------------------------------------------------------------------------

_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign, as Go accepts
    "\u03bcs": 1e-6,  # Greek mu, as Go accepts
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string ("1h30m"), the format distribution's configs use."""
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"not a duration: {text!r} (expected e.g. 10s, 30m, 1h30m)")
    return total


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_positive_duration(value: str) -> str:
    if parse_duration(value) <= 0:
        raise ValueError(f"must be longer than zero: {value!r}")
    return value


def split_host_port(addr: str) -> tuple[str, int]:
    """Go's net.SplitHostPort rules, since distribution's addr uses them: IPv6 needs brackets."""
    host, colon, port = addr.rpartition(":")
    if not colon or not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535:
        raise ValueError(f"not host:port: {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"not host:port (bracket IPv6 hosts, e.g. [::1]:5000): {addr!r}")
    if re.search(r"[\s/]", host):
        raise ValueError(f"not host:port: {addr!r}")
    return host or "0.0.0.0", int(port)


def _check_addr(value: str) -> str:
    split_host_port(value)
    return value


def _check_base_url(value: str) -> str:
    """Clients are redirected to this URL, so anything beyond scheme and authority is a bug."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"must be scheme://host[:port] only: {value!r}")
    try:
        _ = parts.port  # urlsplit only checks the port when asked
    except ValueError:
        raise ValueError(f"bad port in URL: {value!r}") from None
    return f"{parts.scheme}://{parts.netloc}"


def _check_url_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must start with '/': {value!r}")
    return value


def _check_database_url(value: str) -> str:
    try:
        make_url(value)
    except ArgumentError:
        raise ValueError(f"not an SQLAlchemy database URL: {value!r}") from None
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
PositiveDuration = Annotated[Duration, AfterValidator(_check_positive_duration)]
HostPort = Annotated[str, AfterValidator(_check_addr)]
BaseURL = Annotated[str, AfterValidator(_check_base_url)]
URLPath = Annotated[str, AfterValidator(_check_url_path)]
DatabaseURL = Annotated[str, AfterValidator(_check_database_url)]


# --- models -----------------------------------------------------------------------------------


class _Section(BaseModel):
    """Typos must fail loudly, and a loaded configuration must never change underfoot."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        """A bare `key:` in YAML is null; distribution treats it as unset, so do we."""
        if isinstance(data, dict):
            fields = cls.model_fields
            return {k: v for k, v in data.items() if v is not None or k not in fields}
        return data


class AccessLogConfig(_Section):
    disabled: bool = False


class LogConfig(_Section):
    level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    formatter: Literal["text", "json"] = "text"
    accesslog: AccessLogConfig = Field(default_factory=AccessLogConfig)
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class FilesystemConfig(_Section):
    rootdirectory: str = Field(default="./data", min_length=1)


MIN_S3_CHUNK_SIZE = 5 * 1024 * 1024


class S3Config(_Section):
    """distribution's `storage.s3` keys; credentials fall back to the AWS chain when unset."""

    bucket: str = Field(min_length=1)
    region: str = "us-east-1"
    regionendpoint: str | None = None
    forcepathstyle: bool = False
    accesskey: str | None = None
    secretkey: str | None = None
    sessiontoken: str | None = None
    rootdirectory: str = ""
    chunksize: int = Field(default=10 * 1024 * 1024, ge=MIN_S3_CHUNK_SIZE)
    multipartcopychunksize: int = Field(default=32 * 1024 * 1024, ge=MIN_S3_CHUNK_SIZE)
    multipartcopymaxconcurrency: int = Field(default=16, ge=1)
    multipartcopythresholdsize: int = Field(default=32 * 1024 * 1024, ge=0)
    storageclass: str = "STANDARD"
    """NONE sends no storage class (for stores that know none)."""
    encrypt: bool = False
    keyid: str | None = None
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    objectacl: str | None = None
    useragent: str | None = None

    @model_validator(mode="after")
    def _pair_of_keys(self) -> S3Config:
        if (self.accesskey is None) != (self.secretkey is None):
            raise ValueError("accesskey and secretkey go together (or neither, for the AWS chain)")
        return self

    @property
    def endpoint_url(self) -> str | None:
        """`regionendpoint`, with the scheme `secure` implies when it has none."""
        if self.regionendpoint is None:
            return None
        if "://" in self.regionendpoint:
            return self.regionendpoint
        return f"{'https' if self.secure else 'http'}://{self.regionendpoint}"


class DeleteConfig(_Section):
    enabled: bool = True
    referrers: Literal["keep", "remove"] = "keep"
    """What happens to referrers (signatures, SBOMs) when their subject manifest is deleted:
    kept as orphans, or deleted with it (and by GC when their subject is gone)."""


class UploadPurgingConfig(_Section):
    enabled: bool = True
    age: Duration = "168h"
    interval: PositiveDuration = "24h"
    dryrun: bool = False

    @property
    def age_seconds(self) -> float:
        return parse_duration(self.age)

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)


class ReadOnlyConfig(_Section):
    enabled: bool = False


class GCConfig(_Section):
    """Online garbage collection in the server (Dockyard's; distribution has none)."""

    enabled: bool = True
    interval: PositiveDuration = "1h"
    graceperiod: Duration = "1h"
    """Blobs pushed and manifests pushed more recently than this are never collected."""
    deleteuntagged: bool = False

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def grace_seconds(self) -> float:
        return parse_duration(self.graceperiod)


class MaintenanceConfig(_Section):
    uploadpurging: UploadPurgingConfig = Field(default_factory=UploadPurgingConfig)
    readonly: ReadOnlyConfig = Field(default_factory=ReadOnlyConfig)
    gc: GCConfig = Field(default_factory=GCConfig)


class RedirectConfig(_Section):
    disable: bool = False


class StorageConfig(_Section):
    filesystem: FilesystemConfig = Field(default_factory=FilesystemConfig)
    delete: DeleteConfig = Field(default_factory=DeleteConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)
    cache: dict[str, Any] = Field(default_factory=dict)
    """Accepted so distribution configs load unchanged; Dockyard's metadata lives in its DB."""
    redirect: RedirectConfig = Field(default_factory=RedirectConfig)
    s3: S3Config | None = None

    @model_validator(mode="after")
    def _one_driver(self) -> StorageConfig:
        if self.s3 is not None and "filesystem" in self.model_fields_set:
            raise ValueError("configure one storage driver: filesystem or s3, not both")
        return self


class PrometheusConfig(_Section):
    enabled: bool = False
    path: URLPath = "/metrics"


class DebugConfig(_Section):
    addr: HostPort | None = None
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)


class TlsConfig(_Section):
    """Serving HTTPS: SIGHUP re-reads certificate and key without dropping connections."""

    certificate: str = Field(min_length=1)
    key: str = Field(min_length=1)
    clientcas: list[str] = Field(default_factory=list)
    """CA files; when given, every client must present a certificate they signed (mTLS)."""
    minimumtls: Literal["tls1.2", "tls1.3"] = "tls1.2"


class HttpConfig(_Section):
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
        return split_host_port(self.addr)[0]

    @property
    def bind_port(self) -> int:
        return split_host_port(self.addr)[1]

    @property
    def drain_timeout_seconds(self) -> float:
        return parse_duration(self.draintimeout)


class DatabaseConfig(_Section):
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


class RedisPoolConfig(_Section):
    maxactive: int = Field(default=64, ge=1)
    """Connections per worker process."""
    idletimeout: Duration = "300s"


class RedisTLSConfig(_Section):
    enabled: bool = False
    certificate: str | None = None
    key: str | None = None
    clientcas: list[str] = Field(default_factory=list)
    """CA files that verify the Redis server (distribution's key name)."""
    insecureskipverify: bool = False


class RedisCacheConfig(_Section):
    ttl: PositiveDuration = "10m"
    """An upper bound on how long an entry lives; writes invalidate entries at once."""


class RedisConfig(_Section):
    """distribution's `redis` section: a cache for hot lookups and the nodes' meeting place."""

    addr: HostPort
    username: str | None = None
    password: str | None = None
    db: int = Field(default=0, ge=0)
    dialtimeout: PositiveDuration = "2s"
    readtimeout: PositiveDuration = "2s"
    writetimeout: PositiveDuration = "2s"
    pool: RedisPoolConfig = Field(default_factory=RedisPoolConfig)
    tls: RedisTLSConfig = Field(default_factory=RedisTLSConfig)
    cache: RedisCacheConfig = Field(default_factory=RedisCacheConfig)


class LimitsConfig(_Section):
    manifestmaxbytes: int = Field(default=4 * 1024 * 1024, gt=0)
    workers: int | None = Field(default=None, ge=1)


class HtpasswdConfig(_Section):
    realm: str = "dockyard"
    path: str = Field(min_length=1)


TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                    "ES256", "ES384", "ES512", "EdDSA")


class TokenConfig(_Section):
    """Bearer tokens (distribution's auth.token). Without rootcertbundle or jwks, the
    built-in token service issues them and its realm is this server's token path."""

    realm: str | None = None
    service: str | None = None
    issuer: str | None = None
    rootcertbundle: str | None = None
    jwks: str | None = None
    signingalgorithms: list[Literal[TOKEN_ALGORITHMS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(TOKEN_ALGORITHMS), min_length=1)


class TokenServiceConfig(_Section):
    enabled: bool | None = None
    """Default: on when auth.htpasswd is configured."""
    path: URLPath = "/token"
    issuer: str = "dockyard"
    service: str = "dockyard"
    expiration: PositiveDuration = "5m"
    refreshexpiration: PositiveDuration = "24h"
    keydirectory: str | None = None
    """Default: <rootdirectory>/auth/keys."""

    @property
    def expiration_seconds(self) -> float:
        return parse_duration(self.expiration)

    @property
    def refresh_expiration_seconds(self) -> float:
        return parse_duration(self.refreshexpiration)


class AccessRuleConfig(_Section):
    repositories: list[str] = Field(min_length=1)
    """Globs: `*` within a path component, `**` across components."""
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    actions: list[Literal["pull", "push", "delete", "*"]] = Field(default_factory=list)
    anonymouspull: bool = False


class AccessConfig(_Section):
    admins: list[str] = Field(default_factory=list)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[AccessRuleConfig] = Field(default_factory=list)


class RateLimitConfig(_Section):
    attempts: int = Field(default=5, ge=1)
    """Failed logins per user within the window before 429."""
    addressattempts: int = Field(default=30, ge=1)
    """Failed logins per client address within the window before 429."""
    window: PositiveDuration = "5m"

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)


class AuthConfig(_Section):
    htpasswd: HtpasswdConfig | None = None
    token: TokenConfig | None = None
    tokenservice: TokenServiceConfig = Field(default_factory=TokenServiceConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    ratelimit: RateLimitConfig = Field(default_factory=RateLimitConfig)

    @property
    def enabled(self) -> bool:
        return self.htpasswd is not None or self.token is not None

    @property
    def token_service_enabled(self) -> bool:
        enabled = self.tokenservice.enabled
        return self.htpasswd is not None and (enabled is None or enabled)

    @model_validator(mode="after")
    def _consistent(self) -> AuthConfig:
        if self.tokenservice.enabled and self.htpasswd is None:
            raise ValueError("tokenservice.enabled needs auth.htpasswd (its users)")
        token = self.token
        if token is not None and not self.token_service_enabled and not (
                token.rootcertbundle or token.jwks):
            raise ValueError("auth.token needs rootcertbundle or jwks, "
                             "or auth.htpasswd for the built-in token service")
        if token is not None and (token.rootcertbundle or token.jwks) and not (
                token.realm and token.service and token.issuer):
            raise ValueError("auth.token with an external token service needs realm, "
                             "service and issuer")
        return self


class StorageDriverHealthConfig(_Section):
    enabled: bool = False
    interval: PositiveDuration = "10s"
    threshold: int = Field(default=1, ge=1)
    """Consecutive failures before the check reports unhealthy."""


class FileHealthConfig(_Section):
    """Unhealthy while the file exists (a maintenance switch), as in distribution."""

    file: str = Field(min_length=1)
    interval: PositiveDuration = "10s"


class HttpHealthConfig(_Section):
    uri: str = Field(min_length=1)
    headers: dict[str, list[str]] = Field(default_factory=dict)
    statuscode: int = 200
    timeout: PositiveDuration = "1s"
    interval: PositiveDuration = "10s"
    threshold: int = Field(default=1, ge=1)


class TcpHealthConfig(_Section):
    addr: HostPort
    timeout: PositiveDuration = "1s"
    interval: PositiveDuration = "10s"
    threshold: int = Field(default=1, ge=1)


class HealthConfig(_Section):
    """distribution's `health` section: checks reported on the debug address's /debug/health."""

    storagedriver: StorageDriverHealthConfig = Field(default_factory=StorageDriverHealthConfig)
    file: list[FileHealthConfig] = Field(default_factory=list)
    http: list[HttpHealthConfig] = Field(default_factory=list)
    tcp: list[TcpHealthConfig] = Field(default_factory=list)


class TracingConfig(_Section):
    """OpenTelemetry spans over OTLP/HTTP; off unless enabled (needs dockyard[tracing])."""

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    servicename: str = "dockyard"
    samplingratio: float = Field(default=1.0, ge=0.0, le=1.0)
    headers: dict[str, str] = Field(default_factory=dict)


class NotificationIgnoreConfig(_Section):
    mediatypes: list[str] = Field(default_factory=list)
    actions: list[Literal["push", "pull", "mount", "delete"]] = Field(default_factory=list)


def _check_webhook_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


class NotificationEndpointConfig(_Section):
    """One webhook receiver (distribution's notifications.endpoints[] plus secret, format,
    maxbackoff and maxage)."""

    name: str = Field(min_length=1, max_length=200)
    url: Annotated[str, AfterValidator(_check_webhook_url)]
    disabled: bool = False
    headers: dict[str, list[str]] = Field(default_factory=dict)
    timeout: PositiveDuration = "5s"
    threshold: int = Field(default=10, ge=1)
    """Consecutive failures after which the endpoint is reported failing (and logged)."""
    backoff: PositiveDuration = "1s"
    """First retry delay; it doubles with each failure up to maxbackoff."""
    maxbackoff: PositiveDuration = "5m"
    maxage: PositiveDuration = "24h"
    """Events still undelivered this long after they were recorded go to the dead letters."""
    secret: str | None = Field(default=None, min_length=1)
    """Signs each body: X-Dockyard-Signature: sha256=<hex HMAC-SHA256 of the body>."""
    format: Literal["distribution", "cloudevents"] = "distribution"
    ignoredmediatypes: list[str] = Field(default_factory=list)
    ignore: NotificationIgnoreConfig = Field(default_factory=NotificationIgnoreConfig)

    @property
    def ignored_media_types(self) -> frozenset[str]:
        return frozenset(self.ignoredmediatypes) | frozenset(self.ignore.mediatypes)


class PullEventsConfig(_Section):
    """A busy cluster pulls far more than it pushes: pull events may be sampled or dropped."""

    disabled: bool = False
    samplerate: float = Field(default=1.0, ge=0.0, le=1.0)


class NotificationEventsConfig(_Section):
    includereferences: bool = False
    pulls: PullEventsConfig = Field(default_factory=PullEventsConfig)


class NotificationsConfig(_Section):
    events: NotificationEventsConfig = Field(default_factory=NotificationEventsConfig)
    endpoints: list[NotificationEndpointConfig] = Field(default_factory=list)
    lease: PositiveDuration = "15s"
    """How long a crashed node's claim on an endpoint keeps others from delivering to it."""
    retention: Duration = "1h"
    """Delivered events are kept this long, for `dockyard events replay`."""

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsConfig:
        names = [endpoint.name for endpoint in self.endpoints]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"endpoint names must be unique: {', '.join(repeated)}")
        return self

    @property
    def active_endpoints(self) -> list[NotificationEndpointConfig]:
        return [endpoint for endpoint in self.endpoints if not endpoint.disabled]


class Config(_Section):
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

    def token_key_directory(self) -> Path:
        """Where the built-in token service keeps its signing keys: with the data by default."""
        configured = self.auth.tokenservice.keydirectory
        if configured:
            return Path(configured).resolve()
        return Path(self.storage.filesystem.rootdirectory).resolve() / "auth" / "keys"


# --- environment overrides --------------------------------------------------------------------


def _members(annotation: Any) -> list[Any]:
    """The plain types behind Optional/Union/Annotated."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _dict_value_type(annotation: Any) -> Any | None:
    for member in _members(annotation):
        if get_origin(member) is dict:
            return get_args(member)[1]
    return None


def _match_field(model: type[BaseModel], segments: list[str]) -> str | None:
    """Longest match first: field names may contain '_' themselves (database.pool_size)."""
    for count in range(len(segments), 0, -1):
        name = "_".join(segments[:count])
        if name in model.model_fields:
            return name
    return None


def _resolve(segments: list[str]) -> tuple[list[str], Any] | None:
    """The key path and its type for a variable's segments, or None if no such key exists.

    The rest of a variable below a mapping-valued field (log.fields, storage.cache) is one key.
    """
    path: list[str] = []
    annotation: Any = Config
    rest = segments
    while rest:
        model = _model_of(annotation)
        value_type = _dict_value_type(annotation)
        if model is not None:
            name = _match_field(model, rest)
            if name is None:
                return None
            path.append(name)
            annotation = model.model_fields[name].annotation
            rest = rest[name.count("_") + 1 :]
        elif value_type is not None and all(rest):
            return [*path, "_".join(rest)], value_type
        else:
            return None
    return path, annotation


def _env_value(text: str, annotation: Any) -> Any:
    """YAML for typed values ("true", "5", "[a, b]"); string fields take the text verbatim.

    Verbatim strings keep secrets such as "a: b" or "*x" from being mangled by YAML; an empty
    value means unset.
    """
    if str in _members(annotation):
        return text or None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError("value is not valid YAML") from None


def _set_path(raw: dict[Any, Any], path: list[str], value: Any) -> None:
    node = raw
    for depth, key in enumerate(path[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise ValueError(f"{'.'.join(path[: depth + 1])} is not a mapping")
        node = child
    node[path[-1]] = value


def _env_segments(name: str) -> list[str] | None:
    """The lower-cased key segments of a variable this module owns, else None."""
    if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
        return None
    if name in FOREIGN_VARIABLES:
        return None
    segments = name[len(ENV_PREFIX) :].lower().split("_")
    if segments[0] in RESERVED_SECTIONS or segments[0] not in Config.model_fields:
        return None
    return segments


def _apply_variable(raw: dict[Any, Any], name: str, text: str) -> tuple[str, ...] | None:
    """Set one variable's key in raw; returns the key path it set."""
    segments = _env_segments(name)
    if segments is None:
        return None
    resolved = _resolve(segments)
    if resolved is None:
        raise ValueError(f"unknown key {'.'.join(segments)}")
    path, annotation = resolved
    _set_path(raw, path, _env_value(text, annotation))
    return tuple(path)


def _apply_environ(raw: dict[Any, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Apply overrides in name order (sections before their keys); map key paths to variables."""
    origins: dict[tuple[str, ...], str] = {}
    problems: list[str] = []
    for name in sorted(environ):
        try:
            path = _apply_variable(raw, name, environ[name])
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if path is not None:
            origins[path] = name
    if problems:
        raise ConfigError(*problems)
    return origins


# --- loading ----------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[Any, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read config file: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, not {type(data).__name__}")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's messages span several lines; keep the problem and where it is."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{exc.problem or exc.context or 'syntax error'}{where}"
    return str(exc).replace("\n", " ")


def _key_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "<config>"


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a mapping"
    if kind == "value_error" and "ctx" in error:
        return str(error["ctx"]["error"])
    return error["msg"]


def _origin(loc: tuple[int | str, ...], origins: Mapping[tuple[str, ...], str]) -> str:
    """Which variable set this key, so a bad override is traced to the environment."""
    path = tuple(str(part) for part in loc)
    for length in range(len(path), 0, -1):
        name = origins.get(path[:length])
        if name is not None:
            return f" (from {name})"
    return ""


def _validate(raw: dict[Any, Any], origins: Mapping[tuple[str, ...], str]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{_key_path(e['loc'])}: {_describe(e)}{_origin(e['loc'], origins)}"
            for e in exc.errors(include_url=False)
        ]
        raise ConfigError(*problems) from None


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the file (or only defaults when path is None), apply REGISTRY_* overrides, validate.

    Raises ConfigError, never a pydantic or YAML exception, so callers report one kind of error.
    """
    raw = _read_yaml(Path(path)) if path is not None else {}
    origins = _apply_environ(raw, os.environ if environ is None else environ)
    return _validate(raw, origins)
