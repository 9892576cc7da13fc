"""Which aiohttp server errors are the client's doing, and the per-reason line budget."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadStatusLine, LineTooLong

from dockyard.observability.rejections import (
    DISCONNECTED,
    MALFORMED,
    RateLimiter,
    RejectionLogger,
    rejection_reason,
)


def _reset_caused_by(cause: BaseException) -> ConnectionResetError:
    try:
        raise ConnectionResetError("blob stream failed") from cause
    except ConnectionResetError as error:
        return error


def test_reasons() -> None:
    assert rejection_reason(LineTooLong("x", "8190")) == MALFORMED
    assert rejection_reason(BadStatusLine("GARBAGE")) == MALFORMED
    assert rejection_reason(ConnectionResetError("Connection lost")) == DISCONNECTED
    assert rejection_reason(BrokenPipeError()) == DISCONNECTED
    # A storage failure turned into a reset is the server's fault: it keeps its traceback.
    assert rejection_reason(_reset_caused_by(OSError("disk gone"))) is None
    assert rejection_reason(RuntimeError("bug")) is None


def test_rate_limit_then_one_summary_per_window() -> None:
    now = [0.0]
    limiter = RateLimiter(limit=3, window=60.0, clock=lambda: now[0])
    assert [limiter.admit("malformed") for _ in range(5)] == [
        (True, 0), (True, 0), (True, 0), (False, 0), (False, 0)]
    assert limiter.admit("disconnected") == (True, 0)  # its own budget
    now[0] = 61.0
    assert limiter.admit("malformed") == (True, 2)  # the two left out, said once
    assert limiter.admit("malformed") == (True, 0)


def test_logger_keeps_real_errors_and_shortens_rejections(
        caplog: pytest.LogCaptureFixture) -> None:
    logger = RejectionLogger(logging.getLogger("test.rejections"))
    with caplog.at_level(logging.DEBUG, "test.rejections"):
        logger.exception("Error handling request from %s", "10.0.0.1",
                         exc_info=ConnectionResetError("Connection lost"))
        logger.exception("Error handling request from %s", "10.0.0.1",
                         exc_info=RuntimeError("bug"))
    shortened, real = caplog.records
    assert shortened.levelno == logging.INFO and shortened.exc_info is None
    assert shortened.getMessage() == "client 10.0.0.1 went away mid-request: Connection lost"
    assert real.levelno == logging.ERROR and real.exc_info is not None
