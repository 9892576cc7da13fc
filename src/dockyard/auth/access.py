"""The vocabulary of access: actions, scopes as the Docker token protocol writes them, callers."""

from __future__ import annotations

from dataclasses import dataclass

PULL = "pull"
PUSH = "push"
DELETE = "delete"
ALL = "*"
REPOSITORY_ACTIONS: tuple[str, ...] = (PULL, PUSH, DELETE)

REPOSITORY = "repository"
REGISTRY = "registry"
CATALOG = "catalog"


class ScopeInvalid(ValueError):
    """A scope string that does not read as type:name:actions."""


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource and the actions wanted on it, e.g. repository:team/app:pull,push."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def repository_scope(name: str, *actions: str) -> Scope:
    return Scope(REPOSITORY, name, actions)


CATALOG_SCOPE = Scope(REGISTRY, CATALOG, (ALL,))


def parse_scope(text: str) -> Scope:
    """type:name:actions; the name sits between the first and the last colon."""
    kind, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name or not actions:
        raise ScopeInvalid(f"not a scope: {text!r}")
    listed = tuple(action for action in actions.split(",") if action)
    if not listed:
        raise ScopeInvalid(f"no actions in scope: {text!r}")
    return Scope(kind, name, listed)


def parse_scopes(values: list[str]) -> list[Scope]:
    """Repeated `scope` parameters, each possibly holding several space-separated scopes."""
    return [parse_scope(part) for value in values for part in value.split()]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request.

    `subject` is None for an anonymous caller. `grants` is None when the caller proved a
    password (the policy decides); a bearer token carries its own grants instead.
    """

    subject: str | None
    grants: frozenset[tuple[str, str, str]] | None = None
    via_token: bool = False

    @property
    def anonymous(self) -> bool:
        return self.subject is None and not self.via_token


ANONYMOUS = Principal(None)
