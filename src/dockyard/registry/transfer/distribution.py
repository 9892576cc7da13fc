"""Moving in from the Go registry: its storage tree, read in place, written through our rules.

The Go registry (CNCF distribution 2.x) keeps every blob once under
`docker/registry/v2/blobs/<alg>/<2 hex>/<hex>/data`, and what a repository holds as link
files under `docker/registry/v2/repositories/<name>/`: `_layers/<alg>/<hex>/link` for its
blobs, `_manifests/revisions/<alg>/<hex>/link` for its manifests,
`_manifests/tags/<tag>/current/link` for its tags. Deleting removes the link file and leaves
the data to its GC, so only linked content is migrated: what the Go registry deleted stays out.

Every blob is hashed before it is linked (uploads.upload_whole, or uploads.adopt with `link`,
which hard-links the file into a filesystem store); manifests and tags go through
`Manifests.put`, children before the indexes and referrers naming them, so validation and
events apply as to a push. Whatever is in place already is skipped, which makes a rerun
finish an interrupted migration and a second one a no-op.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dockyard.oci import boundedjson
from dockyard.oci import manifest as oci_manifest
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.oci.reference import is_valid_name, is_valid_tag
from dockyard.registry.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestUnknown,
    RegistryError,
    RegistryErrors,
    describe_error,
)
from dockyard.registry.events import EventContext
from dockyard.registry.parallel import for_each
from dockyard.registry.registry import Registry
from dockyard.registry.uploads import Chunk
from dockyard.storage.base import BlobMismatch, file_chunks

V2 = "docker/registry/v2"
LINK_LIMIT = 1024
"""Bytes a link file may hold: one digest."""
MANIFEST_LIMIT = 4 * 1024 * 1024 + 1
"""Bytes read of a manifest; the registry's own limit refuses what is larger."""


class SourceTree(Protocol):
    """A Go registry's storage root (its `rootdirectory`), read-only. Paths are relative,
    separated by `/`."""

    def describe(self, path: str) -> str:
        """Where `path` is, as a message names it to the operator."""
        ...

    async def list_dirs(self, path: str) -> list[str]:
        """Names of the folders in `path`, sorted; none if it does not exist."""
        ...

    async def read_small(self, path: str, limit: int) -> bytes | None:
        """A file's bytes, at most `limit` of them; None if the file does not exist."""
        ...

    async def size(self, path: str) -> int | None:
        """A file's size; None if it does not exist."""
        ...

    def local_path(self, path: str) -> Path | None:
        """The file on a local filesystem, which a filesystem store may hard-link, if any."""
        ...

    def stream(self, path: str) -> AsyncIterator[bytes]:
        """A file's bytes in chunks."""
        ...


class FilesystemTree:
    """A storage root on a local filesystem: the Go registry's `filesystem` driver."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, path: str) -> Path:
        return self.root / path

    def describe(self, path: str) -> str:
        return str(self._path(path))

    async def list_dirs(self, path: str) -> list[str]:
        return await asyncio.to_thread(_folders, self._path(path))

    async def read_small(self, path: str, limit: int) -> bytes | None:
        return await asyncio.to_thread(_read_at_most, self._path(path), limit)

    async def size(self, path: str) -> int | None:
        try:
            return os.stat(self._path(path)).st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    def local_path(self, path: str) -> Path | None:
        return self._path(path)

    def stream(self, path: str) -> AsyncIterator[bytes]:
        return file_chunks(self._path(path))


def _folders(path: Path) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_at_most(path: Path, limit: int) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something of the Go registry that was not migrated, and why."""

    item: str
    reason: str
    error: bool
    """True for what should have migrated (a corrupt or missing blob, a manifest refused);
    False for what Dockyard does not take by design (Docker schema 1)."""

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}"


@dataclass
class MigrationReport:
    """What a migration found and did; updated as it goes, for progress lines."""

    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    blobs: int = 0
    """Blobs stored (each once, however many repositories link it)."""
    bytes: int = 0
    """Their bytes."""
    linked: int = 0
    """Of those, blobs hard-linked rather than copied."""
    layer_links: int = 0
    """Blobs linked into repositories (new blobs and ones another repository brought)."""
    present: int = 0
    """Tags, manifests and layer links found in place (a rerun)."""
    skipped: list[Skipped] = field(default_factory=list)
    repository: str = ""
    """The repository being migrated."""
    started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def errors(self) -> list[Skipped]:
        return [item for item in self.skipped if item.error]

    def rate(self) -> float:
        """Bytes stored per second so far."""
        return self.bytes / max(time.monotonic() - self.started, 1e-6)

    def summary(self) -> str:
        return (f"{self.repositories} repositories, {self.tags} tags, {self.manifests} "
                f"manifests, {self.blobs} blobs ({self.bytes} bytes, {self.linked} "
                f"hard-linked), {self.layer_links} layer links; {self.present} already in "
                f"place; {len(self.skipped)} skipped ({len(self.errors)} errors)")


