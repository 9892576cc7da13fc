"""Real clients pull through Dockyard's mirror, each configured the way its users set up a mirror.

- skopeo names the mirror outright: `docker://MIRROR/up/<repository>`.
- podman and skopeo read a registries.conf whose `[[registry.mirror]]` for the upstream is the
  mirror's `up/` prefix, and pull the upstream's own name.
- docker's engine has `registry-mirrors` in its daemon.json, which only ever mirrors Docker
  Hub: the mirror is a `proxy:` (catch-all) for the upstream, which holds `library/<name>`.
- containerd's ctr reads a hosts.toml whose mirror host gets `?ns=<upstream host>`.

The upstream is the Go reference registry behind htpasswd: only the mirror has its
credentials, so a client that went around the mirror would be refused. Each test also reads
both access logs: the client's manifest and blob GETs reached the mirror, every request the
upstream saw after seeding came from the mirror, and each blob was fetched from it once.
Where the client allows it, the upstream is then stopped and a second pull still works.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import requests

from tests.server import RunningRegistry, require_tool, running_registry
from tests.system.api.client import Client, Manifest
from tests.system.clients.clients import Podman, run
from tests.system.clients.dockerd import DockerDaemon
from tests.system.clients.images import (
    Image,
    ImageIndex,
    OciLayout,
    files_in_tar,
    random_image,
    random_index,
)
from tests.upstreams import ReferenceRegistry, login, reference_registry

pytestmark = pytest.mark.clients

CREDENTIALS = ("mirror-bot", "upstream-secret")
"""The upstream's only user; only the mirror's configuration holds the password."""
PREFIX = "up"
MIRROR_AGENT = "dockyard/"
SYNC_PATH = "dockyard-test-sync"
"""Requests under it mark a point in the mirror's access log (a 404 outside the API)."""

# One request line of Dockyard's text access log: "METHOD path" status bytes time "agent".
_MIRROR_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+)" (?P<status>\d{3}) \S+ \S+ '
                            r'"(?P<agent>[^"]*)"')
# The reference registry's combined log format ends with "referer" "agent".
_UPSTREAM_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) '
                              r'\S+ "[^"]*" "(?P<agent>[^"]*)"')


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int
    agent: str


