"""Naming images to warm: `<repository>:<tag>`, `<repository>@<digest>`, and lists of them."""

from __future__ import annotations

import pytest

from dockyard.registry.mirror.warm import (
    ImageRef,
    InvalidImage,
    parse_image,
    parse_image_list,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "expected"), [
    ("docker.io/library/alpine:3.19", ImageRef("docker.io/library/alpine", "3.19")),
    ("docker.io/library/alpine", ImageRef("docker.io/library/alpine", "latest")),
    (f"docker.io/library/alpine@{DIGEST}", ImageRef("docker.io/library/alpine", DIGEST)),
    (f"docker.io/library/alpine:3.19@{DIGEST}", ImageRef("docker.io/library/alpine", DIGEST)),
    ("  mirror/quay/app:v1.2_rc-3  ", ImageRef("mirror/quay/app", "v1.2_rc-3")),
    ("app:latest", ImageRef("app", "latest")),
])
def test_image_is_parsed(text: str, expected: ImageRef) -> None:
    assert parse_image(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("", "no repository name"),
    (":3.19", "no repository name"),
    ("Docker.io/alpine:3.19", "not a repository name"),
    ("localhost:5000/alpine", "not a repository name"),
    ("docker.io/alpine:", "not a tag"),
    ("docker.io/alpine:-bad", "not a tag"),
    ("docker.io/alpine@sha256:abc", "lowercase hex"),
    ("docker.io/alpine@md5:" + "0" * 32, "unsupported digest algorithm"),
    ("docker.io/alpine 3.19", "not a repository name"),
])
def test_bad_image_is_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidImage, match=why):
        parse_image(text)


def test_image_is_written_back_as_given() -> None:
    assert str(parse_image("docker.io/library/alpine:3.19")) == "docker.io/library/alpine:3.19"
    assert str(parse_image(f"a/b@{DIGEST}")) == f"a/b@{DIGEST}"


def test_list_skips_comments_and_blank_lines() -> None:
    text = ("# base images\n"
            "\n"
            "docker.io/library/alpine:3.19\n"
            "   \n"
            f"docker.io/library/busybox@{DIGEST}   # pinned\n"
            "ghcr.io/org/tool\n")
    assert parse_image_list(text, "images.txt") == [
        ImageRef("docker.io/library/alpine", "3.19"),
        ImageRef("docker.io/library/busybox", DIGEST),
        ImageRef("ghcr.io/org/tool", "latest"),
    ]


def test_list_names_every_bad_line() -> None:
    text = "docker.io/library/alpine:3.19\nBAD:1\nok/image\nalso bad:\n"
    with pytest.raises(InvalidImage) as raised:
        parse_image_list(text, "images.txt")
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("images.txt:2: ")
    assert lines[1].startswith("images.txt:4: ")


def test_empty_list_is_empty() -> None:
    assert parse_image_list("# nothing yet\n\n", "images.txt") == []
