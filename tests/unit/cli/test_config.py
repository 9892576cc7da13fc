"""`dockyard config check`: upstream credentials are masked like every other secret, and a
password source that fails is named without its content."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dockyard.cli import main

SECRET = "hunter2-upstream"


def _write(tmp_path: Path, password_file: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "proxy": {"remoteurl": "https://registry-1.docker.io", "username": "bob",
                  "password": SECRET},
        "mirrors": [
            {"prefix": "ghcr.io", "url": "https://ghcr.io", "username": "u",
             "passwordfile": password_file},
            {"prefix": "quay.io", "url": "https://quay.io", "username": "u",
             "passwordenv": "QUAY_TOKEN", "maxsize": "10GiB"},
        ],
    }))
    return path


def test_upstream_passwords_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "ghcr-token"
    secret_file.write_text(SECRET + "-file\n")
    monkeypatch.setenv("QUAY_TOKEN", SECRET + "-env")
    assert main(["config", "check", str(_write(tmp_path, str(secret_file)))]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    settings = yaml.safe_load(out)
    assert settings["proxy"]["password"] == "********"
    assert settings["proxy"]["ttl"] == "168h"
    ghcr, quay = settings["mirrors"]
    assert ghcr["passwordfile"] == str(secret_file)  # where it comes from, not what it is
    assert (quay["passwordenv"], quay["maxsize"], quay["tagttl"]) == ("QUAY_TOKEN", "10GiB", "5m")


def test_a_failing_password_source_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("QUAY_TOKEN", raising=False)
    missing = tmp_path / "missing"
    assert main(["config", "check", str(_write(tmp_path, str(missing)))]) == 2
    err = capsys.readouterr().err
    assert SECRET not in err
    assert f"mirrors[0].passwordfile: cannot read {missing}" in err
    assert "mirrors[1].passwordenv: environment variable QUAY_TOKEN is not set" in err