@dataclass
class Mirrored:
    """An upstream holding one image, and a Dockyard mirroring it."""

    upstream: ReferenceRegistry
    mirror: RunningRegistry
    repository: str
    """The image's name on the upstream."""
    tag: str
    image: Image
    seeded_at: int = 0
    """Size of the upstream's access log once seeded: what follows came from the mirror."""

    @property
    def digest(self) -> str:
        return self.image.manifest.digest

    @property
    def blob_digests(self) -> list[str]:
        return [self.image.config.digest, *(layer.digest for layer in self.image.layers)]

    @property
    def diff_ids(self) -> list[str]:
        return list(json.loads(self.image.config.data)["rootfs"]["diff_ids"])

    def mirror_requests(self) -> list[Request]:
        """Every request the mirror logged, once the log holds all answered so far: it logs
        a request after its response, so a client may have exited before its last line."""
        marker = f"/{SYNC_PATH}/{uuid4().hex}"
        requests.get(self.mirror.url + marker, timeout=5)
        deadline = time.monotonic() + 5
        while marker not in (text := self.mirror.log_text()):
            assert time.monotonic() < deadline, "the mirror's access log did not show the marker"
            time.sleep(0.01)
        return [Request(m["method"], m["path"], int(m["status"]), m["agent"])
                for m in map(_MIRROR_ACCESS.search, text.splitlines())
                if m and SYNC_PATH not in m["path"]]

    def upstream_requests(self) -> list[Request]:
        """Requests after seeding, the log-sync markers left out."""
        self.upstream.sync()
        text = self.upstream.access_log.read_bytes()[self.seeded_at:].decode(errors="replace")
        return [Request(m["method"], m["uri"], int(m["status"]), m["agent"])
                for m in map(_UPSTREAM_ACCESS.search, text.splitlines())
                if m and "dockyard-test-sync" not in m["uri"]]

    def assert_mirror_served(self, agent: str, local_path: str, pulls: int = 1) -> None:
        """The client (by its User-Agent) resolved the manifest and got every blob from the
        mirror, `pulls` times, under `local_path` (`/v2/<name>`, as the client spelled it).

        Resolving is a GET or a HEAD: docker's engine keeps the manifests it pulled, so
        after an `rmi` it may only HEAD the tag before fetching the layers again."""
        served = [(r.method, r.path) for r in self.mirror_requests()
                  if r.status == 200 and agent in r.agent]
        resolved = [path for method, path in served if method in ("GET", "HEAD")
                    and path == f"{local_path}/manifests/{self.tag}"]
        assert len(resolved) >= pulls, f"{agent} resolved no tag under {local_path}: {served}"
        for digest in self.blob_digests:
            got = served.count(("GET", f"{local_path}/blobs/{digest}"))
            assert got == pulls, f"{agent} got {digest} {got} times from the mirror: {served}"

    def assert_upstream_saw_only_the_mirror(self) -> None:
        """Nothing but the mirror asked the upstream, and it fetched the manifest and each
        blob once (a 401 challenge does not count)."""
        seen = self.upstream_requests()
        others = [r for r in seen if not r.agent.startswith(MIRROR_AGENT)]
        assert others == [], f"clients went to the upstream: {others}"
        manifests = [r for r in seen if r.method == "GET" and r.status == 200
                     and r.path.startswith(f"/v2/{self.repository}/manifests/")]
        assert len(manifests) == 1, f"manifest fetched {len(manifests)} times: {seen}"
        for digest in self.blob_digests:
            fetched = [r for r in seen if r.method == "GET" and r.status == 200
                       and r.path == f"/v2/{self.repository}/blobs/{digest}"]
            assert len(fetched) == 1, f"{digest} fetched {len(fetched)} times: {seen}"


@pytest.fixture
def mirrored(tmp_path: Path) -> Iterator[Callable[..., Mirrored]]:
    """mirrored(repository, catch_all=False, prefix="up", layer_size=4096): an htpasswd
    upstream seeded with a fresh image under `repository:v1` (`:latest` for a catch-all), and
    a Dockyard mirroring it under `prefix/` or, with `catch_all`, as distribution's `proxy:`
    for every repository."""
    with ExitStack() as stack:

        def start(repository: str, catch_all: bool = False, prefix: str = PREFIX,
                  layer_size: int = 4096) -> Mirrored:
            (tmp_path / "upstream").mkdir()
            (tmp_path / "mirror").mkdir()
            upstream = stack.enter_context(
                reference_registry(tmp_path / "upstream", users=dict([CREDENTIALS])))
            image = random_image(layer_count=2, layer_size=layer_size)
            tag = "latest" if catch_all else "v1"
            seed(upstream, repository, tag, image)
            user, password = CREDENTIALS
            config: dict[str, Any] = (
                {"proxy": {"remoteurl": upstream.url, "username": user, "password": password}}
                if catch_all else
                {"mirrors": [{"prefix": prefix, "url": upstream.url, "username": user,
                              "password": password}]})
            mirror = stack.enter_context(running_registry(tmp_path / "mirror", config))
            upstream.sync()
            return Mirrored(upstream, mirror, repository, tag, image,
                            upstream.access_log.stat().st_size)

        yield start


def seed(upstream: ReferenceRegistry, repository: str, tag: str,
         content: Image | ImageIndex) -> None:
    """Push an image, or an index and its images, to the upstream as its user, manifest
    bytes unchanged (images by digest, the top manifest under `tag`)."""
    images = [content] if isinstance(content, Image) else content.images
    top = content.manifest if isinstance(content, Image) else content.index
    client = Client(upstream.url, login(upstream.url, repository, CREDENTIALS))
    try:
        for image in images:
            client.push_manifest(repository, Manifest(
                image.manifest.data, image.manifest.media_type,
                tuple(blob.data for blob in image.blobs()[1:])), image.manifest.digest)
        assert client.put_manifest(repository, tag, top.data, top.media_type).status_code == 201
    finally:
        client.close()


