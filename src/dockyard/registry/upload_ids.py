"""Upload ids that name their repository, so that opening a session writes no metadata.

An id is a version-4 UUID holding 60 random bits and 62 bits of a hash of the repository
with those random bits. Any worker or node tells whether an id was issued for a repository
without a lookup; the session's row is written only once a chunk needs one
(registry/uploads.py). A push that sends its blob in the closing PUT, as most clients do for
small layers, then costs one metadata transaction instead of two.

The hash needs no key: an id only reaches bytes that a POST to that repository staged, and
the server, not the client, picks its random half.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid


def issue(repository: str) -> str:
    nonce = bytearray(os.urandom(8))
    nonce[6] = 0x40 | nonce[6] & 0x0F  # version 4
    return str(uuid.UUID(bytes=bytes(nonce) + _tag(repository, bytes(nonce))))


def is_upload_id(text: str) -> bool:
    """A UUID in canonical form; anything else never reaches storage as a file name."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def issued_for(upload_id: str, repository: str) -> bool:
    """Whether `issue(repository)` made this id (False for any other text)."""
    if not is_upload_id(upload_id):
        return False
    raw = uuid.UUID(upload_id).bytes
    return hmac.compare_digest(raw[8:], _tag(repository, raw[:8]))


def _tag(repository: str, nonce: bytes) -> bytes:
    tag = bytearray(hashlib.blake2b(nonce + repository.encode(), digest_size=8).digest())
    tag[0] = 0x80 | tag[0] & 0x3F  # RFC 4122 variant
    return bytes(tag)
