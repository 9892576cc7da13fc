"""`RegistryClient`: one upstream registry over HTTP, as the mirror's `Remote` port.

Authentication is learnt from the upstream's challenges and then sent up front: Basic once
the upstream asked for it, a bearer token per repository scope once we know the realm (so a
pull costs one token request per repository, not a 401 and a token per request).
"""

from __future__ import annotations

import base64
import ssl as ssl_module
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp
from yarl import URL

from dockyard import __version__
from dockyard.oci.digest import Digest
from dockyard.oci.mediatypes import OCI_INDEX
from dockyard.oci.reference import is_valid_name
from dockyard.registry.mirror.remote import (
    RemoteBlob,
    RemoteDescriptor,
    RemoteError,
    RemoteInvalid,
    RemoteManifest,
    RemoteNotFound,
    RemoteRefused,
    RemoteUnavailable,
)
from dockyard.remote import manifests
from dockyard.remote.backoff import RATE_LIMIT_DEFAULT, Backoff, parse_retry_after
from dockyard.remote.body import Download, content_length, read_bounded
from dockyard.remote.challenge import Challenge, find, parse_challenges
from dockyard.remote.redirects import REDIRECTS, next_hop
from dockyard.remote.tokens import (
    InvalidTokenResponse,
    Realm,
    Token,
    TokenCache,
    parse_token,
    token_params,
)

MANIFEST_MAX_BYTES = 4 * 1024 * 1024
_AUTH_ATTEMPTS = 3
"""Anonymous (or a cached token), then what the challenge asks for; a refusal of fresh
credentials is final."""


def _pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


