"""The three ways the client matrix reaches a registry.

- `anonymous`: plain HTTP on loopback, no auth section (every client's insecure default).
- `basic`: htpasswd users over TLS with a CA made for the test (clients verify it).
- `bearer`: the same, with tokens from the built-in token service found through the challenge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.authkit import Pki, auth_config, write_htpasswd
from tests.server import RunningRegistry, running_registry
from tests.system.clients.images import ALL_MANIFEST_TYPES

MODES = ("anonymous", "basic", "bearer")
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
ACCESS = {"rules": [
    {"repositories": ["team/**"], "users": ["alice"], "actions": ["*"]},
    {"repositories": ["team/**"], "users": ["bob"], "actions": ["pull"]},
    {"repositories": ["public/**"], "users": ["alice"], "actions": ["*"]},
    {"repositories": ["public/**"], "anonymouspull": True},
]}
PUSHER = "alice"
"""May push and pull under team/ and public/, which anyone may pull."""
PULLER = "bob"
"""May only pull under team/."""


@dataclass(frozen=True)
class Served:
    """A running registry in one mode, and what a client needs to reach and trust it."""

    mode: str
    server: RunningRegistry
    pki: Pki | None
    """None in anonymous mode: plain HTTP."""

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def tls(self) -> bool:
        return self.pki is not None

    @property
    def ca(self) -> Path:
        assert self.pki is not None, "plain HTTP has no CA"
        return self.pki.ca_path

    @property
    def cert_dir(self) -> Path:
        """A directory holding only ca.crt (containers tools' --cert-dir)."""
        assert self.pki is not None, "plain HTTP has no CA"
        return self.pki.cert_dir()

    def user(self, name: str) -> str | None:
        """The user a scenario acts as: nobody when the registry has no users."""
        return None if self.mode == "anonymous" else name

    def request(self, method: str, repository: str, path: str) -> requests.Response:
        """`METHOD /v2/<repository>/<path>` as the pusher: the registry's own view of things."""
        # verify= on each call: REQUESTS_CA_BUNDLE in the environment beats a session's.
        verify = str(self.ca) if self.tls else True
        headers = {"Accept": ALL_MANIFEST_TYPES}
        credentials = (PUSHER, password(PUSHER))
        auth = credentials if self.mode == "basic" else None
        if self.mode == "bearer":
            token = requests.get(f"{self.server.url}/token", auth=credentials, verify=verify,
                                 params={"service": "dockyard",
                                         "scope": f"repository:{repository}:pull"},
                                 timeout=30).json()["token"]
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, f"{self.server.url}/v2/{repository}/{path}",
                                headers=headers, auth=auth, verify=verify, timeout=30)

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest the registry serves for repository:tag, or None when it has none."""
        response = self.request("HEAD", repository, f"manifests/{tag}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.status_code
        return str(response.headers["Docker-Content-Digest"])

    def statuses(self, method: str, path: str) -> list[int]:
        """Statuses the access log recorded for `METHOD path...` (a path prefix, no query)."""
        pattern = re.compile(rf'"{method} {re.escape(path)}[^"]*" (\d{{3}}) ')
        return [int(match.group(1)) for match in pattern.finditer(self.server.log_text())]


def password(user: str) -> str:
    return USERS[user]


def serve(mode: str, directory: Path) -> Iterator[Served]:
    """Start a registry in `mode` under `directory`; yields it until the caller is done."""
    workdir = directory / "server"
    workdir.mkdir(parents=True)
    if mode == "anonymous":
        with running_registry(workdir, {}) as server:
            yield Served(mode, server, None)
        return
    pki = Pki(directory / "pki")
    cert, key = pki.issue("server")
    htpasswd = write_htpasswd(directory / "htpasswd", USERS)
    config = {**auth_config(htpasswd, mode, access=ACCESS),
              "http": {"tls": {"certificate": str(cert), "key": str(key)}}}
    with running_registry(workdir, config) as server:
        yield Served(mode, server, pki)
