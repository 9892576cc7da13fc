"""A small registry client for the HTTP tests: pushes blobs and manifests the way real clients do.

Every API test module builds on these helpers so that protocol details (following Location
headers, adding the digest to an upload URL, computing digests) live in one place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from uuid import uuid4

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_NONDISTRIBUTABLE_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"

ERROR_CODES = frozenset({
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
})

# --------------------------------------------------------------------------------------------
# Content: bytes, digests, descriptors
# --------------------------------------------------------------------------------------------


def repo_name(prefix: str = "t") -> str:
    """A fresh repository name, so tests sharing one server never see each other's content."""
    return f"{prefix}/{uuid4().hex[:12]}"


def random_bytes(size: int = 1024) -> bytes:
    """Incompressible, unique content: two calls never produce the same blob."""
    return os.urandom(size)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def digest_matches(digest: str | None, data: bytes) -> bool:
    """True when `digest` (in whatever registered algorithm) identifies `data`."""
    if not digest or ":" not in digest:
        return False
    algorithm = digest.split(":", 1)[0]
    if algorithm not in ("sha256", "sha512"):
        return False
    return digest == digest_of(data, algorithm)


def descriptor(media_type: str, content: bytes, /, **extra: Any) -> dict[str, Any]:
    """An OCI descriptor for `content`; extra keys (annotations, artifactType, data) are added."""
    return {"mediaType": media_type, "digest": digest_of(content), "size": len(content), **extra}


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode()


@dataclass(frozen=True)
class Manifest:
    """Manifest bytes as pushed, plus the blobs the registry must already hold for them."""

    body: bytes
    media_type: str
    blobs: tuple[bytes, ...] = ()
    children: tuple[Manifest, ...] = field(default=())

    @property
    def digest(self) -> str:
        return digest_of(self.body)

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


def image_config() -> bytes:
    """A minimal but realistic image config; unique so every image gets its own digest."""
    return json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": [f"DOCKYARD_TEST={uuid4().hex}"]},
        "rootfs": {"type": "layers", "diff_ids": []},
    }).encode()


