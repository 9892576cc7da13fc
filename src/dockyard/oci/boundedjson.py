"""JSON from untrusted peers, parsed only when its nesting is shallow.

The standard decoder recurses once per level: a body of a few thousand brackets exhausts the
interpreter's stack (RecursionError) after using time and memory for nothing. No manifest or
token document comes close to the limit here, so anything deeper is refused before parsing.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64

# A whole string literal (skipped, brackets inside it do not count) or one bracket.
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')
_OPENERS = frozenset(b"[{")


class TooDeep(ValueError):
    """The document nests arrays and objects deeper than the limit."""


def nesting_depth(content: bytes, limit: int = MAX_DEPTH) -> int:
    """The deepest nesting in `content`; stops early with TooDeep once past `limit`."""
    depth = deepest = 0
    for match in _TOKEN.finditer(content):
        first = content[match.start()]
        if first in _OPENERS:
            depth += 1
            if depth > limit:
                raise TooDeep(f"JSON nested deeper than {limit} levels")
            deepest = max(deepest, depth)
        elif first != 0x22:  # a closing bracket; strings are skipped
            depth = max(depth - 1, 0)
    return deepest


def loads(content: bytes, limit: int = MAX_DEPTH) -> Any:
    """json.loads for client bytes: ValueError (TooDeep, JSONDecodeError or
    UnicodeDecodeError) for anything that is not shallow, well-formed JSON."""
    nesting_depth(content, limit)
    try:
        return json.loads(content)
    except RecursionError as exc:  # unreachable after the scan, kept as a backstop
        raise TooDeep("JSON nested too deeply") from exc
