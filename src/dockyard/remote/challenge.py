"""`WWW-Authenticate` challenges (RFC 7235): which scheme the upstream wants, and for
Bearer, where to get a token (realm, service, scope)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'[\s,]*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))')
_SCHEME = re.compile(rf"[\s,]*({_TOKEN})(?![^\s,]*\s*=)")
_TOKEN68 = re.compile(r"\s+[A-Za-z0-9\-._~+/]+=*(?=\s*(?:,|$))")
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: the scheme (lowercase) and its parameters (lowercase names)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> list[str]:
        """The scope parameter is space-delimited; each entry is asked for separately."""
        return self.params.get("scope", "").split()


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge in every `WWW-Authenticate` header, in order. A malformed tail is
    ignored: what parsed before it is still usable."""
    found: list[Challenge] = []
    for header in headers:
        found.extend(_parse_one(header))
    return found


def _parse_one(header: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        if challenges and (param := _PARAM.match(header, position)):
            quoted, bare = param.group(2), param.group(3)
            value = _ESCAPE.sub(r"\1", quoted) if quoted is not None else bare
            challenges[-1].params[param.group(1).lower()] = value
            position = param.end()
            continue
        scheme = _SCHEME.match(header, position)
        if scheme is None:
            break
        challenges.append(Challenge(scheme.group(1).lower()))
        position = scheme.end()
        if token68 := _TOKEN68.match(header, position):
            position = token68.end()  # e.g. `Negotiate abc==`: nothing we use
    return challenges


def find(challenges: Iterable[Challenge], scheme: str) -> Challenge | None:
    """The first challenge of `scheme` (lowercase), if the upstream offered one."""
    return next((c for c in challenges if c.scheme == scheme), None)
