"""The one exception configuration problems are reported as."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be used; one line per problem, each led by its key path."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems: tuple[str, ...] = problems
