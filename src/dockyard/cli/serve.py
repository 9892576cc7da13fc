"""`dockyard serve` and `dockyard migrate`: running the registry and preparing its database."""

from __future__ import annotations

import argparse
import asyncio
import os

from dockyard.cli.command import Subparsers, add_command
from dockyard.config import Config


def register(subparsers: Subparsers) -> None:
    serve = add_command(subparsers, "serve", "run the registry")
    serve.add_argument("--workers", type=int, help="worker processes (default: CPU count)")
    serve.set_defaults(handler=_serve)
    migrate = add_command(subparsers, "migrate", "bring the database schema up to date")
    migrate.set_defaults(handler=_migrate)


def _serve(args: argparse.Namespace, config: Config) -> int:
    from dockyard.server.serve import serve

    workers = args.workers or config.limits.workers or os.cpu_count() or 1
    return serve(config, workers, args.config)


def _migrate(args: argparse.Namespace, config: Config) -> int:
    from dockyard.app.web import migrate_database

    asyncio.run(migrate_database(config, apply=True))
    print("dockyard: database schema is up to date")
    return 0
