"""Export to a layout and import it into an empty registry, in-process on SQLite."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.oci.layout import open_layout
from dockyard.oci.manifest import Platform
from dockyard.registry.transfer.export import Exporter, ExportOptions, parse_selector
from dockyard.registry.transfer.imports import (
    Importer,
    ImportFailed,
    ImportOptions,
    ImportReport,
    OnConflict,
)
from dockyard.registry.transfer.writers import DirectoryWriter, TarWriter
from tests.system.api.client import (
    Manifest,
    artifact_manifest,
    image_manifest,
    index_manifest,
    random_bytes,
)
from tests.unit.registry.kit import Kit, open_kit, run

SIGNATURE = "application/vnd.dockyard.test.signature"


@dataclass
class Source:
    app: Manifest
    signature: Manifest
    multi: Manifest
    shared: Manifest


async def seed(kit: Kit) -> Source:
    layer = random_bytes(50_000)
    app = image_manifest([layer, random_bytes(3_000)])
    await kit.push("lib/app", app, "1.0")
    signature = artifact_manifest(SIGNATURE, subject=app, layers=[random_bytes(200)])
    await kit.push("lib/app", signature)
    multi = index_manifest([image_manifest([random_bytes(9_000)]),
                            image_manifest([random_bytes(7_000)])])
    await kit.push("lib/multi", multi, "1.0")
    await kit.put("lib/multi", multi, "latest")
    shared = image_manifest([layer])
    await kit.push("other", shared, "v1")
    return Source(app, signature, multi, shared)


async def snapshot(kit: Kit) -> dict[str, dict[str, bytes]]:
    """Every repository's tags with the manifest bytes each points at."""
    found: dict[str, dict[str, bytes]] = {}
    for repository in (await kit.registry.listings.repositories(100, None)).items:
        tags = (await kit.registry.listings.tags(repository, 100, None)).items
        found[repository] = {tag: (await kit.registry.manifests.get(repository, tag)).content
                             for tag in tags}
    return found


async def referrers(kit: Kit, repository: str, subject: str) -> list[str]:
    page = await kit.registry.listings.referrers(repository, Digest.parse(subject), None,
                                                 100, None)
    return [item["digest"] for item in page.items]


async def export_to(kit: Kit, target: Path, **options: object) -> None:
    await Exporter(kit.registry).export(DirectoryWriter(target),
                                        ExportOptions(**options))  # type: ignore[arg-type]


async def import_from(kit: Kit, path: Path, **options: object) -> ImportReport:
    reader = open_layout(path)
    try:
        return await Importer(kit.registry, reader).run(
            ImportOptions(**options))  # type: ignore[arg-type]
    finally:
        reader.close()


Scenario = Callable[[Kit, Kit, Source], Awaitable[None]]


def with_registries(tmp_path: Path, scenario: Scenario) -> None:
    """Run `scenario` on a seeded source registry and an empty target."""
    async def run_it() -> None:
        source = await open_kit(tmp_path / "a")
        target = await open_kit(tmp_path / "b")
        try:
            await scenario(source, target, await seed(source))
        finally:
            await source.registry.close()
            await target.registry.close()

    run(run_it)


@pytest.mark.parametrize("form", ["directory", "tar"])
def test_round_trip_keeps_catalog_tags_bytes_and_referrers(tmp_path: Path, form: str) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        if form == "tar":
            path = tmp_path / "out.tar"
            with path.open("wb") as out:
                await Exporter(source.registry).export(
                    TarWriter(out), ExportOptions(with_referrers=True))
        else:
            path = tmp_path / "out"
            await export_to(source, path, with_referrers=True)
        report = await import_from(target, path)
        assert report.tags_added == 4
        assert await snapshot(target) == await snapshot(source)
        assert await referrers(target, "lib/app", seeded.app.digest) == \
            [seeded.signature.digest]
        for child in seeded.multi.children:
            assert await target.has_manifest("lib/multi", child.digest)
        assert (await target.gc()).blobs_removed == 0
        again = await import_from(target, path)
        assert (again.blobs_added, again.manifests_added, again.tags_added) == (0, 0, 0)

    with_registries(tmp_path, scenario)


