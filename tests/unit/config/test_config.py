"""Configuration loading: distribution's config.yml layout, REGISTRY_* overrides, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from dockyard.config import Config, ConfigError, load_config, parse_duration

DISTRIBUTION_YAML = """\
version: 0.1
log:
  level: DEBUG
  formatter: json
  accesslog:
    disabled: true
  fields:
    service: registry
    environment: staging
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: false
  maintenance:
    uploadpurging:
      enabled: true
      age: 72h
      interval: 1h30m
      dryrun: true
    readonly:
      enabled: true
  cache:
    blobdescriptor: inmemory
  redirect:
    disable: true
http:
  addr: :5000
  host: https://registry.example.com/
  relativeurls: true
  prefix: /
  secret: asecretforlocaldevelopment
  headers:
    X-Content-Type-Options: [nosniff]
  draintimeout: 60s
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
      path: /metrics
database:
  url: postgresql+asyncpg://dockyard:pw@db:5432/dockyard
  pool_size: 20
  echo: true
limits:
  manifestmaxbytes: 1048576
  workers: 4
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def write_yaml(tmp_path: Path, data: dict[str, Any]) -> Path:
    return write(tmp_path, yaml.safe_dump(data))


def load_error(path: Path | None = None, **environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ)
    return str(info.value)


# --- defaults and files -----------------------------------------------------------------------


def test_defaults_without_a_file() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert config.version == "0.1"
    assert config.log.level == "info"
    assert config.log.formatter == "text"
    assert config.storage.filesystem.rootdirectory == "./data"
    assert config.storage.delete.enabled is True
    assert config.storage.maintenance.uploadpurging.age_seconds == 168 * 3600
    assert config.storage.maintenance.uploadpurging.interval_seconds == 24 * 3600
    assert config.storage.maintenance.readonly.enabled is False
    assert config.http.addr == "127.0.0.1:5000"
    assert (config.http.bind_host, config.http.bind_port) == ("127.0.0.1", 5000)
    assert config.http.host is None
    assert config.http.drain_timeout_seconds == 10
    assert config.http.debug.prometheus.enabled is False
    assert config.database.url is None
    assert config.database.pool_size == 10
    assert config.limits.manifestmaxbytes == 4 * 1024 * 1024
    assert config.limits.workers is None


def test_full_distribution_style_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DISTRIBUTION_YAML), {})
    assert config.version == "0.1"
    assert config.log.level == "debug"
    assert config.log.formatter == "json"
    assert config.log.accesslog.disabled is True
    assert config.log.fields == {"service": "registry", "environment": "staging"}
    storage = config.storage
    assert storage.filesystem.rootdirectory == "/var/lib/registry"
    assert storage.delete.enabled is False
    assert storage.maintenance.uploadpurging.age_seconds == 72 * 3600
    assert storage.maintenance.uploadpurging.interval_seconds == 5400
    assert storage.maintenance.uploadpurging.dryrun is True
    assert storage.maintenance.readonly.enabled is True
    assert storage.cache == {"blobdescriptor": "inmemory"}
    assert storage.redirect.disable is True
    http = config.http
    assert (http.bind_host, http.bind_port) == ("0.0.0.0", 5000)
    assert http.host == "https://registry.example.com"
    assert http.relativeurls is True
    assert http.prefix == "/"
    assert http.secret == "asecretforlocaldevelopment"
    assert http.headers == {"X-Content-Type-Options": ["nosniff"]}
    assert http.drain_timeout_seconds == 60
    assert http.debug.addr == "localhost:5001"
    assert http.debug.prometheus.enabled is True
    assert config.database.pool_size == 20
    assert config.database.echo is True
    assert config.database_url() == "postgresql+asyncpg://dockyard:pw@db:5432/dockyard"
    assert config.limits.manifestmaxbytes == 1048576
    assert config.limits.workers == 4


def test_empty_file_and_empty_sections_mean_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), {}) == Config()
    assert load_config(write(tmp_path, "log:\nstorage:\n  cache:\n"), {}) == Config()


def test_version_as_string_and_unsupported_version(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, 'version: "0.1"\n'), {}).version == "0.1"
    assert "version: unsupported version '0.2'" in load_error(write(tmp_path, "version: 0.2\n"))


def test_config_is_frozen() -> None:
    config = load_config(None, {})
    with pytest.raises(pydantic.ValidationError):
        config.http.addr = "0.0.0.0:80"


# --- errors -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    message = load_error(missing)
    assert str(missing) in message
    assert "cannot read" in message


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "http:\n  addr: [unclosed\n")
    message = load_error(path)
    assert message.startswith(f"{path}: invalid YAML")
    assert "line " in message
    assert "\n" not in message


