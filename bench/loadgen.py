"""C load generators for small requests: wrk for GET and PUT, ApacheBench for HEAD.

Debian's wrk 4.1 and h2load 1.52 both wait forever for a body after a HEAD response
that carries Content-Length, so HEAD goes through ``ab -i -k`` (single-threaded; its CPU
use is reported so a saturated generator is visible). The generator runs as a direct
child and is reaped with ``os.wait4``, which gives its exact CPU time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

WRK = "/usr/bin/wrk"
AB = "/usr/bin/ab"
GRACE = 30.0  # seconds a generator may overrun its duration before it is killed


@dataclass
class LoadResult:
    tool: str
    connections: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx responses plus socket errors
    gen_cpu_s: float
    gen_cpu_pct: float  # of one core
    detail: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Finished:
    output: str
    wall_s: float
    cpu_s: float
    returncode: int


def run_generator(argv: list[str], timeout: float) -> Finished:
    """Run a generator to completion (killed after ``timeout``) and take its CPU time."""
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        deadline = started + timeout
        killed = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                killed = True
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen quiet
        wall = time.monotonic() - started
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    if killed:
        raise RuntimeError(f"{argv[0]} did not finish within {timeout:.0f}s:\n{output[-2000:]}")
    return Finished(output, wall, cpu, proc.returncode)


def lua_string(value: str) -> str:
    """A Lua long-bracket string literal that cannot be closed by ``value``."""
    level = 0
    while f"]{'=' * level}]" in value:
        level += 1
    return f"[{'=' * level}[{value}]{'=' * level}]"


WRK_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d status=%d connect=%d read=%d write=%d " ..
    "timeout=%d p50_us=%d p99_us=%d bytes=%d\\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), summary.bytes))
end
"""


def wrk_script(method: str, headers: dict[str, str]) -> str:
    lines = [f"wrk.method = {lua_string(method)}"]
    lines += [f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + WRK_DONE


def wrk_put_script(path_prefix: str, tag_prefix: str, body_head: str, body_tail: str,
                   headers: dict[str, str]) -> str:
    """PUT a distinct body to a distinct path per request: tag ``<prefix><thread>-<n>``.

    The body is ``body_head + tag + body_tail`` so every manifest is new content.
    """
    header_table = ", ".join(f"[ {lua_string(k)} ] = {lua_string(v)}"
                             for k, v in headers.items())
    return f"""
local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
local counter = 0
local headers = {{{header_table}}}
local prefix = {lua_string(path_prefix)}
local tagprefix = {lua_string(tag_prefix)}
local head = {lua_string(body_head)}
local tail = {lua_string(body_tail)}
function request()
  counter = counter + 1
  local tag = tagprefix .. tid .. "-" .. counter
  return wrk.format("PUT", prefix .. tag, headers, head .. tag .. tail)
end
""" + WRK_DONE


def parse_wrk(output: str) -> dict[str, int]:
    match = re.search(r"^BENCH_RESULT (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    return {key: int(value) for key, value in
            (item.split("=", 1) for item in match.group(1).split())}


def wrk(url: str, connections: int, duration: float, script: str, threads: int | None = None,
        ) -> LoadResult:
    """Drive ``url`` with wrk for ``duration`` seconds at ``connections`` connections."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"load is only sent to 127.0.0.1, not {url}")
    threads = max(1, min(connections, threads or os.cpu_count() or 1))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        script_path = handle.name
    try:
        argv = [WRK, "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s",
                "--timeout", "10s", "--latency", "-s", script_path, url]
        done = run_generator(argv, duration + GRACE)
    finally:
        Path(script_path).unlink(missing_ok=True)
    stats = parse_wrk(done.output)
    seconds = stats["duration_us"] / 1e6 or done.wall_s
    errors = sum(stats[key] for key in ("status", "connect", "read", "write", "timeout"))
    return LoadResult(
        tool="wrk", connections=connections, duration_s=seconds, requests=stats["requests"],
        rps=stats["requests"] / seconds, p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000, errors=errors, gen_cpu_s=done.cpu_s,
        gen_cpu_pct=100 * done.cpu_s / done.wall_s,
        detail={"threads": threads, **stats, "output": done.output[-1500:]},
    )


def _ab_number(pattern: str, output: str, default: float | None = None) -> float:
    match = re.search(pattern, output, re.MULTILINE)
    if match is None:
        if default is not None:
            return default
        raise RuntimeError(f"ab output lacks {pattern!r}:\n{output[-2000:]}")
    return float(match.group(1))


def ab_head(url: str, connections: int, duration: float, headers: dict[str, str]) -> LoadResult:
    """HEAD ``url`` with ApacheBench (keep-alive) for ``duration`` seconds."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"load is only sent to 127.0.0.1, not {url}")
    with tempfile.NamedTemporaryFile("r", suffix=".csv") as csv:
        argv = [AB, "-q", "-i", "-k", "-r", "-s", "10", "-c", str(connections),
                "-t", f"{duration:g}", "-n", "100000000", "-e", csv.name]
        for name, value in headers.items():
            argv += ["-H", f"{name}: {value}"]
        done = run_generator([*argv, url], duration + GRACE)
        percentiles = {}
        for line in Path(csv.name).read_text().splitlines()[1:]:
            pct, _, ms = line.partition(",")
            percentiles[int(pct)] = float(ms)
    out = done.output
    complete = int(_ab_number(r"^Complete requests:\s+(\d+)", out))
    seconds = _ab_number(r"^Time taken for tests:\s+([\d.]+)", out)
    failed = int(_ab_number(r"^Failed requests:\s+(\d+)", out, 0))
    non2xx = int(_ab_number(r"^Non-2xx responses:\s+(\d+)", out, 0))
    keepalive = int(_ab_number(r"^Keep-Alive requests:\s+(\d+)", out, 0))
    notes = []
    if keepalive < complete:
        notes.append(f"ab: {complete - keepalive} of {complete} responses closed the connection "
                     "(HTTP/1.0 keep-alive not honoured), so HEAD paid for reconnects")
    return LoadResult(
        tool="ab", connections=connections, duration_s=seconds, requests=complete,
        rps=complete / seconds if seconds else 0.0, p50_ms=percentiles.get(50, 0.0),
        p99_ms=percentiles.get(99, 0.0), errors=failed + non2xx, gen_cpu_s=done.cpu_s,
        gen_cpu_pct=100 * done.cpu_s / done.wall_s,
        detail={"failed": failed, "non2xx": non2xx, "keepalive": keepalive,
                "output": out[-1500:]},
        notes=notes,
    )
