"""Value types shared by the sections: Go durations, host:port, URLs, database URLs, sizes.

distribution's configs write these as Go does (`1h30m`, `[::1]:5000`), so the checks follow
Go's rules; each annotated type keeps the text as written and refuses what would fail later.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign, as Go accepts
    "\u03bcs": 1e-6,  # Greek mu, as Go accepts
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string ("1h30m"), the format distribution's configs use."""
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"not a duration: {text!r} (expected e.g. 10s, 30m, 1h30m)")
    return total


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_positive_duration(value: str) -> str:
    if parse_duration(value) <= 0:
        raise ValueError(f"must be longer than zero: {value!r}")
    return value


def split_host_port(addr: str) -> tuple[str, int]:
    """Go's net.SplitHostPort rules, since distribution's addr uses them: IPv6 needs brackets."""
    host, colon, port = addr.rpartition(":")
    if not colon or not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535:
        raise ValueError(f"not host:port: {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"not host:port (bracket IPv6 hosts, e.g. [::1]:5000): {addr!r}")
    if re.search(r"[\s/]", host):
        raise ValueError(f"not host:port: {addr!r}")
    return host or "0.0.0.0", int(port)


def _check_addr(value: str) -> str:
    split_host_port(value)
    return value


_USERINFO = re.compile(r"^([^:/?#]*://)[^/?#]*@")


def shown_url(value: str) -> str:
    """A URL fit for an error message: credentials written into it are left out."""
    return _USERINFO.sub(r"\1***@", value)


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {shown_url(value)!r}")
    return value


def _check_base_url(value: str) -> str:
    """Clients are redirected to this URL, and an upstream is addressed by it: anything beyond
    scheme and authority is a mistake (credentials have keys of their own)."""
    _check_http_url(value)
    parts = urlsplit(value)
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"must be scheme://host[:port] only: {shown_url(value)!r}")
    try:
        _ = parts.port  # urlsplit only checks the port when asked
    except ValueError:
        raise ValueError(f"bad port in URL: {value!r}") from None
    return f"{parts.scheme}://{parts.netloc}"


def _check_url_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must start with '/': {value!r}")
    return value


def _check_database_url(value: str) -> str:
    try:
        make_url(value)
    except ArgumentError:
        raise ValueError(f"not an SQLAlchemy database URL: {value!r}") from None
    return value


_SIZE_UNITS: dict[str, int] = {
    "B": 1,
    **{f"{prefix}B": 1000**power for power, prefix in enumerate("KMGTP", 1)},
    **{f"{prefix}iB": 1024**power for power, prefix in enumerate("KMGTP", 1)},
    "kB": 1000,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([A-Za-z]*)")


def parse_size(value: int | str) -> int:
    """Bytes in a size written as an integer or a number and a unit: 500MB, 10GiB, 1TB.

    KB, MB, GB, TB, PB count in powers of 1000, KiB ... PiB in powers of 1024, as the units
    themselves say.
    """
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(value.strip())
        if match is None or match.group(2) not in (*_SIZE_UNITS, ""):
            raise ValueError(f"not a size: {value!r} (expected bytes, or e.g. 500MB, 10GiB, 1TB)")
        size = int(float(match.group(1)) * _SIZE_UNITS.get(match.group(2), 1))
    if size < 1:
        raise ValueError(f"must be at least one byte: {value!r}")
    return size


def _check_size(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("not a size: expected bytes as an integer, or e.g. 500MB, 10GiB, 1TB")
    parse_size(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
PositiveDuration = Annotated[Duration, AfterValidator(_check_positive_duration)]
HostPort = Annotated[str, AfterValidator(_check_addr)]
HttpURL = Annotated[str, AfterValidator(_check_http_url)]
BaseURL = Annotated[str, AfterValidator(_check_base_url)]
URLPath = Annotated[str, AfterValidator(_check_url_path)]
DatabaseURL = Annotated[str, AfterValidator(_check_database_url)]
ByteSize = Annotated[int | str, BeforeValidator(_check_size)]
"""A size as written (bytes, or a number with a unit); `parse_size` gives the bytes."""
