"""Logs as a terminal and a log pipeline see them: formats, request ids, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
import requests

from dockyard.observability import logs
from tests.system.observability.conftest import ObservedRegistry, json_lines, wait_for


def test_json_lines_carry_the_request_id(serve: Callable[..., ObservedRegistry]) -> None:
    server = serve({"log": {"formatter": "json", "fields": {"service": "registry"}}})
    given = requests.get(server.url + "/v2/", headers={"X-Request-Id": "trace-me-1"}, timeout=5)
    assert given.headers["X-Request-Id"] == "trace-me-1"
    made = requests.get(server.url + "/v2/", timeout=5).headers["X-Request-Id"]
    assert made and made != "trace-me-1"

    def logged_ids() -> set[object]:
        return {line["request_id"] for line in json_lines(server)
                if line["logger"] == "dockyard.access"}

    wait_for(lambda: {"trace-me-1", made} <= logged_ids(), message="both access lines")
    for line in json_lines(server):
        assert line["service"] == "registry" and line["level"] in ("info", "warning")


def test_access_log_can_be_turned_off(serve: Callable[..., ObservedRegistry]) -> None:
    server = serve({"log": {"accesslog": {"disabled": True}}})
    for _ in range(3):
        requests.get(server.url + "/v2/", timeout=5)
    assert '"GET /v2/"' not in server.log_text()
    assert "listening on" in server.log_text()


@pytest.fixture
def captured() -> Iterator[Callable[[], str]]:
    """The root logger as configure_logging leaves it, writing to a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buffer = io.StringIO()
    logs.configure_logging("info", "json", {})
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer.getvalue
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_every_line_of_a_request_has_its_id(captured: Callable[[], str]) -> None:
    log = logging.getLogger("dockyard.test")
    log.info("before any request")
    token = logs.request_id.set("abc-123")
    try:
        log.warning("inside the request")
    finally:
        logs.request_id.reset(token)
    first, second = (json.loads(line) for line in captured().splitlines())
    assert "request_id" not in first
    assert second["request_id"] == "abc-123" and second["msg"] == "inside the request"


def test_secrets_never_reach_the_log(captured: Callable[[], str]) -> None:
    log = logging.getLogger("dockyard.test")
    log.warning("connecting to postgresql+asyncpg://dock:hunter2@db/dockyard")
    log.warning("redirect to https://s3/b/k?X-Amz-Credential=AKIA&X-Amz-Signature=f00d")
    log.warning("header Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig")
    log.warning("body %s", '{"password": "pa55word", "user": "bob"}')
    try:
        raise ValueError("token=s3cr3t-value")
    except ValueError:
        log.exception("failed")
    text = captured()
    for secret in ("hunter2", "f00d", "AKIA", "eyJhbGciOiJFUzI1NiJ9", "pa55word", "s3cr3t"):
        assert secret not in text
    assert "dock:***@db" in text and "bob" in text


@pytest.mark.parametrize("text, masked", [
    ("https://u:p4ss@host/x", "https://u:***@host/x"),
    ("?sig=abc&other=1", "?sig=***&other=1"),
    ("Basic dXNlcjpwYXNzd29yZA==", "Basic ***"),
    ("plain message, nothing secret", "plain message, nothing secret"),
])
def test_redact(text: str, masked: str) -> None:
    assert logs.redact(text) == masked
