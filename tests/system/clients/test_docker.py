"""What only docker does: build FROM an image in Dockyard, manifest and image inspect, and the
cross-repository mount of layers it pushed before (its token request names both repositories).
Runs in every auth mode, like the matrix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.system.clients.dockerd import DockerDaemon
from tests.system.clients.drivers import DockerDriver
from tests.system.clients.images import files_in_tar
from tests.system.clients.modes import PUSHER, Served

pytestmark = [pytest.mark.clients, pytest.mark.usefixtures("docker_trust")]


@pytest.fixture
def docker(docker_daemon: DockerDaemon, served: Served, tmp_path: Path) -> DockerDriver:
    """A docker session logged in as the pusher (anonymous without users)."""
    return DockerDriver(docker_daemon, served, served.user(PUSHER), tmp_path / "session")


def test_docker_build_from_dockyard(served: Served, docker: DockerDriver, served_repo: str,
                                    tmp_path: Path) -> None:
    """FROM an image only Dockyard has, plus a COPY; the pushed image has both layers."""
    base, app = f"{served.host}/{served_repo}-base:v1", f"{served.host}/{served_repo}-app:v1"
    docker.push(base)
    docker.docker("rmi", base)  # the build has to pull its base from Dockyard
    context = tmp_path / "context"
    context.mkdir()
    (context / "greeting.txt").write_text("built by docker\n")
    (context / "Dockerfile").write_text(f"FROM {base}\nCOPY greeting.txt /greeting.txt\n")
    docker.docker("build", "--tag", app, str(context))
    pushed = docker.push_local(app)

    assert served.manifest_digest(f"{served_repo}-app", "v1") == pushed
    manifest = served.request("GET", f"{served_repo}-app", f"manifests/{pushed}").json()
    base_manifest = served.request("GET", f"{served_repo}-base", "manifests/v1").json()
    assert [layer["digest"] for layer in manifest["layers"][:1]] == [
        layer["digest"] for layer in base_manifest["layers"]]
    top = served.request("GET", f"{served_repo}-app",
                         f"blobs/{manifest['layers'][-1]['digest']}")
    assert files_in_tar(top.content) == {"greeting.txt": b"built by docker\n"}


def test_docker_manifest_and_image_inspect(served: Served, docker: DockerDriver,
                                           served_repo: str) -> None:
    """`manifest inspect` shows the registry's manifest; a pull by digest is inspectable so."""
    reference = f"{served.host}/{served_repo}:v1"
    pushed = docker.push(reference)
    insecure = [] if served.tls else ["--insecure"]
    shown = json.loads(docker.docker("manifest", "inspect", *insecure, reference))
    stored = served.request("GET", served_repo, f"manifests/{pushed}").json()
    assert shown == stored

    by_digest = f"{served.host}/{served_repo}@{pushed}"
    docker.daemon.docker("rmi", reference)
    docker.docker("pull", by_digest)
    inspected = json.loads(docker.docker("image", "inspect", by_digest))[0]
    assert inspected["RepoDigests"] == [by_digest]
    assert inspected["Id"] == stored["config"]["digest"]


def test_docker_mounts_across_repositories(served: Served, docker: DockerDriver,
                                           served_repo: str) -> None:
    """A layer docker pushed to one repository is mounted into another, never sent again."""
    source, target = f"{served_repo}-source", f"{served_repo}-target"
    docker.push(f"{served.host}/{source}:v1")
    docker.docker("tag", f"{served.host}/{source}:v1", f"{served.host}/{target}:v1")
    output = docker.docker("push", f"{served.host}/{target}:v1")

    assert f"Mounted from {source}".encode() in output
    # 201 to a POST .../blobs/uploads/ is a completed mount: the image's one layer. The only
    # upload completed in the target (a PUT) is the image config, which docker never mounts.
    assert served.statuses("POST", f"/v2/{target}/blobs/uploads/").count(201) == 1
    assert served.statuses("PUT", f"/v2/{target}/blobs/uploads/") == [201]
    mounted = served.manifest_digest(target, "v1")
    assert mounted is not None and mounted == served.manifest_digest(source, "v1")
