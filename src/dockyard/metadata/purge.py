"""Upload sessions nobody touched for a while, and ending them without racing a writer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select

from dockyard.metadata.batches import present
from dockyard.metadata.engine import Engines
from dockyard.metadata.interfaces import UploadPurgeStore
from dockyard.metadata.schema import uploads


class SQLUploadPurgeStore(UploadPurgeStore):
    """UploadPurgeStore on the upload session rows."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines


    async def stale_uploads(self, cutoff: datetime, after: str | None,
                            limit: int) -> list[str]:
        query = (select(uploads.c.id).where(uploads.c.updated_at < cutoff)
                 .order_by(uploads.c.id).limit(limit))
        if after is not None:
            query = query.where(uploads.c.id > after)
        async with self._engines.read.connect() as connection:
            return list((await connection.scalars(query)).all())

    async def delete_stale_upload(self, upload_id: str, cutoff: datetime) -> bool:
        async with self._engines.begin_write() as connection:
            result = await connection.execute(
                delete(uploads).where(uploads.c.id == upload_id, uploads.c.updated_at < cutoff)
            )
        return bool(result.rowcount)

    async def known_uploads(self, upload_ids: Sequence[str]) -> set[str]:
        return await present(self._engines.read, uploads.c.id, upload_ids)
