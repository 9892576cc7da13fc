"""Digest parsing and computing: the registry must accept exactly what it can verify."""

from __future__ import annotations

import hashlib

import pytest

from dockyard.oci.digest import (
    ALGORITHMS,
    CANONICAL_ALGORITHM,
    Digest,
    InvalidDigest,
    new_hasher,
)

SHA256_HEX = hashlib.sha256(b"dockyard").hexdigest()
SHA512_HEX = hashlib.sha512(b"dockyard").hexdigest()


def test_registered_algorithms() -> None:
    assert ALGORITHMS == {"sha256": 64, "sha512": 128}
    assert CANONICAL_ALGORITHM == "sha256"


@pytest.mark.parametrize(("text", "algorithm", "encoded"), [
    (f"sha256:{SHA256_HEX}", "sha256", SHA256_HEX),
    (f"sha512:{SHA512_HEX}", "sha512", SHA512_HEX),
    ("sha256:" + "0" * 64, "sha256", "0" * 64),
])
def test_parse_valid(text: str, algorithm: str, encoded: str) -> None:
    digest = Digest.parse(text)
    assert digest.algorithm == algorithm
    assert digest.hex == encoded
    assert str(digest) == text


@pytest.mark.parametrize("text", [
    "",
    "sha256",
    "sha256:",
    ":" + SHA256_HEX,
    SHA256_HEX,
    "sha256:" + SHA256_HEX.upper(),
    "SHA256:" + SHA256_HEX,
    "sha256:" + SHA256_HEX[:-1],
    "sha256:" + SHA256_HEX + "0",
    "sha256:" + "g" * 64,
    "sha256:" + SHA512_HEX,
    "sha512:" + SHA256_HEX,
    "md5:" + "0" * 32,
    "sha384:" + "0" * 96,
    "sha256+b64u:" + "A" * 43,
    "sha256:" + SHA256_HEX + "\n",
    " sha256:" + SHA256_HEX,
    "sha256:" + SHA256_HEX + " ",
    "sha256::" + SHA256_HEX,
    "sha256:" + SHA256_HEX[:32] + "-" + SHA256_HEX[33:],
    "sha256:" + SHA256_HEX[:63] + "\u0660",
])
def test_parse_invalid(text: str) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(text)


def test_invalid_digest_is_a_value_error() -> None:
    assert issubclass(InvalidDigest, ValueError)


@pytest.mark.parametrize("data", [b"", b"dockyard", bytes(range(256)) * 100])
def test_of_matches_hashlib(data: bytes) -> None:
    assert Digest.of(data) == Digest("sha256", hashlib.sha256(data).hexdigest())
    assert Digest.of(data, "sha512") == Digest("sha512", hashlib.sha512(data).hexdigest())


def test_of_round_trips_through_parse() -> None:
    for algorithm in ALGORITHMS:
        digest = Digest.of(b"content", algorithm)
        assert Digest.parse(str(digest)) == digest
        assert len(digest.hex) == ALGORITHMS[algorithm]


def test_of_unknown_algorithm() -> None:
    with pytest.raises(InvalidDigest):
        Digest.of(b"x", "md5")


def test_new_hasher_streams() -> None:
    hasher = new_hasher("sha256")
    for piece in (b"dock", b"ya", b"rd"):
        hasher.update(piece)
    assert hasher.hexdigest() == SHA256_HEX
    with pytest.raises(InvalidDigest):
        new_hasher("sha1")


def test_digests_are_values() -> None:
    one = Digest.parse(f"sha256:{SHA256_HEX}")
    two = Digest.of(b"dockyard")
    assert one == two
    assert hash(one) == hash(two)
    assert len({one, two}) == 1
    with pytest.raises(AttributeError):
        one.hex = "0" * 64  # type: ignore[misc]
