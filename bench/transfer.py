"""Air-gap transfer: `dockyard import`/`export` and the Go-registry migration, against skopeo.

    python -m bench.transfer [--runs 3] [--skopeo-runs 3] [--images 8] [--layers 8]
                             [--layer-mib 32] [--only import,skopeo,migrate,export]

One content set (default 8 images of 8 random 32 MiB layers: 2 GiB of layers) is written
once as an OCI image layout (a directory, and the same as a .tar) and pushed once into the Go
reference registry (`docker-registry serve`). Then, each run on fresh directories:

- import: `dockyard import --config C LAYOUT` of the directory and of the .tar into an empty
  Dockyard (filesystem + SQLite), in-process, no server;
- skopeo: `skopeo sync --src yaml --dest docker` of the same 8 images from the running Go
  registry into a running `dockyard serve --workers 2` over HTTP: what users do today;
- migrate: the Go registry stopped, `dockyard import --from-distribution ROOT` of its storage
  tree, with `--link` (hard links) and without (copies);
- export: `dockyard export --to` a directory, a .tar and a .tar.zst from an imported Dockyard.

Every command is timed from spawn to exit (wall), with its CPU (user, system) from the
kernel's accounting of reaped children; where the command prints its own duration (import,
export) that is given too, and the difference is start-up (interpreter, config, opening the
registry). `sync` runs before every command, untimed, and once after it, timed on its own:
the writeback a command leaves behind. The report gives medians (min..max) and both sides of
every ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.httpclient import expect
from bench.mirror_herd import REPO_ROOT, MiB, cpu_model, default_python
from bench.seed import push_blob, sha256_digest
from bench.targets import RunningTarget, TargetSpec
from bench.targets import dockyard as dockyard_spec
from bench.targets import go_reference as go_spec

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
GZIP_HEADER = bytes.fromhex("1f8b0800000000000003")
"""Layers start with it: skopeo sniffs content, and would gzip "uncompressed" random bytes on
the way to a registry (changing every digest and spending its time compressing)."""
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
TAG = "v1"
COMMAND_TIMEOUT = 900.0
GROUPS = ("import", "skopeo", "migrate", "export")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the content


@dataclass
class Content:
    """The images: repository -> (manifest bytes, [(digest, size)] of config and layers)."""

    images: dict[str, tuple[bytes, list[tuple[str, int]]]] = field(default_factory=dict)

    @property
    def blob_bytes(self) -> int:
        return sum(size for _, blobs in self.images.values() for _, size in blobs)

    @property
    def layer_count(self) -> int:
        return sum(len(blobs) - 1 for _, blobs in self.images.values())


def write_blob(layout: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.partition(":")[2]
    path.write_bytes(data)
    return digest


def make_content(layout: Path, upstream: RunningTarget, images: int, layers: int,
                 layer_size: int) -> Content:
    """Random layers written into `layout` and pushed to `upstream` as they are made, so only
    one layer is held in memory; an OCI manifest per image, tagged TAG in both."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    content = Content()
    entries = []
    rng = random.Random(0x5EED)
    with upstream.connection() as conn:
        for number in range(images):
            repository = f"bench/img-{number}"
            blobs: list[tuple[str, int]] = []
            for _ in range(layers):
                data = GZIP_HEADER + rng.randbytes(layer_size - len(GZIP_HEADER))
                digest = write_blob(layout, data)
                push_blob(conn, repository, data, digest)
                blobs.append((digest, layer_size))
            config = json.dumps({"architecture": "amd64", "os": "linux",
                                 "rootfs": {"type": "layers",
                                            "diff_ids": [d for d, _ in blobs]}}).encode()
            config_digest = write_blob(layout, config)
            push_blob(conn, repository, config, config_digest)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest,
                           "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in blobs],
            }).encode()
            manifest_digest = write_blob(layout, manifest)
            expect(conn.request("PUT", f"/v2/{repository}/manifests/{TAG}",
                                {"Content-Type": OCI_MANIFEST}, manifest),
                   201, what="push a manifest")
            content.images[repository] = (manifest, [(config_digest, len(config)), *blobs])
            entries.append({"mediaType": OCI_MANIFEST, "digest": manifest_digest,
                            "size": len(manifest),
                            "annotations": {"io.dockyard.repository": repository,
                                            "org.opencontainers.image.ref.name": TAG}})
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                   "manifests": entries}))
    return content


