"""Upstreams that misbehave, as small real servers on loopback: bad manifests, redirects the
spec does not allow, hangs, cut bodies, rate limits. Credentials never show in an error."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from dockyard.oci.digest import Digest
from dockyard.registry.mirror.remote import (
    RemoteError,
    RemoteInvalid,
    RemoteNotFound,
    RemoteRefused,
    RemoteUnavailable,
)
from dockyard.remote import RegistryClient
from tests.authkit import Pki, basic
from tests.system.api.client import OCI_MANIFEST

SECRET = "s3cret-upstream-password"
LOGIN = {"username": "mirror", "password": SECRET}
DOCUMENT = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {},
                       "layers": []}).encode()
BLOB = b"blob bytes " * 1000
BLOB_DIGEST = Digest.of(BLOB)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(routes: dict[str, Handler], tls: ssl.SSLContext | None = None,
                  ) -> AsyncIterator[str]:
    """A server answering GET/HEAD on `routes` (paths); its base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def manifest(body: bytes, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": OCI_MANIFEST, **headers})
    return handler


def redirect(location: str, seen: list[web.Request] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if seen is not None:
            seen.append(request)
        return web.Response(status=307, headers={"Location": location})
    return handler


def blob(seen: list[web.Request]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(body=BLOB)
    return handler


async def collect(client: RegistryClient) -> bytes:
    async with client.open_blob("r", BLOB_DIGEST) as download:
        return b"".join([part async for part in download.chunks()])


def scenario_with(routes: dict[str, Handler], body: Callable[[RegistryClient], Awaitable[None]],
                  **options: object) -> None:
    async def main() -> None:
        async with serving(routes) as url:
            client = RegistryClient(url, **options)  # type: ignore[arg-type]
            try:
                await body(client)
            finally:
                await client.close()
    asyncio.run(main())


# -- manifests -------------------------------------------------------------------------------


def test_manifests_that_do_not_check_out() -> None:
    other = Digest.of(b"something else")
    routes = {
        "/v2/r/manifests/garbage": manifest(b"\x00not json{"),
        "/v2/r/manifests/scalar": manifest(b"[1, 2]"),
        "/v2/r/manifests/lying": manifest(DOCUMENT, **{"Docker-Content-Digest": str(other)}),
        "/v2/r/manifests/malformed": manifest(DOCUMENT, **{"Docker-Content-Digest": "sha256:x"}),
        f"/v2/r/manifests/{other}": manifest(DOCUMENT),
        "/v2/r/manifests/untyped": manifest(DOCUMENT, **{"Content-Type": "application/json"}),
        "/v2/r/manifests/big": manifest(b"{" + b" " * 2000 + b"}"),
        "/v2/r/manifests/streamed": streamed(b"{" + b" " * 2000 + b"}"),
        "/v2/r/manifests/elsewhere": redirect("http://localhost:1/v2/r/manifests/x"),
        "/v2/r/manifests/moved": redirect("/v2/r/manifests/untyped"),
        "/v2/r/manifests/lying-head": manifest(DOCUMENT),  # HEAD of a tag: no digest
    }

    async def body(client: RegistryClient) -> None:
        for reference in ("garbage", "scalar", "lying", "malformed", str(other), "big",
                          "streamed", "elsewhere"):
            with pytest.raises(RemoteInvalid):
                await client.get_manifest("r", reference)
        fetched = await client.get_manifest("r", "moved")  # same host: followed
        assert fetched.media_type == OCI_MANIFEST, "from the document when the header is vague"
        assert fetched.digest == Digest.of(DOCUMENT)
        with pytest.raises(RemoteInvalid):
            await client.head_manifest("r", "lying-head")
        with pytest.raises(RemoteNotFound):
            await client.get_manifest("r", "absent")

    scenario_with(routes, body, manifest_max_bytes=1000)


def streamed(content: bytes) -> Handler:
    """Chunked, without Content-Length: the size is learnt only by reading."""
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": OCI_MANIFEST})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(content), 100):
            await response.write(content[start:start + 100])
        await response.write_eof()
        return response
    return handler


# -- redirects -------------------------------------------------------------------------------


def test_blob_redirect_to_another_host_drops_credentials() -> None:
    registry_seen: list[web.Request] = []
    storage_seen: list[web.Request] = []

    async def main() -> bytes:
        async with serving({"/blobs/{name}": blob(storage_seen)}) as storage:
            location = f"{storage}/blobs/layer?signature=abc"

            async def registry(request: web.Request) -> web.Response:
                if request.headers.get("Authorization") != basic("mirror", SECRET)[
                        "Authorization"]:
                    return web.Response(status=401, headers={
                        "WWW-Authenticate": 'Basic realm="test"'})
                return await redirect(location, registry_seen)(request)

            async with serving({"/v2/r/blobs/{digest}": registry}) as url:
                client = RegistryClient(url, **LOGIN)
                try:
                    return await collect(client)
                finally:
                    await client.close()

    assert asyncio.run(main()) == BLOB
    assert registry_seen and registry_seen[-1].headers.get("Authorization")
    assert len(storage_seen) == 1
    assert "Authorization" not in storage_seen[0].headers
    assert storage_seen[0].query_string == "signature=abc"


def test_redirects_the_spec_does_not_allow(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    cert, key = pki.issue("server")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cafile=str(pki.ca_path))
    storage_seen: list[web.Request] = []

    async def main() -> None:
        async with serving({"/blobs/{name}": blob(storage_seen)}) as plain:
            routes = {
                "/v2/r/blobs/sha256:{hex}": redirect(f"{plain}/blobs/layer"),
                "/v2/ftp/blobs/{digest}": redirect("ftp://127.0.0.1/layer"),
                "/v2/file/blobs/{digest}": redirect("file:///etc/passwd"),
                "/v2/loop/blobs/{digest}": redirect("/v2/loop/blobs/again"),
            }
            async with serving(routes, tls) as url:
                client = RegistryClient(url, ssl=trust)
                try:
                    for repository in ("r", "ftp", "file", "loop"):
                        with pytest.raises(RemoteInvalid):
                            async with client.open_blob(repository, BLOB_DIGEST):
                                pass
                finally:
                    await client.close()

    asyncio.run(main())
    assert storage_seen == [], "https never leads to http"


# -- broken connections ----------------------------------------------------------------------


def test_a_hanging_upstream_is_unavailable_within_the_read_timeout() -> None:
    release = asyncio.Event()

    async def headers_then_nothing(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(BLOB))})
        await response.prepare(request)
        await response.write(BLOB[:100])
        await release.wait()
        return response

    async def nothing(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    async def body(client: RegistryClient) -> None:
        for attempt in (collect(client), client.get_manifest("r", "latest")):
            started = time.monotonic()
            with pytest.raises(RemoteUnavailable):
                await attempt
            assert time.monotonic() - started < 2.0
        release.set()

    scenario_with({"/v2/r/blobs/{digest}": headers_then_nothing,
                   "/v2/r/manifests/{reference}": nothing}, body, read_timeout=0.3)


def test_a_body_cut_short_is_unavailable() -> None:
    async def main() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BLOB)
                         + BLOB[:500])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = RegistryClient(f"http://127.0.0.1:{port}")
        try:
            with pytest.raises(RemoteUnavailable):
                await collect(client)
        finally:
            await client.close()
            server.close()

    asyncio.run(main())


