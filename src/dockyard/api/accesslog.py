"""One line per request, as text for a terminal or JSON for a log pipeline."""

from __future__ import annotations

import json
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dockyard.api.middleware.responses import REQUEST_ID, STARTED


def _fields(request: web.BaseRequest, response: web.StreamResponse,
            duration: float) -> dict[str, object]:
    started = request.get(STARTED)
    if started is not None:
        duration = time.perf_counter() - started
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "request_id": request.get(REQUEST_ID, "-"),
        "remote": request.remote,
        "method": request.method,
        "path": request.path,
        "status": response.status,
        "bytes": response.body_length,
        "duration_ms": round(duration * 1000, 3),
        "user_agent": request.headers.get("User-Agent", ""),
    }


class TextAccessLogger(AbstractAccessLogger):
    """The text formatter already leads each line with the request id, so it is not repeated."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        f = _fields(request, response, time)
        self.logger.info(
            '%s "%s %s" %s %s %.3fms "%s"',
            f["remote"], f["method"], f["path"], f["status"], f["bytes"],
            f["duration_ms"], f["user_agent"],
        )


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(json.dumps(_fields(request, response, time)))
