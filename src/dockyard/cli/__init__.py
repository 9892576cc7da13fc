"""The `dockyard` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from dockyard.cli import auth as cli_auth
from dockyard.cli import config as cli_config
from dockyard.cli import events as cli_events
from dockyard.cli import maintenance as cli_lifecycle
from dockyard.config import Config, ConfigError, load_config
from dockyard.metadata.migrate import SchemaOutOfDate, UnknownSchema
from dockyard.unavailable import ServiceUnavailable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard", description="A container image registry.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the registry")
    serve.add_argument("--config", help="configuration file (distribution's YAML layout)")
    serve.add_argument("--workers", type=int, help="worker processes (default: CPU count)")
    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--config", help="configuration file (distribution's YAML layout)")
    cli_auth.add_parsers(commands)
    cli_lifecycle.add_parsers(commands)
    cli_events.add_parsers(commands)
    cli_config.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"dockyard: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, config)
    except (UnknownSchema, SchemaOutOfDate, ServiceUnavailable) as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, config: Config) -> int:
    if args.command == "serve":
        from dockyard.server.serve import serve

        workers = args.workers or config.limits.workers or os.cpu_count() or 1
        return serve(config, workers, args.config)
    if args.command == "config":
        return cli_config.run_check(args, config)
    if args.command == "migrate":
        from dockyard.app.web import migrate_database

        asyncio.run(migrate_database(config, apply=True))
        print("dockyard: database schema is up to date")
        return 0
    if args.command == cli_events.COMMAND:
        return cli_events.run(args, config)
    if args.command in cli_lifecycle.COMMANDS:
        return cli_lifecycle.run(args, config)
    if args.command == "user":
        return cli_auth.run_user(args, config)
    if args.command == "key":
        return cli_auth.run_key(args, config)
    return 2
