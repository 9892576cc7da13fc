"""The `dockyard` command."""

from __future__ import annotations

import argparse
import os
import sys

from dockyard.config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard", description="A container image registry.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the registry")
    serve.add_argument("--config", help="configuration file (distribution's YAML layout)")
    serve.add_argument("--workers", type=int, help="worker processes (default: CPU count)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"dockyard: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from dockyard.server import serve

        workers = args.workers or config.limits.workers or os.cpu_count() or 1
        return serve(config, workers)
    return 2
