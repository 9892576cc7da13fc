"""Where the debug listener (`http.debug.addr`: metrics, /debug/health) runs.

In the only worker it shares the worker's event loop. With several workers it runs in the
supervisor, summing the workers' metric files, on a thread and event loop of its own, since
the supervisor's main thread is a plain loop watching the workers. The supervisor imports
this module only when the listener is configured: it brings aiohttp and the configuration.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from dockyard.app.backends import build_blob_store
from dockyard.app.observability import start_debug_server
from dockyard.config import Config
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.server.serve")


def debug_store(config: Config) -> BlobStore | None:
    """The blob store the storage health check probes, if that check is on."""
    return build_blob_store(config) if config.health.storagedriver.enabled else None


class DebugThread:
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
            self._config, debug_store(self._config), self._multiprocess_dir)
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
