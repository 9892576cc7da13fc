"""What every command group shares: its shape, the handler signature, the `--config` option.

A group module has `register(subparsers)`, which adds its parsers with `add_command` and sets
`handler` on each runnable one; `main` loads the configuration once and calls that handler.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeAlias, TypeVar

from dockyard.config import Config

Handler: TypeAlias = Callable[[argparse.Namespace, Config], int]
"""Runs one command on the parsed arguments and the loaded configuration; the exit code."""

_Resource = TypeVar("_Resource")

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandGroup(Protocol):
    """A module of related commands (`dockyard events ...`, the maintenance commands)."""

    def register(self, subparsers: Subparsers) -> None:
        """Add the group's parsers to `dockyard`'s, each runnable one with its handler."""


def config_option(default: object) -> argparse.ArgumentParser:
    """A parent parser adding `--config`, the one definition every parser of `dockyard` uses.

    Each use needs its own: argparse shares a parent's actions, and `set_defaults` would
    change the default for every parser at once.
    """
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument("--config", metavar="FILE", default=default,
                        help="configuration file (distribution's YAML layout)")
    return option


# SUPPRESS: a command not given --config leaves the attribute alone, so a value given before
# the command (or the top level's None) is not overwritten.
_COMMAND_CONFIG = config_option(argparse.SUPPRESS)


def add_command(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    """A (sub)command parser that takes `--config` like every other."""
    return subparsers.add_parser(name, help=help, parents=[_COMMAND_CONFIG])


def async_handler(
    opened: Callable[[Config], AbstractAsyncContextManager[_Resource]],
    action: Callable[[argparse.Namespace, Config, _Resource], Awaitable[int]],
) -> Handler:
    """A handler running `action` in one event loop on what `opened` makes of the config.

    The resource (a database, a registry) is closed before the loop ends, whatever happens.
    """
    async def run(args: argparse.Namespace, config: Config) -> int:
        async with opened(config) as resource:
            return await action(args, config, resource)

    def handler(args: argparse.Namespace, config: Config) -> int:
        return asyncio.run(run(args, config))

    return handler
