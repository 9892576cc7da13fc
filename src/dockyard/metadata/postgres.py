"""PostgreSQL engines: pool limits, timeouts, TLS, and losing the server answered as 503.

Several nodes share one PostgreSQL, so a node must not hang when it is away: connecting and
each statement have timeouts, and a refused connection or a dropped one becomes
ServiceUnavailable (a retryable 503) rather than a bug report.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dockyard.unavailable import ServiceUnavailable


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL refused or dropped the connection, or did not answer in time."""


@dataclass(frozen=True)
class PostgresOptions:
    """The `database` section's pool, timeout and TLS settings for PostgreSQL."""

    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout: float = 10.0
    pool_recycle: float = 1800.0
    connect_timeout: float = 5.0
    statement_timeout: float = 30.0
    """Seconds; 0 leaves the server's setting."""
    sslmode: str | None = None
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None


def tls_argument(options: PostgresOptions) -> ssl.SSLContext | bool | None:
    """asyncpg's `ssl` argument for a libpq-style sslmode (None: the URL decides)."""
    mode = options.sslmode
    if mode is None:
        return None
    if mode == "disable":
        return False
    verify = mode in ("verify-ca", "verify-full")
    context = ssl.create_default_context(cafile=options.sslrootcert) if verify else (
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    )
    context.check_hostname = mode == "verify-full"
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    if options.sslcert is not None:
        context.load_cert_chain(options.sslcert, options.sslkey)
    return context


def _connect_arguments(options: PostgresOptions) -> dict[str, Any]:
    arguments: dict[str, Any] = {"timeout": options.connect_timeout}
    if options.statement_timeout > 0:
        milliseconds = int(options.statement_timeout * 1000)
        arguments["server_settings"] = {"statement_timeout": str(milliseconds)}
        # A client-side bound too, for a server that stopped answering altogether.
        arguments["command_timeout"] = options.statement_timeout + options.connect_timeout
    tls = tls_argument(options)
    if tls is not None:
        arguments["ssl"] = tls
    return arguments


_UNAVAILABLE = frozenset({
    "ConnectionDoesNotExistError", "CannotConnectNowError", "AdminShutdownError",
    "ConnectionFailureError", "QueryCanceledError", "TooManyConnectionsError",
    # Two transactions that locked rows in opposite orders (a rare index PUT racing GC): one
    # is rolled back, and the client is told to retry rather than shown a server error.
    "DeadlockDetectedError", "SerializationError",
})
"""asyncpg's names for a server that is away, going away, too slow (statement_timeout), or
that rolled the transaction back to let another finish; all worth a retry."""


def _is_unavailable(context: ExceptionContext) -> bool:
    original = context.original_exception
    if not isinstance(original, Exception):
        # A cancelled task (asyncio.CancelledError) or an interrupt: SQLAlchemy counts it as a
        # disconnect, but made a 503 it would be caught as an error and the cancellation lost;
        # a cancelled delivery task then never ended and a SIGHUP reload waited forever.
        return False
    if context.is_disconnect:
        return True
    # The driver's exception, and asyncpg's own behind the adapter SQLAlchemy wraps it in.
    for error in (original, original.__cause__):
        if isinstance(error, OSError | TimeoutError) or type(error).__name__ in _UNAVAILABLE:
            return True
    return False


def postgres_engine(url: str, options: PostgresOptions, echo: bool = False) -> AsyncEngine:
    """An asyncpg engine with these options (one engine serves reads and writes)."""
    engine = create_async_engine(
        url,
        pool_size=options.pool_size,
        max_overflow=options.max_overflow,
        pool_timeout=options.pool_timeout,
        pool_recycle=options.pool_recycle,
        pool_pre_ping=True,
        connect_args=_connect_arguments(options),
        echo=echo,
    )

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc

    @event.listens_for(engine.sync_engine, "handle_error")
    def _lost(context: ExceptionContext) -> None:
        if _is_unavailable(context) and not context.is_pre_ping:
            raise DatabaseUnavailable(
                f"the database could not complete the request: {context.original_exception}"
            ) from context.original_exception

    return engine
