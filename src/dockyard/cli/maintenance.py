"""`dockyard gc`, `du`, `check` and `readonly`: storage maintenance from the command line.

They work on the database and storage the configuration names, while the server runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from dockyard.app.maintenance import gc_options
from dockyard.cli.command import Subparsers, add_command, async_handler
from dockyard.cli.inprocess import Ticker, open_registry
from dockyard.config import Config, parse_duration
from dockyard.registry.check import CheckReport
from dockyard.registry.gc import GCReport, format_bytes
from dockyard.registry.maintenance import LeaseBusy, run_exclusive
from dockyard.registry.registry import Registry


def register(subparsers: Subparsers) -> None:
    gc = add_command(
        subparsers, "gc", "remove unreferenced blobs (and untagged manifests) now, while serving")
    gc.add_argument("--dry-run", action="store_true", help="report what would go; delete nothing")
    gc.add_argument("--delete-untagged", action="store_true",
                    help="also remove untagged manifests no index or live referrer needs")
    gc.add_argument("--grace-period", metavar="DURATION",
                    help="protect content pushed this recently (default: "
                         "storage.maintenance.gc.graceperiod)")
    gc.set_defaults(handler=async_handler(open_registry, _gc))
    du = add_command(subparsers, "du", "storage used, per repository and in total")
    du.add_argument("repository", nargs="?", help="only this repository")
    du.add_argument("--json", action="store_true", help="machine-readable output")
    du.set_defaults(handler=async_handler(open_registry, _du))
    check = add_command(
        subparsers, "check", "re-hash every blob; report missing, corrupt and dangling content")
    check.add_argument("--repair", action="store_true",
                       help="unlink blobs whose bytes are missing or corrupt")
    check.set_defaults(handler=async_handler(open_registry, _check))
    readonly = add_command(
        subparsers, "readonly", "switch read-only mode for every worker and node, without restart")
    readonly.add_argument("state", choices=("on", "off", "status"))
    readonly.set_defaults(handler=async_handler(open_registry, _readonly))


async def _gc(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    grace = parse_duration(args.grace_period) if args.grace_period else None
    options = gc_options(config, dry_run=args.dry_run,
                         delete_untagged=True if args.delete_untagged else None,
                         grace_period=grace)
    ticker = Ticker()

    def progress(report: GCReport) -> None:
        ticker.show(f"gc: {report.phase}: {report.manifests_removed} manifests, "
                    f"{report.blobs_removed} blobs, {format_bytes(report.bytes_reclaimed)} "
                    f"({report.seconds:.0f}s)")

    try:
        if options.dry_run:
            report = await registry.collector.run(options, progress)
        else:
            report = await run_exclusive(registry.maintenance.leases, "gc",
                                         lambda: registry.collector.run(options, progress))
    except LeaseBusy:
        lease = await registry.maintenance.leases.lease("gc")
        holder = lease.holder if lease is not None else "another process"
        print(f"dockyard: garbage collection is already running ({holder})", file=sys.stderr)
        return 1
    ticker.done()
    print(("dry run: " if report.dry_run else "") + report.summary())
    print(f"  manifests removed: {report.manifests_removed}"
          f" ({format_bytes(report.manifest_bytes)} of metadata)")
    print(f"  blobs removed:     {report.blobs_removed}"
          + (f" ({report.resumed} left by an interrupted run)" if report.resumed else ""))
    print(f"  bytes reclaimed:   {report.bytes_reclaimed} ({format_bytes(report.bytes_reclaimed)})")
    print(f"  time taken:        {report.seconds:.2f}s")
    return 0


async def _du(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    usage = await registry.maintenance.usage.usage(args.repository)
    if args.repository is not None and not usage.repositories:
        print(f"dockyard: no repository {args.repository!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({
            "repositories": [asdict(item) for item in usage.repositories],
            "total": {"blobs": usage.blobs, "stored_bytes": usage.stored_bytes,
                      "logical_bytes": usage.logical_bytes},
        }, indent=2))
        return 0
    width = max([len("REPOSITORY"), *(len(item.name) for item in usage.repositories)])
    print(f"{'REPOSITORY':<{width}}  {'UNIQUE':>10}  {'LOGICAL':>10}  {'BLOBS':>7}  MANIFESTS")
    for item in usage.repositories:
        print(f"{item.name:<{width}}  {format_bytes(item.unique_bytes):>10}  "
              f"{format_bytes(item.logical_bytes):>10}  {item.blobs:>7}  {item.manifests}")
    label = "total" if args.repository is None else "selected"
    print(f"{label}: {format_bytes(usage.stored_bytes)} stored ({usage.stored_bytes} bytes, "
          f"deduplicated), {format_bytes(usage.logical_bytes)} logical "
          f"({usage.logical_bytes} bytes)")
    print("UNIQUE is what deleting the repository would free; LOGICAL counts shared blobs too.")
    return 0


async def _check(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    ticker = Ticker()

    def progress(report: CheckReport) -> None:
        ticker.show(f"check: {report.blobs_checked}/{report.blobs_total} blobs, "
                    f"{format_bytes(report.bytes_hashed)} hashed ({report.seconds:.0f}s)")

    report = await registry.checker.run(repair=args.repair, progress=progress)
    ticker.done()
    for problem in report.problems + report.orphans:
        print(f"{problem.kind}: {problem.digest}: {problem.detail}")
    if report.orphans:
        print(f"{len(report.orphans)} orphaned files hold {format_bytes(report.orphan_bytes)}"
              + (" (removed)" if args.repair else "; `dockyard check --repair` removes them"))
    if report.recent_unknown:
        print(f"{report.recent_unknown} stored files younger than an hour have no metadata yet "
              "(uploads being completed, or orphans to be): not judged until they are older")
    if not report.listed:
        print("this storage driver cannot list its blobs: orphaned bytes were not looked for")
    print(f"checked {report.blobs_checked} blobs ({format_bytes(report.bytes_hashed)}) in "
          f"{report.seconds:.1f}s: {len(report.problems)} problems"
          + (f", {report.repaired} repaired" if args.repair else ""))
    if report.ok:
        print("everything referenced is present and intact")
        return 0
    return 1


async def _readonly(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    if args.state != "status":
        await registry.readonly.switch(args.state == "on")
    switched = await registry.readonly.switched_on()
    configured = config.storage.maintenance.readonly.enabled
    state = "on" if switched or configured else "off"
    why = " (storage.maintenance.readonly.enabled in the configuration)" if configured else ""
    print(f"read-only mode: {state}{why}; every worker and node follows within a second")
    return 0
