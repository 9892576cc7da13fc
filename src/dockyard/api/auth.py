"""The access check in front of the handlers, and what handlers ask of it (mount, listings).

When the app carries no `AuthState`, every check passes without a look at the request, so
a registry without `auth` behaves exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from dockyard.api.errors import error_response
from dockyard.auth.access import PULL, REPOSITORY, Principal, Scope
from dockyard.auth.certificates import CertificateField, certificate_user
from dockyard.registry.errors import RegistryError
from dockyard.registry.references import check_name

if TYPE_CHECKING:  # a registry without auth never loads PyJWT and cryptography
    from dockyard.auth.authorizer import Authorizer, Decision
    from dockyard.auth.keys import KeyDirectory
    from dockyard.auth.service import TokenService
    from dockyard.auth.tokens import TokenVerifier


@dataclass(frozen=True, slots=True)
class AuthState:
    authorizer: Authorizer
    token_path: str = "/token"
    host: str | None = None
    """The external base URL (`http.host`) for the token realm; else taken from the request."""
    token_service: TokenService | None = None
    refresh_verifier: TokenVerifier | None = None
    keys: KeyDirectory | None = None
    certificate_field: CertificateField | None = None
    """What names the user in a verified client certificate (auth.clientcertificate)."""


AUTH = web.AppKey("auth", AuthState)
PRINCIPAL = "dockyard.principal"


def token_realm(request: web.Request, state: AuthState) -> str:
    base = state.host or f"{request.scheme}://{request.host}"
    return base + state.token_path


def refusal(decision: Decision) -> web.Response:
    headers: dict[str, str] = {}
    if decision.challenge is not None:
        headers["WWW-Authenticate"] = decision.challenge
    if decision.retry_after:
        headers["Retry-After"] = str(decision.retry_after)
    entry = {"code": decision.code, "message": decision.message, "detail": decision.detail}
    return error_response(decision.status, [entry], headers)


def certified_user(request: web.Request, state: AuthState) -> str | None:
    """The user the request's verified client certificate names, when that identifies."""
    field, transport = state.certificate_field, request.transport
    if field is None or transport is None:
        return None
    return certificate_user(transport.get_extra_info("peercert"), field)


async def run_check(state: AuthState, request: web.Request, needed: Scope | None,
                    related: Sequence[Scope] = ()) -> Decision:
    """bcrypt takes tens of milliseconds: it runs in a thread, not on the event loop."""
    authorizer = state.authorizer
    header = request.headers.get("Authorization")
    realm = token_realm(request, state)
    remote = request.remote or ""
    certificate = certified_user(request, state)
    if authorizer.password_cached(header):
        return authorizer.authorize(header, remote, needed, realm, related, certificate)
    return await asyncio.get_running_loop().run_in_executor(
        None, authorizer.authorize, header, remote, needed, realm, related, certificate)


async def check(request: web.Request, needed: Scope | None,
                related: Sequence[Scope] = ()) -> web.Response | None:
    """None when the request may go on (the caller is kept on it), else the refusal.

    `related` scopes are named in a challenge, never required (see Authorizer.authorize).
    """
    state = request.app.get(AUTH)
    if state is None:
        return None
    decision = await run_check(state, request, needed, related)
    if not decision.allowed:
        return refusal(decision)
    request[PRINCIPAL] = decision.principal
    return None


def required_action(method: str, upload: bool) -> str:
    """GET/HEAD pull, DELETE delete, the rest push; every upload-session call is a push."""
    if upload:
        return "push"
    if method in ("GET", "HEAD"):
        return "pull"
    if method == "DELETE":
        return "delete"
    return "push"


def mount_source(request: web.Request) -> tuple[Scope, ...]:
    """Pull on a mount's source repository, for the challenge of `POST ...?mount=&from=`."""
    source = request.query.get("from")
    if request.method != "POST" or not request.query.get("mount") or not source:
        return ()
    try:
        return (Scope(REPOSITORY, check_name(source), (PULL,)),)
    except RegistryError:
        return ()  # an invalid source is no scope to ask for; the handler answers it


def may_pull(request: web.Request, repository: str) -> bool:
    """Whether the caller may read `repository` (a mount source, say)."""
    state = request.app.get(AUTH)
    if state is None:
        return True
    principal = request.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        return False
    return state.authorizer.may(principal, REPOSITORY, repository, PULL)


def pull_filter(request: web.Request) -> Callable[[str], bool] | None:
    """For the catalog: None (list everything) without auth, else the caller's pull check."""
    state = request.app.get(AUTH)
    if state is None:
        return None
    principal = request.get(PRINCIPAL)
    if not isinstance(principal, Principal):
        return lambda _: False
    return state.authorizer.may_pull(principal)
