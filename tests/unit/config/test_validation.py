"""The `validation` section: distribution's layout, the rules it yields, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.app.web import manifest_rules
from dockyard.config import ConfigError, load_config
from dockyard.oci.manifest import Platform
from dockyard.registry.validation import IndexChildren, ManifestRules

DISTRIBUTION_VALIDATION = """\
version: 0.1
validation:
  manifests:
    urls:
      allow:
        - ^https?://([^/]+\\.)*example\\.com/
      deny:
        - ^https?://www\\.example\\.com/
    indexes:
      platforms: List
      platformlist:
        - architecture: amd64
          os: linux
"""


def load(tmp_path: Path, text: str, **environ: str) -> ManifestRules:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return manifest_rules(load_config(path, environ).validation)


def test_distributions_example_becomes_the_rules(tmp_path: Path) -> None:
    assert load(tmp_path, DISTRIBUTION_VALIDATION) == ManifestRules(
        url_allow=(r"^https?://([^/]+\.)*example\.com/",),
        url_deny=(r"^https?://www\.example\.com/",),
        index_children=IndexChildren.LISTED_PLATFORMS,
        platforms=(Platform("amd64", "linux"),),
    )


def test_by_default_every_child_is_required_and_urls_are_free(tmp_path: Path) -> None:
    assert load(tmp_path, "version: 0.1\n") == ManifestRules()
    assert ManifestRules().index_children is IndexChildren.ALL


def test_disabled_lifts_every_rule(tmp_path: Path) -> None:
    rules = load(tmp_path, DISTRIBUTION_VALIDATION.replace(
        "validation:\n", "validation:\n  disabled: true\n"))
    assert rules == ManifestRules(index_children=IndexChildren.NONE)


def test_the_environment_sets_the_index_rule(tmp_path: Path) -> None:
    rules = load(tmp_path, "version: 0.1\n",
                 REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS="none")
    assert rules.index_children is IndexChildren.NONE


@pytest.mark.parametrize(("validation", "message"), [
    ("manifests: {urls: {allow: ['(unclosed']}}", "validation.manifests.urls.allow"),
    ("manifests: {indexes: {platforms: some}}", "validation.manifests.indexes.platforms"),
    ("manifests: {indexes: {platforms: list}}", "platformlist"),
    ("manifests: {indexes: {platforms: list, platformlist: [{os: linux}]}}", "architecture"),
    ("enabled: true", "validation.enabled"),
])
def test_mistakes_are_named(tmp_path: Path, validation: str, message: str) -> None:
    path = tmp_path / "config.yml"
    path.write_text(f"version: 0.1\nvalidation: {{{validation}}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert message in str(info.value)