# ---------------------------------------------------------------- timed commands


@dataclass
class Sample:
    """One timed command."""

    wall_s: float
    user_s: float
    sys_s: float
    writeback_s: float  # the `sync` right after it
    phase_s: float | None = None  # the duration the command printed, if any
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    summary: str = ""


def timed(argv: list[str], env: dict[str, str] | None = None,
          servers: dict[str, RunningTarget] | None = None) -> Sample:
    """Run `argv` to its end; wall time, its CPU (and the servers'), then a timed sync."""
    os.sync()
    servers = servers or {}
    before_servers = {name: server.cpu_seconds() for name, server in servers.items()}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = {name: server.cpu_seconds() - before_servers[name]
                  for name, server in servers.items()}
    synced = time.monotonic()
    os.sync()
    writeback = time.monotonic() - synced
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    phase = re.search(r" in (\d+(?:\.\d+)?)s$", summary)
    return Sample(wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime,
                  writeback, float(phase.group(1)) if phase else None, server_cpu, summary)


def dockyard_env() -> dict[str, str]:
    """This checkout's code, whatever the interpreter has installed."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "src"),
                                                        os.environ.get("PYTHONPATH")]))}


def dockyard_config(directory: Path) -> Path:
    """A fresh Dockyard: filesystem storage and the embedded SQLite under `directory`."""
    directory.mkdir(parents=True)
    config = dockyard_spec("").config(directory / "data", 0)
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results: dict[str, list[Sample]] = {}
        self.counter = 0

    def fresh(self, name: str) -> Path:
        self.counter += 1
        return self.workdir / f"{name}-{self.counter}"

    def dockyard(self, *argv: str) -> list[str]:
        return [self.args.python, "-m", "dockyard", *argv]

    def record(self, case: str, sample: Sample) -> None:
        self.results.setdefault(case, []).append(sample)
        phase = f", phase {sample.phase_s:.1f}s" if sample.phase_s is not None else ""
        log(f"  {case:28} {sample.wall_s:6.2f}s wall{phase}, cpu user {sample.user_s:.1f}s "
            f"sys {sample.sys_s:.1f}s, sync after {sample.writeback_s:.2f}s | {sample.summary}")

    def run_import(self, case: str, layout: Path, keep: bool = False) -> Path:
        directory = self.fresh("import")
        config = dockyard_config(directory)
        self.record(case, timed(self.dockyard("import", "--config", str(config), str(layout)),
                                dockyard_env()))
        if not keep:
            shutil.rmtree(directory)
        return config

    def run_skopeo(self, upstream: RunningTarget, content: Content) -> None:
        served = dockyard_spec(self.args.python, self.args.dockyard_workers)
        spec = TargetSpec("dockyard", served.config, served.command, dockyard_env())
        target = RunningTarget(spec, self.fresh("skopeo-dockyard").name, self.workdir)
        sync_file = target.workdir / "sync.yml"
        sync_file.write_text(yaml.safe_dump({f"{upstream.host}:{upstream.port}": {
            "tls-verify": False,
            "images": {repository: [TAG] for repository in content.images}}}))
        target.start()
        try:
            sample = timed(["skopeo", "sync", "--src", "yaml", "--dest", "docker",
                            "--dest-tls-verify=false", "--preserve-digests",
                            str(sync_file),
                            f"{target.host}:{target.port}/mirror"],
                           servers={"dockyard": target, "go": upstream})
            check_pulled(target, content)
            sample.summary = f"{len(content.images)} images checked in Dockyard"
            self.record("skopeo sync (HTTP)", sample)
        finally:
            target.stop()
            target.remove_data()

    def run_migration(self, case: str, root: Path, link: bool) -> None:
        directory = self.fresh("migrate")
        config = dockyard_config(directory)
        argv = self.dockyard("import", "--config", str(config), "--from-distribution",
                             str(root))
        self.record(case, timed(argv + (["--link"] if link else []), dockyard_env()))
        shutil.rmtree(directory)

    def run_export(self, case: str, config: Path, target: Path) -> None:
        target.parent.mkdir(parents=True)
        self.record(case, timed(self.dockyard("export", "--config", str(config), "--to",
                                              str(target)), dockyard_env()))
        size = (sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
                if target.is_dir() else target.stat().st_size)
        self.results[case][-1].summary += f" | output {size} bytes"
        shutil.rmtree(target.parent)


def check_pulled(target: RunningTarget, content: Content) -> None:
    """Every manifest arrived where skopeo sync puts it (DEST/<last part of the source
    repository's name>), and its layers are there: the sync really copied everything."""
    with target.connection() as conn:
        for repository, (manifest, blobs) in content.images.items():
            name = f"mirror/{repository.rpartition('/')[2]}"
            answer = expect(conn.request("GET", f"/v2/{name}/manifests/{TAG}",
                                         {"Accept": OCI_MANIFEST}), 200, what=f"GET {name}")
            if sha256_digest(answer.body) != sha256_digest(manifest):
                raise RuntimeError(f"{name}: skopeo stored another manifest")
            for digest, _ in blobs:
                expect(conn.request("HEAD", f"/v2/{name}/blobs/{digest}"), 200,
                       what=f"HEAD {digest}")


# ---------------------------------------------------------------- floors


def floors(layout: Path, workdir: Path, content: Content) -> dict[str, float]:
    """What the machine does without Dockyard: sha256 on one core (the layers' digests, from
    the page cache), and `cp -r` / `cp -al` of the layout (copy and hard-link floors)."""
    out: dict[str, float] = {}
    started = time.monotonic()
    for path in (layout / "blobs" / "sha256").iterdir():
        hasher = hashlib.sha256()
        with path.open("rb", buffering=0) as handle:
            while chunk := handle.read(4 * MiB):
                hasher.update(chunk)
    out["sha256 of every blob, one core (s)"] = time.monotonic() - started
    for name, flags in (("cp -r of the layout (s)", "-r"), ("cp -al of the layout (s)", "-al")):
        copy = workdir / "floor-copy"
        sample = timed(["cp", flags, str(layout), str(copy)])
        out[name] = sample.wall_s
        out[name.replace("(s)", "+ sync (s)")] = sample.wall_s + sample.writeback_s
        shutil.rmtree(copy)
    return out


# ---------------------------------------------------------------- the report


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rate(size: int, seconds: float) -> str:
    return f"{size / 1e6 / seconds:.0f}" if seconds > 0 else "-"


def cell(values: list[float], digits: int = 2) -> str:
    text = f"{med(values):.{digits}f}"
    return text + (f" ({min(values):.{digits}f}..{max(values):.{digits}f})"
                   if len(values) > 1 else "")


def report(bench: Bench, content: Content, floor: dict[str, float], load: list[str]) -> str:
    size = content.blob_bytes
    lines = [
        f"{len(content.images)} images, {content.layer_count} layers of "
        f"{bench.args.layer_mib} MiB, {size} bytes of blobs ({size / 2**30:.2f} GiB); "
        f"{os.cpu_count()} CPUs, {cpu_model()}; Dockyard serve workers "
        f"{bench.args.dockyard_workers}.",
        f"loadavg before: {load[0]}; after: {load[1]}. The layout and the Go registry's tree "
        "were written just before (page cache: reads are from memory, not disk).",
        "", "| case | runs | wall s | MB/s (wall) | own phase s | MB/s (phase) | user s | "
            "sys s | sync after s |", "|---" * 9 + "|"]
    for case, samples in bench.results.items():
        walls = [s.wall_s for s in samples]
        phases = [s.phase_s for s in samples if s.phase_s is not None]
        lines.append(
            f"| {case} | {len(samples)} | {cell(walls)} | {rate(size, med(walls))} | "
            f"{cell(phases) if phases else '-'} | "
            f"{rate(size, med(phases)) if phases else '-'} | "
            f"{med([s.user_s for s in samples]):.1f} | {med([s.sys_s for s in samples]):.1f} | "
            f"{med([s.writeback_s for s in samples]):.2f} |")
    skopeo = bench.results.get("skopeo sync (HTTP)", [])
    if skopeo:
        cpu = {name: med([s.server_cpu_s[name] for s in skopeo])
               for name in skopeo[0].server_cpu_s}
        own = med([s.user_s + s.sys_s for s in skopeo])
        lines += ["", f"skopeo sync CPU (medians): skopeo {own:.1f}s, "
                  + ", ".join(f"{name} {value:.1f}s" for name, value in cpu.items())]
    lines += ["", "Ratios (medians of wall times; the goal's side first):"]

    def ratio(label: str, fast: str, slow: str) -> None:
        if fast in bench.results and slow in bench.results:
            a = med([s.wall_s for s in bench.results[fast]])
            b = med([s.wall_s for s in bench.results[slow]])
            lines.append(f"- {label}: {slow} / {fast} = {b:.2f}s / {a:.2f}s = {b / a:.2f}x")

    ratio("import vs skopeo sync (goal >= 3x)", "import directory", "skopeo sync (HTTP)")
    ratio("import .tar vs skopeo sync", "import .tar", "skopeo sync (HTTP)")
    ratio("migration --link vs copy", "migrate --link", "migrate (copy)")
    if "migrate --link" in bench.results:
        link = med([s.wall_s for s in bench.results["migrate --link"]])
        lines.append(f"- migration --link of {size / 2**30:.2f} GiB: {link:.2f}s "
                     f"(goal < 10 s: {'met' if link < 10 else 'missed'})")
    lines += ["", "Floors (no Dockyard): " + "; ".join(
        f"{name} {value:.2f} ({size / 1e6 / value:.0f} MB/s)" for name, value in floor.items())]
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of every case (default 3)")
    parser.add_argument("--skopeo-runs", type=int, default=None,
                        help="runs of skopeo sync (default: --runs)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--layers", type=int, default=8, help="layers per image")
    parser.add_argument("--layer-mib", type=int, default=32)
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"cases to run, of {','.join(GROUPS)}")
    parser.add_argument("--dockyard-workers", type=int, default=2,
                        help="workers of the server skopeo pushes to (default 2, as make run)")
    parser.add_argument("--go-binary", default="/usr/bin/docker-registry")
    parser.add_argument("--python", default=default_python(),
                        help="interpreter that runs Dockyard (its code comes from this "
                             "checkout's src/)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent of the scratch directory (default: the system temp dir)")
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    args.groups = {group.strip() for group in args.only.split(",") if group.strip()}
    if not args.groups or args.groups - set(GROUPS):
        parser.error(f"--only takes {','.join(GROUPS)}")
    if args.skopeo_runs is None:
        args.skopeo_runs = args.runs
    if not 1 <= args.runs <= 20 or not 0 <= args.skopeo_runs <= 20:
        parser.error("--runs must be 1..20 and --skopeo-runs 0..20")
    if not 1 <= args.images <= 64 or not 1 <= args.layers <= 64 or not 1 <= args.layer_mib <= 512:
        parser.error("--images and --layers must be 1..64, --layer-mib 1..512")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-transfer-",
                                    dir=str(args.workdir) if args.workdir else None))
    log(f"scratch directory {workdir}")
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    bench = Bench(args, workdir)
    layout = workdir / "layout"
    tar = workdir / "layout.tar"
    upstream = RunningTarget(go_spec(args.go_binary), "go", workdir)
    try:
        upstream.start()
        started = time.monotonic()
        content = make_content(layout, upstream, args.images, args.layers,
                               args.layer_mib * MiB)
        subprocess.run(["tar", "-cf", str(tar), "-C", str(layout), "oci-layout", "index.json",
                        "blobs"], check=True)
        log(f"content: {content.blob_bytes / 2**30:.2f} GiB in the layout, its .tar and the Go "
            f"registry, in {time.monotonic() - started:.1f}s")
        floor = floors(layout, workdir, content)
        for run in range(1, max(args.runs, args.skopeo_runs) + 1):
            log(f"run {run}")
            if "skopeo" in args.groups and run <= args.skopeo_runs:
                bench.run_skopeo(upstream, content)
            if "import" in args.groups and run <= args.runs:
                bench.run_import("import directory", layout)
                bench.run_import("import .tar", tar)
        upstream.stop()  # the tree is now the Go registry's at rest
        root = upstream.workdir / "data"
        if "migrate" in args.groups:
            for _ in range(args.runs):
                bench.run_migration("migrate --link", root, link=True)
                bench.run_migration("migrate (copy)", root, link=False)
        if "export" in args.groups:
            config = bench.run_import("import directory (for export)", layout, keep=True)
            for _ in range(args.runs):
                for case, name in (("export directory", "out"), ("export .tar", "out.tar"),
                                   ("export .tar.zst", "out.tar.zst")):
                    bench.run_export(case, config, bench.fresh("export") / name)
    finally:
        upstream.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(report(bench, content, floor, [load_before, load_after]))
    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(),
                        "loadavg": [load_before, load_after]},
            "blob_bytes": content.blob_bytes, "floors": floor,
            "results": {case: [asdict(s) for s in samples]
                        for case, samples in bench.results.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
