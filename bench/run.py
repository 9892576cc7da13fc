"""Dockyard vs the Go reference registry on loopback: one command, one table.

    .venv/bin/python bench/run.py [--rounds 3] [--only GROUP,...] [--json out.json]

Both registries run at once on 127.0.0.1; every metric is measured on one, then the
other, alternating which goes first each round, and the table shows the median of the
rounds for each target and the ratio of the second target to the first (Dockyard/Go).
See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import metrics
from bench.httpclient import Connection, HttpError
from bench.loadgen import AB, WRK
from bench.metrics import GROUPS, METRICS, Context, Measurement, Metric
from bench.seed import Seeded, seed_downloads, seed_image, seed_lists, verify
from bench.targets import (
    RunningTarget,
    TargetSpec,
    dockyard,
    free_port,
    go_reference,
    wait_or_kill,
)
from bench.transfers import BIG_SIZE, SMALL_COUNT, SMALL_SIZE, BlobSource

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
LIST_GROUPS = {"tags_list", "catalog"}
DOWNLOAD_GROUPS = {"download"}
SETTLE_AFTER_START = 2.0  # seconds between "ready" and the after-start RSS sample
BUSY_OTHER_PCT = 25.0  # median CPU of other processes, % of one core, above which we warn


def first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines() or [type(exc).__name__]
    return lines[0] + (" ..." if len(lines) > 1 else "")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds per metric and target; the table shows medians (default 3)")
    parser.add_argument("--only", default="",
                        help="comma-separated groups or metric ids: "
                             + ", ".join(GROUPS) + " (default: all)")
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    parser.add_argument("--targets", default="go,dockyard",
                        help="comma-separated, in column order: go, dockyard (default "
                             "go,dockyard; go,go checks the harness itself)")
    parser.add_argument("--dockyard-workers", type=int, default=os.cpu_count() or 1,
                        help="Dockyard worker processes (default: CPU count)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds per load-generator run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of load per small-request metric before round 1 "
                             "(default 1, 0 to skip)")
    parser.add_argument("--go-binary", default="/usr/bin/docker-registry")
    parser.add_argument("--python", default=str(REPO_ROOT / ".venv" / "bin" / "python"),
                        help="interpreter that runs Dockyard (default: the repo's .venv)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="parent of the scratch directory (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep data and server logs")
    parser.add_argument("--max-minutes", type=float, default=60.0,
                        help="stop measuring after this long and report what was measured")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    if not 0.5 <= args.duration <= 120:
        parser.error("--duration must be between 0.5 and 120 seconds")
    return args


def select_metrics(only: str) -> list[Metric]:
    if not only:
        return list(METRICS)
    wanted = {item.strip() for item in only.split(",") if item.strip()}
    known = set(GROUPS) | {metric.id for metric in METRICS} | {"sendfile"}
    unknown = wanted - known
    if unknown:
        raise SystemExit(f"unknown --only entries: {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(sorted(known))}")
    return [metric for metric in METRICS if metric.group in wanted or metric.id in wanted]


def target_specs(args: argparse.Namespace) -> list[tuple[str, TargetSpec]]:
    kinds = [kind.strip() for kind in args.targets.split(",") if kind.strip()]
    if len(kinds) != 2:
        raise SystemExit("--targets takes exactly two targets, e.g. go,dockyard")
    specs: list[tuple[str, TargetSpec]] = []
    for index, kind in enumerate(kinds):
        if kind == "go":
            spec = go_reference(args.go_binary)
        elif kind == "dockyard":
            spec = dockyard(args.python, args.dockyard_workers)
        else:
            raise SystemExit(f"unknown target {kind!r}: use go or dockyard")
        name = kind if kinds.count(kind) == 1 else f"{kind}{index + 1}"
        specs.append((name, spec))
    return specs


def check_tools(selected: list[Metric]) -> None:
    needed = {metric.client for metric in selected}
    for client, path in (("wrk", WRK), ("ab", AB)):
        if client in needed and not os.access(path, os.X_OK):
            raise SystemExit(f"{path} is missing: apt-get install -y "
                             f"{'wrk' if client == 'wrk' else 'apache2-utils'}")


# ---------------------------------------------------------------- the sendfile ceiling


class SendfileServer:
    def __init__(self, path: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("sendfile_server.py")), str(path),
             str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with Connection("127.0.0.1", self.port, timeout=2).connect():
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the sendfile server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            wait_or_kill(self.process)


# ---------------------------------------------------------------- results


@dataclass
class Results:
    names: list[str]
    samples: dict[tuple[str, str], list[Measurement]] = field(default_factory=dict)
    sendfile: list[Measurement] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rss_peak: dict[str, int] = field(default_factory=dict)
    rss_idle: dict[str, int] = field(default_factory=dict)
    rss_round_peaks: dict[str, list[int]] = field(default_factory=dict)
    pss_peak: dict[str, int] = field(default_factory=dict)
    pss_idle: dict[str, int] = field(default_factory=dict)
    pss_round_peaks: dict[str, list[int]] = field(default_factory=dict)
    loadavg_start: tuple[float, float, float] = field(default_factory=os.getloadavg)

    def add(self, metric: Metric, target: str, measurement: Measurement) -> None:
        self.samples.setdefault((metric.id, target), []).append(measurement)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    return f"{fmt(min(values))}..{fmt(max(values))}"


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * width for width in widths)
    out = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(headers, widths, strict=True))), line]
    for row in rows:
        out.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(out)


def memory_rows(kind: str, idle: dict[str, int], peak: dict[str, int],
                round_peaks: dict[str, list[int]], a: str, b: str) -> list[list[str]]:
    """The after-start and peak rows of one memory measure (RSS or PSS), in MiB."""
    rows: list[list[str]] = []
    ia, ib = idle.get(a), idle.get(b)
    pa, pb = peak.get(a), peak.get(b)
    if ia is not None and ib is not None:
        rows.append([f"server {kind} after start", "MiB", fmt(ia / MiB), fmt(ib / MiB),
                     f"{ib / ia:.2f}" if ia else "-", "", ""])
    if pa is not None and pb is not None:
        ra = [p / MiB for p in round_peaks.get(a, [])]
        rb = [p / MiB for p in round_peaks.get(b, [])]
        rows.append([f"server {kind} peak (max)", "MiB", fmt(pa / MiB), fmt(pb / MiB),
                     f"{pb / pa:.2f}" if pa else "-", spread(ra), spread(rb)])
    return rows


def report(results: Results, selected: list[Metric], rounds: int) -> str:
    a, b = results.names
    rows: list[list[str]] = []
    for metric in selected:
        sa, sb = results.samples.get((metric.id, a), []), results.samples.get((metric.id, b), [])
        flag = " !" if any(m.errors for m in sa + sb) else ""
        for position, unit in enumerate(metric.units):
            va = [m.values[unit] for m in sa if unit in m.values]
            vb = [m.values[unit] for m in sb if unit in m.values]
            ma, mb = median(va), median(vb)
            ratio = f"{mb / ma:.2f}" if ma and mb is not None else "-"
            label = metric.label + flag if position == 0 else ""
            rows.append([label, unit, fmt(ma), fmt(mb), ratio, spread(va), spread(vb)])
    rows += memory_rows("RSS", results.rss_idle, results.rss_peak, results.rss_round_peaks,
                        a, b)
    rows += memory_rows("PSS", results.pss_idle, results.pss_peak, results.pss_round_peaks,
                        a, b)
    headers = ["metric", "unit", a, b, f"{b}/{a}", f"{a} range", f"{b} range"]
    parts = [f"Medians of {rounds} round(s); ranges are min..max over rounds.",
             render_table(headers, rows)]
    others = [m.other_cpu_pct for ms in results.samples.values() for m in ms]
    busy = median(others)
    if busy is not None and busy > BUSY_OTHER_PCT:
        parts.insert(0, f"WARNING: the machine was busy: other processes used a median "
                        f"{busy:.0f}% of one core (of {100 * (os.cpu_count() or 1)}%) during "
                        "the measurements, so absolute numbers are low and noisy; ratios "
                        "are less affected. Rerun on a quiet machine for absolute figures.\n")

    if results.sendfile:
        ceiling = median([m.values["MB/s"] for m in results.sendfile])
        assert ceiling is not None
        shares = []
        for name in (a, b):
            got = median([m.values["MB/s"] for m in results.samples.get(("download_256m", name),
                                                                         [])])
            if got is not None:
                shares.append(f"{name} {100 * got / ceiling:.0f}%")
        parts.append(f"\nLoopback sendfile ceiling (same client, 256 MiB): {fmt(ceiling)} MB/s"
                     + (f"; download 256 MiB reaches {', '.join(shares)} of it" if shares else ""))

    cpu_rows = []
    for metric in selected:
        cells = [metric.label, metric.client]
        for name in (a, b):
            runs = results.samples.get((metric.id, name), [])
            for attr in ("client_cpu_pct", "server_cpu_pct", "other_cpu_pct"):
                cells.append(fmt(median([getattr(m, attr) for m in runs])))
        cpu_rows.append(cells)
    if results.sendfile:
        cells = ["sendfile ceiling", "python"]
        cells += [fmt(median([m.client_cpu_pct for m in results.sendfile])), "-",
                  fmt(median([m.other_cpu_pct for m in results.sendfile])), "", "", ""]
        cpu_rows.append(cells)
    cpu_headers = ["CPU, % of one core (median)", "client",
                   f"{a} client", f"{a} server", f"{a} other",
                   f"{b} client", f"{b} server", f"{b} other"]
    parts.append(f"\n{render_table(cpu_headers, cpu_rows)}")
    parts.append(f"({os.cpu_count()} CPUs. 'client' is the load generator or, for transfers, "
                 "this Python process; 'other' is everything else on the machine.)")
    if any(m.errors for ms in results.samples.values() for m in ms):
        parts.append("\n! = the load generator saw non-2xx responses or socket errors:")
        for (metric_id, name), runs in results.samples.items():
            errors = [m.errors for m in runs]
            if any(errors):
                parts.append(f"  {metric_id} {name}: errors per round {errors}")
    seen_notes = dict.fromkeys(
        f"{metric_id} {name}: {note}" for (metric_id, name), runs in results.samples.items()
        for m in runs for note in m.notes)
    for line in [*results.failures, *results.notes, *seen_notes]:
        parts.append(f"note: {line}")
    return "\n".join(parts)


def scrub(raw: dict[str, Any]) -> dict[str, Any]:
    """Raw generator results without the bulky console output."""
    out = dict(raw)
    if isinstance(out.get("detail"), dict):
        out["detail"] = {k: v for k, v in out["detail"].items() if k != "output"}
    return out


def to_json(results: Results, args: argparse.Namespace, selected: list[Metric]) -> dict[str, Any]:
    a, b = results.names

    def dump(measurements: list[Measurement]) -> list[dict[str, Any]]:
        return [{"values": m.values, "client_cpu_pct": m.client_cpu_pct,
                 "server_cpu_pct": m.server_cpu_pct, "other_cpu_pct": m.other_cpu_pct,
                 "errors": m.errors, "notes": m.notes, "raw": scrub(m.raw)}
                for m in measurements]

    metrics_out = []
    for metric in selected:
        entry: dict[str, Any] = {"id": metric.id, "label": metric.label, "client": metric.client,
                                 "units": list(metric.units), "median": {}, "samples": {}}
        for name in (a, b):
            got = results.samples.get((metric.id, name), [])
            entry["samples"][name] = dump(got)
            entry["median"][name] = {unit: median([m.values[unit] for m in got
                                                   if unit in m.values]) for unit in metric.units}
        metrics_out.append(entry)
    return {
        "targets": [a, b], "rounds": args.rounds, "duration_s": args.duration,
        "dockyard_workers": args.dockyard_workers,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version(), "loadavg_start": results.loadavg_start,
                    "loadavg_end": os.getloadavg()},
        "metrics": metrics_out,
        "sendfile": dump(results.sendfile),
        "rss_bytes": {"after_start": results.rss_idle, "peak": results.rss_peak,
                      "round_peaks": results.rss_round_peaks},
        "pss_bytes": {"after_start": results.pss_idle, "peak": results.pss_peak,
                      "round_peaks": results.pss_round_peaks},
        "failures": results.failures, "notes": results.notes,
    }


# ---------------------------------------------------------------- orchestration


def seed_all(targets: list[RunningTarget], selected: list[Metric], big: BlobSource,
             small: BlobSource, results: Results) -> dict[str, Seeded]:
    groups = {metric.group for metric in selected}
    lists = bool(groups & LIST_GROUPS)
    downloads = bool(groups & DOWNLOAD_GROUPS)
    if downloads:
        big_view, big_digest = big.stamp("download")
        smalls = small.stamp_many("download", SMALL_SIZE, SMALL_COUNT)
    seeded: dict[str, Seeded] = {}
    for target in targets:
        started = time.monotonic()
        seeded[target.name] = seed_image(target)
        if lists:
            seed_lists(target, seeded[target.name])
        if downloads:
            seed_downloads(target, seeded[target.name], big_view, big_digest, smalls)
        for problem in verify(target, seeded[target.name], lists):
            results.notes.append(f"{target.name}: {problem}")
            log(f"warning: {target.name}: {problem}")
        log(f"seeded {target.name} in {time.monotonic() - started:.1f}s")
    return seeded


def warm_up(ctx: Context, targets: list[RunningTarget], selected: list[Metric],
            seconds: float) -> None:
    if seconds <= 0:
        return
    warm = Context(ctx.seeded, ctx.big, ctx.small, seconds, ctx.workdir)
    seen: set[str] = set()
    for metric in selected:
        # Uploads are never repeated (each must be new content); downloads are fetched right
        # before each measurement instead (settle).
        if metric.client == "python" or metric.group in seen or metric.id == "manifest_put":
            continue
        seen.add(metric.group)
        for target in targets:
            try:
                metric.run(warm, target, f"w{target.name}")
            except (HttpError, RuntimeError, OSError) as exc:
                log(f"warm-up {metric.id} on {target.name} failed: {first_line(exc)}")


def measure_sendfile(ctx: Context, results: Results, round_no: int) -> None:
    try:
        metrics.run_sendfile(ctx, ctx.sendfile_port)  # into the page cache, as in settle()
        got = metrics.run_sendfile(ctx, ctx.sendfile_port)
    except (HttpError, OSError) as exc:
        results.failures.append(f"round {round_no} sendfile: {first_line(exc)}")
        return
    results.sendfile.append(got)
    log(f"  {'sendfile ceiling':18} {'':9} {fmt(got.values['MB/s'])} MB/s  [cpu client "
        f"{got.client_cpu_pct:.0f}% other {got.other_cpu_pct:.0f}%]")


def settle(ctx: Context, metric: Metric, target: RunningTarget) -> None:
    """Start every measurement from the same state: no dirty pages, downloads in the cache.

    Go's registry writes uploads through the page cache and Dockyard its last pieces; the
    kernel wrote them back during whatever ran 5 to 30 s later, which on a slow disk took a
    third off a download or an upload of the other registry in some rounds and not others.
    And a machine may evict clean pages that sat unused for a minute (a VM's proactive
    reclaim, such as DAMON's): a blob fetched before round 1 was read from disk again in
    later rounds, by either registry, so each download is fetched once right before it
    is measured.
    """
    os.sync()
    if metric.group == "download":
        metric.run(ctx, target, "warm")


def measure(args: argparse.Namespace, selected: list[Metric], results: Results,
            ctx: Context, targets: list[RunningTarget], deadline: float) -> None:
    want_sendfile = any(m.id == "download_256m" for m in selected) or "sendfile" in args.only
    for round_no in range(1, args.rounds + 1):
        order = targets if round_no % 2 else list(reversed(targets))
        log(f"round {round_no}/{args.rounds}: order {' then '.join(t.name for t in order)}")
        for target in targets:
            assert target.rss is not None
            target.rss.take_window()
            target.rss.take_pss_window()
        if want_sendfile and not any(m.id == "download_256m" for m in selected):
            measure_sendfile(ctx, results, round_no)
        for metric in selected:
            if metric.id == "download_256m" and want_sendfile:
                measure_sendfile(ctx, results, round_no)  # next to the downloads it bounds
            for target in order:
                if time.monotonic() > deadline:
                    results.failures.append(f"stopped at round {round_no}, {metric.id}: "
                                            f"--max-minutes reached")
                    return
                if not target.alive():
                    raise RuntimeError(f"{target.name} died:\n{target.log_tail()}")
                try:
                    settle(ctx, metric, target)
                    got = metric.run(ctx, target, f"r{round_no}{target.name}")
                except (HttpError, RuntimeError, OSError) as exc:
                    results.failures.append(
                        f"round {round_no} {metric.id} {target.name}: {first_line(exc)}")
                    log(f"  {metric.id:18} {target.name:9} FAILED: {exc}")
                    continue
                results.add(metric, target.name, got)
                shown = ", ".join(f"{fmt(v)} {u}" for u, v in got.values.items())
                log(f"  {metric.id:18} {target.name:9} {shown}  [cpu client "
                    f"{got.client_cpu_pct:.0f}% server {got.server_cpu_pct:.0f}% other "
                    f"{got.other_cpu_pct:.0f}%]" + (f" errors {got.errors}" if got.errors else ""))
        for target in targets:
            assert target.rss is not None
            results.rss_round_peaks.setdefault(target.name, []).append(target.rss.take_window())
            results.pss_round_peaks.setdefault(target.name, []).append(
                target.rss.take_pss_window())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = select_metrics(args.only)
    if not selected and "sendfile" not in args.only:
        raise SystemExit("nothing selected")
    check_tools(selected)
    specs = target_specs(args)
    parent = str(args.workdir) if args.workdir else None
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=parent))
    results = Results(names=[name for name, _ in specs])
    targets: list[RunningTarget] = []
    sendfile: SendfileServer | None = None
    log(f"scratch directory {workdir}")
    try:
        big = BlobSource(BIG_SIZE)
        small = BlobSource(SMALL_SIZE * SMALL_COUNT * metrics.SMALL_UPLOAD_BATCHES)
        ceiling_file = workdir / "sendfile.bin"
        ceiling_file.write_bytes(big.data)
        sendfile = SendfileServer(ceiling_file)
        for name, spec in specs:
            target = RunningTarget(spec, name, workdir)
            target.start()
            targets.append(target)
            log(f"started {name} (pid {target.pid}) on {target.url}")
        time.sleep(SETTLE_AFTER_START)  # let every worker finish importing before sampling
        for target in targets:
            assert target.rss is not None
            results.rss_idle[target.name] = target.rss.sample()
            results.pss_idle[target.name] = target.rss.pss
        seeded = seed_all(targets, selected, big, small, results)
        ctx = Context(seeded, big, small, args.duration, workdir, sendfile.port)
        warm_up(ctx, targets, selected, args.warmup)
        deadline = time.monotonic() + 60 * args.max_minutes
        measure(args, selected, results, ctx, targets, deadline)
    finally:
        for target in targets:
            if target.rss is not None:
                results.rss_peak[target.name] = target.rss.peak
                results.pss_peak[target.name] = target.rss.pss_peak
            target.stop()
        if sendfile is not None:
            sendfile.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(results, selected, args.rounds))
    if args.json:
        args.json.write_text(json.dumps(to_json(results, args, selected), indent=2))
        log(f"wrote {args.json}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
