"""Listing tags: /v2/<name>/tags/list with `n`/`last` pagination."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.system.api.client import (
    API_VERSION,
    API_VERSION_HEADER,
    Client,
    assert_error,
    describe,
    link_next,
    repo_name,
)

TAGS = ["latest", "1.0", "1.10", "1.2", "v2", "a-b", "a.b", "a_b", "z", "0"]


@pytest.fixture
def tagged(client: Client, name: str) -> list[str]:
    """A repository holding TAGS (all on one manifest); returns them in lexical order."""
    manifest = client.push_image(name, TAGS[0])
    for tag in TAGS[1:]:
        assert client.put_manifest(name, tag, manifest).status_code == 201
    return sorted(TAGS)


def test_list_is_sorted(client: Client, name: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{name}/tags/list")
    assert response.status_code == 200, describe(response)
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    assert response.json() == {"name": name, "tags": tagged}
    assert "Link" not in response.headers


def test_page_size(client: Client, name: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{name}/tags/list", params={"n": 3})
    assert response.status_code == 200
    assert response.json() == {"name": name, "tags": tagged[:3]}
    link = link_next(response)
    assert link is not None
    target = urlsplit(client.follow(link))
    assert target.path == f"/v2/{name}/tags/list"
    query = parse_qs(target.query)
    assert query["n"] == ["3"]
    assert query["last"] == [tagged[2]]


def test_following_links_walks_every_tag_once(client: Client, name: str,
                                              tagged: list[str]) -> None:
    seen: list[str] = []
    url: str | None = f"/v2/{name}/tags/list?n=4"
    pages = 0
    while url is not None:
        response = client.get(client.follow(url))
        assert response.status_code == 200, describe(response)
        page = response.json()["tags"]
        assert len(page) <= 4
        seen.extend(page)
        url = link_next(response)
        pages += 1
        assert pages < 10
    assert seen == tagged
    assert pages == 3


def test_last_without_n(client: Client, name: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{name}/tags/list", params={"last": "a.b"})
    assert response.status_code == 200
    assert response.json()["tags"] == [t for t in tagged if t > "a.b"]


def test_last_that_is_not_a_tag(client: Client, name: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{name}/tags/list", params={"n": 2, "last": "b"})
    assert response.status_code == 200
    assert response.json()["tags"] == [t for t in tagged if t > "b"][:2]


def test_last_after_everything(client: Client, name: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{name}/tags/list", params={"n": 5, "last": "zzz"})
    assert response.status_code == 200
    assert response.json()["tags"] == []
    assert "Link" not in response.headers


def test_n_zero(client: Client, name: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{name}/tags/list", params={"n": 0})
    assert response.status_code == 200
    assert response.json() == {"name": name, "tags": []}
    assert "Link" not in response.headers


def test_n_exactly_the_number_of_tags(client: Client, name: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{name}/tags/list", params={"n": len(tagged)})
    assert response.json()["tags"] == tagged
    assert "Link" not in response.headers


def test_n_larger_than_the_number_of_tags(client: Client, name: str,
                                          tagged: list[str]) -> None:
    response = client.get(f"/v2/{name}/tags/list", params={"n": 1000})
    assert response.json()["tags"] == tagged
    assert "Link" not in response.headers


def test_last_page_has_no_link(client: Client, name: str, tagged: list[str]) -> None:
    response = client.get(f"/v2/{name}/tags/list", params={"n": 3, "last": tagged[-4]})
    assert response.json()["tags"] == tagged[-3:]
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "", "0x10"])
def test_invalid_n(client: Client, name: str, tagged: list[str], n: str) -> None:
    response = client.get(f"/v2/{name}/tags/list?n={n}")
    assert_error(response, 400)


def test_repository_without_tags(client: Client, name: str) -> None:
    client.push_image(name, None)
    response = client.get(f"/v2/{name}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": name, "tags": []}


def test_unknown_repository(client: Client) -> None:
    assert_error(client.get(f"/v2/{repo_name()}/tags/list"), 404, "NAME_UNKNOWN")


def test_uppercase_tags_are_listed(client: Client, name: str) -> None:
    manifest = client.push_image(name, "lower")
    assert client.put_manifest(name, "UPPER", manifest).status_code == 201
    assert sorted(client.tags(name), key=str.lower) == ["lower", "UPPER"]


def test_deleted_tag_disappears(client: Client, name: str, tagged: list[str]) -> None:
    assert client.delete(f"/v2/{name}/manifests/v2").status_code == 202
    assert client.tags(name) == [t for t in tagged if t != "v2"]


def test_tags_are_per_repository(client: Client, name: str, tagged: list[str]) -> None:
    other = repo_name()
    client.push_image(other, "only-here")
    assert client.tags(other) == ["only-here"]
    assert "only-here" not in client.tags(name)
