"""`dockyard export` and `dockyard import`: images across an air gap as OCI image layouts.

Both build the registry in-process (`open_registry`), on the configured database and storage,
so they work while the server runs; an import goes through the same services as a push.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from dockyard.cli import migrate_distribution
from dockyard.cli.command import Subparsers, add_command, async_handler
from dockyard.cli.inprocess import Ticker, open_registry
from dockyard.config import Config, parse_duration
from dockyard.oci.digest import Digest
from dockyard.oci.layout import (
    ZSTD_SUFFIX,
    LayoutError,
    blob_digests,
    open_layout,
    zstd_writer,
)
from dockyard.registry.errors import RegistryError
from dockyard.registry.registry import Registry
from dockyard.registry.transfer.export import (
    Exporter,
    ExportOptions,
    ExportReport,
    InvalidSelection,
    parse_platform,
    parse_selector,
)
from dockyard.registry.transfer.imports import (
    Importer,
    ImportFailed,
    ImportOptions,
    ImportReport,
    OnConflict,
)
from dockyard.registry.transfer.writers import DirectoryWriter, LayoutWriter, TarWriter


def register(subparsers: Subparsers) -> None:
    export = add_command(subparsers, "export", "write repositories and tags as an OCI image "
                                               "layout (a directory, .tar, or - for stdout)")
    export.add_argument("selectors", nargs="*", metavar="REPO[:TAG]",
                        help="what to export; globs as in access rules (team/**, app:v1.*); "
                             "nothing: every repository and tag")
    export.add_argument("--to", required=True, metavar="PATH",
                        help="a directory, a file ending in .tar or .tar.zst, or - (a tar on "
                             "stdout)")
    export.add_argument("--since", metavar="DURATION",
                        help="only tags whose manifest was pushed within this time (24h)")
    export.add_argument("--platform", action="append", default=[], metavar="OS/ARCH",
                        help="only this platform of each index (repeatable; default: all)")
    export.add_argument("--with-referrers", action="store_true",
                        help="also the signatures, SBOMs and attestations of what is exported")
    export.add_argument("--base", metavar="PREVIOUS",
                        help="a layout exported before: its blobs are left out of this one")
    export.set_defaults(handler=async_handler(open_registry, _export))
    import_parser(subparsers).set_defaults(handler=async_handler(open_registry, _import))


def import_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """`dockyard import`'s arguments, in one place for every source it loads from."""
    parser = add_command(subparsers, "import", "load an OCI image layout (directory, .tar, "
                                               ".tar.zst) "
                                               "through the registry's own services")
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="the layout: a directory, a .tar or a .tar.zst archive")
    parser.add_argument("--repository", metavar="NAME",
                        help="target of entries that name no repository (layouts written by "
                             "skopeo or oras); their ref.name annotation is the tag")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be added or changed; write nothing")
    parser.add_argument("--on-conflict", choices=[item.value for item in OnConflict],
                        default=OnConflict.SKIP.value,
                        help="a tag that exists with another digest: leave it and report it "
                             "(skip, the default), move it (overwrite), or stop before "
                             "writing anything (fail)")
    migrate_distribution.add_arguments(parser)
    return parser




# -- export ----------------------------------------------------------------------------------

def _export_options(args: argparse.Namespace) -> ExportOptions:
    """ExportOptions from the command line; InvalidSelection or LayoutError says what is bad."""
    base: frozenset[Digest] = frozenset()
    if args.base is not None:
        reader = open_layout(Path(args.base))
        try:
            base = frozenset(blob_digests(reader))
        finally:
            reader.close()
    try:
        since = parse_duration(args.since) if args.since is not None else None
    except ValueError as exc:
        raise InvalidSelection(f"--since: {exc}") from exc
    return ExportOptions(
        selectors=tuple(parse_selector(text) for text in args.selectors),
        since=since,
        platforms=frozenset(parse_platform(text) for text in args.platform),
        with_referrers=args.with_referrers,
        base=base,
    )


@contextmanager
def _writer(target: str) -> Iterator[LayoutWriter]:
    """The layout writer `--to` names. A tar file is written beside its name and renamed
    when whole, so a failed export never leaves an archive that looks complete."""
    if target == "-":
        yield TarWriter(sys.stdout.buffer)
        return
    path = Path(target)
    compressed = path.name.endswith(ZSTD_SUFFIX)
    if not compressed and not path.name.endswith(".tar"):
        yield DirectoryWriter(path)
        return
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as out:
            if compressed:
                with zstd_writer(out) as stream:
                    yield TarWriter(stream)
            else:
                yield TarWriter(out)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


async def _export(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    out: IO[str] = sys.stderr if args.to == "-" else sys.stdout
    if args.to == "-" and sys.stdout.isatty():
        print("dockyard: not writing a tar archive to a terminal", file=sys.stderr)
        return 2
    ticker = Ticker()

    def progress(report: ExportReport) -> None:
        ticker.show(f"export: {report.blobs} blobs, "
                    f"{ticker.bar(report.bytes_written, report.bytes_total)}")

    try:
        options = _export_options(args)
        with _writer(args.to) as writer:
            report = await Exporter(registry).export(writer, options, progress)
    except (InvalidSelection, LayoutError, OSError, ValueError) as exc:
        ticker.done()
        print(f"dockyard: export failed: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidSelection) else 1
    except RegistryError as exc:
        ticker.done()
        print(f"dockyard: export failed: {exc.code}: {exc.message} ({exc.detail})",
              file=sys.stderr)
        return 1
    ticker.done()
    if report.tags == 0:
        print("dockyard: nothing matched: the layout has no entries", file=sys.stderr)
    print(f"exported {report.summary()}", file=out)
    return 0


# -- import ----------------------------------------------------------------------------------

async def _import(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    # Each source of an import is one branch here: a layout (PATH), or a Go registry's tree.
    if args.from_distribution is not None:
        if args.path is not None:
            print("dockyard: import either a layout (PATH) or --from-distribution DIR",
                  file=sys.stderr)
            return 2
        return await migrate_distribution.run(args, config, registry)
    if args.path is None:
        print("dockyard: import what? name a layout (PATH) or --from-distribution DIR",
              file=sys.stderr)
        return 2
    return await _import_layout(args, registry)


async def _import_layout(args: argparse.Namespace, registry: Registry) -> int:
    options = ImportOptions(repository=args.repository,
                            on_conflict=OnConflict(args.on_conflict), dry_run=args.dry_run)
    ticker = Ticker()

    def progress(report: ImportReport) -> None:
        ticker.show(f"import: {report.blobs_added} blobs, "
                    f"{ticker.bar(report.bytes_done, report.bytes_total)}")

    try:
        reader = open_layout(Path(args.path))
    except LayoutError as exc:
        print(f"dockyard: import failed: {exc}", file=sys.stderr)
        return 1
    try:
        report = await Importer(registry, reader).run(options, progress)
    except (ImportFailed, LayoutError, OSError) as exc:
        ticker.done()
        print(f"dockyard: import failed: {exc}", file=sys.stderr)
        return 1
    finally:
        reader.close()
    ticker.done()
    for line in report.changes:
        print(("would " if options.dry_run else "") + line)
    for conflict in report.conflicts:
        print(f"conflict: {conflict} ({options.on_conflict.value})")
    print(("dry run: " if options.dry_run else "imported ") + report.summary())
    return 0
