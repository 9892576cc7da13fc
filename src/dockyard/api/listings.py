"""Tags list, catalog and referrers: paged JSON listings."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.appkeys import REGISTRY
from dockyard.api.auth import pull_filter
from dockyard.api.jsonbody import json_response
from dockyard.api.pagination import last_of, next_link, page_size
from dockyard.oci import mediatypes
from dockyard.registry.listings import referrers_index
from dockyard.registry.references import parse_digest

TAGS_DEFAULT_PAGE = 100_000
CATALOG_DEFAULT_PAGE = 1_000
REFERRERS_DEFAULT_PAGE = 1_000
MAX_PAGE = 100_000


async def list_tags(request: web.Request, name: str, _: str) -> web.StreamResponse:
    limit = page_size(request, TAGS_DEFAULT_PAGE, MAX_PAGE)
    page = await request.app[REGISTRY].listings.tags(name, limit, last_of(request))
    return json_response(
        {"name": name, "tags": page.items},
        next_link(f"/v2/{name}/tags/list", limit, page.next_last),
    )


async def catalog(request: web.Request) -> web.StreamResponse:
    limit = page_size(request, CATALOG_DEFAULT_PAGE, MAX_PAGE)
    page = await request.app[REGISTRY].listings.repositories(
        limit, last_of(request), pull_filter(request))
    return json_response(
        {"repositories": page.items}, next_link("/v2/_catalog", limit, page.next_last)
    )


async def list_referrers(request: web.Request, name: str, digest_text: str
                         ) -> web.StreamResponse:
    subject = parse_digest(digest_text)
    artifact_type = request.query.get("artifactType") or None
    limit = page_size(request, REFERRERS_DEFAULT_PAGE, MAX_PAGE)
    registry = request.app[REGISTRY]
    if last_of(request) is None:  # the first page: later ones page through the same listing
        await registry.manifests.refresh_referrers(name, subject)
    page = await registry.listings.referrers(
        name, subject, artifact_type, limit, last_of(request)
    )
    filters = {"artifactType": artifact_type} if artifact_type else {}
    headers = next_link(f"/v2/{name}/referrers/{subject}", limit, page.next_last, **filters)
    if artifact_type:
        headers["OCI-Filters-Applied"] = "artifactType"
    return json_response(referrers_index(page.items), headers, mediatypes.OCI_INDEX)
