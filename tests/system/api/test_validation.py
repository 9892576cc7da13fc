"""The `validation` section: layer URLs a manifest may name, and sparse indexes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.server import RunningRegistry
from tests.system.api.client import (
    OCI_NONDISTRIBUTABLE_LAYER,
    Client,
    Manifest,
    assert_error,
    describe,
    descriptor,
    image_manifest,
    index_manifest,
    random_bytes,
    repo_name,
)

StartRegistry = Callable[..., RunningRegistry]


def start(start_registry: StartRegistry, validation: dict[str, Any]) -> Client:
    return Client(start_registry(config={"validation": validation}).url)


def with_foreign_layer(url: str) -> Manifest:
    foreign = {**descriptor(OCI_NONDISTRIBUTABLE_LAYER, random_bytes(30)), "urls": [url]}
    return image_manifest([random_bytes(20)], extra_layers=[foreign])


def push_with_foreign_layer(client: Client, name: str, url: str) -> int:
    manifest = with_foreign_layer(url)
    client.push_contents(name, manifest)
    response = client.put_manifest(name, "foreign", manifest)
    if response.status_code != 201:
        assert_error(response, 400, "MANIFEST_INVALID")
    return response.status_code


def pull(client: Client, name: str, reference: str, manifest: Manifest) -> None:
    response = client.get(f"/v2/{name}/manifests/{reference}")
    assert response.status_code == 200, describe(response)
    assert response.content == manifest.body
    assert response.headers["Docker-Content-Digest"] == manifest.digest


# -- layer URLs ---------------------------------------------------------------------------------


def test_layer_urls_must_match_an_allow_and_no_deny(start_registry: StartRegistry) -> None:
    client = start(start_registry, {"manifests": {"urls": {
        "allow": [r"^https://layers\.example\.com/"], "deny": ["/blocked/"]}}})
    name = repo_name()
    assert push_with_foreign_layer(client, name, "https://layers.example.com/a.tar") == 201
    for refused in ("https://other.example.com/a.tar",
                    "https://layers.example.com/blocked/a.tar",
                    "http://mirror.test/?from=https://layers.example.com/a.tar"):
        assert push_with_foreign_layer(client, name, refused) == 400, refused


def test_without_rules_any_http_url_passes_and_other_schemes_do_not(client: Client,
                                                                      name: str) -> None:
    assert push_with_foreign_layer(client, name, "http://anywhere.test/layer") == 201
    for refused in ("ftp://anywhere.test/layer", "https://anywhere.test/layer#part", "layer"):
        assert push_with_foreign_layer(client, name, refused) == 400, refused


def test_disabled_validation_lifts_the_url_rules(start_registry: StartRegistry) -> None:
    client = start(start_registry, {"disabled": True, "manifests": {"urls": {
        "allow": [r"^https://layers\.example\.com/"]}}})
    assert push_with_foreign_layer(client, repo_name(), "https://other.example.com/a") == 201


# -- sparse indexes -----------------------------------------------------------------------------


def test_with_platforms_none_an_index_needs_none_of_its_children(
        start_registry: StartRegistry) -> None:
    client = start(start_registry, {"manifests": {"indexes": {"platforms": "none"}}})
    name = repo_name()
    children = [image_manifest(), image_manifest()]
    index = index_manifest(children)
    response = client.put_manifest(name, "sparse", index)
    assert response.status_code == 201, describe(response)
    assert client.tags(name) == ["sparse"]
    pull(client, name, "sparse", index)
    pull(client, name, index.digest, index)
    absent = client.get(f"/v2/{name}/manifests/{children[0].digest}")
    assert_error(absent, 404, "MANIFEST_UNKNOWN")
    client.push_manifest(name, children[1])  # a child may follow its index
    pull(client, name, children[1].digest, children[1])


def test_with_a_platform_list_only_those_children_must_exist(
        start_registry: StartRegistry) -> None:
    client = start(start_registry, {"manifests": {"indexes": {
        "platforms": "List", "platformlist": [{"architecture": "arch0", "os": "linux"}]}}})
    name = repo_name()
    listed, other = image_manifest(), image_manifest()
    index = index_manifest([listed, other])  # platforms arch0/linux and arch1/linux
    client.push_manifest(name, other)
    refused = client.put_manifest(name, "partial", index)
    assert_error(refused, 400, "MANIFEST_UNKNOWN")
    assert listed.digest in refused.text
    assert client.tags(name) == []
    client.push_manifest(name, listed)
    assert client.delete(f"/v2/{name}/manifests/{other.digest}").status_code == 202
    response = client.put_manifest(name, "partial", index)
    assert response.status_code == 201, describe(response)
    pull(client, name, "partial", index)


def test_by_default_every_child_must_exist(client: Client, name: str) -> None:
    present, absent = image_manifest(), image_manifest()
    client.push_manifest(name, present)
    response = client.put_manifest(name, "strict", index_manifest([present, absent]))
    assert_error(response, 400, "MANIFEST_UNKNOWN")
    assert absent.digest in response.text and present.digest not in response.text


def test_disabled_validation_accepts_sparse_indexes(start_registry: StartRegistry) -> None:
    client = start(start_registry, {"disabled": True})
    name = repo_name()
    index = index_manifest([image_manifest()])
    assert client.put_manifest(name, "sparse", index).status_code == 201
    pull(client, name, "sparse", index)
