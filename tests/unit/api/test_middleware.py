"""The outermost middleware on its own: what a handler's unexpected failure answers.

A disk filling up is the one failure here with a cause outside the code; the server on a
real full filesystem cannot be set up in the suite without mounting one, so the handler
raises what the kernel would.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging

import pytest
from aiohttp import test_utils, web

from dockyard.api.middleware.responses import registry_middleware


def _failing(error: OSError) -> web.Application:
    async def handler(_request: web.Request) -> web.StreamResponse:
        raise error

    app = web.Application(middlewares=[registry_middleware])
    app.router.add_put("/v2/team/app/blobs/uploads/x", handler)
    return app


def _answer(error: OSError) -> tuple[int, dict[str, object]]:
    async def scenario() -> tuple[int, dict[str, object]]:
        async with test_utils.TestClient(test_utils.TestServer(_failing(error))) as client:
            response = await client.put("/v2/team/app/blobs/uploads/x", data=b"layer")
            return response.status, json.loads(await response.text())

    return asyncio.run(scenario())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_answers_507_and_logs_one_line(code: int,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="dockyard.api"):
        status, body = _answer(OSError(code, "No space left on device"))
    assert status == 507
    assert body == {"errors": [{"code": "UNKNOWN", "message": "insufficient storage",
                                "detail": None}]}
    (record,) = [r for r in caplog.records if r.name == "dockyard.api"]
    assert "storage is full" in record.getMessage()
    assert record.exc_info is None  # not a bug: no traceback


def test_another_os_error_is_a_500_with_its_traceback_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="dockyard.api"):
        status, body = _answer(OSError(errno.EIO, "Input/output error"))
    assert status == 500
    assert body["errors"] == [{"code": "UNKNOWN", "message": "internal server error",
                               "detail": None}]
    assert any(r.exc_info for r in caplog.records if r.name == "dockyard.api")
