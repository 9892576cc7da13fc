"""oras-py pushes artifacts (monolithic and chunked uploads) and referrers through its client."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import oras.oci
import pytest
import requests

from tests.system.clients.clients import Http
from tests.system.clients.conftest import Target
from tests.system.clients.drivers import new_oras
from tests.system.clients.images import OCI_INDEX, OCI_MANIFEST

pytestmark = pytest.mark.clients

TITLE = "org.opencontainers.image.title"
SIGNATURE_TYPE = "application/vnd.dockyard.e2e.signature.v1+json"


def oras_client() -> Any:
    """A plain-HTTP client; without login it sends no credentials at all."""
    return new_oras(insecure=True)


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def pull_and_compare(target: str, files: dict[str, bytes], outdir: Path) -> None:
    """oras does not check digests on pull, so compare the bytes it wrote ourselves."""
    pulled = oras_client().pull(target=target, outdir=str(outdir))
    assert sorted(Path(path).name for path in pulled) == sorted(files)
    for name, data in files.items():
        assert (outdir / name).read_bytes() == data, name


def test_oras_push_pull_with_annotations(target: Target, http: Http,
                                         new_repo: Callable[..., str], tmp_path: Path) -> None:
    """Two files with layer and manifest annotations come back byte for byte."""
    repo = new_repo()
    staged = tmp_path / "staged"
    staged.mkdir()
    files = {"notes.txt": write_random(staged / "notes.txt", 3000),
             "data.bin": write_random(staged / "data.bin", 70 * 1024)}
    annotations = tmp_path / "annotations.json"
    annotations.write_text(json.dumps({
        str(staged / "notes.txt"): {"e2e.kind": "notes"},
        str(staged / "data.bin"): {"e2e.kind": "data"},
        "$manifest": {"e2e.from": "file"},
    }))
    reference = f"{target.host}/{repo}:art"

    response = oras_client().push(
        target=reference, files=[str(staged / name) for name in files],
        annotation_file=str(annotations), manifest_annotations={"e2e.run": "dockyard"},
        disable_path_validation=True, quiet=True)
    assert response.status_code == 201

    manifest = json.loads(http.get_manifest(repo, "art").content)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["annotations"] == {"e2e.from": "file", "e2e.run": "dockyard"}
    assert [layer["annotations"] for layer in manifest["layers"]] == [
        {TITLE: "notes.txt", "e2e.kind": "notes"}, {TITLE: "data.bin", "e2e.kind": "data"}]
    assert response.headers["Docker-Content-Digest"] == http.get_manifest(
        repo, "art").headers["Docker-Content-Digest"]

    pull_and_compare(reference, files, tmp_path / "pulled")


def test_oras_referrer_with_subject(target: Target, http: Http,
                                    new_repo: Callable[..., str], tmp_path: Path) -> None:
    """An artifact pushed with a subject is listed by the referrers API of that subject."""
    repo = new_repo()
    staged = tmp_path / "staged"
    staged.mkdir()
    write_random(staged / "subject.bin", 4096)
    write_random(staged / "signature.sig", 512)
    (staged / "config.json").write_text("{}")
    oras_client().push(target=f"{target.host}/{repo}:subject",
                       files=[str(staged / "subject.bin")], disable_path_validation=True,
                       quiet=True)

    stored = http.get_manifest(repo, "subject")
    subject_digest = stored.headers["Docker-Content-Digest"]
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest,
                               size=len(stored.content))
    response = oras_client().push(
        target=f"{target.host}/{repo}:signature", files=[str(staged / "signature.sig")],
        manifest_config=f"{staged / 'config.json'}:{SIGNATURE_TYPE}", subject=subject,
        disable_path_validation=True, quiet=True)
    assert response.status_code == 201
    referrer = http.get_manifest(repo, "signature")
    pushed = json.loads(referrer.content)
    assert pushed["subject"] == {"mediaType": OCI_MANIFEST, "digest": subject_digest,
                                 "size": len(stored.content)}
    assert pushed["config"]["mediaType"] == SIGNATURE_TYPE

    listed = requests.get(f"{target.url}/v2/{repo}/referrers/{subject_digest}", timeout=30)
    assert listed.status_code == 200, listed.text
    assert listed.headers["Content-Type"] == OCI_INDEX
    index = listed.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    assert index["manifests"] == [{
        "mediaType": OCI_MANIFEST,
        "digest": referrer.headers["Docker-Content-Digest"],
        "size": len(referrer.content),
        "artifactType": SIGNATURE_TYPE,
    }]
    # A registry that keeps referrers says so when it accepts a manifest with a subject.
    assert response.headers.get("OCI-Subject") == subject_digest


def test_oras_chunked_upload(target: Target, http: Http,
                             new_repo: Callable[..., str], tmp_path: Path) -> None:
    """oras's chunked upload (POST, PATCH with Content-Range per chunk, PUT) keeps every byte."""
    repo = new_repo()
    staged = tmp_path / "staged"
    staged.mkdir()
    # Five full 64 KiB chunks and a short last one.
    data = write_random(staged / "big.bin", 5 * 65536 + 1234)
    reference = f"{target.host}/{repo}:chunked"

    oras_client().push(target=reference, files=[str(staged / "big.bin")], do_chunked=True,
                       chunk_size=65536, disable_path_validation=True, quiet=True)

    layer = json.loads(http.get_manifest(repo, "chunked").content)["layers"][0]
    assert layer["size"] == len(data)
    assert http.get_blob(repo, layer["digest"]) == data
    pull_and_compare(reference, {"big.bin": data}, tmp_path / "pulled")
