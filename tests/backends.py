"""The two configurations every API test runs on, and the real services behind the second.

- `fs`: filesystem blobs + SQLite (the default single-node setup).
- `s3`: S3 blobs (moto's standalone server: the real S3 protocol over HTTP) + PostgreSQL
  (a database made for this session on the local server) + Redis (the local server).

DOCKYARD_TEST_BACKENDS=fs (or s3) narrows the run to one of them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
import requests

from tests.server import free_port, require_service, terminate, unavailable

BACKENDS = ("fs", "s3")
POSTGRES_HOST = os.environ.get("DOCKYARD_TEST_PGHOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("DOCKYARD_TEST_PGPORT", "5432"))
POSTGRES_ADMIN_DB = os.environ.get("DOCKYARD_TEST_PGDATABASE", "test")
POSTGRES_USERS = ("postgres", "root")
REDIS_HOST = os.environ.get("DOCKYARD_TEST_REDISHOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("DOCKYARD_TEST_REDISPORT", "6379"))
S3_BUCKET = "dockyard-test"
S3_CHUNK_SIZE = 5 * 1024 * 1024
S3_KEYS = {"accesskey": "testing", "secretkey": "testing"}


def selected_backends() -> list[str]:
    wanted = os.environ.get("DOCKYARD_TEST_BACKENDS", ",".join(BACKENDS))
    chosen = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = set(chosen) - set(BACKENDS)
    if unknown:
        raise ValueError(f"DOCKYARD_TEST_BACKENDS: unknown {sorted(unknown)}")
    return chosen


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


class Postgres:
    """Databases made on the local PostgreSQL for this session, dropped at its end."""

    def __init__(self) -> None:
        require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
        self.user = self._working_user()
        self.prefix = f"dockyard_test_{secrets.token_hex(4)}"
        self._made: list[str] = []

    def _admin_dsn(self, user: str) -> str:
        return f"postgresql://{user}@{POSTGRES_HOST}:{POSTGRES_PORT}/{POSTGRES_ADMIN_DB}"

    def _working_user(self) -> str:
        async def attempt(user: str) -> bool:
            try:
                connection = await asyncpg.connect(self._admin_dsn(user), timeout=5)
            except (OSError, asyncpg.PostgresError):
                return False
            await connection.close()
            return True

        for user in POSTGRES_USERS:
            if _run(attempt(user)):
                return user
        unavailable(f"PostgreSQL accepts none of the users {POSTGRES_USERS}",
                    "CI must allow one of them")

    async def _admin(self, statement: str) -> None:
        connection = await asyncpg.connect(self._admin_dsn(self.user), timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    def create(self, host: str = POSTGRES_HOST, port: int = POSTGRES_PORT) -> str:
        """A new empty database; its SQLAlchemy URL (optionally through another address)."""
        name = f"{self.prefix}_{len(self._made)}"
        _run(self._admin(f'CREATE DATABASE "{name}"'))
        self._made.append(name)
        return self.url(name, host, port)

    def url(self, name: str, host: str = POSTGRES_HOST, port: int = POSTGRES_PORT) -> str:
        return f"postgresql+asyncpg://{self.user}@{host}:{port}/{name}"

    def drop_all(self) -> None:
        for name in self._made:
            _run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._made.clear()


class MotoServer:
    """moto's standalone S3 server in its own process (so it does not share our GIL)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "moto.log"
        try:
            import moto.server  # noqa: F401
        except ImportError:
            unavailable("moto[server] is not installed", "it is a test extra")
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.endpoint + "/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError(self.log_path.read_text()) from None
                time.sleep(0.1)
        self.client().create_bucket(Bucket=S3_BUCKET)

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=S3_KEYS["accesskey"],
                            aws_secret_access_key=S3_KEYS["secretkey"])

    def stop(self) -> None:
        terminate(self.process)
        self._log.close()


def redis_addr() -> str:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"{REDIS_HOST}:{REDIS_PORT}"


@dataclass
class Services:
    """Lazily started: a run that selects only `fs` never needs PostgreSQL or moto."""

    workdir: Path
    _postgres: Postgres | None = None
    _moto: MotoServer | None = None
    _count: int = field(default=0)

    @property
    def postgres(self) -> Postgres:
        if self._postgres is None:
            self._postgres = Postgres()
        return self._postgres

    @property
    def moto(self) -> MotoServer:
        if self._moto is None:
            self._moto = MotoServer(self.workdir)
        return self._moto

    def s3_section(self, root: str | None = None) -> dict[str, Any]:
        self._count += 1
        return {
            "bucket": S3_BUCKET,
            "region": "us-east-1",
            "regionendpoint": self.moto.endpoint,
            "forcepathstyle": True,
            "rootdirectory": root or f"/r{self._count}-{secrets.token_hex(3)}",
            "chunksize": S3_CHUNK_SIZE,
            **S3_KEYS,
        }

    def scaled_config(self, database_url: str | None = None, root: str | None = None,
                      redirect: bool = False) -> dict[str, Any]:
        """S3 + PostgreSQL + Redis; nodes given the same url and root share one registry."""
        return {
            "storage": {"s3": self.s3_section(root), "redirect": {"disable": not redirect}},
            "database": {"url": database_url or self.postgres.create()},
            "redis": {"addr": redis_addr()},
        }

    def config_for(self, backend: str) -> dict[str, Any]:
        return {} if backend == "fs" else self.scaled_config()

    def close(self) -> None:
        if self._moto is not None:
            self._moto.stop()
        if self._postgres is not None:
            self._postgres.drop_all()


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    made = Services(tmp_path_factory.mktemp("services"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="session", params=selected_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """Which configuration this test's servers use; every API test runs on each."""
    return str(request.param)
