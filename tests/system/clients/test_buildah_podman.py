"""buildah builds and pushes an image; podman, with its own storage, pulls and re-pushes it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.system.clients.clients import Buildah, Http, Podman
from tests.system.clients.conftest import Target
from tests.system.clients.images import files_in_tar

pytestmark = pytest.mark.clients


def layer_files(http: Http, repo: str, tag: str) -> dict[str, bytes]:
    """Every regular file in the image's layers, read straight from the registry."""
    manifest = json.loads(http.get_manifest(repo, tag).content)
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        files.update(files_in_tar(http.get_blob(repo, layer["digest"])))
    return files


def test_buildah_push_podman_pull_and_push(target: Target, buildah: Buildah, podman: Podman,
                                           http: Http, new_repo: Callable[..., str],
                                           tmp_path: Path) -> None:
    """One image, two clients with separate storage: the registry is the only link."""
    repo, copy_repo = new_repo("built"), new_repo("copied")
    payload = os.urandom(96 * 1024)
    (tmp_path / "payload.bin").write_bytes(payload)

    container = buildah("from", "scratch")
    buildah("copy", container, str(tmp_path / "payload.bin"), "/payload.bin")
    buildah("config", "--cmd", "/payload.bin", "--label", f"e2e.token={os.urandom(8).hex()}",
            container)
    buildah("commit", "--quiet", container, "localhost/e2e-built:latest")
    pushed_file = tmp_path / "buildah.digest"
    buildah.push("localhost/e2e-built:latest", f"docker://{target.host}/{repo}:v1", pushed_file)
    pushed = pushed_file.read_text().strip()

    assert http.tags(repo) == ["v1"]
    served = http.get_manifest(repo, "v1")
    assert served.headers["Docker-Content-Digest"] == pushed
    config_digest = json.loads(served.content)["config"]["digest"]
    assert layer_files(http, repo, "v1") == {"payload.bin": payload}

    reference = f"{target.host}/{repo}:v1"
    image_id = podman.pull(reference)
    assert f"sha256:{image_id}" == config_digest
    inspected = podman.inspect(reference)
    assert inspected["Digest"] == pushed
    assert f"{target.host}/{repo}@{pushed}" in inspected["RepoDigests"]
    assert inspected["Config"]["Cmd"] == ["/payload.bin"]

    copy_reference = f"{target.host}/{copy_repo}:v2"
    podman("tag", reference, copy_reference)
    copied_file = tmp_path / "podman.digest"
    podman.push(copy_reference, copied_file)

    assert http.tags(copy_repo) == ["v2"]
    copied = http.get_manifest(copy_repo, "v2")
    assert copied.headers["Docker-Content-Digest"] == copied_file.read_text().strip()
    assert json.loads(copied.content)["config"]["digest"] == config_digest
    assert layer_files(http, copy_repo, "v2") == {"payload.bin": payload}
    assert http.tags(repo) == ["v1"]
