"""Other registries, as a client pulls from them: the HTTP side of the mirror's `Remote` port.

`RegistryClient` speaks the distribution API to one upstream (Docker Hub, ghcr, Harbor, the
reference registry, another Dockyard): the token dance and Basic, redirects the spec allows
for blobs, bounded and verified manifests, and a back-off when the upstream rate-limits us.
It receives plain values; the composition root builds it from configuration.
"""

from dockyard.remote.client import RegistryClient

__all__ = ["RegistryClient"]
