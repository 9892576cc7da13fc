"""`dockyard mirror warm|status|evict` against a real upstream (the Go reference registry) and a
running Dockyard mirror sharing the command's database and storage."""

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

import pytest
import requests

from tests.server import RunningRegistry, free_port, running_registry
from tests.system.api.client import (
    OCI_INDEX,
    Client,
    Manifest,
    artifact_manifest,
    digest_of,
    encode,
    image_manifest,
    index_manifest,
    random_bytes,
)
from tests.upstreams import ReferenceRegistry, reference_registry, seed_image

PREFIX = "up"
SIGNATURE = "application/vnd.dockyard.test.signature"
PASSWORD = "upstream-secret-pw"


def dockyard(server: RunningRegistry, *args: str, stdin: str | None = None,
             ) -> subprocess.CompletedProcess[str]:
    """The command, in its own process, on the running server's configuration."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args, "--config", str(server.config_path)],
        input=stdin, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def upstream_config(upstream: ReferenceRegistry, **extra: Any) -> dict[str, Any]:
    return {"mirrors": [{"prefix": PREFIX, "url": upstream.url, **extra}]}


@dataclass
class Seeded:
    """What the upstream holds: an image with a signature, and a two-platform index."""

    app: Manifest
    signature: Manifest
    multi: Manifest

    @property
    def blobs(self) -> set[bytes]:
        return {*self.app.blobs, *self.signature.blobs,
                *(blob for child in self.multi.children for blob in child.blobs)}


def seed(upstream: ReferenceRegistry, auth: tuple[str, str] | None = None) -> Seeded:
    session = requests.Session()
    session.auth = auth
    client = Client(upstream.url, session)
    app = image_manifest([random_bytes(40_000), random_bytes(3_000)])
    client.push_manifest("lib/app", app, "1.0")
    # Referrers as an upstream without the referrers API keeps them: the tag schema.
    signature = artifact_manifest(SIGNATURE, subject=app, layers=[random_bytes(300)])
    client.push_manifest("lib/app", signature)
    listing = encode({"schemaVersion": 2, "mediaType": OCI_INDEX,
                      "manifests": [signature.descriptor(artifactType=SIGNATURE)]})
    tag = app.digest.replace(":", "-")
    response = client.put_manifest("lib/app", tag, listing, OCI_INDEX)
    assert response.status_code == 201, response.text
    multi = index_manifest([image_manifest([random_bytes(20_000)]),
                            image_manifest([random_bytes(25_000)])])
    client.push_manifest("lib/multi", multi, "1.0")
    client.close()
    return Seeded(app, signature, multi)


def pull(mirror: RunningRegistry, repository: str, reference: str) -> Manifest:
    """The manifest (and, for an index, its children) with every blob, from the mirror;
    asserts each blob's bytes."""
    response = requests.get(f"{mirror.url}/v2/{repository}/manifests/{reference}", timeout=10,
                            headers={"Accept": "application/vnd.oci.image.index.v1+json, "
                                               "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 200, response.text
    document = response.json()
    blobs = []
    children = []
    for child in document.get("manifests", []):
        children.append(pull(mirror, repository, child["digest"]))
    for descriptor in [document.get("config"), *document.get("layers", [])]:
        if descriptor is None:
            continue
        blob = requests.get(f"{mirror.url}/v2/{repository}/blobs/{descriptor['digest']}",
                            timeout=10)
        assert blob.status_code == 200, blob.text
        assert digest_of(blob.content) == descriptor["digest"]
        blobs.append(blob.content)
    return Manifest(response.content, response.headers["Content-Type"], tuple(blobs),
                    tuple(children))


def stored(mirror: RunningRegistry, blob: bytes) -> bool:
    """Whether the mirror's storage holds a file for the blob."""
    hex_digest = digest_of(blob).split(":", 1)[1]
    return any(hex_digest in path.name for path in mirror.root.rglob("*") if path.is_file())


def place(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).mkdir()
    return tmp_path / name


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[ReferenceRegistry]:
    with reference_registry(place(tmp_path, "upstream")) as registry:
        yield registry


# -- warm ------------------------------------------------------------------------------------

def test_warmed_images_are_served_with_the_upstream_gone(
        tmp_path: Path, upstream: ReferenceRegistry) -> None:
    seeded = seed(upstream)
    with running_registry(place(tmp_path, "mirror"), upstream_config(upstream)) as mirror:
        listing = tmp_path / "images.txt"
        listing.write_text(f"# the platforms image\n\n{PREFIX}/lib/multi:1.0  # two of them\n")
        warmed = dockyard(mirror, "mirror", "warm", f"{PREFIX}/lib/app:1.0",
                          "--file", str(listing))
        assert warmed.returncode == 0, warmed.stderr
        assert "warmed 2 of 2 images" in warmed.stdout
        app_line = next(line for line in warmed.stdout.splitlines()
                        if line.startswith(f"{PREFIX}/lib/app:1.0: "))
        assert seeded.app.digest in app_line
        assert "(1 referrers)" in app_line
        assert "0 cached (0 bytes), 5 fetched" in app_line  # config, 2 layers, signature's 2
        multi_line = next(line for line in warmed.stdout.splitlines()
                          if line.startswith(f"{PREFIX}/lib/multi:1.0: "))
        assert "3 manifests" in multi_line and "4 fetched" in multi_line
        # Each blob crossed once; nothing was fetched twice.
        assert upstream.requests_for("/blobs/", method="GET", status=200) == len(seeded.blobs)

        upstream.stop()
        app = pull(mirror, f"{PREFIX}/lib/app", "1.0")
        assert app.body == seeded.app.body and set(app.blobs) == set(seeded.app.blobs)
        multi = pull(mirror, f"{PREFIX}/lib/multi", "1.0")
        assert multi.body == seeded.multi.body
        assert [child.body for child in multi.children] == [
            child.body for child in seeded.multi.children]
        assert [set(child.blobs) for child in multi.children] == [
            set(child.blobs) for child in seeded.multi.children]
        referrers = requests.get(
            f"{mirror.url}/v2/{PREFIX}/lib/app/referrers/{seeded.app.digest}", timeout=10)
        assert [item["digest"] for item in referrers.json()["manifests"]] == [
            seeded.signature.digest]
        signature = pull(mirror, f"{PREFIX}/lib/app", seeded.signature.digest)
        assert set(signature.blobs) == set(seeded.signature.blobs)

        again = dockyard(mirror, "mirror", "warm", f"{PREFIX}/lib/multi:1.0")
        assert again.returncode == 0, again.stderr
        assert "4 cached" in again.stdout and "0 fetched (0 bytes)" in again.stdout


def test_a_failing_image_is_named_and_the_others_still_warm(
        tmp_path: Path, upstream: ReferenceRegistry) -> None:
    seeded = seed(upstream)
    with running_registry(place(tmp_path, "mirror"), upstream_config(upstream)) as mirror:
        warmed = dockyard(mirror, "mirror", "warm", "local/app:1", f"{PREFIX}/lib/none:1.0",
                          f"{PREFIX}/lib/app@{seeded.app.digest}")
        assert warmed.returncode == 1
        lines = warmed.stdout.splitlines()
        assert "local/app:1: failed: local/app is not a mirrored repository" in lines
        assert any(line.startswith(f"{PREFIX}/lib/none:1.0: failed: MANIFEST_UNKNOWN")
                   for line in lines), warmed.stdout
        assert any(line.startswith(f"{PREFIX}/lib/app@{seeded.app.digest}: "
                                   f"{seeded.app.digest}: ") for line in lines)
        assert "warmed 1 of 3 images; 2 failed" in lines

        bad = dockyard(mirror, "mirror", "warm", "Not/Valid", "--file", "-",
                       stdin="ok/one:1\nbad image\n")
        assert bad.returncode == 2
        assert "'Not/Valid'" in bad.stderr and "stdin:2: " in bad.stderr
        assert dockyard(mirror, "mirror", "warm").returncode == 2


# -- status ----------------------------------------------------------------------------------

def test_status_shows_reachability_cache_and_hits(tmp_path: Path) -> None:
    with reference_registry(place(tmp_path, "upstream"), users={"alice": PASSWORD}) as upstream:
        seeded = seed(upstream, ("alice", PASSWORD))
        debug = f"127.0.0.1:{free_port()}"
        config = {
            **upstream_config(upstream, username="alice", password=PASSWORD, maxage="48h",
                              maxsize="1GiB", tagttl="10m"),
            "http": {"debug": {"addr": debug, "prometheus": {"enabled": True}}},
        }
        with running_registry(place(tmp_path, "mirror"), config) as mirror:
            empty = json.loads(dockyard(mirror, "mirror", "status", "--json").stdout)
            (before,) = empty["upstreams"]
            assert before["reachable"] is True and before["error"] is None
            assert before["cached_bytes"] == 0 and before["images"] == 0

            assert dockyard(mirror, "mirror", "warm", f"{PREFIX}/lib/app:1.0").returncode == 0
            pull(mirror, f"{PREFIX}/lib/multi", "1.0")  # misses, through the server
            pull(mirror, f"{PREFIX}/lib/app", "1.0")  # hits: warmed

            result = dockyard(mirror, "mirror", "status", "--json")
            assert result.returncode == 0, result.stderr
            (up,) = json.loads(result.stdout)["upstreams"]
            assert up["name"] == PREFIX and up["url"] == upstream.url
            assert up["reachable"] is True
            assert up["cached_bytes"] >= sum(len(blob) for blob in seeded.blobs)
            assert up["images"] == 3  # roots: app, its signature, multi (children go with it)
            assert up["last_pulled"] is not None
            assert (up["tagttl_seconds"], up["maxage_seconds"], up["maxsize_bytes"]) == (
                600, 48 * 3600, 1024 ** 3)
            assert up["requests"]["miss"] >= 4 and up["requests"]["hit"] >= 4

            table = dockyard(mirror, "mirror", "status").stdout
            header, row = table.splitlines()[:2]
            assert header.split()[:3] == ["UPSTREAM", "URL", "REACHABLE"]
            assert row.split()[:3] == [PREFIX, upstream.url, "yes"]
            assert "10m" in row and "48h" in row and "1.0 GiB" in row

            upstream.stop()
            result = dockyard(mirror, "mirror", "status", "--json")
            (down,) = json.loads(result.stdout)["upstreams"]
            assert down["reachable"] is False and down["error"]
            assert PASSWORD not in result.stdout and PASSWORD not in result.stderr
            assert down["cached_bytes"] == up["cached_bytes"]
            table = dockyard(mirror, "mirror", "status").stdout
            assert table.splitlines()[1].split()[2] == "no"
            assert f"{PREFIX}: unreachable: " in table


def test_status_without_metrics_says_how_to_get_them(
        tmp_path: Path, upstream: ReferenceRegistry) -> None:
    with running_registry(place(tmp_path, "mirror"), upstream_config(upstream)) as mirror:
        table = dockyard(mirror, "mirror", "status").stdout
        assert "hits/misses: n/a (enable http.debug.prometheus)" in table
        (up,) = json.loads(dockyard(mirror, "mirror", "status", "--json").stdout)["upstreams"]
        assert up["requests"] is None


# -- evict -----------------------------------------------------------------------------------

def settle(mirror: RunningRegistry) -> None:
    """Run eviction once, so the server's scheduled run (at its start) is not due again
    during the test."""
    deadline = time.monotonic() + 30
    while dockyard(mirror, "mirror", "evict").returncode != 0:
        assert time.monotonic() < deadline, "eviction stayed busy"
        time.sleep(0.5)


def test_eviction_by_maxage_frees_the_bytes_of_images_not_pulled(
        tmp_path: Path, upstream: ReferenceRegistry) -> None:
    old = seed_image(upstream.url, "lib/old", "1", layers=[random_bytes(50_000)])
    fresh = seed_image(upstream.url, "lib/fresh", "1", layers=[random_bytes(30_000)])
    config = upstream_config(upstream, maxage="4s")
    with running_registry(place(tmp_path, "mirror"), config) as mirror:
        settle(mirror)
        warmed = dockyard(mirror, "mirror", "warm", f"{PREFIX}/lib/old:1", f"{PREFIX}/lib/fresh:1")
        assert warmed.returncode == 0, warmed.stdout + warmed.stderr
        assert all(stored(mirror, layer) for layer in (*old.layers, *fresh.layers))
        time.sleep(4.5)
        pull(mirror, f"{PREFIX}/lib/fresh", "1")

        evicted = dockyard(mirror, "mirror", "evict")
        assert evicted.returncode == 0, evicted.stderr
        assert f"evicted {PREFIX}/lib/old@{old.digest} from {PREFIX} (maxage" in evicted.stdout
        assert "lib/fresh" not in evicted.stdout
        freed = int(evicted.stdout.split("bytes freed: ")[1].split()[0])
        assert freed >= len(old.layers[0]) + len(old.config)
        assert not any(stored(mirror, blob) for blob in (old.config, *old.layers))
        assert all(stored(mirror, blob) for blob in (fresh.config, *fresh.layers))

        upstream.stop()
        pull(mirror, f"{PREFIX}/lib/fresh", "1")
        gone = requests.get(f"{mirror.url}/v2/{PREFIX}/lib/old/manifests/1", timeout=10)
        assert gone.status_code == 503  # not cached any more, and the upstream is away


def test_eviction_by_maxsize_keeps_the_most_recently_pulled(
        tmp_path: Path, upstream: ReferenceRegistry) -> None:
    images = {name: seed_image(upstream.url, f"lib/{name}", "1", layers=[random_bytes(100_000)])
              for name in ("a", "b", "c")}
    config = upstream_config(upstream, maxsize="250KB")
    with running_registry(place(tmp_path, "mirror"), config) as mirror:
        settle(mirror)
        for name in ("a", "b", "c"):
            result = dockyard(mirror, "mirror", "warm", f"{PREFIX}/lib/{name}:1")
            assert result.returncode == 0, result.stdout + result.stderr
            time.sleep(1.1)  # pull times a second apart order them on every database
        pull(mirror, f"{PREFIX}/lib/a", "1")  # a is now the most recently pulled

        evicted = dockyard(mirror, "mirror", "evict")
        assert evicted.returncode == 0, evicted.stderr
        assert f"evicted {PREFIX}/lib/b@{images['b'].digest}" in evicted.stdout
        assert "maxsize" in evicted.stdout
        assert "lib/a@" not in evicted.stdout and "lib/c@" not in evicted.stdout
        assert not stored(mirror, images["b"].layers[0])
        assert stored(mirror, images["a"].layers[0]) and stored(mirror, images["c"].layers[0])
        status = json.loads(dockyard(mirror, "mirror", "status", "--json").stdout)
        assert status["upstreams"][0]["cached_bytes"] <= 250_000
        assert status["upstreams"][0]["images"] == 2
