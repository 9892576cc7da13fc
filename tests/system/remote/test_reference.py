"""The client against the Go reference registry: htpasswd Basic, and without auth."""

from __future__ import annotations

import hashlib

import pytest

from dockyard.oci.digest import Digest
from dockyard.registry.mirror.remote import (
    RemoteDescriptor,
    RemoteNotFound,
    RemoteRefused,
)
from dockyard.remote import RegistryClient
from tests.system.api.client import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    digest_of,
    index_manifest,
    random_bytes,
    repo_name,
)
from tests.system.remote.conftest import CREDENTIALS, PASSWORD, USER, with_client
from tests.upstreams import ReferenceRegistry, login, seed_image

LOGIN = {"username": USER, "password": PASSWORD}


async def download(client: RegistryClient, repository: str, digest: str) -> tuple[bytes, int]:
    """A blob's bytes and how many pieces they came in."""
    async with client.open_blob(repository, Digest.parse(digest)) as blob:
        parts = [part async for part in blob.chunks()]
        assert blob.size == sum(map(len, parts))
    return b"".join(parts), len(parts)


def test_manifests_by_tag_and_digest(basic_upstream: ReferenceRegistry) -> None:
    name = repo_name("lib")
    oci = seed_image(basic_upstream.url, name, "oci", credentials=CREDENTIALS)
    docker = seed_image(basic_upstream.url, name, "docker", credentials=CREDENTIALS,
                        media_type=DOCKER_MANIFEST)

    async def scenario(client: RegistryClient) -> None:
        await client.ping()
        for image, media_type in ((oci, OCI_MANIFEST), (docker, DOCKER_MANIFEST)):
            expected = RemoteDescriptor(Digest.parse(image.digest), media_type,
                                        len(image.manifest.body))
            assert await client.head_manifest(name, image.tag) == expected
            assert await client.head_manifest(name, image.digest) == expected
            for reference in (image.tag, image.digest):
                fetched = await client.get_manifest(name, reference)
                assert fetched.content == image.manifest.body
                assert str(fetched.digest) == image.digest
                assert fetched.media_type == media_type

    with_client(basic_upstream.url, scenario, **LOGIN)
    assert basic_upstream.requests_for(f"/v2/{name}/", status=401) == 0, (
        "after the ping learnt Basic, credentials go with every request")


def test_blobs_stream_in_pieces(basic_upstream: ReferenceRegistry) -> None:
    name = repo_name("lib")
    big = random_bytes(3 * 1024 * 1024 + 17)
    image = seed_image(basic_upstream.url, name, credentials=CREDENTIALS,
                       layers=[big, random_bytes(100)])

    async def scenario(client: RegistryClient) -> None:
        data, pieces = await download(client, name, image.layer_digests[0])
        assert hashlib.sha256(data).hexdigest() == image.layer_digests[0].split(":")[1]
        assert pieces >= 4, "streamed, not read whole"
        small, _ = await download(client, name, image.layer_digests[1])
        assert small == image.layers[1]
        config, _ = await download(client, name, digest_of(image.config))
        assert config == image.config

    with_client(basic_upstream.url, scenario, **LOGIN)


def test_missing_things_are_not_found(basic_upstream: ReferenceRegistry) -> None:
    name = repo_name("lib")
    seed_image(basic_upstream.url, name, credentials=CREDENTIALS)
    absent = Digest.of(b"never pushed")

    async def scenario(client: RegistryClient) -> None:
        with pytest.raises(RemoteNotFound):
            await client.get_manifest(name, "no-such-tag")
        with pytest.raises(RemoteNotFound):
            await client.head_manifest(name, "no-such-tag")
        with pytest.raises(RemoteNotFound):
            await client.get_manifest("no/such-repository", "latest")
        with pytest.raises(RemoteNotFound):
            await client.get_manifest(name, str(absent))
        with pytest.raises(RemoteNotFound):
            async with client.open_blob(name, absent):
                pass

    with_client(basic_upstream.url, scenario, **LOGIN)


def test_referrers_fall_back_to_the_tag_schema(basic_upstream: ReferenceRegistry) -> None:
    """The reference registry has no referrers API: the `<alg>-<hex>` tag is read instead."""
    name = repo_name("lib")
    image = seed_image(basic_upstream.url, name, credentials=CREDENTIALS)
    other = seed_image(basic_upstream.url, name, "other", credentials=CREDENTIALS)
    referrers = index_manifest([other.manifest], platforms=False)
    client = Client(basic_upstream.url, login(basic_upstream.url, name, CREDENTIALS))
    response = client.put_manifest(name, image.digest.replace(":", "-"), referrers)
    assert response.status_code == 201, response.text
    client.close()

    async def scenario(remote: RegistryClient) -> tuple[bytes | None, bytes | None]:
        return (await remote.get_referrers(name, Digest.parse(image.digest)),
                await remote.get_referrers(name, Digest.parse(other.digest)))

    found, none = with_client(basic_upstream.url, scenario, **LOGIN)
    assert found == referrers.body
    assert none is None
    assert referrers.media_type == OCI_INDEX


@pytest.mark.parametrize("login_as", [
    {"username": USER, "password": "not-the-password"},
    {"username": "mallory", "password": PASSWORD},
    {},
], ids=["wrong-password", "unknown-user", "no-credentials"])
def test_refused_logins(basic_upstream: ReferenceRegistry, login_as: dict[str, str]) -> None:
    name = repo_name("lib")
    seed_image(basic_upstream.url, name, credentials=CREDENTIALS)

    async def scenario(client: RegistryClient) -> list[RemoteRefused]:
        refusals = []
        for attempt in (client.ping(), client.get_manifest(name, "latest")):
            with pytest.raises(RemoteRefused) as caught:
                await attempt
            refusals.append(caught.value)
        return refusals

    for refusal in with_client(basic_upstream.url, scenario, **login_as):
        assert basic_upstream.host in str(refusal) and "401" in str(refusal)
        for secret in (PASSWORD, "not-the-password"):
            assert secret not in str(refusal)


def test_anonymous_pull_from_an_open_upstream(open_upstream: ReferenceRegistry) -> None:
    name = repo_name("lib")
    image = seed_image(open_upstream.url, name)

    async def scenario(client: RegistryClient) -> bytes:
        await client.ping()
        manifest = await client.get_manifest(name, "latest")
        assert str(manifest.digest) == image.digest
        data, _ = await download(client, name, image.layer_digests[0])
        return data

    assert with_client(open_upstream.url, scenario) == image.layers[0]
    assert open_upstream.requests_for(f"/v2/{name}/blobs/", method="GET") == 1
    assert open_upstream.requests_for("/v2/", status=401) == 0