@pytest.mark.parametrize("text", [
    "http:\n  addr: :5000\n  addr: :6000\n",
    "version: 0.1\nversion: 0.1\n",
    "auth:\n  access:\n    groups: {a: [x], a: [y]}\n",
])
def test_a_key_given_twice_is_refused(tmp_path: Path, text: str) -> None:
    message = load_error(write(tmp_path, text))
    assert "invalid YAML: duplicate key" in message
    assert "line " in message


def test_a_path_prefix_is_refused(tmp_path: Path) -> None:
    """Accepting it would be a promise Dockyard does not keep: clients look for /v2/ at /."""
    message = load_error(write_yaml(tmp_path, {"http": {"prefix": "/registry/"}}))
    assert message.startswith("http.prefix: '/registry/': only / is served")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "top level must be a mapping" in load_error(write(tmp_path, "- a\n- b\n"))


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"storage": {"filesystem": {"rootdir": "/x"}}})
    assert load_error(path) == "storage.filesystem.rootdir: unknown key"


def test_unknown_top_level_section_in_file(tmp_path: Path) -> None:
    assert load_error(write_yaml(tmp_path, {"reporting": {}})) == "reporting: unknown key"


def test_wrong_types_are_named(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {
        "log": {"level": "loud"},
        "storage": {"delete": "sometimes"},
        "database": {"pool_size": 0},
        "limits": {"manifestmaxbytes": "lots"},
    })
    lines = load_error(path).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("log.level: ")
    assert lines[1] == "storage.delete: expected a mapping"
    assert lines[2].startswith("database.pool_size: ")
    assert lines[3].startswith("limits.manifestmaxbytes: ")


def test_list_items_are_named_by_index(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"http": {"headers": {"X-A": ["ok", {"no": 1}]}}})
    assert load_error(path).startswith("http.headers.X-A[1]: ")


@pytest.mark.parametrize("addr", ["5000", "localhost", "host:port", "host:65536", "::1:5000",
                                  "a b:80", "", "host:-1"])
def test_bad_addr(tmp_path: Path, addr: str) -> None:
    message = load_error(write_yaml(tmp_path, {"http": {"addr": addr}}))
    assert message.startswith("http.addr: not host:port")


@pytest.mark.parametrize(("addr", "host", "port"), [
    (":5000", "0.0.0.0", 5000),
    ("0.0.0.0:0", "0.0.0.0", 0),
    ("localhost:65535", "localhost", 65535),
    ("[::1]:5000", "::1", 5000),
])
def test_good_addr(tmp_path: Path, addr: str, host: str, port: int) -> None:
    http = load_config(write_yaml(tmp_path, {"http": {"addr": addr}}), {}).http
    assert (http.bind_host, http.bind_port) == (host, port)


def test_bad_debug_addr(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"http": {"debug": {"addr": "nowhere"}}})
    assert load_error(path).startswith("http.debug.addr: not host:port")


@pytest.mark.parametrize("host", ["registry.example.com", "ftp://registry.example.com",
                                  "https://registry.example.com/v2", "https://",
                                  "https://registry.example.com?x=1"])
def test_bad_external_host(tmp_path: Path, host: str) -> None:
    assert load_error(write_yaml(tmp_path, {"http": {"host": host}})).startswith("http.host: ")


def test_bad_duration(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"storage": {"maintenance": {"uploadpurging": {"age": "7d"}}}})
    message = load_error(path)
    assert message.startswith("storage.maintenance.uploadpurging.age: not a duration: '7d'")


def test_zero_purge_interval_is_rejected(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"storage": {"maintenance": {"uploadpurging": {"interval": "0s"}}}})
    assert load_error(path).startswith("storage.maintenance.uploadpurging.interval: ")


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("10s", 10.0), ("30m", 1800.0), ("168h", 604800.0), ("1h30m", 5400.0),
    ("1.5h", 5400.0), ("250ms", 0.25), ("2m30s500ms", 150.5),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "7d", "h", "1h 30m", "-5s", "1.2.3s", "s10"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_bad_database_url(tmp_path: Path) -> None:
    message = load_error(write_yaml(tmp_path, {"database": {"url": "not a url"}}))
    assert message.startswith("database.url: ")


# --- environment overrides --------------------------------------------------------------------


