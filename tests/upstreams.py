"""Upstream registries for the remote client and mirror tests, and what reached them.

`reference_registry(workdir, users=...)` runs the Go reference registry (`docker-registry
serve`) on a free loopback port, with htpasswd Basic auth when `users` is given. Its access
log (combined log format, written on stdout) goes to a file, so a test can count the
requests an upstream really received:

    with reference_registry(tmp_path, users={"alice": "pw"}) as upstream:
        manifest = seed_image(upstream.url, "lib/app", credentials=("alice", "pw"))
        ...  # pull through whatever is under test
        assert upstream.requests_for(f"/blobs/{manifest.layer_digests[0]}", method="GET") == 1

`requests_for` first syncs with the log (a marker request, waited for), so every request
whose response the test has seen is counted. `seed_image` pushes a small image into any
registry (this one, or a Dockyard in Basic or bearer mode) with plain HTTP requests.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import requests
import yaml

from tests.authkit import write_htpasswd
from tests.server import free_port, require_tool, terminate, wait_until_ready
from tests.system.api.client import Client, Manifest, digest_of, image_manifest, random_bytes

_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) ')
_SYNC_PARAMETER = "dockyard-test-sync"
REALM = "reference-test"


@dataclass(frozen=True)
class Access:
    """One line of the upstream's access log."""

    method: str
    uri: str
    """Path and query, as the client sent them."""
    status: int


class ReferenceRegistry:
    """A `docker-registry` process and its addresses; see the module docstring."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None,
                 storage: dict[str, object] | None = None) -> None:
        self.binary = require_tool("docker-registry")
        self.workdir = workdir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.users = dict(users or {})
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": False}},
            "storage": {**(storage or {"filesystem": {"rootdirectory": str(workdir / "data")}}),
                        "delete": {"enabled": True}},
            "http": {"addr": self.host},
        }
        if users:
            htpasswd = write_htpasswd(workdir / "htpasswd", users)
            config["auth"] = {"htpasswd": {"realm": REALM, "path": str(htpasswd)}}
        self.config_path = workdir / "config.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.access_log = workdir / "access.log"
        self.error_log = workdir / "error.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.access_log.open("ab") as out, self.error_log.open("ab") as err:
            self.process = subprocess.Popen([self.binary, "serve", str(self.config_path)],
                                            stdout=out, stderr=err, start_new_session=True,
                                            env=_go_environment())
        if wait_until_ready(self.process, self._ready, timeout, "docker-registry", self.errors):
            return
        self.stop()
        raise RuntimeError(f"docker-registry did not start:\n{self.errors()}")

    def _ready(self) -> bool:
        return requests.get(self.url + "/v2/", timeout=1).status_code in (200, 401)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process)
        self.process = None

    def errors(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    # -- what reached it ---------------------------------------------------------------------

    def accesses(self) -> list[Access]:
        """Every request logged so far (after a sync), without the sync markers."""
        self.sync()
        return [access for access in self._parsed() if _SYNC_PARAMETER not in access.uri]

    def requests_for(self, fragment: str, method: str | None = None,
                     status: int | None = None) -> int:
        """How many requests had `fragment` in their path (and `method`, `status` if given)."""
        return sum(1 for access in self.accesses()
                   if fragment in access.uri and method in (None, access.method)
                   and status in (None, access.status))

    def sync(self, timeout: float = 5.0) -> None:
        """Wait until the log holds every request answered so far. The registry writes a
        line after the response, so a marker request sent now shows up after them."""
        marker = uuid4().hex
        requests.get(f"{self.url}/v2/", params={_SYNC_PARAMETER: marker}, timeout=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(marker in access.uri for access in self._parsed()):
                return
            time.sleep(0.01)
        raise AssertionError("the reference registry's access log did not show the marker")

    def _parsed(self) -> list[Access]:
        text = self.access_log.read_text(errors="replace")
        return [Access(m["method"], m["uri"], int(m["status"]))
                for m in map(_ACCESS.search, text.splitlines()) if m]


def _go_environment() -> dict[str, str]:
    """Ours without AWS_CA_BUNDLE: with it set, the s3 driver (whose HTTP transport the AWS
    SDK for Go cannot give a CA bundle to) panics at start; its endpoints here are plain
    HTTP anyway."""
    return {name: value for name, value in os.environ.items() if name != "AWS_CA_BUNDLE"}


@contextmanager
def reference_registry(workdir: Path, users: dict[str, str] | None = None,
                       storage: dict[str, object] | None = None,
                       ) -> Iterator[ReferenceRegistry]:
    """A running Go reference registry (skipped, or failed in CI, without the binary);
    `storage` replaces its filesystem driver section (e.g. `{"s3": {...}}`)."""
    registry = ReferenceRegistry(workdir, users, storage)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


# -- content ---------------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def login(url: str, repository: str, credentials: tuple[str, str] | None = None,
          ) -> requests.Session:
    """A session allowed to push to `repository`: Basic, or a push/pull token when the
    registry answers with a Bearer challenge (a Dockyard in bearer mode)."""
    session = requests.Session()
    challenge = requests.get(url + "/v2/", timeout=10).headers.get("WWW-Authenticate", "")
    if challenge.lower().startswith("bearer"):
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        answer = requests.get(params["realm"], auth=credentials, timeout=10, params={
            "service": params.get("service", ""), "scope": f"repository:{repository}:pull,push"})
        answer.raise_for_status()
        session.headers["Authorization"] = f"Bearer {answer.json()['token']}"
    elif credentials is not None:
        session.auth = credentials
    return session


@dataclass(frozen=True)
class SeededImage:
    """An image pushed to an upstream: its manifest (bytes, digest) and its blobs."""

    repository: str
    tag: str
    manifest: Manifest

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def config(self) -> bytes:
        return self.manifest.blobs[0]

    @property
    def layers(self) -> tuple[bytes, ...]:
        return self.manifest.blobs[1:]

    @property
    def layer_digests(self) -> list[str]:
        return [digest_of(layer) for layer in self.layers]


def seed_image(url: str, repository: str, tag: str = "latest", *,
               credentials: tuple[str, str] | None = None,
               layers: Sequence[bytes] | None = None, **manifest_options: object,
               ) -> SeededImage:
    """Push a small image (config, layers, manifest under `tag`) to the registry at `url`.
    Layers default to one of 2 KiB of random bytes; `manifest_options` go to
    `image_manifest` (media_type=DOCKER_MANIFEST, annotations, ...)."""
    client = Client(url, login(url, repository, credentials))
    try:
        manifest = image_manifest(list(layers) if layers is not None else [random_bytes(2048)],
                                  **manifest_options)  # type: ignore[arg-type]
        client.push_manifest(repository, manifest, tag)
    finally:
        client.close()
    return SeededImage(repository, tag, manifest)
