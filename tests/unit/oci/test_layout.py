"""Reading OCI image layouts safely: names, links and digests come from whoever wrote them."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from dockyard.oci.digest import Digest
from dockyard.oci.layout import (
    LayoutError,
    blob_digests,
    check_layout_document,
    open_layout,
    parse_blob_digest,
    parse_index,
    safe_name,
    zstd_writer,
)

CONTENT = b"hello layout"
DIGEST = Digest.of(CONTENT)
BLOB = f"blobs/sha256/{DIGEST.hex}"


def index(*digests: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
         "size": 1, "annotations": {"org.opencontainers.image.ref.name": "v1"}}
        for digest in digests]}).encode()


def tar_with(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "blobs/../../x", "a\\b", ""])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(LayoutError):
        safe_name(name)


def test_safe_names_are_normalised() -> None:
    assert safe_name("./blobs//sha256/abc") == "blobs/sha256/abc"


def test_blob_names_need_a_known_algorithm() -> None:
    assert parse_blob_digest(BLOB) == DIGEST
    assert parse_blob_digest("index.json") is None
    with pytest.raises(LayoutError, match="md5"):
        parse_blob_digest("blobs/md5/" + "a" * 32)


@pytest.mark.parametrize("digest", ["sha256:../../../etc/passwd", "md5:" + "a" * 32,
                                    "sha256:" + "A" * 64])
def test_index_entries_with_bad_digests_are_refused(digest: str) -> None:
    with pytest.raises(LayoutError, match=r"index\.json"):
        parse_index(index(digest))


def test_index_entries_carry_tag_and_repository() -> None:
    [entry] = parse_index(index(str(DIGEST)))
    assert (entry.descriptor.digest, entry.tag, entry.repository) == (DIGEST, "v1", None)


def test_layout_version_is_checked() -> None:
    check_layout_document(b'{"imageLayoutVersion": "1.0.0"}')
    for bad in (b"{}", b"nope", b'{"imageLayoutVersion": "2.0.0"}'):
        with pytest.raises(LayoutError):
            check_layout_document(bad)


def test_tar_layout_reads_members_and_links_inside(tmp_path: Path) -> None:
    path = tar_with(tmp_path / "ok.tar", (member(f"./{BLOB}"), CONTENT),
                    (member("alias", tarfile.SYMTYPE, BLOB), b""))
    reader = open_layout(path)
    try:
        assert reader.blob_size(DIGEST) == len(CONTENT)
        with reader.open_blob(DIGEST) as stream:
            assert stream.read() == CONTENT
        with reader.open("alias") as stream:
            assert stream.read() == CONTENT
        assert blob_digests(reader) == {DIGEST}
    finally:
        reader.close()


@pytest.mark.parametrize("bad", [
    member("../escape", tarfile.REGTYPE),
    member("/abs", tarfile.REGTYPE),
    member(BLOB, tarfile.SYMTYPE, "/etc/passwd"),
    member(BLOB, tarfile.SYMTYPE, "../../../../etc/passwd"),
    member(BLOB, tarfile.LNKTYPE, "../outside"),
    member("dev", tarfile.CHRTYPE),
])
def test_tar_members_leaving_the_layout_are_refused(tmp_path: Path,
                                                    bad: tarfile.TarInfo) -> None:
    path = tar_with(tmp_path / "bad.tar", (member("oci-layout"), b"{}"), (bad, b""))
    with pytest.raises(LayoutError, match=bad.name.lstrip("/.")):
        open_layout(path)


def test_directory_links_outside_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(CONTENT)
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / BLOB).symlink_to(secret)
    reader = open_layout(layout)
    with pytest.raises(LayoutError, match="outside"):
        reader.blob_size(DIGEST)
    (layout / "inside").write_bytes(CONTENT)
    (layout / BLOB).unlink()
    (layout / BLOB).symlink_to(layout / "inside")
    assert reader.blob_size(DIGEST) == len(CONTENT)


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="does not exist"):
        open_layout(tmp_path / "nothing.tar")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"junk" * 300)
    with pytest.raises(LayoutError, match="not a readable tar"):
        open_layout(junk)


def test_zstd_archives_are_read_through_a_temporary_tar(tmp_path: Path) -> None:
    plain = tar_with(tmp_path / "ok.tar", (member(BLOB), CONTENT))
    packed = tmp_path / "ok.tar.zst"
    with packed.open("wb") as out, zstd_writer(out) as stream:
        stream.write(plain.read_bytes())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    reader = open_layout(packed, scratch)
    try:
        with reader.open_blob(DIGEST) as blob:
            assert blob.read() == CONTENT
        assert len(list(scratch.iterdir())) == 1
    finally:
        reader.close()
    assert list(scratch.iterdir()) == []
    (tmp_path / "bad.tar.zst").write_bytes(b"not zstd at all")
    with pytest.raises(LayoutError, match="cannot decompress"):
        open_layout(tmp_path / "bad.tar.zst", scratch)
    assert list(scratch.iterdir()) == []
