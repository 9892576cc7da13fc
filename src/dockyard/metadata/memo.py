"""Answers to hot reads, kept in the process until the database changes.

SQLite counts commits: `PRAGMA data_version` on a connection moves whenever any other
connection, in this process or another, has committed a change, and reading it costs about a
microsecond. A pull or a tags list that finds the counter where it was when the answer was
stored can reuse the answer instead of running the query and building its rows again; one
commit anywhere empties the memo, so no answer outlives the state it was read from.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Hashable, Sequence
from typing import Any

Rows = Sequence[Any]

DEFAULT_BUDGET = 32 << 20
"""Approximate bytes of answers kept per process; beyond it new answers are not kept."""

_ROW_OVERHEAD = 64


def _cost(rows: Rows) -> int:
    total = 0
    for row in rows:
        total += _ROW_OVERHEAD
        for value in row:
            if isinstance(value, (str, bytes)):
                total += len(value)
    return total


class ReadMemo:
    """Rows by (query, parameters), valid while the database's change counter stands still.

    The counter is read before the query runs, so a stored answer is at least as new as the
    counter it is filed under.
    """

    def __init__(self, database: str, budget: int = DEFAULT_BUDGET) -> None:
        self._database = database
        self._budget = budget
        self._watch: sqlite3.Connection | None = None
        self._version: int | None = None
        self._answers: dict[Hashable, Rows] = {}
        self._spent = 0

    def _current_version(self) -> int:
        if self._watch is None:
            self._watch = sqlite3.connect(self._database, isolation_level=None,
                                          check_same_thread=False)
        return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    def lookup(self, key: Hashable) -> tuple[Rows | None, int]:
        """The stored answer (None if there is none) and the version to file a new one under."""
        version = self._current_version()
        if version != self._version:
            self._answers.clear()
            self._spent = 0
            self._version = version
            return None, version
        return self._answers.get(key), version

    def store(self, key: Hashable, version: int, rows: Rows) -> None:
        """Keep an answer read at `version` (from lookup), unless a commit came since or it
        would exceed the budget."""
        if version != self._version:
            return
        cost = _cost(rows)
        if self._spent + cost > self._budget:
            return
        self._answers[key] = rows
        self._spent += cost

    def close(self) -> None:
        """Stop watching the database file."""
        if self._watch is not None:
            self._watch.close()
            self._watch = None