def fresh_repository() -> str:
    return f"lib/app-{secrets.token_hex(4)}"


def assert_layout_holds(layout: OciLayout, tag: str, mirrored: Mirrored) -> None:
    """The pulled OCI layout has the upstream's manifest, byte for byte, and its files."""
    assert layout.descriptor(tag)["digest"] == mirrored.digest
    assert layout.read_blob(mirrored.digest) == mirrored.image.manifest.data
    files: dict[str, bytes] = {}
    for layer in mirrored.image.layers:
        files.update(files_in_tar(layout.read_blob(layer.digest)))
    assert files == mirrored.image.files


def registries_conf(directory: Path, mirrored: Mirrored, registry: str | None = None,
                    prefix: str = PREFIX) -> Path:
    """`registry` (default: the upstream) with the mirror's `prefix` as its mirror, both
    over plain HTTP."""
    path = directory / "registries.conf"
    path.write_text(
        "unqualified-search-registries = []\n\n"
        "[[registry]]\n"
        f'location = "{registry or mirrored.upstream.host}"\n'
        "insecure = true\n\n"
        "[[registry.mirror]]\n"
        f'location = "{mirrored.mirror.host}/{prefix}"\n'
        "insecure = true\n")
    return path


def empty_auth_file(directory: Path) -> Path:
    """So no login of the host's is offered to either registry."""
    path = directory / "auth.json"
    path.write_text('{"auths": {}}')
    return path


def test_skopeo_copies_from_the_mirror_prefix(mirrored: Callable[..., Mirrored],
                                              tmp_path: Path) -> None:
    """`docker://MIRROR/up/<repository>`, twice: the upstream's image, which the mirror
    fetched from the upstream once."""
    skopeo = require_tool("skopeo")
    image = mirrored(fresh_repository())
    source = f"docker://{image.mirror.host}/{PREFIX}/{image.repository}:{image.tag}"
    for attempt in ("cold", "warm"):
        layout = OciLayout(tmp_path / attempt)
        run([skopeo, "copy", "--quiet", "--src-tls-verify=false", "--src-no-creds", source,
             f"oci:{layout.path}:{image.tag}"])
        assert_layout_holds(layout, image.tag, image)

    image.assert_mirror_served("skopeo/", f"/v2/{PREFIX}/{image.repository}", pulls=2)
    image.assert_upstream_saw_only_the_mirror()


def test_podman_pulls_the_upstream_name_through_registries_conf(
        mirrored: Callable[..., Mirrored], podman: Podman, short_dir: Callable[[], Path],
        tmp_path: Path) -> None:
    """`podman pull UPSTREAM/<repository>` goes to the `[[registry.mirror]]`; skopeo with
    `--registries-conf` too; once the upstream is down, the mirror still serves the tag."""
    image = mirrored(fresh_repository())
    conf = registries_conf(short_dir(), image)
    podman.env["CONTAINERS_REGISTRIES_CONF"] = str(conf)
    podman.env["REGISTRY_AUTH_FILE"] = str(empty_auth_file(short_dir()))
    reference = f"{image.upstream.host}/{image.repository}:{image.tag}"

    podman("pull", "--quiet", reference)
    inspected = podman.inspect(reference)
    assert inspected["Digest"] == image.digest
    assert inspected["Id"] == image.image.config.digest.removeprefix("sha256:")
    assert inspected["RootFS"]["Layers"] == image.diff_ids
    image.assert_mirror_served("containers/", f"/v2/{PREFIX}/{image.repository}")

    skopeo = require_tool("skopeo")
    layout = OciLayout(tmp_path / "skopeo")
    run([skopeo, "--registries-conf", str(conf), "copy", "--quiet", "--src-authfile",
         str(empty_auth_file(tmp_path)), f"docker://{reference}",
         f"oci:{layout.path}:{image.tag}"])
    assert_layout_holds(layout, image.tag, image)
    image.assert_mirror_served("skopeo/", f"/v2/{PREFIX}/{image.repository}")
    image.assert_upstream_saw_only_the_mirror()

    image.upstream.stop()
    podman("rmi", reference)
    podman("pull", "--quiet", reference)
    assert podman.inspect(reference)["Digest"] == image.digest
    image.assert_mirror_served("containers/", f"/v2/{PREFIX}/{image.repository}", pulls=2)


