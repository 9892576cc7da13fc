"""Every real client behind one small interface, so the matrix runs one scenario list on all.

A driver is one client session acting as one user (or anonymously): docker with its own
DOCKER_CONFIG after `docker login`, ctr with `--user`, skopeo with `--creds`, buildah and
podman with an auth file they logged in to, oras-py with one `OrasClient`. Every push sends
fresh random content, so no client can skip an upload because it saw the blob before.
"""

from __future__ import annotations

import os
import re
import secrets
import tarfile
from pathlib import Path
from typing import Any, Protocol

import oras.client
import requests
import requests.adapters

from tests.server import require_tool
from tests.system.clients.clients import COMMAND_TIMEOUT, Buildah, Podman, run
from tests.system.clients.dockerd import DockerDaemon
from tests.system.clients.images import ALL_MANIFEST_TYPES, OciLayout, random_image, tar_of
from tests.system.clients.modes import Served, password

PAYLOAD_SIZE = 4096
"""Tiny images: vfs copies whole layers, and the matrix is about protocol, not volume."""


class Driver(Protocol):
    """One client session; a failed or refused operation raises AssertionError."""

    def push(self, reference: str) -> str:
        """Push a fresh image to `reference` (HOST/repository:tag); the manifest digest sent."""

    def pull(self, reference: str) -> str:
        """Pull `reference` from the registry; the manifest digest the client resolved."""


def split(reference: str) -> tuple[str, str, str]:
    """HOST/repository:tag as (host, repository, tag)."""
    host, _, rest = reference.partition("/")
    repository, _, tag = rest.rpartition(":")
    return host, repository, tag


def payload_tar(directory: Path) -> Path:
    """A tar holding one random file: what `docker import` and `podman import` take."""
    path = directory / f"payload-{secrets.token_hex(4)}.tar"
    path.write_bytes(tar_of({f"payload-{secrets.token_hex(4)}.bin": os.urandom(PAYLOAD_SIZE)}))
    return path


def oci_archive(directory: Path, tag: str) -> tuple[Path, str]:
    """A tar of an OCI layout holding a fresh image under `tag`, and its manifest digest."""
    image = random_image(layer_count=1, layer_size=PAYLOAD_SIZE)
    layout = OciLayout(directory / f"layout-{secrets.token_hex(4)}")
    layout.write({tag: image})
    archive = layout.path.with_suffix(".tar")
    with tarfile.open(archive, "w") as tar:
        for path in sorted(layout.path.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout.path)), recursive=False)
    return archive, image.manifest.digest


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


class CtrDriver:
    """containerd's ctr in a namespace of its own, trusting the CA through a hosts.toml."""

    def __init__(self, daemon: DockerDaemon, served: Served, user: str | None,
                 directory: Path) -> None:
        self.daemon = daemon
        self.directory = directory
        self.namespace = f"ctr-{secrets.token_hex(4)}"
        self.flags = ["--plain-http"]
        if served.tls:
            hosts = directory / "hosts"
            write_hosts_toml(hosts, served.host, served.ca)
            self.flags = ["--hosts-dir", str(hosts)]
        if user is not None:
            self.flags += ["--user", f"{user}:{password(user)}"]

    def ctr(self, *args: str, check: bool = True) -> bytes:
        return self.daemon.ctr(self.namespace, *args, check=check).stdout

    def push(self, reference: str) -> str:
        base, _, tag = reference.rpartition(":")
        archive, digest = oci_archive(self.directory, tag)
        self.ctr("images", "import", "--base-name", base, str(archive))
        self.ctr("images", "push", *self.flags, reference)
        return digest

    def pull(self, reference: str) -> str:
        self.ctr("images", "rm", reference, check=False)
        self.ctr("images", "pull", *self.flags, reference)
        for line in self.ctr("images", "ls").decode().splitlines():
            columns = line.split()
            if columns and columns[0] == reference:
                return columns[2]
        raise AssertionError(f"ctr did not record {reference}")


def write_hosts_toml(directory: Path, host: str, ca: Path) -> None:
    """containerd's per-registry configuration: the server and the CA that signed it."""
    (directory / host).mkdir(parents=True, exist_ok=True)
    (directory / host / "hosts.toml").write_text(
        f'server = "https://{host}"\n\n[host."https://{host}"]\n  ca = "{ca}"\n')


class SkopeoDriver:
    """skopeo with `--creds` (or `--no-creds`) on every call; OCI layouts on the local side."""

    def __init__(self, served: Served, user: str | None, directory: Path) -> None:
        self.exe = require_tool("skopeo")
        self.directory = directory
        self.creds = f"creds={user}:{password(user)}" if user else "no-creds"
        self.tls = f"cert-dir={served.cert_dir}" if served.tls else "tls-verify=false"

    def copy(self, source: str, destination: str, side: str) -> None:
        run([self.exe, "copy", "--quiet", "--preserve-digests", f"--{side}-{self.creds}",
             f"--{side}-{self.tls}", source, destination])

    def push(self, reference: str) -> str:
        image = random_image(layer_count=1, layer_size=PAYLOAD_SIZE)
        layout = OciLayout(self.directory / f"push-{secrets.token_hex(4)}")
        layout.write({"v": image})
        self.copy(f"oci:{layout.path}:v", f"docker://{reference}", "dest")
        return image.manifest.digest

    def pull(self, reference: str) -> str:
        layout = OciLayout(self.directory / f"pull-{secrets.token_hex(4)}")
        self.copy(f"docker://{reference}", f"oci:{layout.path}:v", "src")
        return str(layout.descriptor("v")["digest"])


