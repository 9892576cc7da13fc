"""`dockyard mirror warm|status|evict`: the pull-through cache from the command line.

They build the registry the server builds (`open_registry`), on the same database and
storage, so they work while it serves: an image warmed here is served by the running server,
and a blob another process is downloading is waited for, not fetched twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from dockyard.app.maintenance import mirror_eviction
from dockyard.cli.command import Subparsers, add_command, async_handler
from dockyard.cli.inprocess import Ticker, open_registry
from dockyard.config import Config, split_host_port
from dockyard.registry.errors import describe_error
from dockyard.registry.gc import format_bytes
from dockyard.registry.maintenance import LeaseBusy, run_exclusive
from dockyard.registry.mirror.status import UpstreamStatus, mirror_status
from dockyard.registry.mirror.warm import (
    ImageRef,
    InvalidImage,
    Warmer,
    WarmReport,
    parse_image,
    parse_image_list,
)
from dockyard.registry.registry import Registry

METRICS_TIMEOUT = 5.0
"""Seconds the running server's debug listener has to answer a status."""
REQUESTS_METRIC = "dockyard_mirror_requests_total"
EVICTION_LEASE = "mirror-eviction"
"""The scheduled eviction job's lease: a manual run and a scheduled one never overlap."""


def register(subparsers: Subparsers) -> None:
    mirror = add_command(subparsers, "mirror", "the pull-through cache: warm, status, evict")
    actions = mirror.add_subparsers(dest="mirror_command", required=True)
    warm = add_command(actions, "warm", "pull images through the mirror now, every platform "
                                        "and referrer, so clients find them cached")
    warm.add_argument("images", nargs="*", metavar="IMAGE",
                      help="<repository>:<tag> or <repository>@<digest> as clients pull it "
                           "from this registry, e.g. docker.io/library/alpine:3.19")
    warm.add_argument("--file", metavar="FILE",
                      help="more images, one a line (# comments; - reads stdin)")
    warm.set_defaults(handler=async_handler(open_registry, _warm))
    status = add_command(actions, "status", "each upstream: reachable, cache size, limits, "
                                            "hits and misses")
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(handler=async_handler(open_registry, _status))
    evict = add_command(actions, "evict", "apply maxage and maxsize now, then GC to free "
                                          "the bytes")
    evict.set_defaults(handler=async_handler(open_registry, _evict))


# -- warm ------------------------------------------------------------------------------------

def _images(args: argparse.Namespace) -> list[ImageRef]:
    """The images named on the command line, then those of --file; InvalidImage names
    every bad one."""
    images: list[ImageRef] = []
    problems: list[str] = []
    for text in args.images:
        try:
            images.append(parse_image(text))
        except InvalidImage as exc:
            problems.append(str(exc))
    if args.file is not None:
        try:
            if args.file == "-":
                text, source = sys.stdin.read(), "stdin"
            else:
                with open(args.file, encoding="utf-8") as listing:
                    text, source = listing.read(), args.file
            images.extend(parse_image_list(text, source))
        except InvalidImage as exc:
            problems.append(str(exc))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"cannot read {args.file}: {exc}")
    if problems:
        raise InvalidImage("\n".join(problems))
    return list(dict.fromkeys(images))




