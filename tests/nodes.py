"""Scenarios on several instances of one port sharing one backend, as a registry's nodes do."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar


class _Closable(Protocol):
    async def close(self) -> None: ...


Node = TypeVar("Node", bound=_Closable)


def run_on_nodes(make: Callable[[], Node],
                 scenario: Callable[[Callable[[], Node]], Awaitable[None]]) -> None:
    """Run `scenario` in an event loop of its own; each call of its argument is another node.

    The nodes are closed in that loop: their clients are bound to it.
    """

    async def main() -> None:
        made: list[Node] = []

        def node() -> Node:
            made.append(make())
            return made[-1]

        try:
            await scenario(node)
        finally:
            for each in made:
                await each.close()

    asyncio.run(main())