def image_manifest(
    layers: Sequence[bytes] | None = None,
    *,
    config: bytes | None = None,
    media_type: str = OCI_MANIFEST,
    config_media_type: str | None = None,
    layer_media_type: str | None = None,
    subject: Manifest | dict[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
    extra_layers: Sequence[dict[str, Any]] = (),
    extra: dict[str, Any] | None = None,
    include_media_type: bool = True,
) -> Manifest:
    """An image manifest (OCI or Docker schema 2) over a config and layers given as bytes."""
    docker = media_type == DOCKER_MANIFEST
    config_bytes = image_config() if config is None else config
    layer_list = [random_bytes(512)] if layers is None else list(layers)
    config_type = config_media_type or (DOCKER_CONFIG if docker else OCI_CONFIG)
    layer_type = layer_media_type or (DOCKER_LAYER if docker else OCI_LAYER)
    document: dict[str, Any] = {"schemaVersion": 2}
    if include_media_type:
        document["mediaType"] = media_type
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["config"] = descriptor(config_type, config_bytes)
    document["layers"] = [descriptor(layer_type, layer) for layer in layer_list]
    document["layers"].extend(extra_layers)
    if subject is not None:
        document["subject"] = subject.descriptor() if isinstance(subject, Manifest) else subject
    if annotations is not None:
        document["annotations"] = annotations
    document.update(extra or {})
    return Manifest(encode(document), media_type, (config_bytes, *layer_list))


def artifact_manifest(
    artifact_type: str,
    *,
    subject: Manifest | dict[str, Any] | None = None,
    layers: Sequence[bytes] = (),
    layer_media_type: str = "application/octet-stream",
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """An OCI 1.1 artifact: artifactType set and the empty `{}` config descriptor."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(OCI_EMPTY, EMPTY_JSON, data="e30="),
        "layers": [descriptor(layer_media_type, layer) for layer in layers],
    }
    if subject is not None:
        document["subject"] = subject.descriptor() if isinstance(subject, Manifest) else subject
    if annotations is not None:
        document["annotations"] = annotations
    return Manifest(encode(document), OCI_MANIFEST, (EMPTY_JSON, *layers))


def index_manifest(
    children: Sequence[Manifest],
    *,
    media_type: str = OCI_INDEX,
    subject: Manifest | dict[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
    platforms: bool = True,
) -> Manifest:
    """An image index / Docker manifest list over already-built child manifests."""
    entries = []
    for number, child in enumerate(children):
        entry = child.descriptor()
        if platforms:
            entry["platform"] = {"architecture": f"arch{number}", "os": "linux"}
        entries.append(entry)
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["manifests"] = entries
    if subject is not None:
        document["subject"] = subject.descriptor() if isinstance(subject, Manifest) else subject
    if annotations is not None:
        document["annotations"] = annotations
    return Manifest(encode(document), media_type, (), tuple(children))


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------


def error_codes(response: requests.Response) -> list[str]:
    """The `code` of each error in an OCI error body; [] when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    return [str(e.get("code")) for e in body["errors"] if isinstance(e, dict)]


def describe(response: requests.Response) -> str:
    """One line to make assertion failures readable."""
    request = response.request
    body = response.content[:300].decode(errors="replace") if response.content else ""
    return f"{request.method} {request.url} -> {response.status_code} {body!r}"


def assert_error_body(response: requests.Response) -> list[dict[str, Any]]:
    """Check the OCI error envelope and return its errors."""
    where = describe(response)
    assert response.headers.get(API_VERSION_HEADER) == API_VERSION, where
    content_type = response.headers.get("Content-Type", "")
    assert content_type.split(";")[0].strip() == "application/json", f"{content_type}: {where}"
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), where
    assert body["errors"], where
    for error in body["errors"]:
        assert isinstance(error, dict), where
        assert isinstance(error.get("code"), str), where
        assert re.fullmatch(r"[A-Z_]+", error["code"]), where
        assert isinstance(error.get("message"), str), where
        assert "detail" in error, where
    errors: list[dict[str, Any]] = body["errors"]
    return errors


def assert_error(response: requests.Response, status: int | Iterable[int],
                 *codes: str) -> list[dict[str, Any]]:
    """Assert an error response: status, envelope, and (if given) one of the expected codes."""
    allowed = {status} if isinstance(status, int) else set(status)
    assert response.status_code in allowed, describe(response)
    errors = assert_error_body(response)
    if codes:
        found = [e["code"] for e in errors]
        message = f"expected one of {codes}, got {found}: {describe(response)}"
        assert set(found) & set(codes), message
    return errors


def assert_head_error(response: requests.Response, status: int = 404) -> None:
    """HEAD errors carry the status and headers but never a body."""
    assert response.status_code == status, describe(response)
    assert response.headers.get(API_VERSION_HEADER) == API_VERSION, describe(response)
    assert response.content == b""


def link_next(response: requests.Response) -> str | None:
    """The target of `Link: <...>; rel="next"`, or None."""
    header = response.headers.get("Link")
    if not header:
        return None
    match = re.search(r'<([^>]*)>\s*;\s*rel="?next"?', header)
    assert match, f"unparseable Link header {header!r}"
    return match.group(1)


def with_params(url: str, params: Sequence[tuple[str, str]]) -> str:
    """Add query parameters to a URL that may already carry some (upload URLs often do)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def range_end(response: requests.Response) -> int:
    """The last byte offset in an upload `Range: 0-<end>` header."""
    header = response.headers.get("Range", "")
    match = re.fullmatch(r"(?:bytes=)?0-(\d+)", header)
    assert match, f"bad Range header {header!r}: {describe(response)}"
    return int(match.group(1))


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class ServerError(AssertionError):
    """A 5xx: never acceptable, whatever the input."""


def _no_server_errors(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if response.status_code >= 500:
        raise ServerError(describe(response))


class Client:
    """A requests session bound to one registry, which fails loudly on any 5xx."""

    def __init__(self, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.hooks["response"].append(_no_server_errors)

    def close(self) -> None:
        self.session.close()

    # -- plumbing --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """A full URL for an API path ("/v2/...") or an already absolute URL."""
        return urljoin(self.base_url + "/", path)

    def follow(self, location: str | None) -> str:
        """Resolve a Location header: absolute by default, relative ones are accepted too."""
        assert location, "missing Location header"
        return urljoin(self.base_url + "/", location)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    # -- blobs -----------------------------------------------------------------------------

    def blob_path(self, name: str, digest: str) -> str:
        return f"/v2/{name}/blobs/{digest}"

    def start_upload(self, name: str, **params: str) -> requests.Response:
        """POST /blobs/uploads/ with an empty body; returns the raw response."""
        return self.post(f"/v2/{name}/blobs/uploads/", params=params or None,
                         headers={"Content-Length": "0"})

    def upload_url(self, name: str) -> str:
        """Open an upload session and return its absolute URL."""
        response = self.start_upload(name)
        assert response.status_code == 202, describe(response)
        return self.follow(response.headers.get("Location"))

    def patch_chunk(self, location: str, chunk: bytes | Iterator[bytes], start: int | None = None,
                    ) -> requests.Response:
        """PATCH one chunk; with `start` the chunk carries Content-Range, else it is streamed."""
        headers = {"Content-Type": "application/octet-stream"}
        if start is not None:
            assert isinstance(chunk, bytes)
            headers["Content-Range"] = f"{start}-{start + len(chunk) - 1}"
        return self.patch(location, data=chunk, headers=headers)

    def finish_upload(self, location: str, digest: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> requests.Response:
        """PUT <location>?digest=..., optionally carrying the final chunk."""
        return self.put(with_params(location, [("digest", digest)]), data=body,
                        headers={"Content-Type": "application/octet-stream", **(headers or {})})

    def push_blob(self, name: str, data: bytes, algorithm: str = "sha256") -> str:
        """Monolithic POST-then-PUT upload; returns the digest."""
        digest = digest_of(data, algorithm)
        response = self.finish_upload(self.upload_url(name), digest, data)
        assert response.status_code == 201, describe(response)
        return digest

    def push_blob_single_post(self, name: str, data: bytes,
                              digest: str | None = None) -> requests.Response:
        """The one-request monolithic upload: POST /blobs/uploads/?digest= with the body."""
        return self.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest or digest_of(data)},
                         data=data, headers={"Content-Type": "application/octet-stream"})

    def push_blob_chunked(self, name: str, data: bytes, chunk_size: int,
                          content_range: bool = True, algorithm: str = "sha256") -> str:
        """POST, PATCH each chunk in order (following each new Location), then PUT."""
        location = self.upload_url(name)
        for start in range(0, len(data), chunk_size):
            chunk = data[start:start + chunk_size]
            response = self.patch_chunk(location, chunk, start if content_range else None)
            assert response.status_code == 202, describe(response)
            assert range_end(response) == start + len(chunk) - 1
            location = self.follow(response.headers.get("Location"))
        digest = digest_of(data, algorithm)
        response = self.finish_upload(location, digest)
        assert response.status_code == 201, describe(response)
        return digest

    def mount(self, name: str, digest: str, source: str | None) -> requests.Response:
        params = {"mount": digest}
        if source is not None:
            params["from"] = source
        return self.post(f"/v2/{name}/blobs/uploads/", params=params,
                         headers={"Content-Length": "0"})

    # -- manifests -------------------------------------------------------------------------

    def manifest_path(self, name: str, reference: str) -> str:
        return f"/v2/{name}/manifests/{reference}"

    def put_manifest(self, name: str, reference: str, manifest: Manifest | bytes,
                     media_type: str | None = None,
                     params: Sequence[tuple[str, str]] = ()) -> requests.Response:
        """PUT a manifest as is (no blobs pushed); returns the raw response."""
        body = manifest.body if isinstance(manifest, Manifest) else manifest
        if media_type is None:
            assert isinstance(manifest, Manifest)
            media_type = manifest.media_type
        url = with_params(self.url(self.manifest_path(name, reference)), params)
        return self.put(url, data=body, headers={"Content-Type": media_type})

    def push_contents(self, name: str, manifest: Manifest) -> None:
        """Push what a manifest references: its blobs, or for an index its children."""
        for blob in dict.fromkeys(manifest.blobs):
            self.push_blob(name, blob)
        for child in manifest.children:
            self.push_manifest(name, child, child.digest)

    def push_manifest(self, name: str, manifest: Manifest, reference: str | None = None,
                      params: Sequence[tuple[str, str]] = ()) -> requests.Response:
        """Push referenced content then the manifest (by digest unless a tag is given)."""
        self.push_contents(name, manifest)
        response = self.put_manifest(name, reference or manifest.digest, manifest, params=params)
        assert response.status_code == 201, describe(response)
        return response

    def push_image(self, name: str, tag: str | None = "latest", layers: int = 1,
                   **kwargs: Any) -> Manifest:
        """Push a complete image (config, layers, manifest) and return its manifest."""
        manifest = image_manifest([random_bytes(256 + i) for i in range(layers)], **kwargs)
        self.push_manifest(name, manifest, tag)
        return manifest

    def tags(self, name: str) -> list[str]:
        response = self.get(f"/v2/{name}/tags/list")
        assert response.status_code == 200, describe(response)
        tags: list[str] = response.json()["tags"] or []
        return tags


# --------------------------------------------------------------------------------------------
# Raw HTTP, for what requests hides (HEAD bodies, malformed headers)
# --------------------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(host: str, head: str, body: bytes = b"", timeout: float = 10.0) -> RawResponse:
    """Send one request over a fresh socket with `Connection: close` and read everything back.

    `head` is the request line plus header lines without the Host/Connection headers.
    Everything the server writes is returned, so a body after a HEAD response shows up.
    """
    hostname, port = host.rsplit(":", 1)
    lines = head.rstrip("\r\n").split("\n")
    request = "\r\n".join([*lines, f"Host: {host}", "Connection: close", "", ""])
    with socket.create_connection((hostname, int(port)), timeout=timeout) as sock:
        sock.sendall(request.encode("latin-1") + body)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    header_blob, separator, rest = raw.partition(b"\r\n\r\n")
    assert separator, f"no complete response: {raw[:200]!r}"
    status_line, *header_lines = header_blob.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, rest)
