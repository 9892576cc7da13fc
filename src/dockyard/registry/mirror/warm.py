"""Warming the cache: pulling images through the mirror before any client asks for them.

An image is pulled the way a client pulls it, through `registry.manifests` and
`registry.blobs`, so warming shares every rule of a pull: one download per blob however many
processes ask, digests verified before anything is cached, the pull time that eviction reads.
Every platform of an index is warmed, and the referrers (signatures, SBOMs) of every manifest
with their blobs, since a client that verifies an image asks for them too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.oci import manifest as oci_manifest
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.oci.reference import is_valid_name, is_valid_tag
from dockyard.registry.parallel import BLOBS_AT_ONCE, for_each
from dockyard.registry.registry import Registry

DEFAULT_TAG = "latest"
"""The tag of an image named without one, as docker and podman take it."""
"""Blobs of one image downloaded at once."""
REFERRERS_PAGE = 100


class InvalidImage(ValueError):
    """Text that does not name an image of this registry; the message says why."""


class NotMirrored(ValueError):
    """The repository is local: it has no upstream to warm it from."""


class IncompleteBlob(RuntimeError):
    """A blob download ended before all its bytes arrived."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image as clients name it on this registry: the local repository (with the mirror's
    prefix) and a tag or digest."""

    repository: str
    reference: str

    def __str__(self) -> str:
        separator = "@" if ":" in self.reference else ":"
        return f"{self.repository}{separator}{self.reference}"


def parse_image(text: str) -> ImageRef:
    """`<repository>[:<tag>]` or `<repository>[:<tag>]@<digest>` (the digest wins, as docker
    pulls it); a name without tag means `latest`."""
    name, at, digest_text = text.strip().partition("@")
    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
    if not name:
        raise InvalidImage(f"{text!r}: no repository name")
    if not is_valid_name(name):
        raise InvalidImage(f"{text!r}: {name!r} is not a repository name (lowercase "
                           "components separated by /, such as docker.io/library/alpine)")
    if at:
        try:
            return ImageRef(name, str(Digest.parse(digest_text)))
        except InvalidDigest as exc:
            raise InvalidImage(f"{text!r}: {exc}") from None
    if tag is None:
        return ImageRef(name, DEFAULT_TAG)
    if not is_valid_tag(tag):
        raise InvalidImage(f"{text!r}: {tag!r} is not a tag")
    return ImageRef(name, tag)


def parse_image_list(text: str, source: str) -> list[ImageRef]:
    """One image a line; `#` starts a comment, blank lines are skipped. Every bad line is
    named (`source:line: why`) in one InvalidImage."""
    images: list[ImageRef] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        try:
            images.append(parse_image(content))
        except InvalidImage as exc:
            problems.append(f"{source}:{number}: {exc}")
    if problems:
        raise InvalidImage("\n".join(problems))
    return images


@dataclass
class WarmReport:
    """What warming one image found and moved; updated as it goes, for progress."""

    image: ImageRef
    digest: str | None = None
    manifests: int = 0
    referrers: int = 0
    blobs_cached: int = 0
    """Blobs that were stored already."""
    blobs_fetched: int = 0
    bytes_cached: int = 0
    bytes_fetched: int = 0
    bytes_total: int = 0
    """Of every blob, once the manifests are read."""
    bytes_done: int = 0
    sizes: dict[str, int] = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        return (f"{self.manifests} manifests ({self.referrers} referrers), "
                f"{self.blobs_cached + self.blobs_fetched} blobs: "
                f"{self.blobs_cached} cached ({self.bytes_cached} bytes), "
                f"{self.blobs_fetched} fetched ({self.bytes_fetched} bytes)")


Progress = Callable[[WarmReport], None]


class Warmer:
    """Pulls images through a registry's mirror, each to the last blob."""

    def __init__(self, registry: Registry, parallel: int = BLOBS_AT_ONCE) -> None:
        self._registry = registry
        self._parallel = parallel

    async def warm(self, image: ImageRef, progress: Progress | None = None) -> WarmReport:
        """Cache the image, every manifest it lists, their referrers and all their blobs;
        NotMirrored for a local repository, else the first error met (RegistryError,
        IncompleteBlob, a broken download)."""
        def tick() -> None:
            if progress is not None:
                progress(report)

        if self._registry.routes.route(image.repository) is None:
            raise NotMirrored(f"{image.repository} is not a mirrored repository")
        report = WarmReport(image)
        seen: list[str] = []
        report.digest = await self._manifest(image.repository, image.reference, report, seen)
        await self._referrers(image.repository, seen, report)
        report.bytes_total = sum(report.sizes.values())
        tick()
        await for_each(report.sizes,
                       lambda digest: self._blob(image.repository, digest, report, tick),
                       self._parallel)
        return report

    async def _manifest(self, repository: str, reference: str, report: WarmReport,
                        seen: list[str]) -> str:
        """Fetch a manifest and, for an index, its children at any depth; its blobs are
        noted in the report."""
        record = await self._registry.manifests.get(repository, reference)
        if record.digest in seen:
            return record.digest
        seen.append(record.digest)
        report.manifests += 1
        parsed = oci_manifest.parse(record.content, record.media_type)
        for blob in parsed.blobs:
            report.sizes[str(blob.digest)] = blob.size
        for child in parsed.children:
            await self._manifest(repository, str(child.digest), report, seen)
        return record.digest

    async def _referrers(self, repository: str, seen: list[str], report: WarmReport) -> None:
        """The referrers of every manifest seen, and theirs in turn (a signature of an SBOM)."""
        index = 0
        while index < len(seen):
            subject = Digest.parse(seen[index])
            index += 1
            await self._registry.manifests.refresh_referrers(repository, subject)
            last: str | None = None
            while True:
                page = await self._registry.listings.referrers(
                    repository, subject, None, REFERRERS_PAGE, last)
                for descriptor in page.items:
                    if descriptor["digest"] not in seen:
                        report.referrers += 1
                        await self._manifest(repository, descriptor["digest"], report, seen)
                if page.next_last is None:
                    break
                last = page.next_last

    async def _blob(self, repository: str, digest: str, report: WarmReport,
                    tick: Callable[[], None]) -> None:
        info = await self._registry.blobs.stat(repository, Digest.parse(digest))
        if info.download is None:
            report.blobs_cached += 1
            report.bytes_cached += info.size
            report.bytes_done += info.size
            tick()
            return
        received = 0
        async for chunk in info.download.read():
            received += len(chunk)
            report.bytes_done += len(chunk)
            tick()
        expected = report.sizes[digest]
        if received != expected:
            raise IncompleteBlob(f"blob {digest}: {received} of {expected} bytes arrived")
        report.blobs_fetched += 1
        report.bytes_fetched += received
