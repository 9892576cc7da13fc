"""The mirror's upstreams, built from `proxy:` and `mirrors:`: one HTTP client each."""

from __future__ import annotations

import ssl

from dockyard import __version__
from dockyard.config import Config, MirrorConfig
from dockyard.registry.mirror.routing import Routes, Upstream
from dockyard.registry.registry import MirrorOptions
from dockyard.remote.client import RegistryClient


def _tls(upstream: MirrorConfig) -> ssl.SSLContext | bool:
    if upstream.insecure:
        return False
    if upstream.ca is not None:
        return ssl.create_default_context(cafile=upstream.ca)
    return True


def build_upstream(upstream: MirrorConfig, manifest_max_bytes: int) -> Upstream:
    client = RegistryClient(
        upstream.url, username=upstream.username, password=upstream.password_value(),
        ssl=_tls(upstream), manifest_max_bytes=manifest_max_bytes,
        connect_timeout=upstream.connect_timeout_seconds,
        read_timeout=upstream.timeout_seconds, user_agent=f"dockyard/{__version__}")
    return Upstream(prefix=upstream.prefix, remote=client,
                    tag_ttl=upstream.tag_ttl_seconds, max_age=upstream.max_age_seconds,
                    max_bytes=upstream.max_bytes)


def build_mirror(config: Config, metrics: bool) -> MirrorOptions | None:
    """None when nothing is mirrored: the registry then has no mirror code on its paths."""
    upstreams = config.upstreams()
    if not upstreams:
        return None
    routes = Routes([build_upstream(upstream, config.limits.manifestmaxbytes)
                     for upstream in upstreams])
    if not metrics:
        return MirrorOptions(routes)
    from dockyard.observability.metrics import MirrorMetrics

    return MirrorOptions(routes, MirrorMetrics())
