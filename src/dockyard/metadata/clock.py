"""The time every store stamps rows with: aware UTC, so both engines compare it alike."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)
