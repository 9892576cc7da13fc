"""Real clients behind one small interface: one session acting as one user (or anonymously).

docker runs with its own DOCKER_CONFIG after `docker login`. Every push sends fresh random
content, so no client can skip an upload because it saw the blob before.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Protocol

from tests.system.clients.dockerd import DockerDaemon
from tests.system.clients.images import tar_of
from tests.system.clients.modes import Served, password

PAYLOAD_SIZE = 4096
"""Tiny images: vfs copies whole layers, and the matrix is about protocol, not volume."""


class Driver(Protocol):
    """One client session; a failed or refused operation raises AssertionError."""

    def push(self, reference: str) -> str:
        """Push a fresh image to `reference` (HOST/repository:tag); the manifest digest sent."""

    def pull(self, reference: str) -> str:
        """Pull `reference` from the registry; the manifest digest the client resolved."""


def payload_tar(directory: Path) -> Path:
    """A tar holding one random file: what `docker import` and `podman import` take."""
    path = directory / f"payload-{secrets.token_hex(4)}.tar"
    path.write_bytes(tar_of({f"payload-{secrets.token_hex(4)}.bin": os.urandom(PAYLOAD_SIZE)}))
    return path


def digest_in(output: bytes, label: str) -> str:
    found = re.search(rf"{label}:? (sha256:[0-9a-f]{{64}})", output.decode(errors="replace"))
    assert found is not None, f"no {label} in:\n{output.decode(errors='replace')}"
    return found.group(1)


class DockerDriver:
    """The docker CLI with its own DOCKER_CONFIG; `docker login` when acting as a user."""

    def __init__(self, daemon: DockerDaemon, served: Served, user: str | None,
                 directory: Path) -> None:
        self.daemon = daemon
        self.directory = directory
        self.config_dir = directory / "docker-config"
        self.config_dir.mkdir(parents=True)
        if user is not None:
            self.docker("login", "--username", user, "--password-stdin", served.host,
                        stdin=password(user).encode())

    def docker(self, *args: str, stdin: bytes | None = None) -> bytes:
        return self.daemon.docker(*args, config_dir=self.config_dir, stdin=stdin).stdout

    def push(self, reference: str) -> str:
        self.docker("import", str(payload_tar(self.directory)), reference)
        return self.push_local(reference)

    def push_local(self, reference: str) -> str:
        """Push an image the engine already has (built, tagged); the manifest digest."""
        return digest_in(self.docker("push", reference), "digest")

    def pull(self, reference: str) -> str:
        # Without the local tag the engine must fetch the manifest (and its layers) again.
        self.daemon.docker("rmi", reference, check=False)
        return digest_in(self.docker("pull", reference), "Digest")
