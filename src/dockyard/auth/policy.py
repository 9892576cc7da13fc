"""Who may do what where: rules of repository patterns x users and groups x actions.

Without rules, every authenticated user may do everything (distribution's htpasswd
behaviour) and anonymous callers nothing. With rules, an action is allowed only when a rule
grants it; admins are allowed everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from dockyard.auth.access import ALL, REPOSITORY_ACTIONS


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """`*` matches within one path component, `**` across components (`team/**`, `**`)."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts))


def expand_actions(actions: Iterable[str]) -> frozenset[str]:
    wanted = set(actions)
    if ALL in wanted:
        return frozenset(REPOSITORY_ACTIONS)
    return frozenset(wanted & set(REPOSITORY_ACTIONS))


@dataclass(frozen=True, slots=True)
class Rule:
    repositories: tuple[str, ...]
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    anonymous_pull: bool = False

    def matches(self, repository: str) -> bool:
        return any(compile_pattern(p).fullmatch(repository) for p in self.repositories)


class AccessPolicy:
    """Who may do what where: the access rules, the admins and the groups, in one place.

    Shared by the authorizer (Basic mode) and the token service (bearer mode), so both modes
    grant exactly the same rights.
    """

    def __init__(self, rules: Iterable[Rule] = (), admins: Iterable[str] = (),
                 groups: Mapping[str, Iterable[str]] | None = None) -> None:
        self.rules = tuple(rules)
        self.admins = frozenset(admins)
        self._groups_of: dict[str, set[str]] = {}
        for group, members in (groups or {}).items():
            for member in members:
                self._groups_of.setdefault(member, set()).add(group)

    @property
    def open(self) -> bool:
        """No rules: every authenticated user may do everything."""
        return not self.rules

    @property
    def anonymous_possible(self) -> bool:
        return any(rule.anonymous_pull for rule in self.rules)

    def groups_of(self, user: str) -> frozenset[str]:
        return frozenset(self._groups_of.get(user, ()))

    def actions(self, user: str | None, repository: str) -> frozenset[str]:
        """The repository actions `user` (None: anonymous) may take on `repository`."""
        if user is not None and (self.open or user in self.admins):
            return frozenset(REPOSITORY_ACTIONS)
        allowed: set[str] = set()
        groups = self.groups_of(user) if user is not None else frozenset()
        for rule in self.rules:
            if not rule.matches(repository):
                continue
            if rule.anonymous_pull:
                allowed.add("pull")
            if user is not None and (user in rule.users or "*" in rule.users
                                     or groups & rule.groups):
                allowed |= expand_actions(rule.actions)
        return frozenset(allowed)

    def allows(self, user: str | None, repository: str, action: str) -> bool:
        granted = self.actions(user, repository)
        if action == ALL:
            return granted == frozenset(REPOSITORY_ACTIONS)
        return action in granted

    def may_list_catalog(self, user: str | None) -> bool:
        """Listing is filtered per repository, so anyone who could pull something may ask."""
        return user is not None or self.anonymous_possible