@pytest.fixture
def hub_mirror_daemon(mirrored: Callable[..., Mirrored]) -> Iterator[tuple[DockerDaemon, Mirrored]]:
    """A catch-all mirror of an upstream holding `library/<name>:latest`, and an engine of
    its own whose daemon.json lists the mirror in `registry-mirrors`."""
    image = mirrored(f"library/dockyard-e2e-{secrets.token_hex(4)}", catch_all=True)
    directory = Path(tempfile.mkdtemp(prefix="dockerd-", dir="/tmp"))
    daemon = DockerDaemon(directory, {"registry-mirrors": [image.mirror.url]})
    try:
        daemon.start()
        yield daemon, image
    finally:  # also when it failed to start
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_docker_pulls_a_hub_name_from_registry_mirrors(
        hub_mirror_daemon: tuple[DockerDaemon, Mirrored]) -> None:
    """`docker pull <name>` (Docker Hub's library/<name>) is answered by the mirror: a pull
    that left it would fail (Docker Hub has no such image, if it is reachable at all); once
    the upstream is down and the image removed, the mirror still serves it."""
    daemon, image = hub_mirror_daemon
    name = image.repository.removeprefix("library/")
    output = daemon.docker("pull", name).stdout.decode()
    assert f"Digest: {image.digest}" in output, output

    inspected = json.loads(daemon.docker("image", "inspect", name).stdout)[0]
    assert inspected["Id"] == image.image.config.digest
    assert inspected["RepoDigests"] == [f"{name}@{image.digest}"]
    assert inspected["RootFS"]["Layers"] == image.diff_ids
    image.assert_mirror_served("docker/", f"/v2/{image.repository}")
    image.assert_upstream_saw_only_the_mirror()

    image.upstream.stop()
    daemon.docker("rmi", name)
    assert f"Digest: {image.digest}" in daemon.docker("pull", name).stdout.decode()
    image.assert_mirror_served("docker/", f"/v2/{image.repository}", pulls=2)


def hosts_dir(directory: Path, mirrored: Mirrored, registry: str | None = None,
              server: str | None = None) -> Path:
    """containerd's hosts.toml for `registry` (default: the upstream, also the default
    `server`): the mirror first, for pull and resolve."""
    registry = registry or mirrored.upstream.host
    (directory / registry).mkdir(parents=True)
    (directory / registry / "hosts.toml").write_text(
        f'server = "{server or mirrored.upstream.url}"\n\n'
        f'[host."{mirrored.mirror.url}"]\n'
        '  capabilities = ["pull", "resolve"]\n')
    return directory


