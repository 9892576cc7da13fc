"""The `dockyard` command: one module per command group, each registering its parsers."""

from __future__ import annotations

import argparse
import sys

from dockyard import __version__
from dockyard.cli import config, events, key, maintenance, mirror, serve, transfer, user
from dockyard.cli.command import CommandGroup, Handler, config_option
from dockyard.config import ConfigError, load_config
from dockyard.metadata.migrate import SchemaOutOfDate, UnknownSchema
from dockyard.unavailable import ServiceUnavailable

GROUPS: tuple[CommandGroup, ...] = (serve, config, user, key, events, maintenance, mirror,
                                    transfer)
"""The command groups, in the order `dockyard --help` lists their commands."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard", description="A container image registry.",
                                     parents=[config_option(None)])
    parser.add_argument("--version", action="version", version=f"dockyard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        print(f"dockyard: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args, loaded)
    except (UnknownSchema, SchemaOutOfDate, ServiceUnavailable) as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return 1
