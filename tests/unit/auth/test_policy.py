"""Access rules: glob patterns, users, groups, admins and anonymous pull."""

from __future__ import annotations

import pytest

from dockyard.auth.policy import AccessPolicy, Rule, compile_pattern


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("team-a/*", "team-a/app", True),
    ("team-a/*", "team-a/app/sub", False),
    ("team-a/*", "team-ab/app", False),
    ("team-a/**", "team-a/app/sub", True),
    ("team-a/**", "team-a/app", True),
    ("**", "anything/at/all", True),
    ("**/base", "base", True),
    ("**/base", "x/y/base", True),
    ("lib?", "lib1", True),
    ("lib?", "lib/", False),
    ("exact/name", "exact/name", True),
    ("exact/name", "exact/names", False),
    ("a.b/*", "axb/c", False),
])
def test_patterns(pattern: str, name: str, matches: bool) -> None:
    assert bool(compile_pattern(pattern).fullmatch(name)) is matches


def test_without_rules_every_user_may_everything_and_anonymous_nothing() -> None:
    policy = AccessPolicy()
    assert policy.actions("alice", "x/y") == {"pull", "push", "delete"}
    assert policy.actions(None, "x/y") == frozenset()
    assert policy.may_list_catalog("alice") and not policy.may_list_catalog(None)


def test_rules_users_groups_admins_anonymous() -> None:
    policy = AccessPolicy(
        rules=[
            Rule(("team-a/**",), groups=frozenset({"team-a"}), actions=frozenset({"pull", "push"})),
            Rule(("team-a/**",), users=frozenset({"lead"}), actions=frozenset({"delete"})),
            Rule(("public/*",), users=frozenset({"*"}), actions=frozenset({"pull"}),
                 anonymous_pull=True),
            Rule(("shared",), users=frozenset({"bob"}), actions=frozenset({"*"})),
        ],
        admins=["root"],
        groups={"team-a": ["bob", "lead"]},
    )
    assert policy.actions("bob", "team-a/app") == {"pull", "push"}
    assert policy.actions("lead", "team-a/app") == {"pull", "push", "delete"}
    assert policy.actions("eve", "team-a/app") == frozenset()
    assert policy.actions(None, "team-a/app") == frozenset()
    assert policy.actions(None, "public/x") == {"pull"}
    assert policy.actions("eve", "public/x") == {"pull"}
    assert policy.actions("bob", "shared") == {"pull", "push", "delete"}
    assert policy.allows("bob", "shared", "*")
    assert policy.allows("lead", "team-a/app", "*")
    assert not policy.allows("bob", "team-a/app", "*")
    assert policy.actions("root", "anything") == {"pull", "push", "delete"}
    assert policy.may_list_catalog(None)  # anonymous pull exists, listing is filtered