def test_containerd_pulls_through_a_hosts_toml_mirror(
        mirrored: Callable[..., Mirrored], docker_daemon: DockerDaemon, tmp_path: Path) -> None:
    """ctr asks the mirror for `/v2/<repository>/...?ns=UPSTREAM`, which the mirror maps to
    `up/<repository>`; with the upstream stopped and the image removed, it pulls again."""
    image = mirrored(fresh_repository())
    namespace = f"mirror-{secrets.token_hex(4)}"
    reference = f"{image.upstream.host}/{image.repository}:{image.tag}"
    flags = ["--hosts-dir", str(hosts_dir(tmp_path / "hosts", image))]

    def ctr(*args: str) -> bytes:
        return docker_daemon.ctr(namespace, *args).stdout

    def pull() -> None:
        ctr("images", "pull", *flags, reference)
        listed = [line.split() for line in ctr("images", "ls").decode().splitlines()]
        assert [row[2] for row in listed if row and row[0] == reference] == [image.digest]
        for layer in image.image.layers:
            assert ctr("content", "get", layer.digest) == layer.data

    try:
        pull()
        image.assert_mirror_served("containerd/", f"/v2/{image.repository}")
        image.assert_upstream_saw_only_the_mirror()

        image.upstream.stop()
        ctr("images", "rm", "--sync", reference)
        pull()
        image.assert_mirror_served("containerd/", f"/v2/{image.repository}", pulls=2)
    finally:
        docker_daemon.ctr(namespace, "images", "rm", "--sync", reference, check=False)


def test_an_index_and_a_child_by_digest_through_the_mirror(
        mirrored: Callable[..., Mirrored], docker_daemon: DockerDaemon, podman: Podman,
        short_dir: Callable[[], Path], tmp_path: Path) -> None:
    """A multi-platform index by tag (ctr picks the linux/amd64 child, by digest) and the
    other child by digest (podman): each manifest and blob comes from the upstream once."""
    image = mirrored(fresh_repository())
    index = random_index([("linux", "arm64"), ("linux", "amd64")])
    arm64, amd64 = index.images
    seed(image.upstream, image.repository, "multi", index)
    image.upstream.sync()
    image.seeded_at = image.upstream.access_log.stat().st_size

    namespace = f"mirror-{secrets.token_hex(4)}"
    by_tag = f"{image.upstream.host}/{image.repository}:multi"
    try:
        docker_daemon.ctr(namespace, "images", "pull", "--platform", "linux/amd64",
                          "--hosts-dir", str(hosts_dir(tmp_path / "hosts", image)), by_tag)
        listed = docker_daemon.ctr(namespace, "images", "ls").stdout.decode().splitlines()
        assert [row.split()[2] for row in listed if row.startswith(by_tag + " ")] == [
            index.index.digest]
        for layer in amd64.layers:
            assert docker_daemon.ctr(namespace, "content", "get", layer.digest).stdout \
                == layer.data
    finally:
        docker_daemon.ctr(namespace, "images", "rm", "--sync", by_tag, check=False)

    podman.env["CONTAINERS_REGISTRIES_CONF"] = str(registries_conf(short_dir(), image))
    podman.env["REGISTRY_AUTH_FILE"] = str(empty_auth_file(short_dir()))
    by_digest = f"{image.upstream.host}/{image.repository}@{arm64.manifest.digest}"
    podman("pull", "--quiet", "--arch", "arm64", by_digest)
    assert podman.inspect(by_digest)["Digest"] == arm64.manifest.digest

    served = {(r.path, r.agent.split("/")[0]) for r in image.mirror_requests()
              if r.method == "GET" and r.status == 200}
    assert (f"/v2/{image.repository}/manifests/{amd64.manifest.digest}", "containerd") in served
    assert (f"/v2/{PREFIX}/{image.repository}/manifests/{arm64.manifest.digest}",
            "containers") in served
    seen = image.upstream_requests()
    assert [r for r in seen if not r.agent.startswith(MIRROR_AGENT)] == []
    fetched = [r.path.rsplit("/", 1)[1] for r in seen if r.method == "GET" and r.status == 200]
    assert sorted(fetched) == sorted(["multi", *(blob.digest for blob in index.blobs()[1:])]), \
        seen


