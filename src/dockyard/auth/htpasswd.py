"""An htpasswd file of bcrypt entries: verified in constant time, re-read when it changes.

Only bcrypt entries ($2a$, $2b$, $2y$) count, as in distribution: MD5, SHA1 and crypt entries
are too weak to trust, so a user with such an entry cannot log in.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt

log = logging.getLogger("dockyard.auth")

BCRYPT_PREFIXES = (b"$2a$", b"$2b$", b"$2y$")
DEFAULT_ROUNDS = 10
CACHE_SECONDS = 60.0
"""A verified password is remembered this long, so a push of many requests costs one bcrypt."""
_CACHE_LIMIT = 10_000
_CHECK_INTERVAL = 1.0

# Checked when the user is unknown, so that an unknown user costs as long as a known one.
_DUMMY_HASH = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(DEFAULT_ROUNDS))


class HtpasswdError(ValueError):
    """The file cannot be written as asked (bad user name, say)."""


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """A bcrypt entry in the $2y$ form htpasswd writes."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
    return "$2y$" + hashed[4:]


def check_user_name(user: str) -> str:
    if not user or ":" in user or any(ch.isspace() for ch in user) or not user.isprintable():
        raise HtpasswdError("user names must be non-empty, printable, without ':' or spaces")
    return user


def parse(text: str) -> dict[str, bytes]:
    """user -> bcrypt hash; other lines are skipped with a warning naming the line only."""
    entries: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        encoded = hashed.strip().encode()
        if not sep or not user or not encoded.startswith(BCRYPT_PREFIXES):
            log.warning("htpasswd line %d is not a bcrypt entry; ignored", number)
            continue
        entries[user] = encoded
    return entries


def _normalise(hashed: bytes) -> bytes:
    """The bcrypt library reads $2y$ (Apache's name) as $2b$."""
    return b"$2b$" + hashed[4:] if hashed.startswith(b"$2y$") else hashed


@dataclass(frozen=True, slots=True)
class _Stamp:
    mtime_ns: int
    size: int
    inode: int


class Htpasswd:
    """The users of one htpasswd file, re-read when its modification time or size changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, bytes] = {}
        self._stamp: _Stamp | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[float, bytes]] = {}
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < _CHECK_INTERVAL:
            return
        self._checked = now
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            if self._stamp is not None or force:
                log.warning("htpasswd file %s does not exist: no user can log in", self.path)
            self._entries, self._stamp = {}, None
            return
        stamp = _Stamp(info.st_mtime_ns, info.st_size, info.st_ino)
        if stamp == self._stamp:
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.error("cannot read htpasswd file %s: %s", self.path, exc)
            return
        self._entries, self._stamp = parse(text), stamp
        self._verified.clear()

    def users(self) -> list[str]:
        with self._lock:
            self._reload()
            return sorted(self._entries)

    def exists(self, user: str) -> bool:
        with self._lock:
            self._reload()
            return user in self._entries

    def fingerprint(self, user: str) -> str | None:
        """Changes whenever the user's password does: refresh tokens carry it, so a new
        password (or a removed user) revokes them."""
        with self._lock:
            self._reload()
            hashed = self._entries.get(user)
        return None if hashed is None else hashlib.sha256(hashed).hexdigest()[:32]

    def _cache_id(self, user: str, password: str) -> bytes:
        material = user.encode() + b"\x00" + password.encode()
        return hmac.new(self._cache_key, material, hashlib.sha256).digest()

    def cached(self, user: str, password: str) -> bool:
        """True when this exact pair was verified recently (no bcrypt needed)."""
        with self._lock:
            self._reload()
            entry = self._verified.get(self._cache_id(user, password))
            hashed = self._entries.get(user)
        if entry is None or hashed is None:
            return False
        expires, against = entry
        return time.monotonic() < expires and hmac.compare_digest(against, hashed)

    def verify(self, user: str, password: str) -> bool:
        """Constant-time whether or not the user exists; a bcrypt hash is checked either way."""
        if self.cached(user, password):
            return True
        with self._lock:
            hashed = self._entries.get(user)
        try:
            ok = bcrypt.checkpw(password.encode(), _normalise(hashed or _DUMMY_HASH))
        except ValueError:
            ok = False
        ok = ok and hashed is not None
        if ok and hashed is not None:
            with self._lock:
                if len(self._verified) >= _CACHE_LIMIT:
                    self._verified.clear()
                self._verified[self._cache_id(user, password)] = (
                    time.monotonic() + CACHE_SECONDS, hashed)
        return ok


# --- editing the file (the `dockyard user` command) -------------------------------------------


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _write_lines(path: Path, lines: list[str]) -> None:
    """Atomically, mode 0600: a reader never sees half a file, and nobody else reads hashes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".htpasswd-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _user_of(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or ":" not in stripped:
        return None
    return stripped.partition(":")[0]


def set_password(path: str | Path, user: str, password: str, *, create: bool,
                 rounds: int = DEFAULT_ROUNDS) -> None:
    """Add a user (create=True, must be new) or change a password (create=False, must exist)."""
    check_user_name(user)
    if not password:
        raise HtpasswdError("the password must not be empty")
    target = Path(path)
    lines = _read_lines(target)
    entry = f"{user}:{hash_password(password, rounds)}"
    index = next((i for i, line in enumerate(lines) if _user_of(line) == user), None)
    if create and index is not None:
        raise HtpasswdError(f"user {user!r} already exists")
    if not create and index is None:
        raise HtpasswdError(f"no such user: {user!r}")
    if index is None:
        lines.append(entry)
    else:
        lines[index] = entry
    _write_lines(target, lines)


def remove_user(path: str | Path, user: str) -> None:
    target = Path(path)
    lines = _read_lines(target)
    kept = [line for line in lines if _user_of(line) != user]
    if len(kept) == len(lines):
        raise HtpasswdError(f"no such user: {user!r}")
    _write_lines(target, kept)


def list_users(path: str | Path) -> list[str]:
    return sorted(user for line in _read_lines(Path(path)) if (user := _user_of(line)))
