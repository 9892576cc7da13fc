"""`dockyard export` and `dockyard import` as processes, between two running Dockyards, and
with skopeo on either side of the layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.layout.layout as oras_layout
import pytest
import requests

from tests.server import RunningRegistry, require_tool, running_registry
from tests.system.api.client import (
    Client,
    Manifest,
    artifact_manifest,
    digest_of,
    image_manifest,
    index_manifest,
    random_bytes,
)
from tests.system.clients.clients import Skopeo
from tests.system.clients.drivers import new_oras

SIGNATURE = "application/vnd.dockyard.test.signature"
ACCEPT = ", ".join(["application/vnd.oci.image.index.v1+json",
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])


def dockyard(server: RunningRegistry, *args: str, **options: Any
             ) -> subprocess.CompletedProcess[bytes]:
    """The command, in its own process, on the server's configuration."""
    options.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args, "--config", str(server.config_path)],
        stderr=subprocess.PIPE, timeout=300, env=dict(os.environ), check=False, **options)


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


@dataclass
class Seeded:
    app: Manifest
    signature: Manifest
    multi: Manifest


def seed(server: RunningRegistry) -> Seeded:
    client = Client(server.url)
    try:
        app = image_manifest([random_bytes(60_000), random_bytes(2_000)])
        client.push_manifest("lib/app", app, "1.0")
        signature = artifact_manifest(SIGNATURE, subject=app, layers=[random_bytes(300)])
        client.push_manifest("lib/app", signature)
        multi = index_manifest([image_manifest([random_bytes(9_000)]),
                                image_manifest([random_bytes(8_000)])])
        client.push_manifest("lib/multi", multi, "2.0")
    finally:
        client.close()
    return Seeded(app, signature, multi)


def catalog(server: RunningRegistry) -> dict[str, dict[str, bytes]]:
    """Every repository, its tags and the bytes of the manifest each names."""
    found: dict[str, dict[str, bytes]] = {}
    names = requests.get(f"{server.url}/v2/_catalog", timeout=10).json()["repositories"]
    for name in names:
        tags = requests.get(f"{server.url}/v2/{name}/tags/list", timeout=10).json()["tags"]
        found[name] = {tag: requests.get(f"{server.url}/v2/{name}/manifests/{tag}", timeout=10,
                                         headers={"Accept": ACCEPT}).content
                       for tag in tags or []}
    return found


def referrers(server: RunningRegistry, name: str, digest: str) -> list[str]:
    response = requests.get(f"{server.url}/v2/{name}/referrers/{digest}", timeout=10)
    return [item["digest"] for item in response.json()["manifests"]]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RunningRegistry, RunningRegistry]]:
    (tmp_path / "source").mkdir()
    (tmp_path / "target").mkdir()
    with running_registry(tmp_path / "source") as source, \
            running_registry(tmp_path / "target") as target:
        yield source, target


@pytest.mark.parametrize("form", ["dir", "out.tar", "out.tar.zst", "-"])
def test_round_trip_between_two_registries(pair: tuple[RunningRegistry, RunningRegistry],
                                           tmp_path: Path, form: str) -> None:
    source, target = pair
    seeded = seed(source)
    layout = tmp_path / ("stdout.tar" if form == "-" else form)
    if form == "-":
        with layout.open("wb") as out:
            result = dockyard(source, "export", "--to", "-", "--with-referrers", stdout=out)
        assert result.returncode == 0, result.stderr.decode()
        assert b"exported 2 repositories, 2 tags" in result.stderr
    else:
        summary = ok(dockyard(source, "export", "--to", str(layout), "--with-referrers"))
        assert "exported 2 repositories, 2 tags, 5 manifests" in summary
    dry = ok(dockyard(target, "import", str(layout), "--dry-run"))
    assert f"would tag lib/app:1.0 -> {seeded.app.digest}" in dry
    assert catalog(target) == {}
    ok(dockyard(target, "import", str(layout)))
    assert catalog(target) == catalog(source)
    assert referrers(target, "lib/app", seeded.app.digest) == [seeded.signature.digest]
    again = ok(dockyard(target, "import", str(layout)))
    assert "0 manifests added (5 present); 0 blobs added" in again
    assert ok(dockyard(target, "check")).rstrip().endswith("everything referenced is present "
                                                           "and intact")


