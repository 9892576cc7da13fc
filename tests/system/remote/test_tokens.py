"""The token dance against a Dockyard in bearer mode: one token per repository scope."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from dockyard.oci.digest import Digest
from dockyard.registry.mirror.remote import RemoteRefused
from dockyard.remote import RegistryClient
from tests.server import RunningRegistry
from tests.system.api.client import repo_name
from tests.system.remote.conftest import CREDENTIALS, OUTSIDER, PASSWORD, USER, with_client
from tests.upstreams import seed_image


def token_requests(server: RunningRegistry) -> int:
    """Token requests in the server's access log (written before the response is sent)."""
    return server.log_text().count('"GET /token"')


async def pull(client: RegistryClient, repository: str, digests: list[str]) -> None:
    """What a mirror does for one image: HEAD, GET the manifest, download the blobs."""
    await client.head_manifest(repository, "latest")
    await client.get_manifest(repository, "latest")

    async def blob(digest: str) -> None:
        async with client.open_blob(repository, Digest.parse(digest)) as download:
            async for _ in download.chunks():
                pass

    await asyncio.gather(*(blob(digest) for digest in digests))


def test_one_token_per_repository_scope(bearer_upstream: RunningRegistry) -> None:
    first, second = repo_name("team"), repo_name("team")
    images = [seed_image(bearer_upstream.url, name, credentials=CREDENTIALS, layers=[
        bytes([n]) * 1000 for n in range(4)]) for name in (first, second)]

    async def scenario(client: RegistryClient) -> list[int]:
        counts = [token_requests(bearer_upstream)]
        for image in (*images, *images):  # each repository twice
            await pull(client, image.repository, image.layer_digests)
            counts.append(token_requests(bearer_upstream))
        return counts

    counts = with_client(bearer_upstream.url, scenario, username=USER, password=PASSWORD)
    steps = [after - before for before, after in itertools.pairwise(counts)]
    assert steps == [1, 1, 0, 0], "one token per repository, then the cached ones"


def test_anonymous_pull_gets_an_anonymous_token(bearer_upstream: RunningRegistry) -> None:
    public, private = repo_name("public"), repo_name("team")
    image = seed_image(bearer_upstream.url, public, credentials=CREDENTIALS)
    seed_image(bearer_upstream.url, private, credentials=CREDENTIALS)

    async def scenario(client: RegistryClient) -> None:
        await client.ping()
        manifest = await client.get_manifest(public, "latest")
        assert str(manifest.digest) == image.digest
        with pytest.raises(RemoteRefused):
            await client.get_manifest(private, "latest")

    with_client(bearer_upstream.url, scenario)


@pytest.mark.parametrize("login", [(USER, "wrong-password"), OUTSIDER],
                         ids=["wrong-password", "no-rights"])
def test_refused(bearer_upstream: RunningRegistry, login: tuple[str, str]) -> None:
    name = repo_name("team")
    seed_image(bearer_upstream.url, name, credentials=CREDENTIALS)

    async def scenario(client: RegistryClient) -> RemoteRefused:
        with pytest.raises(RemoteRefused) as caught:
            await client.get_manifest(name, "latest")
        return caught.value

    refusal = with_client(bearer_upstream.url, scenario, username=login[0], password=login[1])
    assert bearer_upstream.host in str(refusal)
    for secret in (login[1], PASSWORD):
        assert secret not in str(refusal)
