"""The nesting scan: brackets in strings do not count, and the limit holds at any depth."""

from __future__ import annotations

import json

import pytest

from dockyard.oci import boundedjson


def test_depth_counts_brackets_outside_strings_only() -> None:
    document = {"a": [1, {"b": '[[{{"\\'}], "c": "]]]"}
    assert boundedjson.nesting_depth(json.dumps(document).encode()) == 3
    assert boundedjson.loads(json.dumps(document).encode()) == document


def test_the_limit_is_inclusive() -> None:
    assert boundedjson.loads(b"[" * 64 + b"]" * 64) is not None
    with pytest.raises(boundedjson.TooDeep):
        boundedjson.loads(b"[" * 65 + b"]" * 65)


@pytest.mark.parametrize("depth", [1_000, 10_000, 1_000_000])
def test_deep_documents_are_refused_without_recursion(depth: int) -> None:
    with pytest.raises(ValueError, match="nested deeper"):
        boundedjson.loads(b'{"a":' * depth + b"1" + b"}" * depth)


def test_malformed_json_is_still_a_value_error() -> None:
    for content in (b'{"a": "unterminated', b"\xff", b"[1,]"):
        with pytest.raises(ValueError):
            boundedjson.loads(content)