def test_every_blob_is_written_once(tmp_path: Path) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        buffer = io.BytesIO()
        await Exporter(source.registry).export(TarWriter(buffer), ExportOptions())
        layer = seeded.shared.blobs[1]
        assert buffer.getvalue().count(layer) == 1

    with_registries(tmp_path, scenario)


def test_selectors_platforms_and_base(tmp_path: Path) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        await export_to(source, tmp_path / "one", selectors=(parse_selector("lib/*:1.?"),))
        index = json.loads((tmp_path / "one" / "index.json").read_bytes())
        named = {(e["annotations"]["io.dockyard.repository"],
                  e["annotations"]["org.opencontainers.image.ref.name"])
                 for e in index["manifests"]}
        assert named == {("lib/app", "1.0"), ("lib/multi", "1.0")}
        assert not (tmp_path / "one" / "blobs" / "sha256" /
                    seeded.signature.digest.split(":")[1]).exists()

        await export_to(source, tmp_path / "amd", selectors=(parse_selector("lib/multi"),),
                        platforms=frozenset({Platform("arch1", "linux")}))
        blobs = tmp_path / "amd" / "blobs" / "sha256"
        first, second = seeded.multi.children
        assert not (blobs / first.digest.split(":")[1]).exists()
        assert (blobs / second.digest.split(":")[1]).exists()

        base = frozenset(open_layout(tmp_path / "one").names())
        digests = frozenset(Digest.parse(name.replace("blobs/sha256/", "sha256:"))
                            for name in base)
        await export_to(source, tmp_path / "next", base=digests)
        left = {p.name for p in (tmp_path / "next" / "blobs" / "sha256").iterdir()}
        assert not left & {name.rsplit("/", 1)[1] for name in base}
        assert seeded.shared.digest.split(":")[1] in left

    with_registries(tmp_path, scenario)


def test_since_exports_only_recent_pushes(tmp_path: Path) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        await seed(source)
        await export_to(source, tmp_path / "recent", since=3600.0)
        assert len(json.loads((tmp_path / "recent" / "index.json").read_bytes())
                   ["manifests"]) == 4
        await export_to(source, tmp_path / "none", since=0.0)
        assert json.loads((tmp_path / "none" / "index.json").read_bytes())["manifests"] == []

    with_registries(tmp_path, scenario)


def test_tag_conflicts_skip_overwrite_fail_and_dry_run(tmp_path: Path) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        await export_to(source, tmp_path / "out")
        mine = image_manifest([random_bytes(100)])
        await target.push("lib/app", mine, "1.0")

        dry = await import_from(target, tmp_path / "out", dry_run=True)
        assert dry.conflicts and any("add manifest" in line for line in dry.changes)
        assert not await target.has_manifest("lib/app", seeded.app.digest)

        with pytest.raises(ImportFailed, match=r"lib/app:1\.0"):
            await import_from(target, tmp_path / "out", on_conflict=OnConflict.FAIL)
        assert await snapshot(target) == {"lib/app": {"1.0": mine.body}}
        assert not await target.linked("other", Digest.parse(
            seeded.shared.digest).__str__())

        skipped = await import_from(target, tmp_path / "out")
        assert skipped.conflicts == [f"lib/app:1.0 is {mine.digest}, the layout has "
                                     f"{seeded.app.digest}"]
        assert (await target.registry.manifests.get("lib/app", "1.0")).content == mine.body

        await import_from(target, tmp_path / "out", on_conflict=OnConflict.OVERWRITE)
        assert (await target.registry.manifests.get("lib/app", "1.0")).content == \
            seeded.app.body

    with_registries(tmp_path, scenario)