class RegistryClient:
    """One upstream registry, pulled from over HTTP(S)."""

    def __init__(self, url: str, *, username: str | None = None,
                 password: str | None = None, ssl: ssl_module.SSLContext | bool = True,
                 manifest_max_bytes: int = MANIFEST_MAX_BYTES, connect_timeout: float = 10,
                 read_timeout: float = 60, user_agent: str = f"dockyard/{__version__}") -> None:
        base = URL(url)
        if (base.scheme not in ("http", "https") or not base.host or base.user is not None
                or base.password is not None or base.path not in ("", "/") or base.query_string
                or base.fragment):
            raise ValueError("an upstream URL is scheme://host[:port] (http or https), "
                             "without credentials or path")
        self._base = base.origin()
        self._host = base.host_port_subcomponent or base.host
        self._basic_header: str | None = None
        if username is not None:
            pair = f"{username}:{password or ''}".encode()
            self._basic_header = "Basic " + base64.b64encode(pair).decode("ascii")
        self._ssl = ssl
        self._manifest_max_bytes = manifest_max_bytes
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._backoff = Backoff(self._host)
        self._tokens = TokenCache()
        self._realm: Realm | None = None
        self._basic = False
        """Whether the upstream asked for Basic: then the credentials go with every request."""

    @property
    def host(self) -> str:
        return self._host

    # -- the port ----------------------------------------------------------------------------

    async def ping(self) -> None:
        async with self._request("GET", "/v2/", scope=""):
            pass

    async def head_manifest(self, repository: str, reference: str) -> RemoteDescriptor:
        expected = manifests.digest_reference(reference)
        async with self._manifest("HEAD", repository, reference) as (response, where):
            announced = manifests.announced_digest(
                response.headers.get("Docker-Content-Digest"), where)
            size = content_length(response)
            media_type = manifests.bare_type(response.headers.get("Content-Type"))
        if expected is not None and announced is not None and announced != expected:
            raise RemoteInvalid(f"{where}: Docker-Content-Digest {announced} is not the "
                                "digest asked for")
        digest = expected or announced
        if digest is None:
            raise RemoteInvalid(f"{where}: no Docker-Content-Digest for a tag")
        if size is None:
            raise RemoteInvalid(f"{where}: no Content-Length")
        if not media_type:
            raise RemoteInvalid(f"{where}: no Content-Type")
        return RemoteDescriptor(digest, media_type, size)

    async def get_manifest(self, repository: str, reference: str) -> RemoteManifest:
        expected = manifests.digest_reference(reference)
        async with self._manifest("GET", repository, reference) as (response, where):
            content = await read_bounded(response, self._manifest_max_bytes)
            announced = manifests.announced_digest(
                response.headers.get("Docker-Content-Digest"), where)
            content_type = response.headers.get("Content-Type")
        digest = manifests.checked_digest(content, expected, announced, where)
        media_type = manifests.media_type_of(content_type, content, where)
        return RemoteManifest(digest, media_type, content)

    def open_blob(self, repository: str, digest: Digest
                  ) -> AbstractAsyncContextManager[RemoteBlob]:
        return self._open_blob(repository, digest)

    async def get_referrers(self, repository: str, digest: Digest) -> bytes | None:
        path = self._path(repository, "referrers", str(digest))
        try:
            async with self._request("GET", path, scope=_pull_scope(repository),
                                     accept=OCI_INDEX) as response:
                content = await read_bounded(response, self._manifest_max_bytes)
        except RemoteNotFound:
            return await self._referrers_tag(repository, digest)
        manifests.media_type_of(OCI_INDEX, content, f"{self._host}{path}")  # JSON or invalid
        return content

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- requests ----------------------------------------------------------------------------

    async def _referrers_tag(self, repository: str, digest: Digest) -> bytes | None:
        """The referrers tag schema (`<alg>-<hex>`) of upstreams without the referrers API."""
        tag = f"{digest.algorithm[:32]}-{digest.hex[:64]}"
        try:
            return (await self.get_manifest(repository, tag)).content
        except RemoteNotFound:
            return None

    @asynccontextmanager
    async def _open_blob(self, repository: str, digest: Digest) -> AsyncIterator[RemoteBlob]:
        path = self._path(repository, "blobs", str(digest))
        async with self._request("GET", path, scope=_pull_scope(repository),
                                 blob=True) as response:
            yield Download(response)

    @asynccontextmanager
    async def _manifest(self, method: str, repository: str, reference: str
                        ) -> AsyncIterator[tuple[aiohttp.ClientResponse, str]]:
        """A manifest request with every type we accept; the response and where it is from
        (for messages)."""
        path = self._path(repository, "manifests", reference)
        async with self._request(method, path, scope=_pull_scope(repository),
                                 accept=manifests.ACCEPT) as response:
            yield response, f"{self._host}{path}"

    def _path(self, repository: str, kind: str, reference: str) -> str:
        if not is_valid_name(repository):
            raise ValueError(f"{repository!r} is not a repository name")
        if "/" in reference or not reference:
            raise ValueError(f"{reference!r} is not a reference")
        return f"/v2/{repository}/{kind}/{reference}"

    @asynccontextmanager
    async def _request(self, method: str, path: str, *, scope: str, accept: str | None = None,
                       blob: bool = False) -> AsyncIterator[aiohttp.ClientResponse]:
        """A successful (2xx) response to an authorized request, released on exit; every
        other outcome is the matching RemoteError."""
        headers = {"Accept": accept} if accept else {}
        response = await self._authorized(method, self._base.with_path(path), scope, headers,
                                          blob)
        try:
            self._raise_for_status(response, f"{method} {path}")
            yield response
        finally:
            response.release()

    async def _authorized(self, method: str, url: URL, scope: str, headers: dict[str, str],
                          blob: bool) -> aiohttp.ClientResponse:
        """Send with what we know of the upstream's auth; on a challenge, learn and resend."""
        wanted: list[str] | None = None
        status = 401
        for _ in range(_AUTH_ATTEMPTS):
            authorization, fresh = await self._authorization(scope, wanted)
            response = await self._follow(method, url, headers, authorization, blob)
            if response.status not in (401, 403) or response.url.origin() != self._base:
                return response
            challenges = parse_challenges(response.headers.getall("WWW-Authenticate", []))
            status = response.status
            response.release()
            if fresh:
                break
            bearer = find(challenges, "bearer")
            if bearer is not None and bearer.realm:
                self._realm = self._realm_of(bearer)
                if authorization is not None and authorization.startswith("Bearer "):
                    self._tokens.discard(scope, authorization.removeprefix("Bearer "))
                wanted = bearer.scopes or None
                continue
            if (find(challenges, "basic") is not None and self._basic_header is not None
                    and not self._basic):
                self._basic = True
                continue
            break
        raise RemoteRefused(f"{self._host} refused {method} {url.path} ({status}"
                            f"{'' if self._basic_header else ', without credentials'})")

    async def _authorization(self, scope: str, wanted: list[str] | None
                             ) -> tuple[str | None, bool]:
        """The Authorization header to send, and whether it is fresh (just fetched, or
        Basic): a refusal of fresh credentials is not worth another try."""
        if self._realm is not None:
            async with self._tokens.lock(scope):
                cached = self._tokens.get(scope)
                if cached is not None:
                    return f"Bearer {cached}", False
                token = await self._fetch_token(self._realm, wanted or scope.split())
                self._tokens.put(scope, token)
                return f"Bearer {token.value}", True
        if self._basic:
            return self._basic_header, True
        return None, False

    def _realm_of(self, challenge: Challenge) -> Realm:
        realm = URL(challenge.realm or "")
        if realm.scheme not in ("http", "https") or not realm.host:
            raise RemoteInvalid(f"{self._host}: the token realm is not an http(s) URL")
        if self._base.scheme == "https" and realm.scheme == "http":
            raise RemoteInvalid(f"{self._host}: the token realm is plain http")
        return Realm(str(realm), challenge.service)

    async def _fetch_token(self, realm: Realm, scopes: list[str]) -> Token:
        url = URL(realm.url).update_query(token_params(realm, scopes))
        headers = {"Authorization": self._basic_header} if self._basic_header else {}
        where = f"the token service of {self._host}"
        response = await self._send("GET", url, headers)
        try:
            if response.status in (401, 403):
                raise RemoteRefused(f"{where} refused us ({response.status})")
            self._raise_for_status(response, "token request")
            body = await read_bounded(response, 1024 * 1024)
        finally:
            response.release()
        try:
            return parse_token(body)
        except InvalidTokenResponse as exc:
            raise RemoteInvalid(f"{where}: {exc}") from exc

    async def _follow(self, method: str, url: URL, headers: dict[str, str],
                      authorization: str | None, blob: bool) -> aiohttp.ClientResponse:
        """Send, following redirects: for blobs anywhere the spec allows (without our
        credentials off the registry), for everything else only on the registry."""
        hops = 0
        while True:
            sent = dict(headers)
            if authorization is not None and url.origin() == self._base:
                sent["Authorization"] = authorization
            response = await self._send(method, url, sent)
            if response.status not in REDIRECTS:
                return response
            location = response.headers.get("Location")
            response.release()
            hops += 1
            url = next_hop(url, location, hops, registry=self._base, anywhere=blob)

    async def _send(self, method: str, url: URL, headers: dict[str, str]
                    ) -> aiohttp.ClientResponse:
        """One HTTP exchange; network failures and rate limits become RemoteUnavailable."""
        self._backoff.check()
        where = f"{method} {url.host_port_subcomponent}{url.path}"
        try:
            response = await self._client().request(
                method, url, headers={"Accept-Encoding": "identity", **headers},
                allow_redirects=False)
        except TimeoutError as exc:
            raise RemoteUnavailable(f"{where}: no answer in time") from exc
        except aiohttp.ClientSSLError as exc:
            raise RemoteUnavailable(f"{where}: TLS failed ({type(exc).__name__})") from exc
        except aiohttp.ClientError as exc:
            raise RemoteUnavailable(f"{where}: {type(exc).__name__}") from exc
        if response.status in (429, 503):
            delay = parse_retry_after(response.headers.get("Retry-After"))
            if delay is None and response.status == 429:
                self._backoff.start(RATE_LIMIT_DEFAULT, response.status)
            elif delay:
                self._backoff.start(delay, response.status)
        return response

    def _raise_for_status(self, response: aiohttp.ClientResponse, what: str) -> None:
        status = response.status
        if 200 <= status < 300 and status not in (204, 206):
            return
        where = f"{self._host}: {what}"
        error: RemoteError
        if status == 404:
            error = RemoteNotFound(f"{where}: not found (404)")
        elif status in (429, 503):
            error = RemoteUnavailable(
                f"{where}: {'rate limited' if status == 429 else 'unavailable'} ({status})",
                retry_after=parse_retry_after(response.headers.get("Retry-After")))
        elif status >= 500:
            error = RemoteUnavailable(f"{where}: server error ({status})")
        elif status in (401, 403, 407):
            error = RemoteRefused(f"{where}: refused ({status})")
        else:
            error = RemoteInvalid(f"{where}: unexpected status {status}")
        response.release()
        raise error

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use inside the running loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl), timeout=self._timeout,
                headers={"User-Agent": self._user_agent}, auto_decompress=False)
        return self._session
