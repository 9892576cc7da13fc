"""The built-in token service: GET (Docker token protocol) and POST (OAuth2) on its path.

Credentials come in a Basic header (GET) or the form (POST); failures are rate-limited the
same way as on the registry. Tokens appear only in response bodies, never in logs.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

from aiohttp import web

from dockyard.api.auth import AUTH, AuthState, certified_user
from dockyard.api.errors import error_response
from dockyard.api.jsonbody import json_response
from dockyard.auth.access import Scope, ScopeInvalid, parse_scopes
from dockyard.auth.authorizer import Credentials, Malformed, decode_basic, parse_authorization
from dockyard.auth.service import TokenService
from dockyard.auth.tokens import REFRESH_USE, TokenInvalid

MAX_SCOPES = 100
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return error_response(status, [{"code": code, "message": message, "detail": None}],
                          {**_NO_STORE, **(headers or {})})


def _unauthorized(state: AuthState) -> web.Response:
    realm = state.authorizer.basic_realm.replace('"', "")
    return _error(401, "UNAUTHORIZED", "authentication required",
                  {"WWW-Authenticate": f'Basic realm="{realm}"'})


def _service(state: AuthState) -> TokenService:
    assert state.token_service is not None
    return state.token_service


async def _login(request: web.Request, state: AuthState,
                 credentials: Credentials) -> web.Response | None:
    """None when the password is right; else 401 or 429."""
    authorizer = state.authorizer
    remote = request.remote or ""
    wait = authorizer.throttled(credentials.user, remote)
    if wait:
        return _error(429, "TOOMANYREQUESTS", "too many failed logins",
                      {"Retry-After": str(wait)})
    ok = await asyncio.get_running_loop().run_in_executor(
        None, authorizer.check_password, credentials, remote)
    return None if ok else _unauthorized(state)


def _check_service(state: AuthState, service: str | None) -> web.Response | None:
    if service and service != _service(state).service:
        return _error(400, "UNSUPPORTED", "unknown service")
    return None


def _issued(service: TokenService, subject: str | None, scopes: list[Scope]) -> dict[str, Any]:
    token = service.access_token(subject, scopes)
    now = time.time()
    return {
        "token": token,
        "access_token": token,
        "expires_in": int(service.issuer.lifetime),
        "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }


async def get_token(request: web.Request) -> web.StreamResponse:
    """GET ?service=&scope=&account=: Basic credentials, else the client certificate's user
    (no refresh token: the certificate is the lasting credential), else anonymous."""
    state = request.app[AUTH]
    service = _service(state)
    refused = _check_service(state, request.query.get("service"))
    if refused is not None:
        return refused
    try:
        scopes = parse_scopes(request.query.getall("scope", []))
    except ScopeInvalid:
        return _error(400, "UNSUPPORTED", "invalid scope")
    if len(scopes) > MAX_SCOPES:
        return _error(400, "UNSUPPORTED", "too many scopes")
    subject = certified_user(request, state)  # unless credentials are sent
    password_login = False
    header = request.headers.get("Authorization")
    if header is not None:
        try:
            scheme, value = parse_authorization(header)
            if scheme != "basic":
                raise Malformed("not basic")
            credentials = decode_basic(value)
        except Malformed:
            return _unauthorized(state)
        if credentials is not None:
            failed = await _login(request, state, credentials)
            if failed is not None:
                return failed
            subject, password_login = credentials.user, True
    account = request.query.get("account")
    if account and subject is not None and account != subject:
        return _unauthorized(state)
    body = _issued(service, subject, scopes)
    if password_login and subject is not None and request.query.get("offline_token") == "true":
        body["refresh_token"] = _refresh_token(state, subject)
    return json_response(body, _NO_STORE)


async def post_token(request: web.Request) -> web.StreamResponse:
    """OAuth2: grant_type=password (username, password) or refresh_token."""
    state = request.app[AUTH]
    service = _service(state)
    form = await request.post()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    refused = _check_service(state, fields.get("service"))
    if refused is not None:
        return refused
    try:
        scopes = parse_scopes([fields.get("scope", "")])
    except ScopeInvalid:
        return _error(400, "UNSUPPORTED", "invalid scope")
    if len(scopes) > MAX_SCOPES:
        return _error(400, "UNSUPPORTED", "too many scopes")
    grant = fields.get("grant_type")
    refresh: str | None = None
    if grant == "password":
        user, password = fields.get("username", ""), fields.get("password", "")
        if not user:
            return _unauthorized(state)
        failed = await _login(request, state, Credentials(user, password))
        if failed is not None:
            return failed
        subject = user
        if fields.get("access_type") == "offline":
            refresh = _refresh_token(state, subject)
    elif grant == "refresh_token":
        found = _refresh_subject(state, fields.get("refresh_token", ""))
        if found is None:
            return _unauthorized(state)
        subject, refresh = found, fields["refresh_token"]
    else:
        return _error(400, "UNSUPPORTED", "unsupported grant_type")
    issued = _issued(service, subject, scopes)
    body: dict[str, Any] = {
        "access_token": issued["access_token"],
        "token_type": "Bearer",
        "expires_in": issued["expires_in"],
        "issued_at": issued["issued_at"],
        "scope": " ".join(str(scope) for scope in scopes),
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    return json_response(body, _NO_STORE)


def _refresh_token(state: AuthState, subject: str) -> str:
    htpasswd = state.authorizer.htpasswd
    fingerprint = htpasswd.fingerprint(subject) if htpasswd is not None else None
    return _service(state).issuer.refresh_token(subject, fingerprint or "")


def _refresh_subject(state: AuthState, token: str) -> str | None:
    """The user of a valid refresh token, if their password has not changed since."""
    verifier = state.refresh_verifier
    htpasswd = state.authorizer.htpasswd
    if not token or verifier is None or htpasswd is None:
        return None
    try:
        claims = verifier.verify(token)
    except TokenInvalid:
        return None
    subject, carried = claims.get("sub"), claims.get("pwf")
    if claims.get("token_use") != REFRESH_USE or not isinstance(subject, str):
        return None
    current = htpasswd.fingerprint(subject)
    if current is None or not isinstance(carried, str):
        return None
    return subject if hmac.compare_digest(current, carried) else None


async def jwks(request: web.Request) -> web.StreamResponse:
    """The service's public keys, so another registry can trust its tokens."""
    keys = request.app[AUTH].keys
    return json_response(keys.jwks() if keys is not None else {"keys": []})


def add_token_routes(app: web.Application, path: str) -> None:
    app.router.add_get(path, get_token)
    app.router.add_post(path, post_token)
    app.router.add_get(path.rstrip("/") + "/jwks.json", jwks)
