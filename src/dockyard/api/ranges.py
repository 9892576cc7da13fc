"""One byte range out of a `Range` header, for blobs served without a local file."""

from __future__ import annotations

import re

from dockyard.api.numbers import parse_number

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


class RangeNotSatisfiable(ValueError):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(offset, length) of the requested range, or None for the whole blob.

    A header we cannot read is ignored (the whole blob is served), as RFC 9110 allows; so is
    a position of more digits than any blob's size has.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    first = parse_number(first_text) if first_text else None
    last = parse_number(last_text) if last_text else None
    if (first_text and first is None) or (last_text and last is None):
        return None
    if first is None:
        if last is None:
            return None
        length = min(last, size)
        if length == 0:
            raise RangeNotSatisfiable(header)
        return size - length, length
    end = min(last, size - 1) if last is not None else size - 1
    if first >= size or end < first:
        raise RangeNotSatisfiable(header)
    return first, end - first + 1