def test_conflicts_fail_before_writing_and_exit_non_zero(
        pair: tuple[RunningRegistry, RunningRegistry], tmp_path: Path) -> None:
    source, target = pair
    seed(source)
    ok(dockyard(source, "export", "--to", str(tmp_path / "layout")))
    client = Client(target.url)
    mine = image_manifest([random_bytes(100)])
    client.push_manifest("lib/app", mine, "1.0")
    client.close()
    failed = dockyard(target, "import", str(tmp_path / "layout"), "--on-conflict", "fail")
    assert failed.returncode == 1
    assert b"lib/app:1.0 is " + mine.digest.encode() in failed.stderr
    assert catalog(target) == {"lib/app": {"1.0": mine.body}}
    skipped = ok(dockyard(target, "import", str(tmp_path / "layout")))
    assert "conflict: lib/app:1.0" in skipped
    assert catalog(target)["lib/app"] == {"1.0": mine.body}


def test_bad_layouts_are_refused_by_name(pair: tuple[RunningRegistry, RunningRegistry],
                                        tmp_path: Path) -> None:
    _source, target = pair
    layout = tmp_path / "evil"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:../../../../../etc/passwd", "size": 10}]}))
    failed = dockyard(target, "import", str(layout))
    assert failed.returncode == 1
    assert b"import failed: index.json: manifests[0].digest" in failed.stderr
    assert b"Traceback" not in failed.stderr
    assert catalog(target) == {}


@pytest.fixture
def skopeo() -> Skopeo:
    return Skopeo(require_tool("skopeo"))


def test_skopeo_reads_a_dockyard_layout(pair: tuple[RunningRegistry, RunningRegistry],
                                        tmp_path: Path, skopeo: Skopeo) -> None:
    source, _target = pair
    seeded = seed(source)
    layout = tmp_path / "layout"
    ok(dockyard(source, "export", "--to", str(layout), "lib/app:1.0"))
    raw = skopeo.inspect_raw(f"oci:{layout}:1.0").stdout
    assert raw == seeded.app.body
    skopeo.copy(f"oci:{layout}:1.0", f"dir:{tmp_path / 'out'}")
    for blob in seeded.app.blobs:
        digest = json.loads(seeded.app.body)
        assert blob in {(tmp_path / "out" / item["digest"].split(":")[1]).read_bytes()
                        for item in [digest["config"], *digest["layers"]]}
    multi = tmp_path / "multi"
    ok(dockyard(source, "export", "--to", str(multi), "lib/multi"))
    skopeo.copy(f"oci:{multi}:2.0", f"dir:{tmp_path / 'all'}", "--all")
    assert (tmp_path / "all" / "manifest.json").read_bytes() == seeded.multi.body


def test_a_skopeo_layout_is_imported(pair: tuple[RunningRegistry, RunningRegistry],
                                     tmp_path: Path, skopeo: Skopeo) -> None:
    source, target = pair
    seeded = seed(source)
    layout = tmp_path / "skopeo"
    skopeo.copy(f"docker://{source.host}/lib/multi:2.0", f"oci:{layout}:2.0", "--all",
                "--preserve-digests")
    skopeo.copy(f"docker://{source.host}/lib/app:1.0", f"oci:{layout}:1.0", "--preserve-digests")
    refused = dockyard(target, "import", str(layout))
    assert refused.returncode == 1 and b"--repository" in refused.stderr
    ok(dockyard(target, "import", str(layout), "--repository", "moved/in"))
    tags = catalog(target)["moved/in"]
    assert tags["2.0"] == seeded.multi.body
    assert tags["1.0"] == seeded.app.body
    skopeo.copy(f"docker://{target.host}/moved/in:2.0", f"dir:{tmp_path / 'back'}", "--all")


def write_layout(layout: Path, repository: str, tag: str, manifest: Manifest) -> None:
    """A layout written by hand: the manifest, its blobs, one entry naming both."""
    for content in (*manifest.blobs, manifest.body):
        path = layout / "blobs" / "sha256" / Manifest(content, "").digest.split(":")[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        manifest.descriptor(annotations={"io.dockyard.repository": repository,
                                         "org.opencontainers.image.ref.name": tag})]}))


def blob_files(server: RunningRegistry) -> list[Path]:
    return [path for path in (server.root / "blobs").rglob("*") if path.is_file()]


