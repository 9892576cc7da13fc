"""What `dockyard serve` checks once, before any worker starts, so a mistake stops it at once.

Workers share their port through SO_REUSEPORT, which the kernel grants to any process of the
same user: a second server started on a port a running one serves would silently get half of
its connections. So the address is first bound here without SO_REUSEPORT, which fails while
anything holds it, and then claimed for this server's lifetime (see `claim_address`).
Likewise a SQLite database belongs to one server: its lock file is held for as long as the
server runs (and is released by the kernel when it dies, however it dies). The files the
configuration names (TLS, CA bundles, token keys) are loaded here so that a missing or
unreadable one is named in one line instead of failing every worker.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import ssl
from pathlib import Path

from dockyard.app.backends import build_blob_store, sqlite_file
from dockyard.config import Config
from dockyard.server import tls as tls_module
from dockyard.storage.base import StoreUnusable
from dockyard.unavailable import ServiceUnavailable

LOCK_SUFFIX = ".server-lock"


class StartupError(Exception):
    """The server cannot start; the message is one line that names the key, file or address."""


_claims: list[socket.socket] = []
"""Claims on the listening address, open for as long as this process (or its exec) lives."""


def claim_address(config: Config) -> None:
    """Fail if anything listens on `http.addr`; else claim it for this server's workers.

    A plain bind (no SO_REUSEPORT) fails while any socket holds the address. The claim is a
    bound, never listening, SO_REUSEPORT socket: it receives no connection, lets this
    server's workers bind beside it, and makes the plain bind of any later server fail, also
    while this server's workers are still starting.
    """
    host, port = config.http.bind_host, config.http.bind_port
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"http.addr: cannot resolve {config.http.addr}: {exc}") from None
    for family, kind, protocol, _name, address in infos:
        for reuse_port in (False, True):
            claim = socket.socket(family, kind, protocol)
            # The probe sets SO_REUSEADDR as the listener does, so connections in TIME_WAIT
            # do not count; the claim must not: two bound sockets that both set it do not
            # conflict, and the next server's probe would pass.
            option = socket.SO_REUSEPORT if reuse_port else socket.SO_REUSEADDR
            claim.setsockopt(socket.SOL_SOCKET, option, 1)
            if family == socket.AF_INET6:
                claim.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                claim.bind(address)
            except OSError as exc:
                claim.close()
                if exc.errno == errno.EADDRINUSE:
                    raise StartupError(f"http.addr: {config.http.addr} is already in use "
                                       "(by another server or program)") from None
                raise StartupError(f"http.addr: cannot listen on {config.http.addr}: "
                                   f"{exc.strerror}") from None
            if reuse_port:
                claim.set_inheritable(True)
                _claims.append(claim)
            else:
                claim.close()


def _unreadable(key: str, path: str) -> str | None:
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return f"{key}: cannot read {path}: {exc.strerror}"


def file_problems(config: Config, users_required: bool = True) -> list[str]:
    """Every file the configuration names that cannot be read or parsed, one line each.

    `users_required`: a missing htpasswd file is a problem (config check), or only the state
    of a registry nobody may log in to yet (serve, which warns about it).
    """
    files: list[tuple[str, str]] = []
    tls = config.http.tls
    if tls is not None:
        files += [("http.tls.certificate", tls.certificate), ("http.tls.key", tls.key)]
        files += [("http.tls.clientcas", path) for path in tls.clientcas]
    database = config.database
    files += [(f"database.{name}", path) for name, path in (
        ("sslrootcert", database.sslrootcert), ("sslcert", database.sslcert),
        ("sslkey", database.sslkey)) if path]
    if config.redis is not None:
        redis_tls = config.redis.tls
        files += [(f"redis.tls.{name}", path) for name, path in (
            ("certificate", redis_tls.certificate), ("key", redis_tls.key)) if path]
        files += [("redis.tls.clientcas", path) for path in redis_tls.clientcas]
    problems = [problem for key, path in files if (problem := _unreadable(key, path))]
    if tls is not None and not problems:
        try:
            tls_module.make_context(tls)
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"http.tls: cannot use {tls.certificate} and {tls.key}: {exc}")
    problems += _auth_problems(config, users_required)
    return problems


def _auth_problems(config: Config, users_required: bool) -> list[str]:
    auth = config.auth
    problems: list[str] = []
    if auth.htpasswd is not None and (users_required or Path(auth.htpasswd.path).exists()):
        problem = _unreadable("auth.htpasswd.path", auth.htpasswd.path)
        if problem is not None:
            problems.append(problem)
    token = auth.token
    if token is None or not (token.rootcertbundle or token.jwks):
        return problems
    from dockyard.auth.keys import KeyFileError, load_jwks, load_root_bundle  # cryptography

    for key, path, load in (("auth.token.rootcertbundle", token.rootcertbundle,
                             load_root_bundle), ("auth.token.jwks", token.jwks, load_jwks)):
        if path:
            try:
                load(path)
            except KeyFileError as exc:
                problems.append(f"{key}: {exc}")
    return problems


def check_files(config: Config) -> None:
    """Stop on the first file problem (see `file_problems`)."""
    problems = file_problems(config, users_required=False)
    if problems:
        raise StartupError(problems[0])


def hold_database(config: Config) -> int | None:
    """Lock the SQLite database for this server; the descriptor must stay open while it runs.

    Returns None for a database several servers may share (PostgreSQL). The descriptor is
    inheritable so that the lock survives the supervisor's exec.
    """
    database = sqlite_file(config)
    if database is None:
        return None
    lock = database.with_name(database.name + LOCK_SUFFIX)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StartupError(f"cannot write to {lock.parent}, where the SQLite database lives: "
                           f"{exc.strerror}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = Path(lock).read_text().strip() or "unknown"
        os.close(descriptor)
        raise StartupError(f"{database} is in use by another Dockyard server (pid {holder}); "
                           "a SQLite database serves one server") from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    os.set_inheritable(descriptor, True)
    return descriptor


def check_blob_store(config: Config) -> None:
    """The blob store can hold blobs: the bucket exists and lets us in, the root takes files."""
    key = "storage.s3" if config.storage.s3 is not None else "storage.filesystem.rootdirectory"

    async def verify() -> None:
        store = build_blob_store(config)
        try:
            await store.verify()
        finally:
            await store.close()

    try:
        asyncio.run(verify())
    except StoreUnusable as exc:
        raise StartupError(f"{key}: {exc}") from None
    except ServiceUnavailable as exc:
        raise StartupError(f"{key}: cannot reach the store: {exc}") from None
    except OSError as exc:  # the filesystem driver makes its folders when built
        raise StartupError(f"{key}: cannot write to {exc.filename}: {exc.strerror}") from None


def preflight(config: Config) -> None:
    """Every check. The database lock stays held until this process (or its exec) ends."""
    check_files(config)
    check_blob_store(config)
    claim_address(config)
    hold_database(config)
