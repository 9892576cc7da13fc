"""Which redirects a client follows. The distribution spec lets a blob GET redirect to
another service (a CDN, an object store's presigned URL); everything else must stay on the
registry. Credentials are for the registry only and never cross to another host."""

from __future__ import annotations

from yarl import URL

from dockyard.registry.mirror.remote import RemoteInvalid

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_HOPS = 5


def next_hop(current: URL, location: str | None, hops: int, *, registry: URL,
             anywhere: bool) -> URL:
    """The URL a redirect from `current` leads to (`hops` counts this one), or
    RemoteInvalid: no Location, too many hops, a scheme other than http(s), https to http,
    or (unless `anywhere`, for blobs) a host other than the registry's."""
    where = f"{registry.host_port_subcomponent}: redirect from {current.path}"
    if not location:
        raise RemoteInvalid(f"{where} has no Location")
    if hops > MAX_HOPS:
        raise RemoteInvalid(f"{where}: more than {MAX_HOPS} redirects")
    try:
        target = current.join(URL(location))
    except ValueError as exc:
        raise RemoteInvalid(f"{where} has an unusable Location") from exc
    if target.scheme not in ("http", "https") or not target.host:
        raise RemoteInvalid(f"{where} leads to a {target.scheme or 'relative'} URL")
    if current.scheme == "https" and target.scheme == "http":
        raise RemoteInvalid(f"{where} leads from https to http")
    if not anywhere and target.origin() != registry.origin():
        raise RemoteInvalid(f"{where} leads to another host ({target.host})")
    return target