def test_an_import_killed_midway_finishes_on_rerun(
        pair: tuple[RunningRegistry, RunningRegistry], tmp_path: Path) -> None:
    _source, target = pair
    layers = [random_bytes(3 * 1024 * 1024) for _ in range(40)]
    image = image_manifest(layers)
    layout = tmp_path / "big"
    write_layout(layout, "big/app", "v1", image)
    process = subprocess.Popen(
        [sys.executable, "-m", "dockyard", "import", str(layout), "--config",
         str(target.config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while len(blob_files(target)) < 5 and process.poll() is None:
            time.sleep(0.01)
        assert process.poll() is None, "the import finished before it could be interrupted"
        process.kill()
    finally:
        process.wait()
    assert catalog(target).get("big/app", {}) == {}
    again = ok(dockyard(target, "import", str(layout)))
    assert "1 manifests added" in again
    assert catalog(target) == {"big/app": {"v1": image.body}}
    assert len(blob_files(target)) == len(set(image.blobs))
    ok(dockyard(target, "check"))
    layer = requests.get(f"{target.url}/v2/big/app/blobs/"
                         f"{image.document['layers'][7]['digest']}", timeout=30)
    assert layer.content == layers[7]


def test_oras_py_reads_and_writes_layouts(pair: tuple[RunningRegistry, RunningRegistry],
                                          tmp_path: Path) -> None:
    source, target = pair
    seeded = seed(source)
    written = tmp_path / "oras"
    oras_layout.NewLayoutFromRegistry(str(written), new_oras(insecure=True, tls_verify=False),
                                      f"{source.host}/lib/multi:2.0", tag="2.0")
    ok(dockyard(target, "import", str(written), "--repository", "from/oras"))
    assert catalog(target) == {"from/oras": {"2.0": seeded.multi.body}}
    ours = tmp_path / "ours"
    ok(dockyard(source, "export", "--to", str(ours), "lib/app"))
    assert oras_layout.Layout(str(ours)).get_ordered_blobs("1.0")[-1] == seeded.app.digest


@pytest.fixture
def umoci() -> str:
    return require_tool("umoci")


def run_umoci(umoci: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([umoci, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_umoci_reads_a_dockyard_layout(pair: tuple[RunningRegistry, RunningRegistry],
                                       tmp_path: Path, umoci: str) -> None:
    source, _target = pair
    seed(source)
    step = f"COPY app /app # {random_bytes(8).hex()}"
    layer = random_bytes(700)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": step}],
    }).encode()
    client = Client(source.url)
    client.push_manifest("lib/tool", image_manifest([layer], config=config), "3.0")
    client.close()
    layout = tmp_path / "layout"
    ok(dockyard(source, "export", "--to", str(layout), "lib/app:1.0", "lib/multi", "lib/tool"))
    listed = run_umoci(umoci, "ls", "--layout", str(layout))
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == ["1.0", "2.0", "3.0"]
    stat = run_umoci(umoci, "stat", "--image", f"{layout}:3.0", "--json")
    assert stat.returncode == 0, stat.stderr
    assert [entry["created_by"] for entry in json.loads(stat.stdout)["history"]] == [step]
    assert run_umoci(umoci, "stat", "--image", f"{layout}:1.0").returncode == 0


def test_umoci_refuses_a_tag_that_several_repositories_share(
        pair: tuple[RunningRegistry, RunningRegistry], tmp_path: Path, umoci: str) -> None:
    """umoci names an image by its tag alone, so a layout holding `1.0` of two repositories
    (as an export of both writes it, each entry with its own repository annotation) lists the
    tag twice and will not pick one: export one repository per layout for umoci."""
    source, _target = pair
    seed(source)
    client = Client(source.url)
    client.push_manifest("lib/other", image_manifest([random_bytes(500)]), "1.0")
    client.close()
    layout = tmp_path / "layout"
    ok(dockyard(source, "export", "--to", str(layout), "lib/app:1.0", "lib/other:1.0"))
    names = [entry["annotations"]["org.opencontainers.image.ref.name"]
             for entry in json.loads((layout / "index.json").read_text())["manifests"]]
    assert names == ["1.0", "1.0"]
    assert run_umoci(umoci, "ls", "--layout", str(layout)).stdout.split() == ["1.0", "1.0"]
    stat = run_umoci(umoci, "stat", "--image", f"{layout}:1.0")
    assert stat.returncode != 0
    assert "ambiguous" in stat.stderr
    alone = tmp_path / "alone"
    ok(dockyard(source, "export", "--to", str(alone), "lib/other:1.0"))
    assert run_umoci(umoci, "stat", "--image", f"{alone}:1.0").returncode == 0
