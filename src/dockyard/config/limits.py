"""The `limits` section (Dockyard's): bounds that keep one request or node from overreaching."""

from __future__ import annotations

from pydantic import Field

from dockyard.config.section import Section


class LimitsConfig(Section):
    """Manifests are read whole into memory, so their size is bounded; `workers` defaults to
    the CPU count when unset."""

    manifestmaxbytes: int = Field(default=4 * 1024 * 1024, gt=0)
    workers: int | None = Field(default=None, ge=1)
