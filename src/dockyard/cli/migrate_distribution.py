"""`--from-distribution DIR [--link]`: move a Go registry's storage tree into Dockyard.

`add_arguments` adds the options to a parser (the `import` command's); `run` is its handler
on an opened registry (cli/inprocess.py), with a progress line on stderr and the report on
stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dockyard.cli.inprocess import Ticker
from dockyard.config import Config
from dockyard.registry.events import EventContext
from dockyard.registry.gc import format_bytes
from dockyard.registry.registry import Registry
from dockyard.registry.transfer.distribution import V2, MigrationReport, migrate

USER_AGENT = "dockyard import --from-distribution"


def add_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--from-distribution", metavar="DIR", type=Path, required=required,
                        dest="from_distribution",
                        help="the Go registry's storage root (its filesystem "
                             "rootdirectory, holding docker/registry/v2): every repository, "
                             "tag, manifest and layer it links is migrated, digests verified")
    parser.add_argument("--link", action="store_true",
                        help="hard-link blob files into the storage instead of copying them, "
                             "when both are on one filesystem (still hashed first); the Go "
                             "registry must not run on that tree afterwards")


def _line(report: MigrationReport) -> str:
    return (f"{report.repository}: {report.repositories} repositories, {report.manifests} "
            f"manifests, {report.blobs} blobs, {format_bytes(report.bytes)} "
            f"({format_bytes(int(report.rate()))}/s)")


async def run(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    root: Path = args.from_distribution
    if not (root / V2).is_dir():
        print(f"dockyard: {root} holds no {V2}: give the Go registry's storage "
              "rootdirectory", file=sys.stderr)
        return 2
    if await registry.readonly.enabled():
        print("dockyard: read-only mode is on: nothing can be migrated", file=sys.stderr)
        return 1
    ticker = Ticker()
    report = await migrate(registry, root, args.link,
                           lambda report: ticker.show(_line(report)),
                           EventContext(useragent=USER_AGENT))
    ticker.done()
    for item in report.skipped:
        print(f"{'error' if item.error else 'skipped'}: {item}")
    print(f"migrated {report.summary()}; {format_bytes(int(report.rate()))}/s")
    return 1 if report.errors else 0
