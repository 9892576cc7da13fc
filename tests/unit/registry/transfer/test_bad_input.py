"""Layouts that must not be imported: the error names the item, and nothing is left visible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.registry.transfer.imports import ImportFailed
from tests.system.api.client import image_manifest, random_bytes
from tests.unit.registry.kit import Kit
from tests.unit.registry.transfer.test_round_trip import (
    Source,
    export_to,
    import_from,
    snapshot,
    with_registries,
)


def blob_file(layout: Path, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":")
    return layout / "blobs" / algorithm / hex_digest


async def exported(source: Kit, tmp_path: Path) -> Path:
    layout = tmp_path / "layout"
    await export_to(source, layout, with_referrers=True)
    return layout


async def refused(target: Kit, layout: Path, message: str) -> None:
    """The import fails naming the item, and no tag or manifest was written (blobs checked
    before the failure may be linked: they are invisible as images, and a rerun uses them)."""
    with pytest.raises(ImportFailed, match=message):
        await import_from(target, layout)
    assert all(tags == {} for tags in (await snapshot(target)).values())


def test_a_corrupt_blob_is_named_and_no_manifest_is_written(tmp_path: Path) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        layout = await exported(source, tmp_path)
        layer = blob_file(layout, seeded.multi.children[1].document["layers"][0]["digest"])
        data = bytearray(layer.read_bytes())
        data[100] ^= 0xFF
        layer.write_bytes(bytes(data))
        await refused(target, layout, f"blob sha256:{layer.name} is corrupt")
        for repository, manifest in [("lib/app", seeded.app), ("other", seeded.shared),
                                     ("lib/multi", seeded.multi.children[0])]:
            assert not await target.has_manifest(repository, manifest.digest)

    with_registries(tmp_path, scenario)


def test_a_missing_blob_is_named_before_anything_is_written(tmp_path: Path) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        layout = await exported(source, tmp_path)
        config = seeded.app.document["config"]["digest"]
        blob_file(layout, config).unlink()
        await refused(target, layout, f"blob {config} is missing from the layout "
                                      f"\\(needed by manifest {seeded.app.digest}")
        assert not await target.linked("other", Digest.parse(config).__str__())

    with_registries(tmp_path, scenario)


def test_a_missing_or_corrupt_manifest_is_named(tmp_path: Path) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        layout = await exported(source, tmp_path)
        manifest = blob_file(layout, seeded.shared.digest)
        manifest.write_bytes(manifest.read_bytes().replace(b"schemaVersion", b"schemaVersiox"))
        await refused(target, layout, f"manifest {seeded.shared.digest} .* is corrupt")
        manifest.unlink()
        await refused(target, layout, f"manifest {seeded.shared.digest} .* is missing")

    with_registries(tmp_path, scenario)


def test_a_manifest_naming_nothing_in_the_layout(tmp_path: Path) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        layout = await exported(source, tmp_path)
        orphan = image_manifest([random_bytes(100)])
        blob_file(layout, orphan.digest).write_bytes(orphan.body)
        index = json.loads((layout / "index.json").read_bytes())
        index["manifests"].append({**orphan.descriptor(), "annotations": {
            "io.dockyard.repository": "lonely", "org.opencontainers.image.ref.name": "v1"}})
        (layout / "index.json").write_text(json.dumps(index))
        await refused(target, layout, f"missing from the layout .*{orphan.digest} for lonely")

    with_registries(tmp_path, scenario)


@pytest.mark.parametrize("digest", ["sha256:../../../../etc/passwd", "md5:" + "0" * 32])
def test_index_json_naming_paths_or_unknown_algorithms(tmp_path: Path, digest: str) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        layout = await exported(source, tmp_path)
        index = json.loads((layout / "index.json").read_bytes())
        index["manifests"][0]["digest"] = digest
        (layout / "index.json").write_text(json.dumps(index))
        with pytest.raises(ValueError, match=r"index\.json"):
            await import_from(target, layout)
        assert await snapshot(target) == {}

    with_registries(tmp_path, scenario)


def test_entries_without_a_repository_need_one(tmp_path: Path) -> None:
    async def scenario(source: Kit, target: Kit, seeded: Source) -> None:
        layout = await exported(source, tmp_path)
        index = json.loads((layout / "index.json").read_bytes())
        for entry in index["manifests"]:
            del entry["annotations"]["io.dockyard.repository"]
        index["manifests"] = [entry for entry in index["manifests"]
                              if entry["digest"] == seeded.shared.digest]
        (layout / "index.json").write_text(json.dumps(index))
        await refused(target, layout, "--repository")
        await import_from(target, layout, repository="moved/here")
        assert await snapshot(target) == {"moved/here": {"v1": seeded.shared.body}}

    with_registries(tmp_path, scenario)
