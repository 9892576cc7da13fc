"""What every response gets: the API version header, a request id, OCI errors for failures."""

from __future__ import annotations

import errno
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from dockyard.api.appkeys import RESPONSE_HEADERS
from dockyard.api.errors import (
    http_error_response,
    internal_error,
    registry_error_response,
    storage_full_response,
    unavailable_response,
)
from dockyard.observability import logs
from dockyard.registry.errors import RegistryError, RegistryErrors
from dockyard.unavailable import ServiceUnavailable

REQUEST_ID = web.RequestKey("request_id", str)
STARTED = web.RequestKey("started", float)
REQUEST_ID_HEADER = "X-Request-Id"
API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
# Browsers must take each Content-Type as given: stored manifests are never sniffed as HTML.
NO_SNIFF = {"X-Content-Type-Options": "nosniff"}
_MAX_REQUEST_ID = 200
STORAGE_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return uuid.uuid4().hex


@web.middleware
async def registry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[STARTED] = time.perf_counter()  # uvloop's loop.time() counts whole milliseconds
    request[REQUEST_ID] = current = _request_id(request)
    # aiohttp runs each request in its own task, so this reaches exactly this request's lines.
    logs.request_id.set(current)
    try:
        return await handler(request)
    except (RegistryError, RegistryErrors) as error:
        return registry_error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_error_response(exc)
    except ServiceUnavailable as exc:
        return unavailable_response(request, exc)
    except (ConnectionError, TimeoutError):
        raise
    except OSError as exc:
        if exc.errno in STORAGE_FULL:
            return storage_full_response(request, exc)
        return internal_error(request)
    except Exception:
        return internal_error(request)


async def add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: reaches file responses and aiohttp's own errors too."""
    response.headers.update(API_VERSION)
    configured = request.app.get(RESPONSE_HEADERS, ())
    for name, value in configured:
        response.headers.add(name, value)
    for name, value in NO_SNIFF.items():  # distribution's sample config sets it too: once
        response.headers.setdefault(name, value)
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
