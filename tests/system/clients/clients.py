"""Command lines of the real registry clients, each built in exactly one place.

The registry under test speaks plain HTTP on loopback without authentication, so every
call disables TLS verification and asks for anonymous access.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from tests.system.clients.images import ALL_MANIFEST_TYPES, sha256_digest

COMMAND_TIMEOUT = 120.0


def run(command: Sequence[str], check: bool = True, env: dict[str, str] | None = None,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a client (`stdin` for a password, never a command line); on failure the assertion
    message carries its stderr."""
    result = subprocess.run(list(command), capture_output=True, timeout=COMMAND_TIMEOUT,
                            check=False, input=stdin if stdin is not None else b"", env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}:\n"
            f"{result.stderr.decode(errors='replace')}")
    return result


def is_registry(reference: str) -> bool:
    return reference.startswith("docker://")


class Skopeo:
    """skopeo against a plain-HTTP registry, anonymously."""

    def __init__(self, exe: str) -> None:
        self.exe = exe

    def registry_flags(self) -> list[str]:
        return ["--tls-verify=false", "--no-creds"]

    def copy(self, source: str, destination: str,
             *extra: str) -> subprocess.CompletedProcess[bytes]:
        command = [self.exe, "copy", "--quiet", *extra]
        if is_registry(source):
            command += ["--src-tls-verify=false", "--src-no-creds"]
        if is_registry(destination):
            command += ["--dest-tls-verify=false", "--dest-no-creds"]
        return run([*command, source, destination])

    def inspect_raw(self, reference: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return run([self.exe, "inspect", "--raw", *self.registry_flags(), reference], check)

    def inspect(self, reference: str, *extra: str) -> dict[str, Any]:
        result = run([self.exe, "inspect", *self.registry_flags(), *extra, reference])
        return dict(json.loads(result.stdout))

    def list_tags(self, reference: str) -> list[str]:
        result = run([self.exe, "list-tags", *self.registry_flags(), reference])
        return list(json.loads(result.stdout)["Tags"])

    def delete(self, reference: str) -> None:
        run([self.exe, "delete", *self.registry_flags(), reference])


def private_containers_conf(directory: Path) -> dict[str, str]:
    """An environment whose containers.conf keeps buildah and podman state out of /etc and /run.

    By default both create network lock files under /etc/containers, /etc/cni and
    /run/containers, and podman a lock segment in /dev/shm, shared by every user of the host.
    """
    conf = directory / "containers.conf"
    conf.write_text(
        "[engine]\n"
        'lock_type = "file"\n'
        "[network]\n"
        'network_backend = "cni"\n'
        f'network_config_dir = "{directory / "networks"}"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


class Buildah:
    """buildah with a private vfs storage, so tests never share or leave local images."""

    def __init__(self, exe: str, root: Path, runroot: Path, env: dict[str, str]) -> None:
        self.base = [exe, "--storage-driver", "vfs", "--root", str(root), "--runroot", str(runroot)]
        self.env = env

    def __call__(self, *args: str, check: bool = True) -> str:
        return run([*self.base, *args], check, self.env).stdout.decode().strip()

    def push(self, image: str, destination: str, digestfile: Path) -> None:
        self("push", "--quiet", "--tls-verify=false", "--digestfile", str(digestfile),
             image, destination)


class Podman:
    """podman with a private vfs storage; no containers are ever run."""

    def __init__(self, exe: str, root: Path, runroot: Path, tmpdir: Path,
                 env: dict[str, str]) -> None:
        # libpod keeps sockets under runroot: its path must stay short (under 50 chars).
        assert len(str(runroot)) < 50, f"podman runroot too long: {runroot}"
        self.base = [exe, "--storage-driver", "vfs", "--root", str(root), "--runroot", str(runroot),
                     "--tmpdir", str(tmpdir), "--events-backend", "none",
                     "--cgroup-manager", "cgroupfs"]
        self.env = env

    def __call__(self, *args: str, check: bool = True) -> str:
        return run([*self.base, *args], check, self.env).stdout.decode().strip()

    def pull(self, reference: str) -> str:
        return self("pull", "--quiet", "--tls-verify=false", reference)

    def push(self, image: str, digestfile: Path) -> None:
        self("push", "--quiet", "--tls-verify=false", "--digestfile", str(digestfile), image)

    def inspect(self, image: str) -> dict[str, Any]:
        return dict(json.loads(self("image", "inspect", image))[0])


class Http:
    """Plain HTTP calls to the registry, to check what the clients cannot see."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def get_manifest(self, name: str, reference: str,
                     accept: str = ALL_MANIFEST_TYPES) -> requests.Response:
        response = self.session.get(f"{self.url}/v2/{name}/manifests/{reference}",
                                    headers={"Accept": accept}, timeout=30)
        assert response.status_code == 200, f"GET manifest {name}:{reference}: {response.text}"
        assert response.headers["Docker-Content-Digest"] == sha256_digest(response.content)
        return response

    def get_blob(self, name: str, digest: str) -> bytes:
        response = self.session.get(f"{self.url}/v2/{name}/blobs/{digest}", timeout=30)
        assert response.status_code == 200, f"GET blob {name}@{digest}: {response.status_code}"
        assert sha256_digest(response.content) == digest
        return response.content

    def tags(self, name: str) -> list[str]:
        response = self.session.get(f"{self.url}/v2/{name}/tags/list", timeout=30)
        assert response.status_code == 200, f"GET tags of {name}: {response.text}"
        body = response.json()
        assert body["name"] == name
        return list(body["tags"] or [])
