"""A real webhook receiver for the notification tests: aiohttp on a loopback port, in a thread."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.server import free_port


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def document(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST; `fail` answers 503 that many times, `delay` stalls each answer."""

    port: int = field(default_factory=free_port)
    fail: int = 0
    delay: float = 0.0
    secret: bytes | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.attempts += 1
            failing = self.fail > 0
            if failing:
                self.fail -= 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if failing:
            return web.Response(status=503, text="not now")
        if self.secret is not None:
            expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            given = request.headers.get("X-Dockyard-Signature", "")
            if not hmac.compare_digest(expected, given):
                return web.Response(status=401, text="bad signature")
        with self._lock:
            self.deliveries.append(Delivery(dict(request.headers), body))
        return web.Response(status=200)

    def events(self) -> list[dict[str, Any]]:
        """Every event received, repeats dropped by id, as a receiver should."""
        seen: dict[str, dict[str, Any]] = {}
        with self._lock:
            deliveries = list(self.deliveries)
        for delivery in deliveries:
            for event in delivery.document["events"]:
                seen.setdefault(event["id"], event)
        return list(seen.values())

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool],
                 timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; received {json.dumps(events, indent=1)}")
            time.sleep(0.05)


@contextmanager
def running_receiver(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(**options)
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/hook", receiver._handle)
    runner = web.AppRunner(app)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", receiver.port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