Progress = Callable[[MigrationReport], None]


@dataclass(frozen=True, slots=True)
class _Manifest:
    digest: Digest
    content: bytes
    media_type: str
    needs: tuple[Digest, ...]
    """Children and subject: put first when the repository has them."""


def blob_data(digest: Digest) -> str:
    return f"{V2}/blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}/data"


async def list_repositories(source: SourceTree) -> list[str]:
    """Every repository: a folder under `repositories/` holding `_manifests` or `_layers`
    (names nest: `a` and `a/b` may both be repositories)."""
    found: list[str] = []

    async def walk(parts: list[str]) -> None:
        names = await source.list_dirs("/".join([V2, "repositories", *parts]))
        if parts and ("_manifests" in names or "_layers" in names):
            found.append("/".join(parts))
        for name in names:
            if not name.startswith("_"):
                await walk([*parts, name])

    await walk([])
    return found


class Migration:
    """One run over a source tree into a registry; see the module docstring."""

    def __init__(self, registry: Registry, source: SourceTree, link: bool,
                 progress: Progress | None = None, context: EventContext | None = None
                 ) -> None:
        self._registry = registry
        self._source = source
        self._link = link
        self._progress = progress or (lambda report: None)
        self._context = context
        self.report = MigrationReport()
        self._holders: dict[Digest, str] = {}
        """A repository each blob is linked into, to mount it from instead of copying."""

    def _skip(self, item: str, reason: str, error: bool = True) -> None:
        self.report.skipped.append(Skipped(item, reason, error))
        self._progress(self.report)

    async def run(self) -> MigrationReport:
        for name in await list_repositories(self._source):
            await self.repository(name)
        return self.report

    async def repository(self, name: str) -> None:
        if not is_valid_name(name):
            self._skip(f"repository {name}", "not a valid repository name")
            return
        self.report.repositories += 1
        self.report.repository = name
        base = f"{V2}/repositories/{name}"
        await for_each(await self._linked(f"{base}/_layers", name),
                       lambda digest: self._blob(name, digest))
        manifests: dict[Digest, _Manifest] = {}
        for digest in await self._linked(f"{base}/_manifests/revisions", name):
            entry = await self._read_manifest(name, digest)
            if entry is not None:
                manifests[digest] = entry
        tags = await self._tags(name, base, manifests)
        done: set[Digest] = set()

        async def put(digest: Digest, path: tuple[Digest, ...]) -> None:
            if digest in done or digest in path:
                return
            for needed in manifests[digest].needs:
                if needed in manifests:
                    await put(needed, (*path, digest))
            done.add(digest)
            await self._put_manifest(name, manifests[digest], tags.get(digest, []))

        for digest in manifests:
            await put(digest, ())

    async def _link_target(self, path: str, item: str) -> Digest | None:
        """The digest a link file names; None (and why, if it is not a deletion) otherwise."""
        content = await self._source.read_small(path, LINK_LIMIT)
        if content is None:
            return None  # deleted in the Go registry
        try:
            return Digest.parse(content.decode("ascii").strip())
        except (UnicodeDecodeError, InvalidDigest):
            self._skip(item, f"{self._source.describe(path)} does not hold a digest")
            return None

    async def _linked(self, folder: str, repository: str) -> list[Digest]:
        """The digests of `<folder>/<alg>/<hex>/link` whose link file names them."""
        found: list[Digest] = []
        for algorithm in await self._source.list_dirs(folder):
            for hex_name in await self._source.list_dirs(f"{folder}/{algorithm}"):
                item = f"{repository}@{algorithm}:{hex_name}"
                try:
                    expected = Digest.parse(f"{algorithm}:{hex_name}")
                except InvalidDigest:
                    self._skip(item, "not a digest")
                    continue
                path = f"{folder}/{algorithm}/{hex_name}/link"
                target = await self._link_target(path, item)
                if target is None:
                    continue
                if target != expected:
                    self._skip(item, f"{self._source.describe(path)} names {target}")
                    continue
                found.append(target)
        return found

    # -- blobs ----------------------------------------------------------------------------------

    async def _blob(self, repository: str, digest: Digest) -> None:
        item = f"blob {repository}@{digest}"
        blobs = self._registry.blobs
        try:
            await blobs.stat(repository, digest)
        except BlobUnknown:
            pass
        else:
            self._holders.setdefault(digest, repository)
            self.report.present += 1
            return
        holder = self._holders.get(digest)
        if holder is not None and await blobs.mount(repository, digest, holder, self._context):
            self.report.layer_links += 1
            self._progress(self.report)
            return
        data = blob_data(digest)
        size = await self._source.size(data)
        if size is None:
            self._skip(item, f"its data {self._source.describe(data)} is missing")
            return
        try:
            await self._store_blob(repository, digest, data, size)
        except BlobMismatch as exc:
            self._skip(item, f"refused: {exc}")
            return
        except DigestInvalid as exc:
            actual = exc.detail.get("actual") if isinstance(exc.detail, dict) else None
            self._skip(item, f"refused: {self._source.describe(data)} does not hash to "
                             f"{digest} (it is {actual})")
            return
        self._holders[digest] = repository
        self.report.blobs += 1
        self.report.bytes += size
        self.report.layer_links += 1
        self._progress(self.report)

    async def _store_blob(self, repository: str, digest: Digest, data: str, size: int) -> None:
        local = self._source.local_path(data)
        if self._link and local is not None:
            await self._registry.uploads.adopt(repository, digest, local, True, self._context)
            placed = (await self._registry.blobs.stat(repository, digest)).local_path
            if placed is not None and _same_file(local, placed):
                self.report.linked += 1
            return
        chunk = Chunk(self._source.stream(data), content_length=size)
        await self._registry.uploads.upload_whole(repository, digest, chunk, self._context)

    # -- manifests and tags ---------------------------------------------------------------------

    async def _read_manifest(self, repository: str, digest: Digest) -> _Manifest | None:
        item = f"manifest {repository}@{digest}"
        data = blob_data(digest)
        content = await self._source.read_small(data, MANIFEST_LIMIT)
        if content is None:
            self._skip(item, f"its data {self._source.describe(data)} is missing")
            return None
        actual = Digest.of(content, digest.algorithm)
        if actual != digest:
            self._skip(item, f"refused: {self._source.describe(data)} does not hash to "
                             f"{digest} (it is {actual})")
            return None
        try:
            document = boundedjson.loads(content)
        except ValueError:
            document = None
        if isinstance(document, dict) and document.get("schemaVersion") == 1:
            self._skip(item, "Docker schema 1 manifest: Dockyard does not store schema 1 "
                             "(convert it, e.g. with skopeo copy, and push it again)", error=False)
            return None
        try:
            parsed = oci_manifest.parse(content, None)
        except oci_manifest.InvalidManifest as exc:
            self._skip(item, f"refused: {exc}")
            return None
        needs = tuple(child.digest for child in parsed.children)
        if parsed.subject is not None:
            needs += (parsed.subject.digest,)
        return _Manifest(digest, content, parsed.media_type, needs)

    async def _tags(self, repository: str, base: str, manifests: dict[Digest, _Manifest]
                    ) -> dict[Digest, list[str]]:
        """The tags to set, by the manifest they name; tags in place already are counted."""
        wanted: dict[Digest, list[str]] = {}
        for tag in await self._source.list_dirs(f"{base}/_manifests/tags"):
            item = f"tag {repository}:{tag}"
            if not is_valid_tag(tag):
                self._skip(item, "not a valid tag")
                continue
            target = await self._link_target(f"{base}/_manifests/tags/{tag}/current/link", item)
            if target is None:
                continue
            if target not in manifests:
                self._skip(item, f"it names {target}, which was not migrated (see above, or "
                                 "deleted in the Go registry)",
                           error=False)
                continue
            try:
                current = await self._registry.manifests.get(repository, tag)
            except ManifestUnknown:
                wanted.setdefault(target, []).append(tag)
                continue
            if current.digest == str(target):
                self.report.present += 1
            else:
                self._skip(item, f"Dockyard has it at {current.digest} already: left as it is")
        return wanted

    async def _put_manifest(self, repository: str, entry: _Manifest, tags: list[str]) -> None:
        manifests = self._registry.manifests
        try:
            await manifests.get(repository, str(entry.digest))
            exists = True
        except ManifestUnknown:
            exists = False
        if exists and not tags:
            self.report.present += 1
            return
        try:
            await manifests.put(repository, str(entry.digest), _once(entry.content),
                                entry.media_type, tags, self._context)
        except (RegistryError, RegistryErrors) as exc:
            self._skip(f"manifest {repository}@{entry.digest}", f"refused: {describe_error(exc)}")
            return
        if exists:
            self.report.present += 1
        else:
            self.report.manifests += 1
        self.report.tags += len(tags)
        self._progress(self.report)


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


def _same_file(source: Path, placed: Path) -> bool:
    """Whether the stored blob is the source file itself (hard-linked, not copied)."""
    try:
        return os.path.samefile(source, placed)
    except OSError:
        return False


async def migrate(registry: Registry, source: SourceTree | Path, link: bool = False,
                  progress: Progress | None = None, context: EventContext | None = None
                  ) -> MigrationReport:
    """Migrate every repository of a Go registry's storage root into `registry`."""
    tree = FilesystemTree(source) if isinstance(source, Path) else source
    return await Migration(registry, tree, link, progress, context).run()
