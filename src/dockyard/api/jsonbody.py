"""JSON bodies with an exact Content-Type (no charset parameter added)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON = "application/json"


def json_response(document: Any, headers: dict[str, str] | None = None,
                  content_type: str = JSON, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(document, separators=(",", ":")).encode(),
        headers={**(headers or {}), "Content-Type": content_type},
    )
