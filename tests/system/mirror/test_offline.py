"""When the upstream goes away the cache keeps serving (tags even past their TTL, logged and
counted as stale), and what was never cached is 503 UNAVAILABLE; while the upstream is there,
a tag that moved is followed once its TTL has passed."""

from __future__ import annotations

import time
from pathlib import Path

from tests.system.api.client import assert_error, random_bytes, repo_name
from tests.system.mirror.kit import (
    UPSTREAM_CREDENTIALS,
    MirrorStarter,
    get_blob,
    get_manifest,
    mirror_entry,
    pull,
)
from tests.upstreams import ReferenceRegistry, reference_registry, seed_image


def test_cache_serves_while_the_upstream_is_down(tmp_path: Path,
                                                 start_mirror: MirrorStarter) -> None:
    name, never_pulled = repo_name("lib"), repo_name("lib")
    with reference_registry(tmp_path, users=dict([UPSTREAM_CREDENTIALS])) as up:
        image = seed_image(up.url, name, "v1", credentials=UPSTREAM_CREDENTIALS)
        seed_image(up.url, never_pulled, "v1", credentials=UPSTREAM_CREDENTIALS)
        mirror = start_mirror(mirror_entry(up.url, "up", UPSTREAM_CREDENTIALS, tagttl="1s"))
        pull(mirror.url, f"up/{name}", "v1", image.manifest.body)
        assert mirror.metric("dockyard_mirror_requests_total", result="stale") == 0
    time.sleep(1.2)  # the tag's TTL is over: the mirror would ask the upstream now

    pull(mirror.url, f"up/{name}", "v1", image.manifest.body)
    pull(mirror.url, f"up/{name}", image.digest, image.manifest.body)
    head = get_manifest(mirror.url, f"up/{name}", "v1", method="HEAD")
    assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == image.digest

    stale = mirror.metric("dockyard_mirror_requests_total", result="stale", upstream="up")
    assert stale >= 1
    assert "serving up/" in mirror.log_text() and " WARNING " in mirror.log_text()
    uncached = get_manifest(mirror.url, f"up/{never_pulled}", "v1")
    assert_error(uncached, 503, "UNAVAILABLE")
    digest = "sha256:" + "ab" * 32
    assert_error(get_blob(mirror.url, f"up/{name}", digest), 503, "UNAVAILABLE")


def test_moved_tag_is_followed_after_its_ttl(go_upstream: ReferenceRegistry,
                                              start_mirror: MirrorStarter) -> None:
    name = repo_name("lib")
    old = seed_image(go_upstream.url, name, "v1", credentials=UPSTREAM_CREDENTIALS)
    mirror = start_mirror(mirror_entry(go_upstream.url, "up", UPSTREAM_CREDENTIALS,
                                       tagttl="2s"))
    pull(mirror.url, f"up/{name}", "v1", old.manifest.body)
    cached_at = time.monotonic()
    new = seed_image(go_upstream.url, name, "v1", credentials=UPSTREAM_CREDENTIALS,
                     layers=[random_bytes(4000)])

    before = get_manifest(mirror.url, f"up/{name}", "v1")
    assert time.monotonic() - cached_at < 2, "too slow to see the tag before its TTL"
    assert before.headers["Docker-Content-Digest"] == old.digest
    assert before.content == old.manifest.body

    time.sleep(max(0.0, cached_at + 2.3 - time.monotonic()))
    pull(mirror.url, f"up/{name}", "v1", new.manifest.body)
    pull(mirror.url, f"up/{name}", old.digest, old.manifest.body)  # still by digest
