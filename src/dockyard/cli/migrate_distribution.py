"""`--from-distribution DIR|s3://BUCKET/PREFIX [--link]`: move a Go registry's storage tree
into Dockyard.

`add_arguments` adds the options to a parser (the `import` command's); `run` is its handler
on an opened registry (cli/inprocess.py), with a progress line on stderr and the report on
stdout. A tree in a bucket (the Go registry's s3 driver) is read through storage/s3/tree.py,
composed here from the options and the standard AWS environment variables.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dockyard.cli.inprocess import Ticker
from dockyard.config import Config
from dockyard.registry.events import EventContext
from dockyard.registry.gc import format_bytes
from dockyard.registry.registry import Registry
from dockyard.registry.transfer.distribution import (
    V2,
    FilesystemTree,
    MigrationReport,
    SourceTree,
    migrate,
)
from dockyard.storage.base import StoreUnusable
from dockyard.unavailable import ServiceUnavailable

if TYPE_CHECKING:
    from dockyard.storage.s3.driver import S3Options

USER_AGENT = "dockyard import --from-distribution"


def add_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--from-distribution", metavar="DIR|s3://BUCKET/PREFIX",
                        required=required, dest="from_distribution",
                        help="the Go registry's storage root, holding docker/registry/v2: its "
                             "filesystem rootdirectory, or for its s3 driver the bucket and "
                             "rootdirectory; every repository, tag, manifest and layer it "
                             "links is migrated, digests verified")
    parser.add_argument("--link", action="store_true",
                        help="hard-link blob files into the storage instead of copying them, "
                             "when both are on one filesystem (still hashed first); the Go "
                             "registry must not run on that tree afterwards")
    parser.add_argument("--s3-endpoint", metavar="URL", dest="s3_endpoint",
                        help="with s3://: the S3 service's address (MinIO, Ceph, ...), as the "
                             "Go registry's regionendpoint; default AWS. Credentials come from "
                             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS's usual "
                             "credential chain)")
    parser.add_argument("--s3-region", metavar="REGION", dest="s3_region",
                        help="with s3://: the bucket's region (default AWS_REGION, "
                             "AWS_DEFAULT_REGION, else us-east-1)")


def _line(report: MigrationReport) -> str:
    return (f"{report.repository}: {report.repositories} repositories, {report.manifests} "
            f"manifests, {report.blobs} blobs, {format_bytes(report.bytes)} "
            f"({format_bytes(int(report.rate()))}/s)")


class SourceUnusable(Exception):
    """The source named cannot be read as a Go registry's tree; the message says why."""


def s3_options(location: str, endpoint: str | None, region: str | None) -> S3Options:
    # The S3 libraries load only for an s3:// source (as in app/backends.py): they cost every
    # other `dockyard import` a noticeable part of its start-up.
    from dockyard.storage.s3.driver import S3Options

    """The bucket and root of `s3://BUCKET/PREFIX`, addressed as the Go registry's s3 driver
    does: path-style when an endpoint is given, the keys from the environment."""
    parts = urlsplit(location)
    if not parts.netloc or parts.query or parts.fragment:
        raise SourceUnusable(f"{location}: give the bucket as s3://BUCKET/PREFIX")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise SourceUnusable(f"--s3-endpoint {endpoint}: give an http:// or https:// URL")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return S3Options(bucket=parts.netloc, region=region or "us-east-1", endpoint_url=endpoint,
                     force_path_style=endpoint is not None, root=parts.path.strip("/"),
                     user_agent=USER_AGENT)


async def open_source(args: argparse.Namespace, stack: AsyncExitStack) -> SourceTree:
    """The tree `--from-distribution` names, checked to hold the Go registry's layout."""
    location: str = args.from_distribution
    source: SourceTree
    if location.startswith("s3://"):
        if args.link:
            raise SourceUnusable("--link needs the Go registry's tree on this filesystem; "
                                 f"blobs in {location} are copied (leave --link out)")
        from dockyard.storage.s3.tree import S3Tree

        source = await stack.enter_async_context(
            S3Tree(s3_options(location, args.s3_endpoint, args.s3_region)))
    elif args.s3_endpoint or args.s3_region:
        raise SourceUnusable("--s3-endpoint and --s3-region go with an s3:// source")
    else:
        source = FilesystemTree(Path(location))
    if not await source.list_dirs(V2):
        raise SourceUnusable(f"{source.describe('')} holds no {V2}: give the Go registry's "
                             "storage rootdirectory")
    return source


async def run(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    async with AsyncExitStack() as stack:
        try:
            source = await open_source(args, stack)
        except (SourceUnusable, StoreUnusable, ServiceUnavailable) as exc:
            print(f"dockyard: {exc}", file=sys.stderr)
            return 2
        if await registry.readonly.enabled():
            print("dockyard: read-only mode is on: nothing can be migrated", file=sys.stderr)
            return 1
        ticker = Ticker()
        try:
            report = await migrate(registry, source, args.link,
                                   lambda report: ticker.show(_line(report)),
                                   EventContext(useragent=USER_AGENT))
        except ServiceUnavailable as exc:
            ticker.done()
            print(f"dockyard: the source failed: {exc}; run the command again to go on "
                  "(what moved stays)", file=sys.stderr)
            return 1
    ticker.done()
    for item in report.skipped:
        print(f"{'error' if item.error else 'skipped'}: {item}")
    print(f"migrated {report.summary()}; {format_bytes(int(report.rate()))}/s")
    return 1 if report.errors else 0
