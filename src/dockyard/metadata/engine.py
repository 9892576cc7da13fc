"""Database engines: one for reads and one for writes.

On SQLite the write engine opens `BEGIN IMMEDIATE`, so concurrent writers (several worker
processes) queue on the busy timeout instead of failing when a read lock cannot be upgraded.
PostgreSQL uses one engine for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dockyard.metadata.memo import ReadMemo
from dockyard.metadata.postgres import PostgresOptions, postgres_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
INLINE_WRITE_BUSY_TIMEOUT_MS = 2_000

T = TypeVar("T")
WriteBody = Callable[[AsyncConnection], Coroutine[Any, Any, T]]


async def _flock(fd: int) -> None:
    """Take the lock at once when it is free, else wait for it in a thread."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    acquiring = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
    try:
        await asyncio.shield(acquiring)
    except asyncio.CancelledError:
        acquiring.add_done_callback(lambda _: fcntl.flock(fd, fcntl.LOCK_UN))
        raise


class _InlineConnection:
    """The AsyncConnection calls the stores make, run synchronously on the event loop.

    Used for SQLite writes behind the writer gate: with the gate held no other writer is in
    the way, so each statement takes microseconds, less than a hop to a driver thread.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.dialect = connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self._connection.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self._connection.scalar(statement, parameters)

    async def scalars(self, statement: Any, parameters: Any = None) -> Any:
        return self._connection.scalars(statement, parameters)


def _complete(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, outside any event loop."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return cast(T, finished.value)
    coroutine.close()
    raise RuntimeError("a write transaction run in the writer thread tried to suspend")


class WriterGate:
    """SQLite writers of all processes take turns through an flock beside the database.

    The kernel hands the lock to the next waiter at once, where SQLite's busy handler sleeps
    and retries (up to 100 ms a time), which made contended writes slow. The gate only orders
    writers; SQLite's own locking still guarantees correctness if the gate is ever bypassed.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._turn: asyncio.Lock | None = None
        self._thread: ThreadPoolExecutor | None = None

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def _queue(self) -> asyncio.Lock:
        """One flock per open file: this process's writers queue here for it."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        return self._turn

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """This process's turn to write, held until the block ends."""
        async with self._queue():
            fd = self._descriptor()
            await _flock(fd)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` in this process's writer thread, which holds the flock only meanwhile.

        Waiting for the lock in a thread and then for the event loop to use it kept the lock
        held and idle while the loop served other requests; here the thread that gets the
        lock uses it at once. Cancelling the caller does not stop `work`: this process's next
        writer waits for it.
        """
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="dockyard-sqlite-writer")
        turn = self._queue()
        await turn.acquire()
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._thread, self._locked, work)
        except BaseException:
            turn.release()
            raise
        future.add_done_callback(lambda _: turn.release())
        return await asyncio.shield(future)

    def _locked(self, work: Callable[[], T]) -> T:
        fd = self._descriptor()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            return work()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Stop the writer thread and close the lock file."""
        if self._thread is not None:
            self._thread.shutdown()
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class Engines:
    """One database's engines: reads, writes, and on SQLite the inline paths and the gate."""

    read: AsyncEngine
    write: AsyncEngine
    inline_read: Engine | None = None
    """SQLite only: a blocking engine for small reads, run on the event loop itself.

    A WAL reader never waits for a writer, and an indexed lookup takes microseconds, far
    less than the thread hop of the async driver; so hot lookups skip it.
    """
    write_gate: WriterGate | None = None
    inline_write: Engine | None = None
    """SQLite only: the blocking engine write transactions run on, behind the gate."""
    read_memo: ReadMemo | None = None
    """SQLite only: hot read answers, kept until the database changes."""

    @contextlib.asynccontextmanager
    async def begin_write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; on SQLite, inline after this process's turn at the gate."""
        if self.write_gate is None or self.inline_write is None:
            async with self.write.begin() as connection:
                yield connection
            return
        async with self.write_gate.hold():
            with self.inline_write.begin() as sync_connection:
                yield cast(AsyncConnection, _InlineConnection(sync_connection))

    async def run_write(self, body: WriteBody[T]) -> T:
        """`body` as one write transaction. On SQLite it runs whole in the writer thread
        (see WriterGate.run), so `body` must await nothing but its connection's calls,
        which never suspend there."""
        gate, inline = self.write_gate, self.inline_write
        if gate is None or inline is None:
            async with self.begin_write() as connection:
                return await body(connection)

        def transaction() -> T:
            with inline.begin() as sync_connection:
                return _complete(body(cast(AsyncConnection, _InlineConnection(sync_connection))))

        return await gate.run(transaction)

    async def dispose(self) -> None:
        """Close every pool, the writer gate and the read memo."""
        await self.read.dispose()
        if self.write is not self.read:
            await self.write.dispose()
        if self.inline_read is not None:
            self.inline_read.dispose()
        if self.inline_write is not None:
            self.inline_write.dispose()
        if self.write_gate is not None:
            self.write_gate.close()
        if self.read_memo is not None:
            self.read_memo.close()


def _configure_sqlite(engine: Engine, begin: str | None,
                      busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    """WAL, a busy timeout, and our own BEGIN (None: statements run in autocommit)."""

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                       f"busy_timeout={busy_timeout_ms}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "handle_error")
    def _full(context: Any) -> BaseException | None:
        return _disk_full(context.original_exception)

    if begin is not None:

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)


def _disk_full(error: BaseException) -> OSError | None:
    """SQLITE_FULL as the OSError the HTTP layer answers 507 for, as it does for blob writes.

    SQLite says "database or disk is full" when the disk or its page limit is reached.
    """
    if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return OSError(errno.ENOSPC, f"SQLite database or disk is full: {error}")
    return None


def _sqlite_engine(url: str, begin: str, echo: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=0)
    _configure_sqlite(engine.sync_engine, begin)
    return engine


def _sqlite_inline_engine(url: str, echo: bool, begin: str | None = None) -> Engine:
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    if begin is None:
        engine = create_engine(sync_url, echo=echo, pool_reset_on_return=None)
        _configure_sqlite(engine, None)
        return engine
    # One connection, used by the event loop or the writer thread, one at a time (the gate).
    engine = create_engine(sync_url, echo=echo, pool_size=1, max_overflow=0,
                           connect_args={"check_same_thread": False})
    # Behind the gate a writer waits only for a process that bypasses it (a migration):
    # a short timeout keeps the event loop from stalling on one.
    _configure_sqlite(engine, begin, INLINE_WRITE_BUSY_TIMEOUT_MS)
    return engine


def create_engines(url: str, pool_size: int = 10, echo: bool = False,
                   postgres: PostgresOptions | None = None) -> Engines:
    """The engines for a database URL: SQLite (a file, or :memory:) or PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        gate = None
        if parsed.database and parsed.database != ":memory:":
            database = Path(parsed.database)
            database.parent.mkdir(parents=True, exist_ok=True)
            gate = WriterGate(database.with_name(database.name + ".writer"))
        return Engines(
            read=_sqlite_engine(url, "BEGIN", echo, pool_size),
            # SQLite has one writer at a time. One connection per process makes writers of
            # this process queue in asyncio instead of in SQLite's sleeping busy handler.
            write=_sqlite_engine(url, "BEGIN IMMEDIATE", echo, 1),
            inline_read=_sqlite_inline_engine(url, echo),
            write_gate=gate,
            inline_write=_sqlite_inline_engine(url, echo, "BEGIN IMMEDIATE") if gate else None,
            read_memo=ReadMemo(str(parsed.database)) if gate else None,
        )
    engine = postgres_engine(url, postgres or PostgresOptions(pool_size=pool_size), echo)
    return Engines(read=engine, write=engine)
