"""The thundering herd on a pull-through mirror: Dockyard vs the Go reference in proxy mode.

    python -m bench.mirror_herd [--clients 32] [--runs 3] [--layers 4] [--layer-mib 25]

On loopback: one upstream, the Go reference registry (`docker-registry serve`), holds an image
of --layers random layers of --layer-mib MiB, a config and a Docker v2 manifest. Two mirrors
sit in front of it, each behind its own counting proxy (bench/counting_proxy.py), which
records every request a mirror makes upstream and the exact body bytes that came back:

- go: the same binary with `proxy: {remoteurl: <its proxy>}` and its own storage;
- dockyard: `python -m dockyard serve --workers N` (N as bench/run.py: the CPU count) with
  `proxy: {remoteurl: <its proxy>}`, filesystem storage and the embedded SQLite metadata.

Each run starts both mirrors with empty storage (one after the other, the first alternating
between runs) and, per mirror, times two herds of --clients threads, each on its own
kept-alive connection, all released at once: GET the manifest by tag, then GET every blob in
manifest order, every body read whole and checked against its digest (sha256) and size.

- cold: the mirror's cache is empty; the time is until the last client has every blob;
- warm: the same herd again, everything cached.

The table shows medians over runs (min..max), upstream traffic as multiples of the image
(manifest + config + layers), and both sides of every ratio. Per-phase timings and the CPU
used by every process (mirror, upstream, proxies, this client) say where the time went.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.httpclient import Connection, HttpError, expect
from bench.metrics import machine_busy_seconds, self_cpu_seconds
from bench.seed import push_blob, sha256_digest
from bench.targets import CLOCK_TICKS, RunningTarget, TargetSpec, free_port, wait_or_kill
from bench.targets import dockyard as dockyard_spec
from bench.targets import go_reference as go_spec
from bench.targets import tree_cpu_seconds as cpu_of

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
REPOSITORY = "herd/app"
TAG = "latest"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
HERD_TIMEOUT = 600.0  # a herd that takes longer is reported as failed
QUIET_SECONDS = 1.0  # no upstream traffic for this long: the mirror finished its downloads
QUIET_TIMEOUT = 120.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the image


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class Image:
    manifest: bytes
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    @property
    def blob_size(self) -> int:
        return sum(blob.size for blob in self.blobs)

    @property
    def size(self) -> int:
        """What one pull transfers: manifest, config and layers."""
        return len(self.manifest) + sum(blob.size for blob in self.blobs)


def push_image(upstream: RunningTarget, layers: int, layer_size: int) -> Image:
    """Random layers, a config naming them and a Docker v2 manifest, pushed as `TAG`."""
    layer_blobs: list[Blob] = []
    diff_ids: list[str] = []
    with upstream.connection() as conn:
        for _ in range(layers):
            data = os.urandom(layer_size)
            digest = sha256_digest(data)
            push_blob(conn, REPOSITORY, data, digest)
            layer_blobs.append(Blob(digest, layer_size))
            diff_ids.append(digest)  # random bytes: the "uncompressed" id is the same digest
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": diff_ids},
                             "config": {"Cmd": ["/bin/true"]}}).encode()
        config_blob = Blob(sha256_digest(config), len(config))
        push_blob(conn, REPOSITORY, config, config_blob.digest)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": config_blob.digest,
                       "size": config_blob.size},
            "layers": [{"mediaType": DOCKER_LAYER, "digest": blob.digest, "size": blob.size}
                       for blob in layer_blobs],
        }, indent=3).encode()
        expect(conn.request("PUT", f"/v2/{REPOSITORY}/manifests/{TAG}",
                            {"Content-Type": DOCKER_MANIFEST}, manifest),
               201, what="push the manifest")
        for blob in (config_blob, *layer_blobs):  # into the upstream's page cache, untimed
            expect(conn.request("GET", f"/v2/{REPOSITORY}/blobs/{blob.digest}",
                                keep_body=False), 200, what="read back a blob")
    return Image(manifest, config_blob, tuple(layer_blobs))


# ---------------------------------------------------------------- the counting proxy


class CountingProxy:
    """bench/counting_proxy.py in its own process, between one mirror and the upstream."""

    def __init__(self, upstream_port: int) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("counting_proxy.py")),
             str(self.port), str(upstream_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        if self._line() != "ready":
            self.stop()
            raise RuntimeError("the counting proxy did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self._line())
        return answer

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def reset(self) -> None:
        self._ask("reset")

    def quiet(self) -> dict[str, Any]:
        """Stats once nothing is in flight and no byte moved for QUIET_SECONDS: the mirror's
        own downloads (which may outlive its clients' responses) are counted too."""
        deadline = time.monotonic() + QUIET_TIMEOUT
        last = self.stats()
        while time.monotonic() < deadline:
            time.sleep(QUIET_SECONDS)
            now = self.stats()
            if now["open"] == 0 and now["bytes_down"] == last["bytes_down"]:
                return now
            last = now
        last["note"] = f"upstream traffic still moving after {QUIET_TIMEOUT:.0f}s"
        return last

    def cpu_seconds(self) -> float:
        return cpu_of(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the proxy's signal to end
            wait_or_kill(self.process)


@dataclass
class Upstream:
    """What one herd made the mirror ask of the upstream (from the proxy's ledger)."""

    blob_gets: int = 0  # GET .../blobs/... answered 200
    blob_bytes: int = 0  # their body bytes, relayed
    cut_blob_gets: int = 0  # of those, bodies that ended short
    get_bytes: int = 0  # body bytes of every GET answered 200 (manifests too)
    blob_heads: int = 0
    manifest_requests: int = 0
    other_requests: int = 0
    bytes_down: int = 0  # every byte the upstream sent, heads included
    connections: int = 0
    first_request_s: float | None = None  # after the herd's start
    last_blob_done_s: float | None = None
    note: str = ""
    requests: dict[str, int] = field(default_factory=dict)  # "GET blobs 200" -> count
    blob_gets_by_digest: dict[str, int] = field(default_factory=dict)  # 200 GETs per blob

    @classmethod
    def from_stats(cls, stats: dict[str, Any], t0: float) -> Upstream:
        out = cls(bytes_down=stats["bytes_down"], connections=stats["connections"],
                  note=stats.get("note", ""))
        for exchange in stats["exchanges"]:
            path, method = exchange["path"], exchange["method"]
            kind = next((k for k in ("blobs", "manifests") if f"/{k}/" in path), path)
            key = f"{method} {kind} {exchange['status']}"
            out.requests[key] = out.requests.get(key, 0) + 1
            if method == "GET" and exchange["status"] == 200:
                out.get_bytes += exchange["body_bytes"]
            if "/blobs/" in path and method == "GET" and exchange["status"] == 200:
                out.blob_gets += 1
                digest = path.rpartition("/")[2]
                out.blob_gets_by_digest[digest] = out.blob_gets_by_digest.get(digest, 0) + 1
                out.blob_bytes += exchange["body_bytes"]
                out.cut_blob_gets += not exchange["complete"]
                done = exchange["finished"] - t0
                if out.last_blob_done_s is None or done > out.last_blob_done_s:
                    out.last_blob_done_s = done
            elif "/blobs/" in path and method == "HEAD":
                out.blob_heads += 1
            elif "/manifests/" in path:
                out.manifest_requests += 1
            else:
                out.other_requests += 1
            start = exchange["started"] - t0
            if out.first_request_s is None or start < out.first_request_s:
                out.first_request_s = start
        return out


# ---------------------------------------------------------------- the herd


@dataclass
class Client:
    """One client's pull, times in seconds after the herd's start."""

    manifest_s: float = 0.0
    blob_first_byte_s: list[float] = field(default_factory=list)
    blob_done_s: list[float] = field(default_factory=list)
    done_s: float = 0.0
    error: str = ""


def pull(conn: Connection, image: Image, t0: list[float], client: Client) -> None:
    """Manifest by tag, then every blob, each body hashed as it arrives and checked."""
    answer = expect(conn.request("GET", f"/v2/{REPOSITORY}/manifests/{TAG}",
                                 {"Accept": DOCKER_MANIFEST}), 200, what="GET manifest")
    if sha256_digest(answer.body) != image.digest:
        raise HttpError(f"manifest: got {len(answer.body)} bytes with another digest")
    client.manifest_s = time.monotonic() - t0[0]
    for blob in image.blobs:
        hasher = hashlib.sha256()
        first: list[float] = []

        def sink(piece: memoryview, hasher: Any = hasher, first: list[float] = first) -> None:
            if not first:
                first.append(time.monotonic() - t0[0])
            hasher.update(piece)

        answer = expect(conn.request("GET", f"/v2/{REPOSITORY}/blobs/{blob.digest}",
                                     keep_body=False, sink=sink), 200, what="GET blob")
        if answer.received != blob.size or f"sha256:{hasher.hexdigest()}" != blob.digest:
            raise HttpError(f"blob {blob.digest[:19]}: {answer.received} of {blob.size} bytes"
                            f", sha256:{hasher.hexdigest()[:12]}")
        client.blob_first_byte_s.append(first[0] if first else 0.0)
        client.blob_done_s.append(time.monotonic() - t0[0])
    client.done_s = time.monotonic() - t0[0]


@dataclass
class Herd:
    """One herd on one mirror: wall time, clients, upstream traffic and CPU."""

    seconds: float
    clients: list[Client]
    upstream: Upstream
    cpu: dict[str, float]  # seconds of CPU per process group over the herd

    @property
    def errors(self) -> list[str]:
        return [client.error for client in self.clients if client.error]


def run_herd(mirror: RunningTarget, image: Image, clients: int, proxy: CountingProxy | None,
             watched: dict[str, Any]) -> Herd:
    results = [Client() for _ in range(clients)]
    t0 = [0.0]
    barrier = threading.Barrier(clients, action=lambda: t0.__setitem__(0, time.monotonic()))

    def one(client: Client) -> None:
        try:
            with Connection(mirror.host, mirror.port, timeout=HERD_TIMEOUT / 2) as conn:
                conn.connect()
                barrier.wait(60)
                pull(conn, image, t0, client)
        except (HttpError, OSError, threading.BrokenBarrierError) as exc:
            client.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            client.done_s = time.monotonic() - t0[0]

    os.sync()
    if proxy is not None:
        proxy.reset()
    before = cpu_snapshot(mirror, watched)
    threads = [threading.Thread(target=one, args=(client,), daemon=True) for client in results]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + HERD_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    seconds = max(client.done_s for client in results)
    if any(thread.is_alive() for thread in threads):
        for client in results:
            if not client.done_s:
                client.error = f"still pulling after {HERD_TIMEOUT:.0f}s"
        seconds = HERD_TIMEOUT
    after = cpu_snapshot(mirror, watched)
    cpu = {name: after[name] - before[name] for name in before}
    cpu["other"] = cpu.pop("machine") - sum(cpu.values())
    if proxy is not None:
        upstream = Upstream.from_stats(proxy.quiet(), t0[0])
    else:  # nothing counts; give a download that outlives the responses time to end
        time.sleep(2 * QUIET_SECONDS)
        upstream = Upstream(note="not counted (--direct)")
    return Herd(seconds, results, upstream, cpu)


def interrupt_seconds() -> tuple[float, float]:
    """Machine-wide (irq + softirq, steal) CPU seconds so far, from /proc/stat.

    Loopback TCP does the receiving side's protocol work in softirq context, which the kernel
    charges to no process: it grows with the bytes moved, so a mirror that fetches the same
    blob many times costs CPU here that no process table shows."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    return (fields[5] + fields[6]) / CLOCK_TICKS, fields[7] / CLOCK_TICKS


def cpu_snapshot(mirror: RunningTarget, watched: dict[str, Any]) -> dict[str, float]:
    """CPU seconds so far of the mirror, the upstream, the proxies, this client, the kernel's
    interrupt work, a hypervisor's steal, and the whole machine."""
    irq, steal = interrupt_seconds()
    return {"mirror": mirror.cpu_seconds(), "upstream": watched["upstream"].cpu_seconds(),
            "proxies": sum(proxy.cpu_seconds() for proxy in watched["proxies"]),
            "client": self_cpu_seconds(), "softirq": irq, "steal": steal,
            "machine": machine_busy_seconds()}


# ---------------------------------------------------------------- mirrors


def as_mirror(spec: TargetSpec, remote: str, env: dict[str, str] | None = None) -> TargetSpec:
    """The same registry with distribution's `proxy` section pointing at `remote`."""

    def config(data: Path, port: int) -> dict[str, Any]:
        document = spec.config(data, port)
        document["proxy"] = {"remoteurl": remote}
        return document

    return TargetSpec(spec.kind, config, spec.command, env or spec.env)


def mirror_spec(kind: str, args: argparse.Namespace, remote: str) -> TargetSpec:
    if kind == "go":
        return as_mirror(go_spec(args.go_binary), remote)
    # This checkout's code, whatever the interpreter has installed.
    path = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")]))
    return as_mirror(dockyard_spec(args.python, args.dockyard_workers), remote,
                     {"PYTHONPATH": path})


@dataclass
class Run:
    kind: str
    number: int
    cold: Herd
    warm: Herd


def measure_mirror(kind: str, number: int, args: argparse.Namespace, image: Image,
                   proxy: CountingProxy | None, workdir: Path, watched: dict[str, Any]) -> Run:
    remote = proxy.url if proxy is not None else watched["upstream"].url
    mirror = RunningTarget(mirror_spec(kind, args, remote), f"{kind}-mirror-{number}", workdir)
    mirror.start()
    try:
        cold = run_herd(mirror, image, args.clients, proxy, watched)
        log(f"  {kind:8} cold {cold.seconds:6.2f}s  {summary(cold, image)}")
        warm = run_herd(mirror, image, args.clients, proxy, watched)
        log(f"  {kind:8} warm {warm.seconds:6.2f}s  {summary(warm, image)}")
        if (cold.errors or warm.errors) and mirror.alive():
            log(f"  {kind} log tail:\n{mirror.log_tail()}")
        if not mirror.alive():
            raise RuntimeError(f"{kind} mirror died:\n{mirror.log_tail()}")
    finally:
        mirror.stop()
        if args.keep:
            log(f"  kept {mirror.workdir}")
        else:
            mirror.remove_data()
    return Run(kind, number, cold, warm)


def summary(herd: Herd, image: Image) -> str:
    up = herd.upstream
    text = "cpu " + " ".join(f"{k} {v:.1f}s" for k, v in herd.cpu.items())
    if not up.note:
        text = (f"upstream {up.blob_bytes / image.blob_size:.3f}x blobs in {up.blob_gets} blob "
                f"GETs ({up.cut_blob_gets} cut), {up.blob_heads} HEADs, "
                f"{up.manifest_requests} manifest requests; {text}")
    if herd.errors:
        text += f"; {len(herd.errors)} client errors, first: {herd.errors[0]}"
    if up.note:
        text += f"; {up.note}"
    return text


# ---------------------------------------------------------------- the report


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cell(values: list[float], unit: str = "s", digits: int = 2) -> str:
    text = f"{med(values):.{digits}f}{unit}"
    if len(values) > 1:
        text += f" ({min(values):.{digits}f}..{max(values):.{digits}f})"
    return text


def ratio(values_a: list[float], values_b: list[float], name_a: str, name_b: str) -> str:
    a, b = med(values_a), med(values_b)
    if not a:
        return "-"
    return f"{name_b}/{name_a} = {b:.2f}/{a:.2f} = {b / a:.2f}"


def report(runs: list[Run], image: Image, args: argparse.Namespace,
           plain: list[float]) -> str:
    kinds = list(dict.fromkeys(run.kind for run in runs))
    by_kind = {kind: [run for run in runs if run.kind == kind] for kind in kinds}

    def values(kind: str, pick: Any) -> list[float]:
        return [float(pick(run)) for run in by_kind[kind]]

    rows: list[tuple[str, Any, str, int]] = [
        ("cold herd, all clients done", lambda r: r.cold.seconds, "s", 2),
        ("warm herd, all clients done", lambda r: r.warm.seconds, "s", 2),
        ("cold: upstream 200 GET body bytes / image",
         lambda r: r.cold.upstream.get_bytes / image.size, "x", 3),
        ("cold: upstream blob body bytes / image's blobs",
         lambda r: r.cold.upstream.blob_bytes / image.blob_size, "x", 3),
        ("cold: upstream blob GETs (200)", lambda r: r.cold.upstream.blob_gets, "", 0),
        ("cold: upstream blob HEADs", lambda r: r.cold.upstream.blob_heads, "", 0),
        ("cold: upstream manifest requests", lambda r: r.cold.upstream.manifest_requests, "",
         0),
        ("cold: all upstream bytes / image", lambda r: r.cold.upstream.bytes_down / image.size,
         "x", 3),
        ("warm: upstream requests", lambda r: r.warm.upstream.blob_gets
         + r.warm.upstream.blob_heads + r.warm.upstream.manifest_requests
         + r.warm.upstream.other_requests, "", 0),
        ("warm: upstream bytes / image", lambda r: r.warm.upstream.bytes_down / image.size,
         "x", 3),
        ("cold: last manifest received", lambda r: max(c.manifest_s for c in r.cold.clients),
         "s", 2),
        ("cold: first client done", lambda r: min(c.done_s for c in r.cold.clients), "s", 2),
        ("cold: upstream's last blob byte", lambda r: r.cold.upstream.last_blob_done_s or 0,
         "s", 2),
        ("warm: first client done", lambda r: min(c.done_s for c in r.warm.clients), "s", 2),
    ]
    for phase in ("cold", "warm"):
        for who in ("mirror", "upstream", "proxies", "client", "softirq", "steal", "other"):
            rows.append((f"{phase}: CPU {who}",
                         lambda r, p=phase, w=who: getattr(r, p).cpu.get(w, 0.0), "s", 1))
    lines = [f"| measure | {' | '.join(kinds)} |" + (" ratio |" if len(kinds) == 2 else ""),
             "|---" * (len(kinds) + 1 + (len(kinds) == 2)) + "|"]
    for label, pick, unit, digits in rows:
        if args.direct and "upstream" in label and "CPU" not in label:
            continue  # nothing counted it
        cells = [cell(values(kind, pick), unit, digits) for kind in kinds]
        if len(kinds) == 2:
            cells.append(ratio(values(kinds[0], pick), values(kinds[1], pick), kinds[0],
                               kinds[1]) if unit == "s" and digits == 2 else "")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    errors = [f"{run.kind} run {run.number} {phase}: {len(herd.errors)} of {args.clients} "
              f"clients failed, first: {herd.errors[0]}"
              for run in runs for phase, herd in (("cold", run.cold), ("warm", run.warm))
              if herd.errors]
    head = (f"Medians of {len(by_kind[kinds[0]])} run(s), (min..max). {args.clients} clients, "
            f"image {image.size / MiB:.2f} MiB = {len(image.layers)} x "
            f"{image.layers[0].size / MiB:.0f} MiB layers + config {image.config.size} B + "
            f"manifest {len(image.manifest)} B; Dockyard workers {args.dockyard_workers}; "
            f"{os.cpu_count()} CPUs, {cpu_model()}.")
    tail = (f"The same herd against the upstream itself (a plain Go registry, no mirror, blobs "
            f"in the page cache): {cell(plain)}.")
    return "\n".join([head, "", *lines, "", tail, *(["", *errors] if errors else [])])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def to_json(runs: list[Run], image: Image, args: argparse.Namespace, plain: list[float],
            ) -> dict[str, Any]:
    return {"clients": args.clients, "dockyard_workers": args.dockyard_workers,
            "direct": args.direct, "plain_upstream_herd_seconds": plain,
            "image": {"size": image.size, "digest": image.digest,
                      "blobs": [asdict(blob) for blob in image.blobs]},
            "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(),
                        "kernel": platform.release(), "loadavg_end": os.getloadavg()},
            "runs": [asdict(run) for run in runs]}


# ---------------------------------------------------------------- command line


def default_python() -> str:
    venv = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3, help="cold+warm herds per mirror, each "
                        "on fresh storage; the table shows medians (default 3)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=25)
    parser.add_argument("--targets", default="go,dockyard",
                        help="mirrors, in column order: go, dockyard (default go,dockyard)")
    parser.add_argument("--dockyard-workers", type=int, default=os.cpu_count() or 1,
                        help="Dockyard worker processes (default: CPU count, as bench/run.py)")
    parser.add_argument("--go-binary", default="/usr/bin/docker-registry")
    parser.add_argument("--python", default=default_python(),
                        help="interpreter that runs Dockyard (default: the repo's .venv, else "
                             "this one); Dockyard's code comes from this checkout's src/")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent of the scratch directory (default: the system temp dir)")
    parser.add_argument("--json", type=Path, help="also write every run to this file")
    parser.add_argument("--keep", action="store_true", help="keep data and server logs")
    parser.add_argument("--direct", action="store_true",
                        help="mirrors talk to the upstream straight, without the counting "
                             "proxies: times without the proxies' CPU, upstream not counted")
    args = parser.parse_args(argv)
    args.kinds = [kind.strip() for kind in args.targets.split(",") if kind.strip()]
    if not args.kinds or set(args.kinds) - {"go", "dockyard"} or len(set(args.kinds)) != len(
            args.kinds):
        parser.error("--targets takes go and/or dockyard, each once")
    if not 1 <= args.clients <= 256 or not 1 <= args.runs <= 20:
        parser.error("--clients must be 1..256 and --runs 1..20")
    if not 1 <= args.layers <= 64 or not 1 <= args.layer_mib <= 1024:
        parser.error("--layers must be 1..64 and --layer-mib 1..1024")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-herd-",
                                    dir=str(args.workdir) if args.workdir else None))
    log(f"scratch directory {workdir}")
    upstream = RunningTarget(go_spec(args.go_binary), "upstream", workdir)
    proxies: dict[str, CountingProxy] = {}
    runs: list[Run] = []
    plain: list[float] = []
    failed = False
    try:
        upstream.start()
        started = time.monotonic()
        image = push_image(upstream, args.layers, args.layer_mib * MiB)
        log(f"upstream {upstream.url}: {REPOSITORY}:{TAG}, {image.size / MiB:.1f} MiB, pushed "
            f"in {time.monotonic() - started:.1f}s")
        for kind in args.kinds if not args.direct else []:
            proxies[kind] = CountingProxy(upstream.port)
        watched = {"upstream": upstream, "proxies": list(proxies.values())}
        for number in range(1, args.runs + 1):
            order = args.kinds if number % 2 else list(reversed(args.kinds))
            log(f"run {number}/{args.runs}: {' then '.join(order)}")
            herd = run_herd(upstream, image, args.clients, None, watched)
            log(f"  plain upstream, no mirror: {herd.seconds:6.2f}s")
            plain.append(herd.seconds)
            failed |= bool(herd.errors)
            for kind in order:
                run = measure_mirror(kind, number, args, image, proxies.get(kind), workdir,
                                     watched)
                runs.append(run)
                failed |= bool(run.cold.errors or run.warm.errors)
    finally:
        for proxy in proxies.values():
            proxy.stop()
        upstream.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    runs.sort(key=lambda run: (args.kinds.index(run.kind), run.number))
    print(report(runs, image, args, plain))
    if args.json:
        args.json.write_text(json.dumps(to_json(runs, image, args, plain), indent=2))
        log(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
