"""Running the registry: worker processes sharing one port through SO_REUSEPORT.

With one worker the server runs in this process. With more, this process only supervises:
it migrates the database once, starts the workers, restarts one that dies, and passes
SIGTERM/SIGINT on so each worker drains its in-flight requests before exiting.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time
from multiprocessing.process import BaseProcess

import uvloop
from aiohttp import web

from dockyard.app import access_logger_class, build_web_app, migrate_database, setup_logging
from dockyard.config import Config

log = logging.getLogger("dockyard.server")

SUPERVISE_INTERVAL = 0.2
RESTART_BACKOFF = 1.0


async def _serve(config: Config) -> None:
    logger_class = access_logger_class(config)
    runner_options: dict[str, object] = (
        {"access_log_class": logger_class, "access_log": logging.getLogger("dockyard.access")}
        if logger_class is not None
        else {"access_log": None}
    )
    runner = web.AppRunner(build_web_app(config), **runner_options)  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(
        runner,
        config.http.bind_host,
        config.http.bind_port,
        reuse_port=True,
        backlog=1024,
        shutdown_timeout=config.http.drain_timeout_seconds,
    )
    await site.start()
    log.info("listening on %s", config.http.addr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining connections (up to %ss)", config.http.drain_timeout_seconds)
    await runner.cleanup()


def run_worker(config: Config) -> None:
    setup_logging(config)
    uvloop.run(_serve(config))


class _Supervisor:
    def __init__(self, config: Config, workers: int) -> None:
        self._config = config
        self._count = workers
        self._context = multiprocessing.get_context("spawn")
        self._children: list[BaseProcess] = []
        self._stopping = False

    def _spawn(self) -> BaseProcess:
        child = self._context.Process(target=run_worker, args=(self._config,), daemon=False)
        child.start()
        return child

    def _stop(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self._children = [self._spawn() for _ in range(self._count)]
        while not self._stopping:
            time.sleep(SUPERVISE_INTERVAL)
            self._replace_dead()
        return self._shutdown()

    def _replace_dead(self) -> None:
        for index, child in enumerate(self._children):
            if child.is_alive() or self._stopping:
                continue
            log.error("worker %s exited with %s; starting another", child.pid, child.exitcode)
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
        return 0


def serve(config: Config, workers: int) -> int:
    setup_logging(config)
    asyncio.run(migrate_database(config))
    if workers <= 1:
        run_worker(config)
        return 0
    log.info("starting %d workers", workers)
    return _Supervisor(config, workers).run()
