"""Repository names and tags against the distribution-spec grammar."""

from __future__ import annotations

import pytest

from dockyard.oci.reference import (
    NAME_MAX_LENGTH,
    is_digest_reference,
    is_valid_name,
    is_valid_tag,
)


@pytest.mark.parametrize("name", [
    "a",
    "0",
    "library/ubuntu",
    "a/b/c/d/e",
    "a.b",
    "a_b",
    "a__b",
    "a-b",
    "a---b",
    "a-b.c_d__e/f",
    "v2/manifests/blobs",
    "x" * NAME_MAX_LENGTH,
    "a/" * 126 + "abc",
])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize("name", [
    "",
    "A",
    "library/Ubuntu",
    "/a",
    "a/",
    "a//b",
    "-a",
    "a-",
    ".a",
    "a.",
    "_a",
    "a_",
    "a..b",
    "a._b",
    "a___b",
    "a b",
    "a:b",
    "a@b",
    "a+b",
    "caf\u00e9",
    "x" * (NAME_MAX_LENGTH + 1),
    "a\n",
    "a/b\n",
    "\na",
])
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)


def test_name_length_limit_counts_slashes() -> None:
    assert NAME_MAX_LENGTH == 255
    name = "ab/" * 84 + "abc"
    assert len(name) == 255
    assert is_valid_name(name)
    assert not is_valid_name(name + "d")


@pytest.mark.parametrize("tag", [
    "latest", "1.0", "v1.2.3-rc.1", "_private", "UPPER", "a", "0", "a" * 128, "a-b_c.d",
    "__", "a..b", "a--",
])
def test_valid_tags(tag: str) -> None:
    assert is_valid_tag(tag)


@pytest.mark.parametrize("tag", [
    "", "-a", ".a", "a" * 129, "a:b", "a/b", "a b", "a+b", "a@b", "caf\u00e9", "latest\n",
    "\nlatest", "a\tb", "a\x00",
])
def test_invalid_tags(tag: str) -> None:
    assert not is_valid_tag(tag)


@pytest.mark.parametrize(("reference", "is_digest"), [
    ("sha256:" + "0" * 64, True),
    ("sha256:abc", True),
    ("latest", False),
    ("v1.0", False),
])
def test_digest_reference(reference: str, is_digest: bool) -> None:
    assert is_digest_reference(reference) is is_digest
