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

RESERVED_SECTIONS: frozenset[str] = frozenset({"auth"})
"""First segments of REGISTRY_* variables that are never applied.

Other tools own variables in this namespace (podman and buildah read REGISTRY_AUTH_FILE), and
they are often set in the same shell that starts the registry. Variables whose first segment
is not a Config section at all are ignored too; this set keeps such names ignored even after
a section of the same name is added.
"""

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


class DeleteConfig(_Section):
    enabled: bool = True


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


class MaintenanceConfig(_Section):
    uploadpurging: UploadPurgingConfig = Field(default_factory=UploadPurgingConfig)
    readonly: ReadOnlyConfig = Field(default_factory=ReadOnlyConfig)


class RedirectConfig(_Section):
    disable: bool = False


class StorageConfig(_Section):
    filesystem: FilesystemConfig = Field(default_factory=FilesystemConfig)
    delete: DeleteConfig = Field(default_factory=DeleteConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)
    cache: dict[str, Any] = Field(default_factory=dict)
    """Accepted so distribution configs load unchanged; Dockyard's metadata lives in its DB."""
    redirect: RedirectConfig = Field(default_factory=RedirectConfig)


class PrometheusConfig(_Section):
    enabled: bool = False
    path: URLPath = "/metrics"


class DebugConfig(_Section):
    addr: HostPort | None = None
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)


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
    echo: bool = False


class LimitsConfig(_Section):
    manifestmaxbytes: int = Field(default=4 * 1024 * 1024, gt=0)
    workers: int | None = Field(default=None, ge=1)


class Config(_Section):
    version: str = SUPPORTED_VERSION
    log: LogConfig = Field(default_factory=LogConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

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