def test_env_values_are_typed() -> None:
    config = load_config(None, {
        "REGISTRY_STORAGE_DELETE_ENABLED": "false",
        "REGISTRY_LIMITS_WORKERS": "3",
        "REGISTRY_HTTP_HEADERS_X_FRAME_OPTIONS": "[DENY, SAMEORIGIN]",
        "REGISTRY_LOG_LEVEL": "ERROR",
        "REGISTRY_VERSION": "0.1",
    })
    assert config.storage.delete.enabled is False
    assert config.limits.workers == 3
    assert config.http.headers == {"x_frame_options": ["DENY", "SAMEORIGIN"]}
    assert config.log.level == "error"
    assert config.version == "0.1"


def test_env_string_values_are_taken_verbatim() -> None:
    config = load_config(None, {"REGISTRY_HTTP_SECRET": "a: b # *not yaml"})
    assert config.http.secret == "a: b # *not yaml"


def test_env_creates_nested_sections(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"log": {"level": "info"}})
    config = load_config(path, {
        "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED": "true",
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h",
        "REGISTRY_LOG_FIELDS_SERVICE": "registry",
        "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": "inmemory",
    })
    assert config.http.debug.prometheus.enabled is True
    assert config.storage.maintenance.uploadpurging.age_seconds == 7200
    assert config.log.fields == {"service": "registry"}
    assert config.storage.cache == {"blobdescriptor": "inmemory"}


def test_env_key_with_underscore_in_its_name() -> None:
    assert load_config(None, {"REGISTRY_DATABASE_POOL_SIZE": "7"}).database.pool_size == 7


def test_env_wins_over_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"http": {"addr": "127.0.0.1:5000", "relativeurls": False},
                                 "storage": {"filesystem": {"rootdirectory": "/from/file"}}})
    config = load_config(path, {"REGISTRY_HTTP_ADDR": ":6000",
                                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/from/env"})
    assert config.http.addr == ":6000"
    assert config.http.relativeurls is False
    assert config.storage.filesystem.rootdirectory == "/from/env"


def test_env_section_then_key_applies_in_name_order() -> None:
    config = load_config(None, {"REGISTRY_LOG_LEVEL": "debug",
                                "REGISTRY_LOG": "{level: warn, formatter: json}"})
    assert (config.log.level, config.log.formatter) == ("debug", "json")


def test_empty_env_value_means_default() -> None:
    assert load_config(None, {"REGISTRY_LOG_LEVEL": ""}).log.level == "info"


def test_unknown_key_in_env_is_named() -> None:
    assert load_error(REGISTRY_HTTP_NOPE="1") == "REGISTRY_HTTP_NOPE: unknown key http.nope"
    message = load_error(REGISTRY_STORAGE_FILESYSTEM_ROOTDIR="/x")
    assert message == "REGISTRY_STORAGE_FILESYSTEM_ROOTDIR: unknown key storage.filesystem.rootdir"


def test_env_below_a_scalar_is_unknown() -> None:
    message = load_error(REGISTRY_HTTP_ADDR_PORT="80")
    assert message.startswith("REGISTRY_HTTP_ADDR_PORT: unknown key")


def test_env_into_a_non_mapping_from_file(tmp_path: Path) -> None:
    path = write(tmp_path, "log: loud\n")
    message = load_error(path, REGISTRY_LOG_LEVEL="debug")
    assert message == "REGISTRY_LOG_LEVEL: log is not a mapping"


def test_bad_env_value_names_the_variable() -> None:
    message = load_error(REGISTRY_HTTP_ADDR="nowhere", REGISTRY_LIMITS_WORKERS="[1")
    assert message == "REGISTRY_LIMITS_WORKERS: value is not valid YAML"
    message = load_error(REGISTRY_HTTP_ADDR="nowhere")
    assert message == "http.addr: not host:port: 'nowhere' (from REGISTRY_HTTP_ADDR)"


def test_foreign_and_bare_registry_variables_are_ignored() -> None:
    config = load_config(None, {
        "REGISTRY_AUTH_FILE": "/run/containers/0/auth.json",
        "REGISTRY_": "x",
        "REGISTRY_PASSWORD": "hunter2",
        "DOCKER_REGISTRY_HTTP_ADDR": "nonsense",
        "registry_http_addr": "nonsense",
    })
    assert config == Config()


def test_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_LIMITS_WORKERS", "2")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", "/nonexistent/auth.json")
    assert load_config(None).limits.workers == 2


# --- database URL -----------------------------------------------------------------------------


def test_database_url_defaults_to_sqlite_under_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = load_config(None, {}).database_url()
    expected = tmp_path.resolve() / "data" / "dockyard.db"
    assert url == f"sqlite+aiosqlite:///{expected}"
    assert url.startswith("sqlite+aiosqlite:////")


def test_database_url_follows_an_absolute_root(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    config = load_config(None, {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(root)})
    assert config.database_url() == f"sqlite+aiosqlite:///{root.resolve()}/dockyard.db"
