"""Which upstream a repository comes from, under which name, and what a request means."""

from __future__ import annotations

from dockyard.registry.mirror.routing import Routes, Upstream


class _Host:
    """Only the host matters to routing."""

    def __init__(self, host: str) -> None:
        self.host = host


def _routes(*pairs: tuple[str, str]) -> Routes:
    return Routes([Upstream(prefix, _Host(host), tag_ttl=60)  # type: ignore[arg-type]
                   for prefix, host in pairs])


def test_longest_prefix_wins_and_the_catch_all_comes_last() -> None:
    routes = _routes(("", "fallback.example"), ("mirror", "one.example"),
                     ("mirror/quay", "quay.io"))
    quay = routes.route("mirror/quay/org/app")
    assert quay is not None and quay.upstream.prefix == "mirror/quay"
    assert quay.remote_repository == "org/app"
    other = routes.route("mirror/app")
    assert other is not None and other.upstream.prefix == "mirror"
    rest = routes.route("team/app")
    assert rest is not None and rest.upstream.prefix == ""
    assert rest.remote_repository == "team/app"
    assert _routes(("ghcr.io", "ghcr.io")).route("team/app") is None
    assert _routes(("ghcr.io", "ghcr.io")).route("ghcr.io.evil/app") is None


def test_docker_hub_short_names_are_official_images_and_one_repository() -> None:
    routes = _routes(("docker.io", "127.0.0.1:5001"), ("ghcr.io", "ghcr.io"))
    alpine = routes.route("docker.io/alpine")
    assert alpine is not None and alpine.remote_repository == "library/alpine"
    assert routes.local_name("docker.io/alpine", None) == "docker.io/library/alpine"
    assert routes.local_name("docker.io/team/app", None) == "docker.io/team/app"
    assert routes.local_name("ghcr.io/app", None) == "ghcr.io/app"
    hub = _routes(("", "registry-1.docker.io"))
    assert hub.local_name("alpine", None) == "library/alpine"


def test_a_containerd_namespace_picks_the_upstream_by_prefix_or_host() -> None:
    routes = _routes(("docker.io", "registry-1.docker.io"), ("up", "127.0.0.1:5001"))
    assert routes.local_name("library/alpine", "docker.io") == "docker.io/library/alpine"
    assert routes.local_name("alpine", "registry-1.docker.io") == "docker.io/library/alpine"
    assert routes.local_name("team/app", "127.0.0.1:5001") == "up/team/app"
    assert routes.local_name("team/app", "quay.io") == "team/app"
    assert routes.local_name("team/app", None) == "team/app"
