"""OCI error bodies and the status each error code answers with."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from dockyard.api.jsonbody import json_response
from dockyard.registry import errors

log = logging.getLogger("dockyard.api")

_STATUS: dict[type[errors.RegistryError], int] = {
    errors.BlobUnknown: 404,
    errors.BlobUploadInvalid: 400,
    errors.UploadOutOfOrder: 416,
    errors.BlobUploadUnknown: 404,
    errors.DigestInvalid: 400,
    errors.ManifestBlobUnknown: 400,
    errors.ManifestInvalid: 400,
    errors.ManifestUnknown: 404,
    errors.ManifestReferenceUnknown: 400,
    errors.ManifestTooLarge: 413,
    errors.NameInvalid: 400,
    errors.NameUnknown: 404,
    errors.SizeInvalid: 400,
    errors.Unsupported: 405,
    errors.PaginationInvalid: 400,
    errors.UpstreamUnavailable: 503,
    errors.UpstreamFailed: 502,
}


def status_of(error: errors.RegistryError) -> int:
    for cls in type(error).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 400


def _entry(error: errors.RegistryError) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "detail": error.detail}


def error_response(status: int, entries: list[dict[str, Any]],
                   headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"errors": entries}, headers, status=status)


def registry_error_response(error: errors.RegistryError | errors.RegistryErrors,
                            headers: dict[str, str] | None = None) -> web.Response:
    listed = error.errors if isinstance(error, errors.RegistryErrors) else [error]
    return error_response(status_of(listed[0]), [_entry(e) for e in listed], headers)


def unsupported(message: str, status: int = 405) -> web.Response:
    return error_response(status, [{"code": "UNSUPPORTED", "message": message, "detail": None}])


def http_error_response(exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no route, wrong method) in the OCI error shape."""
    code = "NAME_UNKNOWN" if exc.status == 404 else "UNSUPPORTED"
    return error_response(exc.status, [{"code": code, "message": exc.reason, "detail": None}])


RETRY_AFTER_SECONDS = 1


def unavailable_response(request: web.Request, exc: Exception) -> web.Response:
    """A backend is away: 503 with Retry-After, so clients retry rather than give up.

    The spec lists no code for this; UNKNOWN with a plain message is what clients accept.
    """
    log.warning("%s %s: backend unavailable: %s", request.method, request.path, exc)
    return error_response(
        503,
        [{"code": "UNKNOWN", "message": "service unavailable, retry later", "detail": None}],
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def storage_full_response(request: web.Request, exc: OSError) -> web.Response:
    """The disk or a quota is full: 507, and a log line an operator can act on.

    No traceback: nothing is wrong with the request or the code, and a failed write has
    already been cut back (storage/fanout.py, storage/filesystem/direct.py) or rolled back (SQLite's
    "database or disk is full" arrives as ENOSPC, metadata/engine.py).
    """
    log.error("%s %s: storage is full: %s", request.method, request.path, exc)
    return error_response(
        507, [{"code": "UNKNOWN", "message": "insufficient storage", "detail": None}]
    )


def internal_error(request: web.Request) -> web.Response:
    """A bug: logged with its traceback, answered without one."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(
        500, [{"code": "UNKNOWN", "message": "internal server error", "detail": None}]
    )
