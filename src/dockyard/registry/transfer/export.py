"""`dockyard export`: chosen repositories and tags written as one OCI image layout.

Every blob is written once however many repositories share it; `index.json` has one entry
per repository and tag (its repository in `io.dockyard.repository`, its tag in the standard
`org.opencontainers.image.ref.name`), plus one per referrer when they are carried along.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dockyard.auth.policy import compile_pattern
from dockyard.metadata.records import ManifestRecord
from dockyard.oci import manifest as oci_manifest
from dockyard.oci.digest import Digest
from dockyard.oci.layout import entry_document, index_document
from dockyard.oci.manifest import Descriptor, Platform
from dockyard.oci.reference import is_valid_name, is_valid_tag
from dockyard.registry.registry import Registry
from dockyard.registry.transfer.writers import LayoutWriter, once

PAGE = 1000


class InvalidSelection(ValueError):
    """A repository or tag pattern that can match nothing, or a bad platform."""


@dataclass(frozen=True, slots=True)
class Selector:
    """`REPO[:TAG]`, either part a glob as access rules write them (`team/**`, `v1.*`)."""

    repository: str
    tag: str | None

    def matches_repository(self, name: str) -> bool:
        return compile_pattern(self.repository).fullmatch(name) is not None

    def matches_tag(self, tag: str) -> bool:
        return self.tag is None or compile_pattern(self.tag).fullmatch(tag) is not None


def parse_selector(text: str) -> Selector:
    name, tag = text, None
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        name, tag = text[:colon], text[colon + 1:]
    plain = name.replace("**", "a").replace("*", "a").replace("?", "a")
    plain_tag = (tag or "a").replace("*", "a").replace("?", "a")
    if not is_valid_name(plain) or not is_valid_tag(plain_tag):
        raise InvalidSelection(f"not a repository or repository:tag (globs allowed): {text!r}")
    return Selector(name, tag)


def parse_platform(text: str) -> Platform:
    os_name, _, architecture = text.partition("/")
    if not os_name or not architecture:
        raise InvalidSelection(f"a platform is os/architecture, e.g. linux/amd64: {text!r}")
    return Platform(architecture.split("/")[0], os_name)


@dataclass(frozen=True, slots=True)
class ExportOptions:
    selectors: tuple[Selector, ...] = ()
    """None: every repository and tag."""
    since: float | None = None
    """Only tags whose manifest was pushed within this many seconds."""
    platforms: frozenset[Platform] = frozenset()
    """Only these platforms of an index (none: all of them)."""
    with_referrers: bool = False
    base: frozenset[Digest] = frozenset()
    """Blobs a previous export carried: left out of this one."""


@dataclass
class ExportReport:
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    blobs: int = 0
    bytes_written: int = 0
    bytes_total: int = 0
    """What is to be written: blobs and manifests (counted apart, in `manifests`)."""
    skipped_blobs: int = 0
    """Blobs left out because the base layout (or this directory already) holds them."""
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        skipped = f", {self.skipped_blobs} blobs already carried" if self.skipped_blobs else ""
        return (f"{self.repositories} repositories, {self.tags} tags, {self.manifests} "
                f"manifests, {self.blobs} blobs, {self.bytes_written} bytes{skipped} in "
                f"{time.monotonic() - self.started:.1f}s")


@dataclass
class _Plan:
    entries: list[dict[str, Any]] = field(default_factory=list)
    manifests: dict[Digest, bytes] = field(default_factory=dict)
    blobs: dict[Digest, int] = field(default_factory=dict)
    """Digest to size."""
    repositories: set[str] = field(default_factory=set)


Progress = Callable[[ExportReport], None]


class Exporter:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def export(self, writer: LayoutWriter, options: ExportOptions,
                     progress: Progress | None = None) -> ExportReport:
        report = ExportReport()
        plan = _Plan()
        for repository, tags in await self._selected(options):
            for tag, record in tags:
                descriptor = Descriptor(record.media_type, Digest.parse(record.digest),
                                        len(record.content))
                plan.entries.append(entry_document(descriptor, repository, tag))
                plan.repositories.add(repository)
                report.tags += 1
                await self._walk(plan, repository, record, options)
        report.repositories = len(plan.repositories)
        report.manifests = len(plan.manifests)
        sizes = dict(plan.blobs)
        sizes.update((digest, len(content)) for digest, content in plan.manifests.items())
        todo = []
        for digest, size in sizes.items():
            if digest in options.base or writer.has_blob(digest, size):
                report.skipped_blobs += 1
            else:
                todo.append((digest, size))
                report.bytes_total += size
        for digest, size in todo:
            manifest = plan.manifests.get(digest)
            body = once(manifest) if manifest is not None else \
                self._registry.blobs.read(digest, 0, size)
            await writer.write_blob(digest, size, _counted(body, report, progress))
            report.blobs += manifest is None
        writer.finish(index_document(plan.entries))
        return report

    async def _selected(self, options: ExportOptions
                        ) -> list[tuple[str, list[tuple[str, ManifestRecord]]]]:
        """Repositories and their chosen tags, with the manifest each tag points at."""
        chosen = []
        recent: Callable[[str], bool] = lambda _digest: True  # noqa: E731
        for repository in await self._repositories():
            selectors = [selector for selector in options.selectors
                         if selector.matches_repository(repository)]
            if options.selectors and not selectors:
                continue
            if options.since is not None:
                recent = await self._pushed_since(repository, options.since)
            tags = []
            for tag in await self._tags(repository):
                if selectors and not any(selector.matches_tag(tag) for selector in selectors):
                    continue
                record = await self._registry.manifests.get(repository, tag)
                if recent(record.digest):
                    tags.append((tag, record))
            if tags:
                chosen.append((repository, tags))
        return chosen

    async def _repositories(self) -> list[str]:
        names: list[str] = []
        last: str | None = None
        while True:
            page = await self._registry.listings.repositories(PAGE, last)
            names.extend(page.items)
            if page.next_last is None:
                return names
            last = page.next_last

    async def _tags(self, repository: str) -> list[str]:
        names: list[str] = []
        last: str | None = None
        while True:
            page = await self._registry.listings.tags(repository, PAGE, last)
            names.extend(page.items)
            if page.next_last is None:
                return names
            last = page.next_last

    async def _pushed_since(self, repository: str, seconds: float) -> Callable[[str], bool]:
        """Which manifests of the repository were stored within `seconds`.

        The tags table keeps when each tag last moved, but no metadata port hands it out; the
        manifest's own creation time is what GC's graph reports, so that is what counts: a tag
        moved back to an older manifest is not "new".
        """
        gc = self._registry.maintenance.gc
        ids = {name: ident for ident, name in await gc.repositories()}
        if repository not in ids:
            return lambda _digest: False
        cutoff = datetime.now(UTC) - timedelta(seconds=seconds)
        graph = await gc.manifest_graph(ids[repository], repository, cutoff)
        fresh = {node.digest for node in graph.nodes if node.recent}
        return fresh.__contains__

    async def _walk(self, plan: _Plan, repository: str, record: ManifestRecord,
                    options: ExportOptions) -> None:
        digest = Digest.parse(record.digest)
        if digest in plan.manifests:
            return
        plan.manifests[digest] = record.content
        parsed = oci_manifest.parse(record.content, record.media_type)
        for blob in parsed.blobs:
            if blob.digest not in plan.blobs:
                info = await self._registry.blobs.stat(repository, blob.digest)
                plan.blobs[blob.digest] = info.size
        for child in parsed.children:
            if (options.platforms and child.platform is not None
                    and child.platform not in options.platforms):
                continue
            await self._walk(plan, repository,
                             await self._registry.manifests.get(repository, str(child.digest)),
                             options)
        if options.with_referrers:
            await self._referrers(plan, repository, digest, options)

    async def _referrers(self, plan: _Plan, repository: str, subject: Digest,
                         options: ExportOptions) -> None:
        last: str | None = None
        while True:
            page = await self._registry.listings.referrers(repository, subject, None, PAGE, last)
            for item in page.items:
                digest = Digest.parse(item["digest"])
                if digest in plan.manifests:
                    continue
                descriptor = Descriptor(item["mediaType"], digest, item["size"])
                plan.entries.append(entry_document(descriptor, repository, None))
                await self._walk(plan, repository,
                                 await self._registry.manifests.get(repository, str(digest)),
                                 options)
            if page.next_last is None:
                return
            last = page.next_last


async def _counted(body: AsyncIterator[bytes], report: ExportReport,
                   progress: Progress | None) -> AsyncIterator[bytes]:
    async for data in body:
        report.bytes_written += len(data)
        if progress is not None:
            progress(report)
        yield data
