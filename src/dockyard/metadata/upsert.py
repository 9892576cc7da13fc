"""INSERT ... ON CONFLICT statements, built once per dialect.

Each engine spells the clause with its own insert construct, so the statement cannot be a
module constant like the other prebuilt queries; building it per call cost more than
running it (the `excluded` namespace alone is rebuilt column by column). Values are bound at
execution, so one statement serves every row.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection


class Upsert:
    """Insert a row; on a conflict over `keys`, copy `updates` from it, or do nothing.

    With `returning`, the statement returns those columns of a row it inserted or updated
    (no row when it did nothing).
    """

    def __init__(self, table: Table, keys: Sequence[str], updates: Sequence[str] = (),
                 returning: Sequence[str] = ()) -> None:
        self._table = table
        self._keys = list(keys)
        self._updates = tuple(updates)
        self._returning = tuple(returning)
        self._built: dict[str, Any] = {}

    def _build(self, dialect: str) -> Any:
        # The dialect's module is imported on first use: a SQLite server never loads
        # PostgreSQL's.
        dialect_module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
        statement = dialect_module.insert(self._table)
        if not self._updates:
            statement = statement.on_conflict_do_nothing(index_elements=self._keys)
        else:
            statement = statement.on_conflict_do_update(
                index_elements=self._keys,
                set_={column: statement.excluded[column] for column in self._updates},
            )
        if self._returning:
            statement = statement.returning(*(self._table.c[name] for name in self._returning))
        return statement

    def on(self, connection: AsyncConnection) -> Any:
        """The statement in the connection's dialect."""
        dialect = connection.dialect.name
        statement = self._built.get(dialect)
        if statement is None:
            statement = self._built[dialect] = self._build(dialect)
        return statement
