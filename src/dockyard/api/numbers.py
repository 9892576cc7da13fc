"""Decimal numbers out of a request: ASCII digits only, and few enough to mean a size.

`str.isdigit()` and the regex class `\\d` accept any Unicode digit ("²", "٣"), which `int()`
then rejects or reads; and `int()` refuses more than 4,300 digits with a ValueError. Either
way a client's typo became a 500. Every count, offset and length a request carries goes
through here, so each caller only decides what an unreadable number means to it.
"""

from __future__ import annotations

import re

# 18 digits stay below 2**63, so whatever passes fits a signed 64-bit database column.
MAX_DIGITS = 18
_NUMBER = re.compile(f"[0-9]{{1,{MAX_DIGITS}}}")


def parse_number(text: str) -> int | None:
    """The non-negative integer `text` spells in ASCII digits, or None if it spells none
    (empty, a sign, spaces, non-ASCII digits, or more than MAX_DIGITS digits)."""
    if _NUMBER.fullmatch(text) is None:
        return None
    return int(text)
