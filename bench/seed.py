"""Seeding: the blobs, manifests, tags and repositories every measurement reads.

Each target gets the same content: a small image (config + layer) in a few working
repositories, 1000 tags on one repository, enough further repositories that the
catalog holds exactly 500, and the blobs that the download measurements fetch.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from bench.httpclient import Connection, Response, expect, path_of
from bench.targets import RunningTarget

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT_MANIFESTS = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"

BASE_REPO = "bench/base"
TAGS_REPO = "bench/many-tags"
PUT_REPO = "bench/put"
BLOB_REPO = "bench/blobs"
WORK_REPOS = (BASE_REPO, TAGS_REPO, PUT_REPO, BLOB_REPO)
BASE_TAG = "latest"
TAG_COUNT = 1000
CATALOG_SIZE = 500
SEED_CONCURRENCY = 8
CATALOG_PAGE = 1000  # the n of GET /v2/_catalog?n=1000

T = TypeVar("T")


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    """A small OCI image: a config blob and one layer blob."""

    config: bytes
    layer: bytes

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)

    @property
    def layer_digest(self) -> str:
        return sha256_digest(self.layer)

    def manifest(self, annotations: dict[str, str] | None = None) -> bytes:
        document: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.config_digest,
                       "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": self.layer_digest,
                        "size": len(self.layer)}],
        }
        if annotations:
            document["annotations"] = annotations
        return json.dumps(document, separators=(",", ":")).encode()

    def manifest_parts(self, key: str) -> tuple[str, str]:
        """The manifest text split around one annotation value: (head, tail)."""
        marker = "\x00MARK\x00"
        text = self.manifest({key: marker}).decode()
        head, _, tail = text.partition(json.dumps(marker)[1:-1])
        return head, tail


def make_image() -> Image:
    rng = random.Random(20240601)
    layer = rng.randbytes(2048)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
        "config": {"Cmd": ["/bin/true"]},
    }, separators=(",", ":")).encode()
    return Image(config=config, layer=layer)


def with_query(location: str, key: str, value: str) -> str:
    target = path_of(location)
    return f"{target}{'&' if '?' in target else '?'}{key}={value}"


def push_blob(conn: Connection, repo: str, data: bytes | bytearray | memoryview,
              digest: str) -> None:
    """Monolithic upload: POST a session, then PUT the whole body with ?digest."""
    started = expect(conn.request("POST", f"/v2/{repo}/blobs/uploads/"), 202,
                     what=f"start upload to {repo}")
    expect(conn.request("PUT", with_query(started.header("location"), "digest", digest),
                        {"Content-Type": "application/octet-stream"}, data),
           201, what=f"finish upload of {digest} to {repo}")


def mount_blob(conn: Connection, repo: str, digest: str, source: str, data: bytes) -> None:
    """Cross-repository mount; falls back to an upload when the server declines."""
    answer = expect(conn.request(
        "POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}"),
        201, 202, what=f"mount {digest} into {repo}")
    if answer.status == 202:
        expect(conn.request("PUT", with_query(answer.header("location"), "digest", digest),
                            {"Content-Type": "application/octet-stream"}, data),
               201, what=f"upload {digest} to {repo}")


def put_manifest(conn: Connection, repo: str, reference: str, body: bytes) -> Response:
    return expect(conn.request("PUT", f"/v2/{repo}/manifests/{reference}",
                               {"Content-Type": OCI_MANIFEST}, body),
                  201, what=f"put manifest {repo}:{reference}")


def run_parallel(target: RunningTarget, items: Sequence[T],
                 work: Callable[[Connection, T], None],
                 concurrency: int = SEED_CONCURRENCY) -> None:
    """Apply ``work`` to every item over ``concurrency`` keep-alive connections."""
    local = threading.local()
    opened: list[Connection] = []
    lock = threading.Lock()

    def run(item: T) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = target.connection()
            with lock:
                opened.append(conn)
        work(conn, item)

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for future in [pool.submit(run, item) for item in items]:
                future.result()
    finally:
        for conn in opened:
            conn.close()


@dataclass
class Seeded:
    """What a measurement needs to know about a seeded target."""

    image: Image
    manifest: bytes
    manifest_digest: str
    catalog_repos: list[str] = field(default_factory=list)
    big_digest: str = ""
    big_size: int = 0
    small_digests: list[str] = field(default_factory=list)
    small_size: int = 0
    checks: list[str] = field(default_factory=list)  # warnings found while verifying


def seed_image(target: RunningTarget) -> Seeded:
    """The small image in every working repository, tagged ``latest``."""
    image = make_image()
    manifest = image.manifest()
    with target.connection() as conn:
        push_blob(conn, BASE_REPO, image.config, image.config_digest)
        push_blob(conn, BASE_REPO, image.layer, image.layer_digest)
        for repo in WORK_REPOS:
            if repo != BASE_REPO:
                mount_blob(conn, repo, image.config_digest, BASE_REPO, image.config)
                mount_blob(conn, repo, image.layer_digest, BASE_REPO, image.layer)
            put_manifest(conn, repo, BASE_TAG, manifest)
    return Seeded(image=image, manifest=manifest, manifest_digest=sha256_digest(manifest))


def seed_lists(target: RunningTarget, seeded: Seeded) -> None:
    """1000 tags on one repository; repositories up to a 500-entry catalog."""
    manifest = seeded.manifest
    tags = [f"t{index:04d}" for index in range(TAG_COUNT - 1)]  # plus "latest"

    def tag_manifest(conn: Connection, tag: str) -> None:
        put_manifest(conn, TAGS_REPO, tag, manifest)

    run_parallel(target, tags, tag_manifest)
    image = seeded.image
    repos = [f"bench/cat-{index:03d}" for index in range(CATALOG_SIZE - len(WORK_REPOS))]

    def seed_repo(conn: Connection, repo: str) -> None:
        mount_blob(conn, repo, image.config_digest, BASE_REPO, image.config)
        mount_blob(conn, repo, image.layer_digest, BASE_REPO, image.layer)
        put_manifest(conn, repo, BASE_TAG, manifest)

    run_parallel(target, repos, seed_repo)
    seeded.catalog_repos = repos


def seed_downloads(target: RunningTarget, seeded: Seeded, big: memoryview, big_digest: str,
                   smalls: Sequence[tuple[memoryview, str]]) -> None:
    """The blobs the download measurements fetch."""
    with target.connection() as conn:
        push_blob(conn, BLOB_REPO, big, big_digest)
    run_parallel(target, smalls, lambda conn, blob: push_blob(conn, BLOB_REPO, *blob))
    seeded.big_digest, seeded.big_size = big_digest, big.nbytes
    seeded.small_digests = [digest for _, digest in smalls]
    seeded.small_size = smalls[0][0].nbytes if smalls else 0


def verify(target: RunningTarget, seeded: Seeded, lists: bool) -> list[str]:
    """Check that both targets answer what the measurements assume; warnings, not errors."""
    problems: list[str] = []
    accept = {"Accept": ACCEPT_MANIFESTS}
    with target.connection() as conn:
        got = conn.request("GET", f"/v2/{BASE_REPO}/manifests/{BASE_TAG}", accept)
        if got.status != 200 or got.body != seeded.manifest:
            problems.append(f"GET manifest by tag: HTTP {got.status}, "
                            f"{'same' if got.body == seeded.manifest else 'different'} bytes")
        head = conn.request("HEAD", f"/v2/{BASE_REPO}/manifests/{seeded.manifest_digest}",
                            accept)
        if head.status != 200:
            problems.append(f"HEAD manifest by digest: HTTP {head.status}")
        if lists:
            answer = conn.request("GET", f"/v2/{TAGS_REPO}/tags/list")
            try:
                count = len(json.loads(answer.body)["tags"])
            except (ValueError, KeyError, TypeError):
                count = -1
            if answer.status != 200 or count != TAG_COUNT:
                problems.append(f"tags list: HTTP {answer.status}, {count} tags "
                                f"(expected {TAG_COUNT})")
            answer = conn.request("GET", f"/v2/_catalog?n={CATALOG_PAGE}")
            try:
                count = len(json.loads(answer.body)["repositories"])
            except (ValueError, KeyError, TypeError):
                count = -1
            if answer.status != 200 or count != CATALOG_SIZE:
                problems.append(f"catalog: HTTP {answer.status}, {count} repositories "
                                f"(expected {CATALOG_SIZE})")
    seeded.checks = problems
    return problems

