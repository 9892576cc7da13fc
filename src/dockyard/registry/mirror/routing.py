"""Which upstream, if any, a repository is mirrored from, and under which name there.

Repositories `<prefix>/<path>` come from the upstream with that prefix as `<path>`; an
upstream with the empty prefix (distribution's `proxy:`) takes every other repository.
containerd asks a mirror with `?ns=<registry host>` and the upstream's own names, so a
namespace picks the upstream and puts its prefix in front.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.registry.mirror.remote import Remote

DOCKER_HUB_HOSTS = frozenset({"docker.io", "registry-1.docker.io", "index.docker.io"})
"""Docker Hub's names: there a one-component name is an official image under `library/`."""


@dataclass(frozen=True, slots=True)
class Upstream:
    """One mirrored registry and how long what it serves is trusted."""

    prefix: str
    """"" for the catch-all upstream."""
    remote: Remote
    tag_ttl: float
    """Seconds a cached tag is served before the upstream is asked whether it moved."""
    max_age: float | None = None
    """Images not pulled for this long are evicted."""
    max_bytes: int | None = None
    """The cache for this upstream is kept under this size by evicting least-pulled images."""

    @property
    def name(self) -> str:
        """How logs, metrics and `dockyard mirror status` call it."""
        return self.prefix or self.remote.host

    @property
    def docker_hub(self) -> bool:
        return self.remote.host in DOCKER_HUB_HOSTS or self.prefix in DOCKER_HUB_HOSTS


@dataclass(frozen=True, slots=True)
class Route:
    """A mirrored repository: its upstream and the repository's name there."""

    upstream: Upstream
    remote_repository: str


class Routes:
    """The configured upstreams, longest prefix first, the catch-all last."""

    def __init__(self, upstreams: Sequence[Upstream] = ()) -> None:
        self.upstreams = tuple(sorted(upstreams, key=lambda u: -len(u.prefix)))

    def __bool__(self) -> bool:
        return bool(self.upstreams)

    def route(self, repository: str) -> Route | None:
        """The upstream `repository` mirrors, or None for a local repository."""
        for upstream in self.upstreams:
            if not upstream.prefix:
                return Route(upstream, self._remote_name(upstream, repository))
            if repository.startswith(upstream.prefix + "/"):
                path = repository[len(upstream.prefix) + 1:]
                return Route(upstream, self._remote_name(upstream, path))
        return None

    def local_name(self, name: str, namespace: str | None) -> str:
        """The repository a request means: under a containerd mirror request (`?ns=host`),
        `name` under the prefix of the upstream for that host; and a Docker Hub short name
        (`docker.io/alpine`) as its full one (`docker.io/library/alpine`), so both are one
        cached repository."""
        if namespace:
            name = self._namespaced(name, namespace)
        route = self.route(name)
        if route is None or not route.remote_repository.startswith("library/"):
            return name
        prefix = route.upstream.prefix
        path = name[len(prefix) + 1:] if prefix else name
        if "/" in path:
            return name
        return f"{prefix}/library/{path}" if prefix else f"library/{path}"

    def _namespaced(self, name: str, namespace: str) -> str:
        for upstream in self.upstreams:
            if not upstream.prefix:
                continue
            hosts = {upstream.prefix, upstream.remote.host}
            if hosts & DOCKER_HUB_HOSTS:
                hosts |= DOCKER_HUB_HOSTS
            if namespace in hosts:
                return f"{upstream.prefix}/{name}"
        return name

    @staticmethod
    def _remote_name(upstream: Upstream, path: str) -> str:
        if upstream.docker_hub and "/" not in path:
            return f"library/{path}"
        return path
