"""SIGTERM: stop accepting, let requests in progress finish, then exit.

aiohttp's own shutdown marks every connection closing at once, and from then on it drops any
request body still arriving, so an upload in progress could never finish. Draining here
instead stops the listener, closes connections as soon as they are idle (keep-alive ones at
once, busy ones after their response), and hands what is left after the timeout to aiohttp,
which cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("dockyard.server.serve")

POLL_INTERVAL = 0.05
FORCE_CLOSE_TIMEOUT = 1.0
"""For the runner: after the drain, how long cancelled handlers get to unwind."""


def _busy(connection: RequestHandler) -> bool:
    """A request is being handled, or has arrived and is about to be.

    aiohttp keeps no public flag; without these (other versions) a connection counts as
    busy, which only means waiting out the timeout.
    """
    return bool(getattr(connection, "_request_in_progress", True)
                or getattr(connection, "_messages", True))


async def drain(runner: web.BaseRunner, sites: Iterable[web.BaseSite], timeout: float) -> None:
    for site in sites:
        await site.stop()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    server = runner.server
    while server is not None and server.connections:
        busy = 0
        for connection in server.connections:
            if _busy(connection):
                busy += 1
            else:
                connection.force_close()  # idle: nothing to lose
        if loop.time() >= deadline:
            if busy:
                log.warning("drain timeout: cancelling %d requests in progress", busy)
            break
        await asyncio.sleep(POLL_INTERVAL)
    await runner.cleanup()
