"""Running the registry: worker processes sharing one port through SO_REUSEPORT.

With one worker the server runs in this process. With more, this process only supervises:
it migrates the database once, starts the workers, restarts one that dies, and passes
SIGTERM/SIGINT on so each worker drains its in-flight requests before exiting.

SIGHUP re-reads the configuration (see `reload`): the supervisor applies its own log level
and passes the signal on; each worker runs the registered reload hooks. The debug listener
(metrics, /debug/health) runs in the supervisor, summing the workers' metric files, or in the
only worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import ssl
import threading
import time
from multiprocessing.process import BaseProcess

import uvloop
from aiohttp import web

from dockyard import reload, tls
from dockyard.app import (
    access_logger_class,
    build_web_app,
    migrate_database,
    setup_logging,
)
from dockyard.app_auth import prepare_auth
from dockyard.app_backends import build_blob_store
from dockyard.app_observability import metrics_enabled, start_debug_server
from dockyard.config import Config, TlsConfig
from dockyard.drain import FORCE_CLOSE_TIMEOUT, drain
from dockyard.logs import set_level
from dockyard.observability import multiproc
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.server")

SUPERVISE_INTERVAL = 0.2
RESTART_BACKOFF = 1.0


def _debug_store(config: Config) -> BlobStore | None:
    return build_blob_store(config) if config.health.storagedriver.enabled else None


def _register_tls_reload(context: ssl.SSLContext, current: TlsConfig) -> None:
    def reload_tls(config: Config) -> None:
        # Turning TLS on or off needs a restart; new paths or new files apply live.
        tls.reload(context, config.http.tls or current)

    reload.register(("http.tls",), reload_tls)


async def _serve(config: Config, config_path: str | None = None,
                 debug: bool = False) -> None:
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
    runner = web.AppRunner(build_web_app(config), shutdown_timeout=FORCE_CLOSE_TIMEOUT,
                           **runner_options)  # type: ignore[arg-type]
    await runner.setup()
    ssl_context = tls.make_context(config.http.tls) if config.http.tls is not None else None
    site = web.TCPSite(
        runner,
        config.http.bind_host,
        config.http.bind_port,
        reuse_port=True,
        backlog=1024,
        ssl_context=ssl_context,
    )
    await site.start()
    log.info("listening on %s", config.http.addr)
    if ssl_context is not None and config.http.tls is not None:
        _register_tls_reload(ssl_context, config.http.tls)
    debug_runner = (await start_debug_server(config, _debug_store(config), None)
                    if debug else None)
    await stop.wait()
    log.info("draining connections (up to %ss)", config.http.drain_timeout_seconds)
    await drain(runner, [site], config.http.drain_timeout_seconds)
    if debug_runner is not None:
        await debug_runner.cleanup()


def run_worker(config: Config, config_path: str | None = None, debug: bool = False) -> None:
    setup_logging(config)
    uvloop.run(_serve(config, config_path, debug))


class _DebugThread:
    """The supervisor's debug listener, on an event loop of its own."""

    def __init__(self, config: Config, multiprocess_dir: str | None) -> None:
        self._config = config
        self._multiprocess_dir = multiprocess_dir
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="dockyard-debug", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), or logged once serving
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                log.exception("debug server failed")

    async def _main(self) -> None:
        runner = await start_debug_server(
            self._config, _debug_store(self._config), self._multiprocess_dir)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        if runner is not None:
            await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


class _Supervisor:
    def __init__(self, config: Config, workers: int, config_path: str | None = None) -> None:
        self._config = config
        self._config_path = config_path
        self._reloader = reload.Reloader(config_path, config)
        self._count = workers
        self._metrics_dir: str | None = None
        self._context = multiprocessing.get_context("spawn")
        self._children: list[BaseProcess] = []
        self._stopping = False

    def _spawn(self) -> BaseProcess:
        child = self._context.Process(target=run_worker, args=(self._config, self._config_path),
                                      daemon=False)
        child.start()
        return child

    def _stop(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def _forward(self, signum: int, _frame: object) -> None:
        """SIGHUP: apply the log level here, then every worker reloads for itself."""
        new = self._reloader.read()
        if new is not None:
            set_level(new.log.level)
        for child in self._children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._forward)
        if metrics_enabled(self._config):
            self._metrics_dir = multiproc.prepare()
        debug = _DebugThread(self._config, self._metrics_dir)
        try:
            debug.start()
            self._children = [self._spawn() for _ in range(self._count)]
            while not self._stopping:
                time.sleep(SUPERVISE_INTERVAL)
                self._replace_dead()
            return self._shutdown()
        finally:
            debug.stop()
            if self._metrics_dir is not None:
                multiproc.remove(self._metrics_dir)

    def _replace_dead(self) -> None:
        for index, child in enumerate(self._children):
            if child.is_alive() or self._stopping:
                continue
            log.error("worker %s exited with %s; starting another", child.pid, child.exitcode)
            self._forget(child)
            time.sleep(RESTART_BACKOFF)
            self._children[index] = self._spawn()

    def _shutdown(self) -> int:
        for child in self._children:
            if child.is_alive() and child.pid is not None:
                child.terminate()
        deadline = time.monotonic() + self._config.http.drain_timeout_seconds + 5
        for child in self._children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
                child.join()
            self._forget(child)
        return 0

    def _forget(self, child: BaseProcess) -> None:
        """A dead worker's live gauges (uploads in progress) must not linger in the sums."""
        if self._metrics_dir is not None and child.pid is not None:
            multiproc.worker_exited(self._metrics_dir, child.pid)


def serve(config: Config, workers: int, config_path: str | None = None) -> int:
    setup_logging(config)
    asyncio.run(migrate_database(config))
    prepare_auth(config)
    if workers <= 1:
        run_worker(config, config_path, debug=True)
        return 0
    log.info("starting %d workers", workers)
    return _Supervisor(config, workers, config_path).run()
