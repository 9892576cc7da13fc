"""Running the registry: worker processes sharing one port through SO_REUSEPORT.

`serve` migrates the database and makes the token keys once, before any worker starts. With
one worker the server then runs in this process. With more, this process hands over to the
lean `supervisor`, which starts the workers (`dockyard.server.worker`, running `run_worker`),
restarts one that dies, and passes SIGTERM/SIGINT on so each worker drains its in-flight
requests before exiting.

SIGHUP re-reads the configuration (see `reload`): each worker runs the registered reload
hooks. The debug listener (metrics, /debug/health) runs in the supervisor, summing the
workers' metric files, or in the only worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import ssl
import sys
from typing import NoReturn

import uvloop
from aiohttp import web

from dockyard.app import reload
from dockyard.app.backends import describe
from dockyard.app.observability import debug_address, metrics_enabled, start_debug_server
from dockyard.app.web import (
    access_logger_class,
    build_web_app,
    migrate_database,
    setup_logging,
)
from dockyard.config import Config, TlsConfig
from dockyard.observability.logs import set_level
from dockyard.observability.rejections import RejectionLogger
from dockyard.server import supervisor, tls
from dockyard.server.debug_listener import debug_store
from dockyard.server.drain import FORCE_CLOSE_TIMEOUT, drain
from dockyard.server.preflight import StartupError, preflight
from dockyard.server.tls_site import TlsSite

log = logging.getLogger("dockyard.server.serve")


def _register_tls_reload(context: ssl.SSLContext, current: TlsConfig) -> None:
    def reload_tls(config: Config) -> None:
        # Turning TLS on or off needs a restart; new paths or new files apply live.
        tls.reload(context, config.http.tls or current)

    reload.register(("http.tls",), reload_tls)


BACKLOG = 1024
"""Pending connections the kernel queues per worker before refusing more."""

STARTUP_FAILED = 3
"""A worker's exit status when it could not start serving: the supervisor then stops."""


class _WorkerStartFailed(Exception):
    """Raised for any error before the listener is up, to be told apart from later ones."""


def _announce_ready(ready_fd: int | None) -> None:
    if ready_fd is not None:
        os.write(ready_fd, b"1")
        os.close(ready_fd)


async def _serve(config: Config, config_path: str | None = None,
                 debug: bool = False, ready_fd: int | None = None) -> None:
    # Signals first: a SIGTERM or SIGHUP that arrives while starting must not kill the worker.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reload.register(("log.level",), lambda new: set_level(new.log.level))
    reloader = reload.Reloader(config_path, config)
    reloads: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        task = loop.create_task(reloader.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    logger_class = access_logger_class(config)
    runner_options: dict[str, object] = (
        {"access_log_class": logger_class, "access_log": logging.getLogger("dockyard.access")}
        if logger_class is not None
        else {"access_log": None}
    )
    runner_options["logger"] = RejectionLogger(logging.getLogger("aiohttp.server"))
    try:
        runner = web.AppRunner(build_web_app(config), shutdown_timeout=FORCE_CLOSE_TIMEOUT,
                               **runner_options)  # type: ignore[arg-type]
        await runner.setup()
        ssl_context = (tls.make_context(config.http.tls) if config.http.tls is not None
                       else None)
        site: web.BaseSite = (
            web.TCPSite(runner, config.http.bind_host, config.http.bind_port,
                        reuse_port=True, backlog=BACKLOG)
            if ssl_context is None
            else TlsSite(runner, config.http.bind_host, config.http.bind_port,
                         ssl_context=ssl_context, backlog=BACKLOG))
        await site.start()
    except Exception as exc:
        raise _WorkerStartFailed(str(exc) or type(exc).__name__) from exc
    log.info("listening on %s", config.http.addr)
    if ssl_context is not None and config.http.tls is not None:
        _register_tls_reload(ssl_context, config.http.tls)
    _announce_ready(ready_fd)  # after every reload hook: the supervisor now passes SIGHUPs on
    debug_runner = (await start_debug_server(config, debug_store(config), None)
                    if debug else None)
    await stop.wait()
    log.info("draining connections (up to %ss)", config.http.drain_timeout_seconds)
    await drain(runner, [site], config.http.drain_timeout_seconds)
    if debug_runner is not None:
        await debug_runner.cleanup()


def run_worker(config: Config, config_path: str | None = None, debug: bool = False,
               ready_fd: int | None = None) -> int:
    """Serve until SIGTERM; STARTUP_FAILED, with one logged line, if serving never began."""
    setup_logging(config)
    try:
        uvloop.run(_serve(config, config_path, debug, ready_fd))
    except _WorkerStartFailed as exc:
        log.error("cannot start serving: %s", exc)
        return STARTUP_FAILED
    return 0


def serve(config: Config, workers: int, config_path: str | None = None) -> int:
    setup_logging(config)
    try:
        preflight(config)
    except StartupError as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return 1
    for line in describe(config):
        if line.startswith("WARNING"):
            log.warning("%s", line.removeprefix("WARNING: "))
        else:
            log.info("%s", line)
    asyncio.run(migrate_database(config))
    if config.auth.token_service_enabled:
        from dockyard.app.auth import prepare_auth  # the auth libraries, only where needed

        prepare_auth(config)
    if workers <= 1:
        return 0 if run_worker(config, config_path, debug=True) == 0 else 1
    log.info("starting %d workers", workers)
    _hand_over(config, workers, config_path)


def _hand_over(config: Config, workers: int, config_path: str | None) -> NoReturn:
    supervisor.hand_over(supervisor.Plan(
        workers=workers,
        config_path=config_path,
        config=pickle.dumps(config),
        log_level=config.log.level,
        log_formatter=config.log.formatter,
        log_fields=dict(config.log.fields),
        drain_timeout=config.http.drain_timeout_seconds,
        metrics=metrics_enabled(config),
        debug=debug_address(config) is not None,
    ))