def test_failures_of_the_upstream_are_unavailable() -> None:
    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["status"]))

    async def body(client: RegistryClient) -> None:
        for status in (500, 502, 503):
            with pytest.raises(RemoteUnavailable) as caught:
                await client.get_manifest(f"s{status}", "latest")
            assert caught.value.retry_after is None
        with pytest.raises(RemoteInvalid):
            await client.get_manifest("s400", "latest")

    scenario_with({"/v2/s{status}/manifests/latest": failing}, body)

    async def unreachable(client: RegistryClient) -> None:
        with pytest.raises(RemoteUnavailable):
            await client.ping()

    async def main() -> None:
        async with serving({}) as url:
            pass  # the port is free again: nothing listens there
        client = RegistryClient(url)
        try:
            await unreachable(client)
        finally:
            await client.close()

    asyncio.run(main())


# -- rate limits -----------------------------------------------------------------------------


def test_retry_after_is_honoured_without_asking_again(caplog: pytest.LogCaptureFixture,
                                                      ) -> None:
    calls: list[float] = []

    async def limited(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return web.Response(status=429, headers={"Retry-After": "2"})
        return web.json_response({})

    async def body(client: RegistryClient) -> None:
        with pytest.raises(RemoteUnavailable) as first:
            await client.ping()
        assert first.value.retry_after == 2
        for _ in range(3):
            with pytest.raises(RemoteUnavailable) as again:
                await client.ping()
            assert again.value.retry_after is not None and 0 < again.value.retry_after <= 2
        assert len(calls) == 1, "failed fast, the upstream was not asked"
        await asyncio.sleep(2.1)
        await client.ping()
        assert len(calls) == 2

    with caplog.at_level(logging.WARNING, logger="dockyard.remote"):
        scenario_with({"/v2/": limited}, body)
    assert len([r for r in caplog.records if "backing off" in r.getMessage()]) == 1


# -- credentials -----------------------------------------------------------------------------


def test_credentials_never_appear_in_errors() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})

    async def bearer(request: web.Request) -> web.Response:
        realm = f"http://{request.host}/token"
        return web.Response(status=401, headers={
            "WWW-Authenticate": f'Bearer realm="{realm}",service="s",scope="x"'})

    async def token(request: web.Request) -> web.Response:
        status = 401 if request.query.get("scope") == "repository:refused:pull" else 200
        return web.json_response({"token": f"tok-{SECRET}"} if status == 200 else {},
                                 status=status)

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["status"]))

    errors: list[RemoteError] = []

    async def body(client: RegistryClient) -> None:
        for repository in ("basic", "refused", "tokened", "s500", "s404", "s418"):
            with pytest.raises(RemoteError) as caught:
                await client.get_manifest(repository, "latest")
            errors.append(caught.value)

    scenario_with({"/v2/basic/manifests/latest": refuse, "/v2/refused/manifests/latest": bearer,
                   "/v2/tokened/manifests/latest": bearer, "/token": token,
                   "/v2/s{status}/manifests/latest": fail}, body, **LOGIN)
    assert [type(error) for error in errors] == [RemoteRefused, RemoteRefused, RemoteRefused,
                                                 RemoteUnavailable, RemoteNotFound, RemoteInvalid]
    encoded = basic("mirror", SECRET)["Authorization"].split()[1]
    for error in errors:
        chain: BaseException | None = error
        while chain is not None:
            for text in (str(chain), repr(chain)):
                assert SECRET not in text and encoded not in text
            chain = chain.__cause__ or chain.__context__
