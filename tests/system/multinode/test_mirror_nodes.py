"""Two nodes mirroring one upstream over shared state: one upstream fetch for a blob both
nodes are asked for at once (the download lease lives in the shared database)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.system.api.client import random_bytes
from tests.system.multinode.conftest import Cluster
from tests.upstreams import reference_registry, seed_image


def test_nodes_share_one_upstream_fetch_per_blob(cluster: Cluster, tmp_path: Path) -> None:
    with reference_registry(tmp_path) as upstream:
        layer = random_bytes(24 << 20)
        image = seed_image(upstream.url, "shared/app", layers=[layer])
        mirror = {"mirrors": [{"prefix": "up", "url": upstream.url}]}
        nodes = [cluster.add(mirror), cluster.add(mirror)]
        digest = image.layer_digests[0]

        def pull(number: int) -> bytes:
            node = nodes[number % 2]
            answer = requests.get(f"{node.url}/v2/up/shared/app/blobs/{digest}", timeout=120)
            assert answer.status_code == 200, answer.text[:300]
            return answer.content

        with ThreadPoolExecutor(12) as pool:
            bodies = list(pool.map(pull, range(12)))
        assert all(hashlib.sha256(body).hexdigest() == digest.split(":")[1] for body in bodies)
        upstream.sync()
        assert upstream.requests_for(digest, method="GET", status=200) == 1
        manifest = requests.get(f"{nodes[1].url}/v2/up/shared/app/manifests/latest", timeout=30)
        assert manifest.headers["Docker-Content-Digest"] == image.digest