def test_docker_hub_names_through_a_docker_io_prefix(
        mirrored: Callable[..., Mirrored], docker_daemon: DockerDaemon, podman: Podman,
        short_dir: Callable[[], Path], tmp_path: Path) -> None:
    """How nodes mirror Docker Hub: a `docker.io` mirror entry (here, for lack of Docker
    Hub, over the upstream). ctr asks `/v2/library/<name>/...?ns=docker.io`, podman asks
    `/v2/docker.io/library/<name>/...`; both get the upstream's `library/<name>`."""
    image = mirrored(f"library/dockyard-e2e-{secrets.token_hex(4)}", prefix="docker.io")
    reference = f"docker.io/{image.repository}:{image.tag}"

    namespace = f"mirror-{secrets.token_hex(4)}"
    hosts = hosts_dir(tmp_path / "hosts", image, "docker.io", "https://registry-1.docker.io")
    try:
        docker_daemon.ctr(namespace, "images", "pull", "--hosts-dir", str(hosts), reference)
        listed = docker_daemon.ctr(namespace, "images", "ls").stdout.decode().splitlines()
        assert [row.split()[2] for row in listed if row.startswith(reference + " ")] == [
            image.digest]
    finally:
        docker_daemon.ctr(namespace, "images", "rm", "--sync", reference, check=False)
    image.assert_mirror_served("containerd/", f"/v2/{image.repository}")

    podman.env["CONTAINERS_REGISTRIES_CONF"] = str(
        registries_conf(short_dir(), image, "docker.io", "docker.io"))
    podman.env["REGISTRY_AUTH_FILE"] = str(empty_auth_file(short_dir()))
    podman("pull", "--quiet", reference)
    assert podman.inspect(reference)["Digest"] == image.digest
    image.assert_mirror_served("containers/", f"/v2/docker.io/{image.repository}")
    image.assert_upstream_saw_only_the_mirror()


def test_three_clients_at_once_share_one_upstream_fetch(
        mirrored: Callable[..., Mirrored], docker_daemon: DockerDaemon, podman: Podman,
        short_dir: Callable[[], Path], tmp_path: Path) -> None:
    """ctr, podman and skopeo pull the same cold image (8 MiB layers) at the same time, each
    in its own configuration: every blob is fetched from the upstream once, and every client
    gets the image whole."""
    image = mirrored(fresh_repository(), layer_size=8 * 1024 * 1024)
    reference = f"{image.upstream.host}/{image.repository}:{image.tag}"
    namespace = f"mirror-{secrets.token_hex(4)}"
    hosts = hosts_dir(tmp_path / "hosts", image)
    podman.env["CONTAINERS_REGISTRIES_CONF"] = str(registries_conf(short_dir(), image))
    podman.env["REGISTRY_AUTH_FILE"] = str(empty_auth_file(short_dir()))
    layout = OciLayout(tmp_path / "skopeo")
    pulls: list[Callable[[], object]] = [
        lambda: docker_daemon.ctr(namespace, "images", "pull", "--hosts-dir", str(hosts),
                                  reference),
        lambda: podman("pull", "--quiet", reference),
        lambda: run([require_tool("skopeo"), "copy", "--quiet", "--src-tls-verify=false",
                     "--src-no-creds",
                     f"docker://{image.mirror.host}/{PREFIX}/{image.repository}:{image.tag}",
                     f"oci:{layout.path}:{image.tag}"]),
    ]
    try:
        with ThreadPoolExecutor(len(pulls)) as pool:
            for pending in [pool.submit(pull) for pull in pulls]:
                pending.result()
        for layer in image.image.layers:
            assert docker_daemon.ctr(namespace, "content", "get", layer.digest).stdout \
                == layer.data
    finally:
        docker_daemon.ctr(namespace, "images", "rm", "--sync", reference, check=False)
    assert podman.inspect(reference)["Digest"] == image.digest
    assert_layout_holds(layout, image.tag, image)

    image.assert_mirror_served("containerd/", f"/v2/{image.repository}")
    image.assert_mirror_served("containers/", f"/v2/{PREFIX}/{image.repository}")
    image.assert_mirror_served("skopeo/", f"/v2/{PREFIX}/{image.repository}")
    image.assert_upstream_saw_only_the_mirror()
