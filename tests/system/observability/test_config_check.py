"""`dockyard config check FILE`: validation and the effective settings, secrets masked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

SECRETS = ("hunter2", "s3-secret-key", "AKIAEXAMPLE", "http-secret", "Basic dXNlcg==")


def _check(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "config", "check", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})


def test_prints_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({
        "version": 0.1,
        "http": {"secret": "http-secret", "debug": {"addr": ":5001"}},
        "storage": {"s3": {"bucket": "images", "accesskey": "AKIAEXAMPLE",
                           "secretkey": "s3-secret-key"}},
        "database": {"url": "postgresql+asyncpg://dock:hunter2@db:5432/dockyard"},
        "health": {"http": [{"uri": "http://upstream/", "headers": {
            "Authorization": ["Basic dXNlcg=="], "Accept": ["text/plain"]}}]},
    }))
    result = _check(path, REGISTRY_LOG_LEVEL="debug")
    assert result.returncode == 0, result.stderr
    for secret in SECRETS:
        assert secret not in result.stdout
    settings = yaml.safe_load(result.stdout)
    assert settings["log"]["level"] == "debug"  # environment overrides are shown
    assert settings["http"]["secret"] == "********"
    assert settings["database"]["url"] == "postgresql+asyncpg://dock:********@db:5432/dockyard"
    assert settings["storage"]["s3"]["bucket"] == "images"
    headers = settings["health"]["http"][0]["headers"]
    assert headers == {"Authorization": ["********"], "Accept": ["text/plain"]}
    assert settings["http"]["draintimeout"] == "10s"  # defaults are filled in


def test_default_database_is_shown(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {tmp_path}}}}}\n")
    settings = yaml.safe_load(_check(path).stdout)
    assert settings["database"]["url"] == f"sqlite+aiosqlite:///{tmp_path}/dockyard.db"


def test_invalid_configuration_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nhttp: {adr: ':5000'}\nlog: {level: loud}\n")
    result = _check(path)
    assert result.returncode == 2
    assert "http.adr: unknown key" in result.stderr
    assert "log.level" in result.stderr
    assert result.stdout == ""


def test_files_the_configuration_names_must_be_readable(tmp_path: Path) -> None:
    """A config whose files are missing would not start a server: it is not valid."""
    missing = tmp_path / "missing"
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({
        "version": 0.1,
        "http": {"tls": {"certificate": f"{missing}/cert.pem", "key": f"{missing}/key.pem"}},
        "auth": {"htpasswd": {"path": f"{missing}/htpasswd"}},
        "database": {"sslrootcert": f"{missing}/ca.pem"},
    }))
    result = _check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "dockyard: invalid configuration:",
        f"http.tls.certificate: cannot read {missing}/cert.pem: No such file or directory",
        f"http.tls.key: cannot read {missing}/key.pem: No such file or directory",
        f"database.sslrootcert: cannot read {missing}/ca.pem: No such file or directory",
        f"auth.htpasswd.path: cannot read {missing}/htpasswd: No such file or directory",
    ]


def test_a_certificate_that_does_not_parse_is_named(tmp_path: Path) -> None:
    garbage = tmp_path / "cert.pem"
    garbage.write_text("not a certificate")
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({
        "version": 0.1, "http": {"tls": {"certificate": str(garbage), "key": str(garbage)}}}))
    result = _check(path)
    assert result.returncode == 2
    assert f"http.tls: cannot use {garbage} and {garbage}:" in result.stderr