def insecure_registry(directory: Path, host: str) -> dict[str, str]:
    """Environment for podman and buildah to reach `host` over plain HTTP: a registries.conf
    that marks it insecure, as a user would set it up, instead of a flag on every command."""
    conf = directory / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n')
    return {"CONTAINERS_REGISTRIES_CONF": str(conf)}


def containers_remote(base: list[str], env: dict[str, str], served: Served,
                      user: str | None, authfile: Path) -> list[str]:
    """buildah's or podman's flags for the registry: the CA over TLS (plain HTTP comes from
    `insecure_registry` in `env`), and a private auth file that `login --password-stdin`
    filled in when acting as a user."""
    authfile.write_text('{"auths": {}}')
    tls = ["--cert-dir", str(served.cert_dir)] if served.tls else []
    if user is not None:
        run([*base, "login", "--authfile", str(authfile), *tls, "--username", user,
             "--password-stdin", served.host], env=env, stdin=password(user).encode())
    return ["--authfile", str(authfile), *tls]


class BuildahDriver:
    """buildah builds FROM scratch + COPY, pushes with its auth file, pulls back."""

    def __init__(self, buildah: Buildah, served: Served, user: str | None,
                 directory: Path) -> None:
        self.buildah = buildah
        self.directory = directory
        self.remote = containers_remote(buildah.base, buildah.env, served, user,
                                        directory / "auth.json")

    def push(self, reference: str) -> str:
        payload = self.directory / f"payload-{secrets.token_hex(4)}.bin"
        payload.write_bytes(os.urandom(PAYLOAD_SIZE))
        container = self.buildah("from", "scratch")
        self.buildah("copy", container, str(payload), "/payload.bin")
        self.buildah("commit", "--quiet", "--rm", container, reference)
        digestfile = self.directory / f"{secrets.token_hex(4)}.digest"
        self.buildah("push", "--quiet", *self.remote, "--digestfile", str(digestfile),
                     reference)
        return digestfile.read_text().strip()

    def pull(self, reference: str) -> str:
        self.buildah("rmi", "--force", reference, check=False)
        self.buildah("pull", "--quiet", *self.remote, reference)
        return self.buildah("inspect", "--type", "image", "--format", "{{.FromImageDigest}}",
                            reference)


class PodmanDriver:
    """podman imports a tarball, pushes it with its auth file, pulls back."""

    def __init__(self, podman: Podman, served: Served, user: str | None,
                 directory: Path) -> None:
        self.podman = podman
        self.directory = directory
        self.remote = containers_remote(podman.base, podman.env, served, user,
                                        directory / "auth.json")

    def push(self, reference: str) -> str:
        self.podman("import", "--quiet", str(payload_tar(self.directory)), reference)
        digestfile = self.directory / f"{secrets.token_hex(4)}.digest"
        self.podman("push", "--quiet", *self.remote, "--digestfile", str(digestfile),
                    reference)
        return digestfile.read_text().strip()

    def pull(self, reference: str) -> str:
        self.podman("rmi", "--force", reference, check=False)
        self.podman("pull", "--quiet", *self.remote, reference)
        return str(self.podman.inspect(reference)["Digest"])


class Oras(oras.client.OrasClient):
    """oras-py without its retry decorator: it retries errors for minutes on end."""

    do_request = oras.client.OrasClient.do_request.__wrapped__


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """Gives every request a timeout: oras-py sets none, so a stuck server would hang a test."""

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: bool | str = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        return super().send(request, stream, COMMAND_TIMEOUT if timeout is None else timeout,
                            verify, cert, proxies)


def new_oras(insecure: bool, tls_verify: str | bool = True, auth_backend: str = "token") -> Any:
    """An oras-py client (untyped) whose requests, token requests included, time out."""
    client = Oras(insecure=insecure, tls_verify=tls_verify, auth_backend=auth_backend)
    for prefix in ("http://", "https://"):
        client.session.mount(prefix, BoundedAdapter())
    return client


class OrasDriver:
    """One OrasClient for the whole session: its token backend keeps one token throughout."""

    def __init__(self, served: Served, user: str | None, directory: Path) -> None:
        self.directory = directory
        # Without credentials oras-py's basic backend fails on its own: use its default.
        backend = "basic" if served.mode == "basic" and user is not None else "token"
        tls_verify: str | bool = str(served.ca) if served.tls else False
        self.client = new_oras(not served.tls, tls_verify, backend)
        if user is not None:
            self.client.auth.set_basic_auth(user, password(user))

    def push(self, reference: str) -> str:
        staged = self.directory / f"push-{secrets.token_hex(4)}"
        staged.mkdir()
        (staged / "artifact.bin").write_bytes(os.urandom(PAYLOAD_SIZE))
        try:
            response = self.client.push(target=reference, files=[str(staged / "artifact.bin")],
                                        disable_path_validation=True, quiet=True)
        except (ValueError, requests.RequestException) as exc:
            raise AssertionError(f"oras push {reference}: {exc}") from exc
        assert response.status_code == 201, response.text
        return str(response.headers["Docker-Content-Digest"])

    def pull(self, reference: str) -> str:
        outdir = self.directory / f"pull-{secrets.token_hex(4)}"
        try:
            pulled = self.client.pull(target=reference, outdir=str(outdir))
        except (ValueError, requests.RequestException) as exc:
            raise AssertionError(f"oras pull {reference}: {exc}") from exc
        assert [Path(path).name for path in pulled] == ["artifact.bin"]
        # oras-py reports no digest: ask through the same client (and the same token).
        host, repository, tag = split(reference)
        response = self.client.do_request(
            f"{self.client.prefix}://{host}/v2/{repository}/manifests/{tag}", "HEAD",
            headers={"Accept": ALL_MANIFEST_TYPES})
        assert response.status_code == 200, response.status_code
        return str(response.headers["Docker-Content-Digest"])
