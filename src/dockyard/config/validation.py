"""The `validation` section (distribution's): what a pushed manifest must satisfy."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dockyard.config.section import Section


class URLsConfig(Section):
    """Regular expressions searched in each layer URL (`urls` of foreign layers): a URL must
    match one of `allow` (when `allow` is set) and none of `deny`."""

    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)

    @field_validator("allow", "deny")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        return patterns


class PlatformConfig(Section):
    architecture: str = Field(min_length=1)
    os: str = Field(min_length=1)


class IndexesConfig(Section):
    """Which children of a pushed index must be in the repository already: `all` (strict),
    `none` (sparse indexes, as a mirror of some platforms keeps them), or `list`: those whose
    platform is in `platformlist`."""

    platforms: Literal["all", "none", "list"] = "all"
    platformlist: list[PlatformConfig] = Field(default_factory=list)

    @field_validator("platforms", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        """distribution's own example writes `platforms: List`."""
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _list_needs_platforms(self) -> IndexesConfig:
        if self.platforms == "list" and not self.platformlist:
            raise ValueError("platforms: list needs a platformlist")
        return self


class ManifestsValidationConfig(Section):
    urls: URLsConfig = Field(default_factory=URLsConfig)
    indexes: IndexesConfig = Field(default_factory=IndexesConfig)


class ValidationConfig(Section):
    """`disabled: true` turns every rule below off, as in distribution: any http(s) layer
    URL passes and an index's children need not be stored."""

    disabled: bool = False
    manifests: ManifestsValidationConfig = Field(default_factory=ManifestsValidationConfig)
