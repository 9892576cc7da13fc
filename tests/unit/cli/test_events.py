"""`dockyard events` reaches the database the way the server does, with every database setting."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from sqlalchemy.engine import make_url

from dockyard.cli import main
from tests.backends import Services


def _server_has_tls(url: str) -> bool:
    async def ask() -> bool:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            return bool(await connection.fetchval("SHOW ssl") == "on")
        finally:
            await connection.close()

    return asyncio.run(ask())


def _config(tmp_path: Path, name: str, database: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "database": database,
        "notifications": {"endpoints": [{"name": "ci", "url": "http://127.0.0.1:1/hook"}]},
    }))
    return str(path)


def test_events_applies_the_database_tls_settings(
        services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """sslmode=require must refuse a server without TLS rather than talk to it in plain text.

    The command once built its own engine from the URL alone, dropping sslmode, the TLS
    files, the pool and statement_timeout, and answered here as if all were well.
    """
    url = services.postgres.create()
    if _server_has_tls(url):
        pytest.skip("this PostgreSQL offers TLS, so sslmode=require would be met")
    plain = _config(tmp_path, "plain.yml", {"url": url})
    assert main(["migrate", "--config", plain]) == 0
    capsys.readouterr()
    assert main(["events", "status", "--json", "--config", plain]) == 0
    assert "endpoints" in json.loads(capsys.readouterr().out)

    required = _config(tmp_path, "tls.yml", {"url": url, "sslmode": "require"})
    assert main(["events", "status", "--config", required]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("dockyard: cannot connect to the database")


def test_no_dead_letters_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "sqlite.yml", {})
    assert main(["migrate", "--config", config]) == 0
    capsys.readouterr()
    assert main(["events", "dead", "--endpoint", "ci", "--config", config]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # what scripts read stays empty
    assert captured.err == "dockyard: no dead-lettered events for 'ci'\n"
