"""What the commands that work on the configured registry in-process share.

`gc`, `check`, `dockyard mirror ...` build the registry the server builds, on the same
database and storage, so they work while it serves; long runs show progress on stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dockyard.app.web import build_registry, migrate_database
from dockyard.config import Config
from dockyard.registry.gc import format_bytes
from dockyard.registry.registry import Registry

PROGRESS_EVERY = 2.0
"""Seconds between progress lines when stderr is not a terminal."""


@asynccontextmanager
async def open_registry(config: Config) -> AsyncIterator[Registry]:
    """The configured registry, once its schema is known to be current."""
    await migrate_database(config)
    registry = build_registry(config)
    try:
        yield registry
    finally:
        await registry.close()


BAR_WIDTH = 24


class Ticker:
    """Progress on stderr: one rewritten line on a terminal, a line every few seconds if not."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False

    def show(self, text: str, force: bool = False) -> None:
        """Show `text` unless the last line went out too recently (`force`: show anyway)."""
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else PROGRESS_EVERY):
            return
        self._last = now
        if self.tty:
            print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)
            self._shown = True
        else:
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        """End the rewritten line, so what is printed next starts on its own."""
        if self._shown:
            print(file=sys.stderr)
            self._shown = False

    def bar(self, done: int, total: int) -> str:
        """Bytes done of total, drawn as a bar on a terminal."""
        amounts = f"{format_bytes(done)}/{format_bytes(total)}"
        if not self.tty:
            return amounts
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {amounts}"
