"""`dockyard serve` and `dockyard migrate`: running the registry and preparing its database."""

from __future__ import annotations

import argparse
import asyncio
import os

from dockyard.cli.command import Subparsers, add_command
from dockyard.config import Config


def register(subparsers: Subparsers) -> None:
    serve = add_command(subparsers, "serve", "run the registry")
    serve.add_argument("--workers", type=_worker_count,
                       help="worker processes, 1 or more (default: limits.workers, else CPU count)")
    serve.set_defaults(handler=_serve)
    migrate = add_command(subparsers, "migrate", "bring the database schema up to date")
    migrate.set_defaults(handler=_migrate)


def _worker_count(text: str) -> int:
    """At least one: 0 used to mean the CPU count and -3 one process, both silently."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {count}")
    return count


def _serve(args: argparse.Namespace, config: Config) -> int:
    from dockyard.server.serve import serve

    workers = args.workers or config.limits.workers or os.cpu_count() or 1
    return serve(config, workers, args.config)


def _migrate(args: argparse.Namespace, config: Config) -> int:
    from dockyard.app.web import migrate_database

    for revision in asyncio.run(migrate_database(config, apply=True)):
        print(f"dockyard: applied {revision}")
    print("dockyard: database schema is up to date")
    return 0