async def _warm(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    try:
        images = _images(args)
    except InvalidImage as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return 2
    if not images:
        print("dockyard: name images to warm, or --file", file=sys.stderr)
        return 2
    if await registry.readonly.enabled():
        print("dockyard: read-only mode is on: nothing can be cached", file=sys.stderr)
        return 1
    warmer = Warmer(registry)
    failed = 0
    for image in images:
        ticker = Ticker()

        def progress(report: WarmReport, ticker: Ticker = ticker) -> None:
            ticker.show(f"{report.image}: {ticker.bar(report.bytes_done, report.bytes_total)}")

        try:
            report = await warmer.warm(image, progress)
        except Exception as exc:  # named per image; the others still warm
            ticker.done()
            failed += 1
            print(f"{image}: failed: {describe_error(exc)}", flush=True)
            continue
        ticker.done()
        print(f"{image}: {report.digest}: {report.summary()}", flush=True)
    print(f"warmed {len(images) - failed} of {len(images)} images"
          + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0


# -- status ----------------------------------------------------------------------------------

async def scrape_requests(config: Config) -> dict[str, dict[str, float]] | str:
    """The running server's mirror request counts, by upstream then result (hit, miss,
    coalesced, stale), read from its debug listener; or why they cannot be had."""
    debug = config.http.debug
    if not debug.prometheus.enabled:
        return "n/a (enable http.debug.prometheus)"
    if debug.addr is None:
        return "n/a (set http.debug.addr: nothing serves the metrics)"
    host, port = split_host_port(debug.addr)
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}{debug.prometheus.path}"
    try:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=METRICS_TIMEOUT)) as session, \
                session.get(url) as response:
            response.raise_for_status()
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"n/a (the server's metrics at {url}: {describe_error(exc)})"
    counts: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == REQUESTS_METRIC:
                results = counts.setdefault(sample.labels.get("upstream", ""), {})
                result = sample.labels.get("result", "")
                results[result] = results.get(result, 0.0) + sample.value
    return counts


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def status_document(item: UpstreamStatus, url: str,
                    requests: dict[str, float] | None) -> dict[str, Any]:
    return {
        "name": item.name, "prefix": item.prefix, "url": url,
        "reachable": item.reachable, "error": item.error,
        "cached_bytes": item.cached_bytes, "images": item.images,
        "last_pulled": _when(item.last_pulled),
        "tagttl_seconds": item.tag_ttl, "maxage_seconds": item.max_age,
        "maxsize_bytes": item.max_bytes, "requests": requests,
    }


async def _status(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    urls = {upstream.prefix: upstream.url for upstream in config.upstreams()}
    if not urls:
        print("dockyard: no upstream is configured (proxy or mirrors)", file=sys.stderr)
        return 1
    statuses = await mirror_status(registry.routes, registry.maintenance.mirror)
    counted = await scrape_requests(config)
    by_upstream = counted if isinstance(counted, dict) else None
    documents = [status_document(item, urls[item.prefix],
                                 by_upstream.get(item.name, {}) if by_upstream is not None
                                 else None)
                 for item in statuses]
    if args.json:
        print(json.dumps({"upstreams": documents,
                          "requests": None if by_upstream is None else "counted",
                          "requests_note": counted if isinstance(counted, str) else None},
                         indent=2))
        return 0
    header = ("UPSTREAM", "URL", "REACHABLE", "CACHED", "IMAGES", "LAST PULL", "TAGTTL",
              "MAXAGE", "MAXSIZE", "HITS", "MISSES")
    rows = [header]
    for item, document in zip(statuses, documents, strict=True):
        requests = document["requests"]
        rows.append((
            item.name, document["url"], "yes" if item.reachable else "no",
            format_bytes(item.cached_bytes), str(item.images),
            document["last_pulled"] or "-", _duration(item.tag_ttl), _duration(item.max_age),
            format_bytes(item.max_bytes) if item.max_bytes is not None else "-",
            "n/a" if requests is None else f"{requests.get('hit', 0):g}",
            "n/a" if requests is None else f"{requests.get('miss', 0):g}",
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    for item in statuses:
        if item.error is not None:
            print(f"{item.name}: unreachable: {item.error}")
    if isinstance(counted, str):
        print(f"hits/misses: {counted}")
    return 0


# -- evict -----------------------------------------------------------------------------------

async def _evict(args: argparse.Namespace, config: Config, registry: Registry) -> int:
    eviction = mirror_eviction(config, registry)
    if eviction is None:
        print("no upstream sets maxage or maxsize: nothing to evict")
        return 0
    if await registry.readonly.enabled():
        print("dockyard: read-only mode is on: nothing is evicted", file=sys.stderr)
        return 1
    try:
        outcome = await run_exclusive(registry.maintenance.leases, EVICTION_LEASE,
                                      eviction.run)
    except LeaseBusy:
        lease = await registry.maintenance.leases.lease(EVICTION_LEASE)
        holder = lease.holder if lease is not None else "another process"
        print(f"dockyard: eviction is already running ({holder})", file=sys.stderr)
        return 1
    for item in outcome.evicted.evicted:
        print(f"evicted {item.repository}@{item.digest} from {item.upstream} "
              f"({item.reason}, about {format_bytes(item.size)})")
    print(f"evicted {len(outcome.evicted.evicted)} images "
          f"(about {format_bytes(outcome.evicted.size)})")
    if outcome.collected is not None:
        print(f"gc: {outcome.collected.summary()}")
        print(f"bytes freed: {outcome.collected.bytes_reclaimed}")
    return 0
