"""The measurements: one function per metric, each run against one target at a time.

Every measurement also records CPU, as percent of one core over its wall time: the
server's process tree, the client (the C load generator, or this Python process for
transfers) and everything else on the machine ("other"), which exposes noisy neighbours.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.seed import (
    ACCEPT_MANIFESTS,
    BASE_REPO,
    BASE_TAG,
    BLOB_REPO,
    CATALOG_PAGE,
    OCI_MANIFEST,
    PUT_REPO,
    TAGS_REPO,
    Seeded,
)
from bench.targets import CLOCK_TICKS, RunningTarget
from bench.transfers import (
    BIG_SIZE,
    SMALL_COUNT,
    SMALL_SIZE,
    BlobSource,
    Endpoint,
    download_many,
    download_one,
    mb_per_s,
    upload_chunked,
    upload_many,
    upload_monolithic,
)

PUT_CONNECTIONS = 8
LIST_CONNECTIONS = 16
SMALL_CONNECTIONS = (1, 16, 64)


@dataclass
class Context:
    """Everything measurements share for one benchmark run."""

    seeded: dict[str, Seeded]
    big: BlobSource
    small: BlobSource
    duration: float
    workdir: Path
    sendfile_port: int = 0


@dataclass
class Measurement:
    values: dict[str, float]  # unit -> value
    client_cpu_pct: float = 0.0
    server_cpu_pct: float = 0.0
    other_cpu_pct: float = 0.0
    errors: int = 0
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


Runner = Callable[[Context, RunningTarget, str], Measurement]


@dataclass(frozen=True)
class Metric:
    id: str
    group: str  # what --only selects
    label: str
    units: tuple[str, ...]
    client: str  # what drives the traffic
    run: Runner


# ---------------------------------------------------------------- CPU accounting


def machine_busy_seconds() -> float:
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuWindow:
    """CPU used by server, this process and the whole machine over one measurement."""

    def __init__(self, target: RunningTarget | None) -> None:
        self.target = target

    def __enter__(self) -> CpuWindow:
        self.wall = time.monotonic()
        self.server = self.target.cpu_seconds() if self.target else 0.0
        self.own = self_cpu_seconds()
        self.busy = machine_busy_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.wall
        self.server = (self.target.cpu_seconds() if self.target else 0.0) - self.server
        self.own = self_cpu_seconds() - self.own
        self.busy = machine_busy_seconds() - self.busy

    def fill(self, result: Measurement, generator_cpu: float | None = None) -> Measurement:
        """Client is the generator if one ran, else this process."""
        client = self.own if generator_cpu is None else generator_cpu
        other = self.busy - self.server - client - (self.own if generator_cpu is not None else 0)
        wall = max(self.wall, 1e-9)
        result.server_cpu_pct = 100 * self.server / wall
        result.client_cpu_pct = 100 * client / wall
        result.other_cpu_pct = max(0.0, 100 * other / wall)
        return result


# ---------------------------------------------------------------- transfers


def endpoint(target: RunningTarget) -> Endpoint:
    return Endpoint(target.host, target.port)


def run_upload_big(ctx: Context, target: RunningTarget, tag: str) -> Measurement:
    body, digest = ctx.big.stamp(f"upload-{tag}")
    with CpuWindow(target) as cpu:
        seconds = upload_monolithic(endpoint(target), BLOB_REPO, body, digest)
    return cpu.fill(Measurement({"MB/s": mb_per_s(body.nbytes, seconds)},
                                raw={"seconds": seconds}))


SMALL_UPLOAD_BATCHES = 5
"""64 x 1 MiB take a fifth of a second: one batch alone swung by a third between rounds."""


def run_upload_small(ctx: Context, target: RunningTarget, tag: str) -> Measurement:
    """MB/s over several batches of 64 new blobs, each batch timed on its own connections."""
    blobs = ctx.small.stamp_many(f"upload-{tag}", SMALL_SIZE,
                                 SMALL_COUNT * SMALL_UPLOAD_BATCHES)
    with CpuWindow(target) as cpu:
        batches = [upload_many(endpoint(target), BLOB_REPO,
                               blobs[start : start + SMALL_COUNT])
                   for start in range(0, len(blobs), SMALL_COUNT)]
    seconds = sum(batches)
    result = Measurement({"MB/s": mb_per_s(SMALL_SIZE * SMALL_COUNT * len(batches), seconds)},
                         raw={"seconds": seconds, "batch_seconds": batches})
    return cpu.fill(result)


def run_upload_chunked(ctx: Context, target: RunningTarget, tag: str) -> Measurement:
    body, digest = ctx.big.stamp(f"chunked-{tag}")
    with CpuWindow(target) as cpu:
        seconds = upload_chunked(endpoint(target), BLOB_REPO, body, digest)
    return cpu.fill(Measurement({"MB/s": mb_per_s(body.nbytes, seconds)},
                                raw={"seconds": seconds}))


def run_download_big(ctx: Context, target: RunningTarget, tag: str) -> Measurement:
    seeded = ctx.seeded[target.name]
    path = f"/v2/{BLOB_REPO}/blobs/{seeded.big_digest}"
    with CpuWindow(target) as cpu:
        seconds = download_one(endpoint(target), path, seeded.big_size)
    return cpu.fill(Measurement({"MB/s": mb_per_s(seeded.big_size, seconds)},
                                raw={"seconds": seconds}))


def run_download_small(ctx: Context, target: RunningTarget, tag: str) -> Measurement:
    seeded = ctx.seeded[target.name]
    paths = [f"/v2/{BLOB_REPO}/blobs/{digest}" for digest in seeded.small_digests]
    with CpuWindow(target) as cpu:
        seconds = download_many(endpoint(target), paths, seeded.small_size)
    total = seeded.small_size * len(paths)
    return cpu.fill(Measurement({"MB/s": mb_per_s(total, seconds)}, raw={"seconds": seconds}))


def run_sendfile(ctx: Context, port: int) -> Measurement:
    """The same download client against a bare os.sendfile server: the loopback ceiling."""
    with CpuWindow(None) as cpu:
        seconds = download_one(Endpoint("127.0.0.1", port), "/blob", BIG_SIZE)
    return cpu.fill(Measurement({"MB/s": mb_per_s(BIG_SIZE, seconds)},
                                raw={"seconds": seconds}))


# ---------------------------------------------------------------- small requests


def from_load(cpu: CpuWindow, result: loadgen.LoadResult) -> Measurement:
    measurement = Measurement(
        {"req/s": result.rps, "p50 ms": result.p50_ms, "p99 ms": result.p99_ms},
        errors=result.errors, raw=result.as_dict(), notes=list(result.notes))
    return cpu.fill(measurement, generator_cpu=result.gen_cpu_s)


def manifest_get(connections: int) -> Runner:
    def run(ctx: Context, target: RunningTarget, tag: str) -> Measurement:
        url = f"{target.url}/v2/{BASE_REPO}/manifests/{BASE_TAG}"
        script = loadgen.wrk_script("GET", {"Accept": ACCEPT_MANIFESTS})
        with CpuWindow(target) as cpu:
            result = loadgen.wrk(url, connections, ctx.duration, script)
        return from_load(cpu, result)

    return run


def manifest_head(connections: int) -> Runner:
    def run(ctx: Context, target: RunningTarget, tag: str) -> Measurement:
        digest = ctx.seeded[target.name].manifest_digest
        url = f"{target.url}/v2/{BASE_REPO}/manifests/{digest}"
        with CpuWindow(target) as cpu:
            result = loadgen.ab_head(url, connections, ctx.duration, {"Accept": ACCEPT_MANIFESTS})
        return from_load(cpu, result)

    return run


def run_manifest_put(ctx: Context, target: RunningTarget, tag: str) -> Measurement:
    head, tail = ctx.seeded[target.name].image.manifest_parts("org.dockyard.bench.tag")
    script = loadgen.wrk_put_script(f"/v2/{PUT_REPO}/manifests/", f"{tag}-", head, tail,
                                    {"Content-Type": OCI_MANIFEST})
    url = f"{target.url}/v2/{PUT_REPO}/manifests/"
    with CpuWindow(target) as cpu:
        result = loadgen.wrk(url, PUT_CONNECTIONS, ctx.duration, script)
    measurement = from_load(cpu, result)
    measurement.values = {"ops/s": result.rps, "p50 ms": result.p50_ms, "p99 ms": result.p99_ms}
    return measurement


def wrk_get(path: str, connections: int) -> Runner:
    def run(ctx: Context, target: RunningTarget, tag: str) -> Measurement:
        script = loadgen.wrk_script("GET", {"Accept": "application/json"})
        with CpuWindow(target) as cpu:
            result = loadgen.wrk(target.url + path, connections, ctx.duration, script)
        measurement = from_load(cpu, result)
        measurement.values = {"req/s": result.rps, "p99 ms": result.p99_ms}
        return measurement

    return run


METRICS: list[Metric] = [
    Metric("upload_256m", "upload", "upload monolithic 256 MiB", ("MB/s",), "python",
           run_upload_big),
    Metric("upload_64x1m", "upload", "upload 64 x 1 MiB, c=8", ("MB/s",), "python",
           run_upload_small),
    Metric("upload_chunked", "upload", "upload 256 MiB in 8 MiB PATCHes", ("MB/s",), "python",
           run_upload_chunked),
    Metric("download_256m", "download", "download 256 MiB", ("MB/s",), "python",
           run_download_big),
    Metric("download_64x1m", "download", "download 64 x 1 MiB, c=16", ("MB/s",), "python",
           run_download_small),
    Metric("manifest_put", "manifest_put", f"manifest PUT, c={PUT_CONNECTIONS}",
           ("ops/s", "p50 ms", "p99 ms"), "wrk", run_manifest_put),
    *[Metric(f"manifest_get_c{n}", "manifest_get", f"manifest GET by tag, c={n}",
             ("req/s", "p50 ms", "p99 ms"), "wrk", manifest_get(n)) for n in SMALL_CONNECTIONS],
    *[Metric(f"manifest_head_c{n}", "manifest_head", f"manifest HEAD by digest, c={n}",
             ("req/s", "p50 ms", "p99 ms"), "ab", manifest_head(n)) for n in SMALL_CONNECTIONS],
    Metric("tags_list", "tags_list", f"tags list, 1000 tags, c={LIST_CONNECTIONS}",
           ("req/s", "p99 ms"), "wrk", wrk_get(f"/v2/{TAGS_REPO}/tags/list", LIST_CONNECTIONS)),
    Metric("catalog", "catalog", f"_catalog?n={CATALOG_PAGE}, 500 repos, c={LIST_CONNECTIONS}",
           ("req/s", "p99 ms"), "wrk",
           wrk_get(f"/v2/_catalog?n={CATALOG_PAGE}", LIST_CONNECTIONS)),
]
GROUPS = list(dict.fromkeys(metric.group for metric in METRICS))
