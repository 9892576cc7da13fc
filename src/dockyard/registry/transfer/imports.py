"""`dockyard import`: an OCI image layout loaded through the registry's own services.

The layout is read and checked whole before anything is written: every manifest's bytes
against its digest, every blob it names present (in the layout, or already in the registry),
every tag's conflicts known. Then blobs go in through `Uploads.upload_whole` (hashed while
streaming), then manifests through `Manifests.put`, children before the indexes that list
them and subjects before their referrers: a manifest is only ever written once all it
references is in. What the repository already holds is skipped, so an interrupted import
rerun finishes the work without copying anything twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import IO

from dockyard.oci import manifest as oci_manifest
from dockyard.oci.digest import Digest
from dockyard.oci.layout import (
    INDEX_FILE,
    LAYOUT_FILE,
    Entry,
    LayoutReader,
    check_layout_document,
    parse_index,
)
from dockyard.oci.manifest import ParsedManifest
from dockyard.oci.reference import is_valid_name, is_valid_tag
from dockyard.registry.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestUnknown,
    RegistryError,
    RegistryErrors,
)
from dockyard.registry.parallel import for_each
from dockyard.registry.registry import Registry
from dockyard.registry.transfer.writers import once
from dockyard.registry.uploads import Chunk

READ_SIZE = 1024 * 1024
MANIFEST_LIMIT = 16 * 1024 * 1024
"""Manifests larger than this are not read from a layout (the registry's own limit is lower)."""


class ImportFailed(Exception):
    """The layout cannot be imported (as it is, or with these options); the message names
    the item."""


class OnConflict(Enum):
    SKIP = "skip"
    OVERWRITE = "overwrite"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class ImportOptions:
    repository: str | None = None
    """The target of entries that carry no repository annotation (skopeo's, oras's)."""
    on_conflict: OnConflict = OnConflict.SKIP
    dry_run: bool = False


@dataclass
class ImportReport:
    repositories: int = 0
    tags_added: int = 0
    tags_moved: int = 0
    tags_unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    manifests_added: int = 0
    manifests_present: int = 0
    blobs_added: int = 0
    blobs_present: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    changes: list[str] = field(default_factory=list)
    """What is (or, in a dry run, would be) added or changed, one line each."""
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        conflicts = f", {len(self.conflicts)} tag conflicts" if self.conflicts else ""
        return (f"{self.repositories} repositories, {self.tags_added} tags added, "
                f"{self.tags_moved} moved, {self.tags_unchanged} unchanged{conflicts}; "
                f"{self.manifests_added} manifests added ({self.manifests_present} present); "
                f"{self.blobs_added} blobs added ({self.blobs_present} present), "
                f"{self.bytes_done} bytes in {time.monotonic() - self.started:.1f}s")


@dataclass
class _Manifest:
    digest: Digest
    media_type: str
    content: bytes
    parsed: ParsedManifest
    tags: list[str] = field(default_factory=list)


@dataclass
class _Repository:
    """What the layout holds for one repository, and the plan for it."""

    name: str
    manifests: dict[Digest, _Manifest] = field(default_factory=dict)
    blobs: dict[Digest, int] = field(default_factory=dict)
    """Every blob its manifests need, with its size."""
    uploads: list[Digest] = field(default_factory=list)
    mounts: list[Digest] = field(default_factory=list)
    puts: list[tuple[_Manifest, list[str]]] = field(default_factory=list)


Progress = Callable[[ImportReport], None]


class Importer:
    def __init__(self, registry: Registry, reader: LayoutReader) -> None:
        self._registry = registry
        self._reader = reader
        self._repositories: dict[str, _Repository] = {}

    async def run(self, options: ImportOptions, progress: Progress | None = None
                  ) -> ImportReport:
        """Check the whole layout, plan, and (unless a dry run) write; ImportFailed before
        anything is written when the layout or a tag conflict (`fail`) forbids it."""
        report = ImportReport()
        for entry in self._entries():
            repository, tag = self._target(entry, options)
            self._load(self._repository(repository), entry.descriptor.digest,
                       entry.descriptor.media_type, entry.descriptor.size, "index.json")
            if tag is not None:
                self._tag(repository, tag, entry.descriptor.digest)
        report.repositories = len(self._repositories)
        for held in self._repositories.values():
            await self._plan(held, options, report)
        if report.conflicts and options.on_conflict is OnConflict.FAIL:
            raise ImportFailed("tags exist with other digests (--on-conflict fail):\n  "
                               + "\n  ".join(report.conflicts))
        if options.dry_run:
            return report
        if await self._registry.readonly.enabled():
            raise ImportFailed("the registry is in read-only mode")
        for held in self._repositories.values():
            await self._write_blobs(held, report, progress)
        for held in self._repositories.values():
            await self._write_manifests(held)
        return report

    # -- reading the layout ------------------------------------------------------------------

    def _entries(self) -> list[Entry]:
        check_layout_document(self._reader.read_file(LAYOUT_FILE))
        return parse_index(self._reader.read_file(INDEX_FILE))

    @staticmethod
    def _target(entry: Entry, options: ImportOptions) -> tuple[str, str | None]:
        where = f"{INDEX_FILE} entry {entry.descriptor.digest}"
        repository, tag = entry.repository, entry.tag
        if tag is not None and not is_valid_tag(tag):
            # A full reference (`host/name:tag`) as some tools write it: its last part.
            colon = tag.rfind(":")
            if colon <= tag.rfind("/") or not is_valid_tag(tag[colon + 1:]):
                raise ImportFailed(f"{where}: {tag!r} is not a tag")
            tag = tag[colon + 1:]
        repository = repository or options.repository
        if repository is None:
            raise ImportFailed(f"{where} names no repository (no io.dockyard.repository "
                               "annotation): give one with --repository")
        if not is_valid_name(repository):
            raise ImportFailed(f"{where}: {repository!r} is not a repository name")
        return repository, tag

    def _tag(self, repository: str, tag: str, digest: Digest) -> None:
        held = self._repositories[repository]
        for node in held.manifests.values():
            if tag in node.tags and node.digest != digest:
                raise ImportFailed(f"{INDEX_FILE} tags {repository}:{tag} twice: "
                                   f"{node.digest} and {digest}")
        if tag not in held.manifests[digest].tags:
            held.manifests[digest].tags.append(tag)

    def _repository(self, name: str) -> _Repository:
        return self._repositories.setdefault(name, _Repository(name))

    def _load(self, repository: _Repository, digest: Digest, media_type: str, size: int,
              named_by: str) -> None:
        """Read, verify and parse a manifest and, recursively, what it lists."""
        if digest in repository.manifests:
            return
        where = f"manifest {digest} (named by {named_by})"
        stored = self._reader.blob_size(digest)
        if stored is None:
            raise ImportFailed(f"{where} is missing from the layout")
        if stored != size:
            raise ImportFailed(f"{where}: the layout holds {stored} bytes, {size} are named")
        content = self._reader.read_file(f"blobs/{digest.algorithm}/{digest.hex}",
                                         MANIFEST_LIMIT)
        if Digest.of(content, digest.algorithm) != digest:
            raise ImportFailed(f"{where} is corrupt: its bytes do not hash to its digest")
        try:
            parsed = oci_manifest.parse(content, media_type)
        except oci_manifest.InvalidManifest as exc:
            raise ImportFailed(f"{where} is invalid: {exc}") from exc
        node = _Manifest(digest, parsed.media_type, content, parsed)
        repository.manifests[digest] = node
        for blob in parsed.blobs:
            held = self._reader.blob_size(blob.digest)
            if held is not None and held != blob.size:
                raise ImportFailed(f"blob {blob.digest} (in manifest {digest}): the layout "
                                   f"holds {held} bytes, the manifest says {blob.size}")
            repository.blobs[blob.digest] = blob.size
        for child in parsed.children:
            if self._reader.blob_size(child.digest) is not None:
                self._load(repository, child.digest, child.media_type, child.size,
                           f"index {digest}")
        subject = parsed.subject
        if subject is not None and self._reader.blob_size(subject.digest) is not None:
            self._load(repository, subject.digest, subject.media_type, subject.size,
                       f"the subject of {digest}")

    # -- planning ----------------------------------------------------------------------------

    async def _plan(self, repository: _Repository, options: ImportOptions,
                    report: ImportReport) -> None:
        name = repository.name
        try:
            self._registry.refuse_push(name)
        except RegistryError as exc:
            raise ImportFailed(f"repository {name}: {exc.message}") from exc
        for digest, size in repository.blobs.items():
            if await self._linked(name, digest):
                report.blobs_present += 1
            elif self._reader.blob_size(digest) is not None:
                repository.uploads.append(digest)
                report.bytes_total += size
                report.changes.append(f"add blob {name}@{digest} ({size} bytes)")
            elif await self._held_elsewhere(name, digest):
                repository.mounts.append(digest)
                report.changes.append(f"link blob {name}@{digest} (held by another repository)")
            else:
                users = [str(m.digest) for m in repository.manifests.values()
                         if any(b.digest == digest for b in m.parsed.blobs)]
                raise ImportFailed(f"blob {digest} is missing from the layout (needed by "
                                   f"manifest {users[0]} for {name})")
        for node in _ordered(repository.manifests):
            present = await self._current(name, str(node.digest)) is not None
            tags = []
            for tag in node.tags:
                tags.extend(await self._plan_tag(name, tag, node.digest, options, report))
            if present:
                report.manifests_present += 1
            else:
                report.manifests_added += 1
                report.changes.append(f"add manifest {name}@{node.digest} ({node.media_type})")
            if tags or not present:
                repository.puts.append((node, tags))

    async def _plan_tag(self, name: str, tag: str, digest: Digest, options: ImportOptions,
                        report: ImportReport) -> list[str]:
        """The tag if it is to be written ([] if not); records the change or conflict."""
        current = await self._current(name, tag)
        if current is None:
            report.tags_added += 1
            report.changes.append(f"tag {name}:{tag} -> {digest}")
            return [tag]
        if current == str(digest):
            report.tags_unchanged += 1
            return []
        conflict = f"{name}:{tag} is {current}, the layout has {digest}"
        report.conflicts.append(conflict)
        if options.on_conflict is not OnConflict.OVERWRITE:
            return []
        report.tags_moved += 1
        report.changes.append(f"move tag {name}:{tag} -> {digest} (was {current})")
        return [tag]

    async def _current(self, repository: str, reference: str) -> str | None:
        try:
            return (await self._registry.manifests.get(repository, reference)).digest
        except ManifestUnknown:
            return None

    async def _linked(self, repository: str, digest: Digest) -> bool:
        try:
            await self._registry.blobs.stat(repository, digest)
        except BlobUnknown:
            return False
        return True

    async def _held_elsewhere(self, repository: str, digest: Digest) -> bool:
        """Whether another repository of this import holds the blob already (an incremental
        export leaves out what an earlier one carried)."""
        return await self._source(repository, digest) is not None

    async def _source(self, repository: str, digest: Digest) -> str | None:
        for other in self._repositories:
            if other != repository and await self._linked(other, digest):
                return other
        return None

    # -- writing -----------------------------------------------------------------------------

    async def _write_blobs(self, repository: _Repository, report: ImportReport,
                           progress: Progress | None) -> None:
        name = repository.name

        async def upload(digest: Digest) -> None:
            source = await self._source(name, digest)
            if source is not None and await self._registry.blobs.mount(name, digest, source):
                report.blobs_added += 1
                return
            size = repository.blobs[digest]
            with self._reader.open_blob(digest) as stream:
                body = _read(self._reader, stream, report, progress)
                try:
                    await self._registry.uploads.upload_whole(
                        name, digest, Chunk(body, None, size))
                except DigestInvalid as exc:
                    raise ImportFailed(f"blob {digest} is corrupt in the layout: its bytes "
                                       f"hash to {exc.detail.get('actual')}") from exc
                except RegistryError as exc:
                    raise ImportFailed(f"blob {digest} for {name}: {exc.message}") from exc
            report.blobs_added += 1

        await for_each(repository.uploads, upload)
        for digest in repository.mounts:
            source = await self._source(name, digest)
            if source is None or not await self._registry.blobs.mount(name, digest, source):
                raise ImportFailed(f"blob {digest} is missing from the layout and could not "
                                   f"be linked into {name}")
            report.blobs_added += 1

    async def _write_manifests(self, repository: _Repository) -> None:
        for node, tags in repository.puts:
            try:
                await self._registry.manifests.put(
                    repository.name, str(node.digest), once(node.content), node.media_type,
                    tags)
            except (RegistryError, RegistryErrors) as exc:
                raise ImportFailed(f"manifest {repository.name}@{node.digest}: "
                                   f"{_describe(exc)}") from exc


def _ordered(manifests: dict[Digest, _Manifest]) -> list[_Manifest]:
    """Children before the indexes listing them, subjects before their referrers."""
    done: dict[Digest, _Manifest] = {}
    visiting: set[Digest] = set()

    def visit(node: _Manifest) -> None:
        if node.digest in done or node.digest in visiting:
            return
        visiting.add(node.digest)
        needs = [child.digest for child in node.parsed.children]
        if node.parsed.subject is not None:
            needs.append(node.parsed.subject.digest)
        for digest in needs:
            if digest in manifests:
                visit(manifests[digest])
        done[node.digest] = node

    for node in manifests.values():
        visit(node)
    return list(done.values())


def _describe(error: RegistryError | RegistryErrors) -> str:
    if isinstance(error, RegistryErrors):
        return "; ".join(_describe(item) for item in error.errors)
    detail = f" ({error.detail})" if error.detail else ""
    return f"{error.code}: {error.message}{detail}"


async def _read(reader: LayoutReader, stream: IO[bytes], report: ImportReport,
                progress: Progress | None) -> AsyncIterator[bytes]:
    """A blob's bytes, read in a thread: several blobs are read, hashed and written at once."""
    while data := await asyncio.to_thread(reader.read_chunk, stream, READ_SIZE):
        report.bytes_done += len(data)
        if progress is not None:
            progress(report)
        yield data
