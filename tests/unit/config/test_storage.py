"""storage.s3 keys distribution defines: each one works or is refused, never silently ignored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession, web

from dockyard.app.backends import build_blob_store, s3_options
from dockyard.config import Config, ConfigError, load_config
from dockyard.config.storage import S3Config
from dockyard.oci.digest import Digest
from dockyard.storage.s3.driver import S3Options
from tests.backends import Services

S3 = {"REGISTRY_STORAGE_S3_BUCKET": "registry"}

BASE = {"bucket": "registry", "regionendpoint": "store.internal:9000"}
CHANGES: dict[str, dict[str, Any]] = {
    "bucket": {"bucket": "other"},
    "region": {"region": "eu-west-1"},
    "regionendpoint": {"regionendpoint": "other.internal:9000"},
    "forcepathstyle": {"forcepathstyle": True},
    "accesskey": {"accesskey": "a", "secretkey": "b"},
    "secretkey": {"accesskey": "a", "secretkey": "b"},
    "sessiontoken": {"sessiontoken": "t"},
    "rootdirectory": {"rootdirectory": "/registry"},
    "chunksize": {"chunksize": 6 * 1024 * 1024},
    "multipartcopychunksize": {"multipartcopychunksize": 6 * 1024 * 1024},
    "multipartcopymaxconcurrency": {"multipartcopymaxconcurrency": 3},
    "multipartcopythresholdsize": {"multipartcopythresholdsize": 1},
    "storageclass": {"storageclass": "STANDARD_IA"},
    "encrypt": {"encrypt": True},
    "keyid": {"keyid": "k"},
    "secure": {"secure": False},
    "skipverify": {"skipverify": True},
    "objectacl": {"objectacl": "bucket-owner-full-control"},
    "useragent": {"useragent": "dockyard-test/1.0"},
}
"""A value other than the default for each key; v4auth has only one value it may take."""


def _config(tmp_path: Path, s3: dict[str, Any]) -> Config:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"storage": {"s3": s3}}))
    return load_config(path, {})


def _options(tmp_path: Path, s3: dict[str, Any]) -> S3Options | None:
    return s3_options(_config(tmp_path, s3))


def test_every_s3_key_reaches_the_driver(tmp_path: Path) -> None:
    """A key the model declares but the driver never sees is accepted and ignored: a lie."""
    assert set(CHANGES) == set(S3Config.model_fields) - {"v4auth"}
    base = _options(tmp_path, BASE)
    ignored = [key for key, change in CHANGES.items()
               if _options(tmp_path, {**BASE, **change}) == base]
    assert ignored == []


def test_v4auth_true_is_accepted() -> None:
    config = load_config(None, {**S3, "REGISTRY_STORAGE_S3_V4AUTH": "true"})
    assert config.storage.s3 is not None


def test_v4auth_false_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, {**S3, "REGISTRY_STORAGE_S3_V4AUTH": "false"})
    assert str(raised.value) == (
        "storage.s3.v4auth: signature version 2 is not supported: S3 requests are always "
        "signed with version 4 (remove v4auth or set it to true) "
        "(from REGISTRY_STORAGE_S3_V4AUTH)")


def test_useragent_leads_the_user_agent_of_s3_requests(tmp_path: Path, services: Services
                                                         ) -> None:
    """What reaches the store is observed on the wire, in front of the real S3 server."""
    user_agents: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        user_agents.append(request.headers.get("User-Agent", ""))
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with ClientSession(auto_decompress=False) as session, session.request(
                request.method, services.moto.endpoint + request.path_qs, headers=headers,
                data=await request.read()) as upstream:
            body = await upstream.read()
            kept = {k: v for k, v in upstream.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "date", "server")}
            return web.Response(status=upstream.status, body=body, headers=kept)

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        s3: dict[str, Any] = {**services.s3_section(), "regionendpoint": f"127.0.0.1:{port}",
                              "secure": False, "useragent": "dockyard-test/1.0"}
        store = build_blob_store(_config(tmp_path, s3))
        try:
            assert await store.stat(Digest.of(b"never pushed")) is None
        finally:
            await store.close()
            await runner.cleanup()

    asyncio.run(main())
    assert user_agents
    assert all(agent.startswith("dockyard-test/1.0") for agent in user_agents)

