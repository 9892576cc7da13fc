"""Rules a pushed manifest follows beyond its format: layer URLs and sparse indexes.

They are distribution's `validation.manifests` rules, carried here as plain values (app/
builds them from the configuration).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from dockyard.oci.manifest import Descriptor, ParsedManifest, Platform
from dockyard.registry.errors import ManifestInvalid


class IndexChildren(Enum):
    """Which manifests an index lists must already be in the repository."""

    ALL = "all"
    NONE = "none"
    LISTED_PLATFORMS = "list"
    """Only those whose platform is one of `ManifestRules.platforms`."""


@dataclass(frozen=True, slots=True)
class ManifestRules:
    """`url_allow`/`url_deny` are regular expressions searched in each layer URL."""

    url_allow: tuple[str, ...] = ()
    url_deny: tuple[str, ...] = ()
    index_children: IndexChildren = IndexChildren.ALL
    platforms: tuple[Platform, ...] = ()


class ManifestValidator:
    """Checks a parsed manifest against the rules, and splits an index's children."""

    def __init__(self, rules: ManifestRules) -> None:
        self._allow = [re.compile(pattern) for pattern in rules.url_allow]
        self._deny = [re.compile(pattern) for pattern in rules.url_deny]
        self._children = rules.index_children
        self._platforms = frozenset(rules.platforms)

    def check_urls(self, parsed: ParsedManifest) -> None:
        """Raise ManifestInvalid for a layer URL that is not http(s), or not allowed."""
        for layer in parsed.layers:
            for url in layer.urls:
                if not self._url_allowed(url):
                    raise ManifestInvalid("layer URL not allowed",
                                          detail={"digest": str(layer.digest), "url": url})

    def _url_allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.fragment:
            return False
        if self._allow and not any(pattern.search(url) for pattern in self._allow):
            return False
        return not any(pattern.search(url) for pattern in self._deny)

    def split_children(self, parsed: ParsedManifest) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """An index's children: the digests the repository must hold already, and the rest."""
        required: list[str] = []
        optional: list[str] = []
        for child in parsed.children:
            (required if self._required(child) else optional).append(str(child.digest))
        return tuple(required), tuple(optional)

    def _required(self, child: Descriptor) -> bool:
        if self._children is IndexChildren.ALL:
            return True
        if self._children is IndexChildren.NONE:
            return False
        return child.platform in self._platforms
