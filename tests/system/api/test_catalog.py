"""Listing repositories: /v2/_catalog with `n`/`last` pagination."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import pytest

from tests.system.api.client import (
    API_VERSION,
    API_VERSION_HEADER,
    Client,
    assert_error,
    describe,
    link_next,
)


@pytest.fixture
def family(client: Client) -> tuple[str, list[str]]:
    """Three repositories under a prefix no other test uses: (prefix, sorted names)."""
    prefix = f"cat{uuid4().hex[:10]}"
    names = [f"{prefix}/b", f"{prefix}/a", f"{prefix}/c/nested"]
    for repo in names:
        client.push_image(repo, "latest")
    return prefix, sorted(names)


def test_catalog_lists_repositories_sorted(client: Client,
                                           family: tuple[str, list[str]]) -> None:
    _, names = family
    response = client.get("/v2/_catalog")
    assert response.status_code == 200, describe(response)
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    assert response.headers[API_VERSION_HEADER] == API_VERSION
    repositories = response.json()["repositories"]
    assert set(names) <= set(repositories)
    assert repositories == sorted(repositories)
    assert len(repositories) == len(set(repositories))


def test_catalog_page(client: Client, family: tuple[str, list[str]]) -> None:
    prefix, names = family
    response = client.get("/v2/_catalog", params={"n": 2, "last": prefix})
    assert response.status_code == 200
    assert response.json()["repositories"] == names[:2]
    link = link_next(response)
    assert link is not None
    target = urlsplit(client.follow(link))
    assert target.path == "/v2/_catalog"
    query = parse_qs(target.query)
    assert query["n"] == ["2"]
    assert query["last"] == [names[1]]
    following = client.get(client.follow(link))
    assert following.json()["repositories"][0] == names[2]


def test_walking_the_catalog_matches_the_full_listing(client: Client,
                                                      family: tuple[str, list[str]]) -> None:
    full = client.get("/v2/_catalog").json()["repositories"]
    walked: list[str] = []
    url: str | None = "/v2/_catalog?n=7"
    while url is not None:
        response = client.get(client.follow(url))
        assert response.status_code == 200, describe(response)
        page = response.json()["repositories"]
        assert len(page) <= 7
        walked.extend(page)
        url = link_next(response)
        assert len(walked) <= len(full) + 7
    # Other tests may add repositories meanwhile, but everything listed before must be seen.
    assert set(full) <= set(walked)
    assert walked == sorted(walked)


def test_catalog_last_without_n(client: Client, family: tuple[str, list[str]]) -> None:
    _, names = family
    response = client.get("/v2/_catalog", params={"last": names[0]})
    repositories = response.json()["repositories"]
    assert names[0] not in repositories
    assert repositories[:2] == names[1:]


def test_catalog_n_zero(client: Client, family: tuple[str, list[str]]) -> None:
    response = client.get("/v2/_catalog", params={"n": 0})
    assert response.status_code == 200
    assert response.json()["repositories"] == []
    assert "Link" not in response.headers


def test_catalog_past_the_end(client: Client, family: tuple[str, list[str]]) -> None:
    response = client.get("/v2/_catalog", params={"n": 5, "last": "zzzzzzzz/zzzz"})
    assert response.status_code == 200
    assert response.json()["repositories"] == []
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "many", "2.5"])
def test_catalog_invalid_n(client: Client, n: str) -> None:
    assert_error(client.get(f"/v2/_catalog?n={n}"), 400)
