"""The referrers API (OCI Distribution 1.1): /v2/<name>/referrers/<digest>."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.system.api.client import (
    API_VERSION,
    API_VERSION_HEADER,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    Manifest,
    artifact_manifest,
    assert_error,
    describe,
    digest_of,
    image_manifest,
    index_manifest,
    link_next,
    random_bytes,
    repo_name,
)

SIGNATURE = "application/vnd.dockyard.signature.v1"
SBOM = "application/vnd.dockyard.sbom.v1+json"


def referrers(client: Client, name: str, digest: str, **params: Any) -> requests.Response:
    response = client.get(f"/v2/{name}/referrers/{digest}", params=params or None)
    assert response.status_code == 200, describe(response)
    assert response.headers["Content-Type"].split(";")[0] == OCI_INDEX
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    assert isinstance(body["manifests"], list)
    return response


def listed(response: requests.Response) -> dict[str, dict[str, Any]]:
    """The referrer descriptors of a response, by digest."""
    return {entry["digest"]: entry for entry in response.json()["manifests"]}


def expected_descriptor(manifest: Manifest, artifact_type: str,
                        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.size,
        "artifactType": artifact_type,
    }
    if annotations:
        entry["annotations"] = annotations
    return entry


@pytest.fixture
def subject(client: Client, name: str) -> Manifest:
    return client.push_image(name, "subject")


def test_lists_referrers_with_their_descriptors(client: Client, name: str,
                                                subject: Manifest) -> None:
    notes = {"org.opencontainers.image.created": "2024-05-01T00:00:00Z", "k": "v"}
    signature = artifact_manifest(SIGNATURE, subject=subject, layers=[random_bytes(30)],
                                  annotations=notes)
    sbom = artifact_manifest(SBOM, subject=subject)
    client.push_manifest(name, signature)
    client.push_manifest(name, sbom)
    response = referrers(client, name, subject.digest)
    assert "OCI-Filters-Applied" not in response.headers
    entries = listed(response)
    assert set(entries) == {signature.digest, sbom.digest}
    assert entries[signature.digest] == expected_descriptor(signature, SIGNATURE, notes)
    sbom_entry = dict(entries[sbom.digest])
    assert not sbom_entry.pop("annotations", None)
    assert sbom_entry == expected_descriptor(sbom, SBOM)


def test_artifact_type_falls_back_to_config_media_type(client: Client, name: str,
                                                       subject: Manifest) -> None:
    legacy = image_manifest([random_bytes(10)], config=b'{"kind": "legacy"}',
                            config_media_type="application/vnd.dockyard.legacy.config.v1+json",
                            subject=subject)
    plain = image_manifest(subject=subject)
    client.push_manifest(name, legacy)
    client.push_manifest(name, plain)
    entries = listed(referrers(client, name, subject.digest))
    legacy_type = entries[legacy.digest]["artifactType"]
    assert legacy_type == "application/vnd.dockyard.legacy.config.v1+json"
    assert entries[plain.digest]["artifactType"] == OCI_CONFIG
    assert entries[plain.digest]["mediaType"] == OCI_MANIFEST


def test_filter_by_artifact_type(client: Client, name: str, subject: Manifest) -> None:
    signature = artifact_manifest(SIGNATURE, subject=subject)
    client.push_manifest(name, signature)
    client.push_manifest(name, artifact_manifest(SBOM, subject=subject))
    response = referrers(client, name, subject.digest, artifactType=SIGNATURE)
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert list(listed(response)) == [signature.digest]


def test_filter_matching_nothing(client: Client, name: str, subject: Manifest) -> None:
    client.push_manifest(name, artifact_manifest(SBOM, subject=subject))
    response = referrers(client, name, subject.digest,
                         artifactType="application/vnd.dockyard.none")
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert response.json()["manifests"] == []


def test_unknown_subject_gives_an_empty_index(client: Client, name: str,
                                              subject: Manifest) -> None:
    response = referrers(client, name, digest_of(random_bytes(10)))
    assert response.json()["manifests"] == []


def test_unknown_repository_gives_an_empty_index(client: Client) -> None:
    response = referrers(client, repo_name(), digest_of(random_bytes(10)))
    assert response.json()["manifests"] == []


@pytest.mark.parametrize("reference", ["latest", "sha256:abc", "sha256:" + "Z" * 64,
                                       "md5:" + "0" * 32])
def test_malformed_digest(client: Client, name: str, subject: Manifest, reference: str) -> None:
    response = client.get(f"/v2/{name}/referrers/{reference}")
    assert_error(response, 400, "DIGEST_INVALID")


def test_referrers_of_a_missing_subject(client: Client, name: str) -> None:
    absent = image_manifest()
    artifact = artifact_manifest(SIGNATURE, subject=absent)
    client.push_manifest(name, artifact)
    assert list(listed(referrers(client, name, absent.digest))) == [artifact.digest]
    # once the subject arrives the referrer is still there
    client.push_manifest(name, absent, "late")
    assert list(listed(referrers(client, name, absent.digest))) == [artifact.digest]


def test_index_with_subject_is_a_referrer(client: Client, name: str, subject: Manifest) -> None:
    child = artifact_manifest(SIGNATURE)
    index = index_manifest([child], subject=subject, artifact_type=SBOM, platforms=False,
                           annotations={"purpose": "bundle"})
    client.push_manifest(name, index)
    entries = listed(referrers(client, name, subject.digest))
    assert entries == {index.digest: expected_descriptor(index, SBOM, {"purpose": "bundle"})}


def test_index_referrer_without_artifact_type(client: Client, name: str,
                                              subject: Manifest) -> None:
    index = index_manifest([artifact_manifest(SIGNATURE)], subject=subject, platforms=False)
    client.push_manifest(name, index)
    entry = listed(referrers(client, name, subject.digest))[index.digest]
    assert entry["mediaType"] == OCI_INDEX
    assert entry["size"] == index.size
    assert not entry.get("artifactType")


def test_deleting_a_tag_keeps_the_referrer(client: Client, name: str, subject: Manifest) -> None:
    artifact = artifact_manifest(SIGNATURE, subject=subject)
    client.push_manifest(name, artifact, "sig")
    assert client.delete(f"/v2/{name}/manifests/sig").status_code == 202
    assert list(listed(referrers(client, name, subject.digest))) == [artifact.digest]


def test_referrer_of_an_index(client: Client, name: str) -> None:
    index = index_manifest([image_manifest()])
    client.push_manifest(name, index, "multi")
    artifact = artifact_manifest(SIGNATURE, subject=index)
    client.push_manifest(name, artifact)
    assert list(listed(referrers(client, name, index.digest))) == [artifact.digest]


def test_referrer_of_a_referrer(client: Client, name: str, subject: Manifest) -> None:
    signature = artifact_manifest(SIGNATURE, subject=subject)
    countersignature = artifact_manifest(SIGNATURE, subject=signature)
    client.push_manifest(name, signature)
    client.push_manifest(name, countersignature)
    assert list(listed(referrers(client, name, subject.digest))) == [signature.digest]
    assert list(listed(referrers(client, name, signature.digest))) == [countersignature.digest]


def test_deleted_referrer_disappears(client: Client, name: str, subject: Manifest) -> None:
    keep = artifact_manifest(SIGNATURE, subject=subject)
    drop = artifact_manifest(SBOM, subject=subject)
    client.push_manifest(name, keep)
    client.push_manifest(name, drop)
    assert client.delete(f"/v2/{name}/manifests/{drop.digest}").status_code == 202
    assert list(listed(referrers(client, name, subject.digest))) == [keep.digest]


def test_tagged_referrer_is_listed_once(client: Client, name: str, subject: Manifest) -> None:
    artifact = artifact_manifest(SIGNATURE, subject=subject)
    client.push_manifest(name, artifact, "sig-a")
    assert client.put_manifest(name, "sig-b", artifact).status_code == 201
    response = referrers(client, name, subject.digest)
    assert [entry["digest"] for entry in response.json()["manifests"]] == [artifact.digest]


def test_referrers_are_scoped_to_their_repository(client: Client, name: str,
                                                  subject: Manifest) -> None:
    other = repo_name()
    client.push_manifest(other, artifact_manifest(SIGNATURE, subject=subject))
    assert referrers(client, name, subject.digest).json()["manifests"] == []


def test_pagination(client: Client, name: str, subject: Manifest) -> None:
    pushed = set()
    for number in range(5):
        artifact = artifact_manifest(SIGNATURE, subject=subject,
                                     annotations={"n": str(number)})
        client.push_manifest(name, artifact)
        pushed.add(artifact.digest)
    first = referrers(client, name, subject.digest, n=2)
    assert len(first.json()["manifests"]) == 2
    seen = [entry["digest"] for entry in first.json()["manifests"]]
    url = link_next(first)
    assert url is not None
    pages = 1
    while url is not None:
        response = client.get(client.follow(url))
        assert response.status_code == 200, describe(response)
        assert response.headers["Content-Type"].split(";")[0] == OCI_INDEX
        seen.extend(entry["digest"] for entry in response.json()["manifests"])
        url = link_next(response)
        pages += 1
        assert pages < 10
    assert sorted(seen) == sorted(pushed)
    assert len(seen) == len(set(seen))
    assert pages == 3


def test_pagination_keeps_the_filter(client: Client, name: str, subject: Manifest) -> None:
    wanted = set()
    for _ in range(3):
        signature = artifact_manifest(SIGNATURE, subject=subject)
        client.push_manifest(name, signature)
        wanted.add(signature.digest)
        client.push_manifest(name, artifact_manifest(SBOM, subject=subject))
    seen: list[str] = []
    url: str | None = f"/v2/{name}/referrers/{subject.digest}?n=2&artifactType={SIGNATURE}"
    while url is not None:
        response = client.get(client.follow(url))
        assert response.status_code == 200, describe(response)
        assert response.headers["OCI-Filters-Applied"] == "artifactType"
        seen.extend(entry["digest"] for entry in response.json()["manifests"])
        url = link_next(response)
        assert len(seen) <= 10
    assert sorted(seen) == sorted(wanted)


def test_no_link_when_everything_fits(client: Client, name: str, subject: Manifest) -> None:
    client.push_manifest(name, artifact_manifest(SIGNATURE, subject=subject))
    response = referrers(client, name, subject.digest, n=5)
    assert "Link" not in response.headers

