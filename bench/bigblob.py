"""Push and pull one big blob (default 10 GiB) through Dockyard while watching its memory.

    .venv/bin/python bench/bigblob.py [--size 10GiB] [--chunk 64MiB] [--workdir DIR] [--keep]

Starts Dockyard as bench/run.py does (`python -m dockyard serve --config FILE`, default
workers, filesystem storage and SQLite in a scratch directory under --workdir, default the
system temp dir), then, on one kept-alive connection each:

1. chunked push: POST a session, PATCHes of --chunk bytes with `Content-Range`, following
   each `Location`, then `PUT ?digest=` with no body;
2. monolithic push of a second blob of the same size: POST, then one `PUT ?digest=` with the
   whole body;
3. pull of that blob: `GET /v2/<name>/blobs/<digest>`, counted into a reused buffer and
   checked against `Content-Length`, not kept.

Bodies are made on the fly, never held whole: one pseudo-random 8 MiB block, each copy
stamped with the blob's seed and the block's index, so blocks and the two blobs differ. The
generator runs twice per blob, once (untimed) for the digest and once to send. The server's
process tree RSS is sampled every 100 ms (bench/targets.py) and printed at the start, peak
and end of each phase next to the phase's MB/s (10^6 bytes/s): invariant 4 (no request holds
a whole blob in memory) means the peak must not grow with --size. The blobs need 2x --size
on disk; the run refuses to start with less than 2.5x free. The scratch directory is removed
at the end unless --keep.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import resource
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.httpclient import Connection, HttpError, expect, path_of
from bench.seed import with_query
from bench.targets import RunningTarget, dockyard

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
GiB = 1024 * MiB
BLOCK = 8 * MiB
DISK_FACTOR = 2.5
REPOSITORY = "bench/bigblob"
_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": MiB, "mib": MiB, "g": GiB, "gib": GiB,
          "t": 1024 * GiB, "tib": 1024 * GiB}


def parse_size(text: str) -> int:
    """`10GiB`, `64MiB`, `512k` or a byte count (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 10GiB, 64MiB)")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if size <= 0:
        raise argparse.ArgumentTypeError("a size must be positive")
    return size


class BlobContent:
    """`size` bytes made on the fly from one 8 MiB block; only that block is in memory."""

    def __init__(self, seed: int, size: int) -> None:
        self.seed = seed
        self.size = size
        self._block = bytearray(random.Random(seed).randbytes(BLOCK))
        self._view = memoryview(self._block)

    def pieces(self, start: int = 0, end: int | None = None) -> Iterator[memoryview]:
        """Bytes [start, end) in pieces of at most one block (valid until the next piece)."""
        end = self.size if end is None else end
        offset = start
        while offset < end:
            index, within = divmod(offset, BLOCK)
            struct.pack_into("<QQ", self._block, 0, self.seed, index)
            stop = min(BLOCK, within + (end - offset))
            yield self._view[within:stop]
            offset += stop - within

    def digest(self) -> str:
        hasher = hashlib.sha256()
        for piece in self.pieces():
            hasher.update(piece)
        return "sha256:" + hasher.hexdigest()


def push_chunked(conn: Connection, blob: BlobContent, digest: str, chunk: int) -> None:
    location = expect(conn.request("POST", f"/v2/{REPOSITORY}/blobs/uploads/"), 202,
                      what="start upload").header("location")
    for start in range(0, blob.size, chunk):
        end = min(start + chunk, blob.size)
        answer = conn.stream("PATCH", path_of(location), end - start, blob.pieces(start, end),
                             {"Content-Type": "application/octet-stream",
                              "Content-Range": f"{start}-{end - 1}"})
        location = expect(answer, 202, what=f"PATCH {start}-{end - 1}").header("location")
    expect(conn.request("PUT", with_query(location, "digest", digest)), 201,
           what="finish chunked upload")


def push_monolithic(conn: Connection, blob: BlobContent, digest: str) -> None:
    location = expect(conn.request("POST", f"/v2/{REPOSITORY}/blobs/uploads/"), 202,
                      what="start upload").header("location")
    expect(conn.stream("PUT", with_query(location, "digest", digest), blob.size, blob.pieces(),
                       {"Content-Type": "application/octet-stream"}),
           201, what="monolithic PUT")


def pull(conn: Connection, digest: str, size: int) -> None:
    answer = expect(conn.request("GET", f"/v2/{REPOSITORY}/blobs/{digest}", keep_body=False),
                    200, what="GET blob")
    if answer.received != size or answer.header("docker-content-digest") != digest:
        raise HttpError(f"GET blob: {answer.received} bytes of "
                        f"{answer.header('docker-content-digest')!r}, expected {size} of {digest}")


@dataclass
class Phase:
    name: str
    size: int  # bytes moved, 0 for a phase that moves none
    seconds: float
    rss_start: int
    rss_peak: int
    rss_end: int

    def row(self) -> str:
        rate = f"{self.size / self.seconds / 1e6:,.0f}" if self.size and self.seconds else "-"
        return (f"| {self.name} | {rate} | {self.seconds:.1f} | {self.rss_start / MiB:.0f} | "
                f"{self.rss_peak / MiB:.0f} | {self.rss_end / MiB:.0f} |")


def run_phase(target: RunningTarget, name: str, size: int, action: Callable[[], None]
              ) -> Phase:
    """Time `action()`; the server tree's RSS before it, at its peak during it, and after."""
    sampler = target.rss
    assert sampler is not None
    sampler.take_window()
    rss_start = sampler.sample()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    rss_end = sampler.sample()
    phase = Phase(name, size, seconds, rss_start, sampler.take_window(), rss_end)
    print(f"{name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return phase


def open_connection(target: RunningTarget) -> Connection:
    """Connected before the clock starts, so connecting is not part of a transfer."""
    conn = Connection(target.host, target.port)
    conn.connect()
    return conn


def measure(target: RunningTarget, size: int, chunk: int) -> list[Phase]:
    chunked, whole = BlobContent(1, size), BlobContent(2, size)
    started = time.perf_counter()
    digests = {blob.seed: blob.digest() for blob in (chunked, whole)}
    print(f"digests of 2 x {size / GiB:g} GiB computed in {time.perf_counter() - started:.1f} s",
          file=sys.stderr, flush=True)
    phases = [run_phase(target, "idle (after start)", 0, lambda: time.sleep(2))]
    with closing(open_connection(target)) as conn:
        phases.append(run_phase(target, f"push, {chunk // MiB} MiB PATCHes", size,
                                lambda: push_chunked(conn, chunked, digests[1], chunk)))
    with closing(open_connection(target)) as conn:
        phases.append(run_phase(target, "push, monolithic PUT", size,
                                lambda: push_monolithic(conn, whole, digests[2])))
    with closing(open_connection(target)) as conn:
        phases.append(run_phase(target, "pull, GET", size,
                                lambda: pull(conn, digests[2], size)))
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=10 * GiB,
                        help="blob size, binary units (default 10GiB)")
    parser.add_argument("--chunk", type=parse_size, default=64 * MiB,
                        help="PATCH size of the chunked push (default 64MiB)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the scratch directory goes (default: system temp dir)")
    parser.add_argument("--python", default=str(REPO_ROOT / ".venv" / "bin" / "python"),
                        help="interpreter that runs Dockyard (default: the repo's .venv)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if free < DISK_FACTOR * args.size:
        print(f"refusing to start: {free / GiB:.1f} GiB free under {parent}, need "
              f"{DISK_FACTOR * args.size / GiB:.1f} GiB ({DISK_FACTOR}x --size: two blobs of "
              f"{args.size / GiB:g} GiB plus room); pass --workdir or a smaller --size",
              file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="dockyard-bigblob-", dir=parent))
    target = RunningTarget(dockyard(args.python), "dockyard", scratch)
    try:
        target.start()
        phases = measure(target, args.size, args.chunk)
    finally:
        target.stop()
        if args.keep:
            print(f"kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nOne {args.size / GiB:g} GiB blob, server RSS = Dockyard's whole process tree "
          f"(idle after start: {target.idle_rss / MiB:.0f} MiB)\n")
    print("| phase | MB/s | seconds | RSS start MiB | RSS peak MiB | RSS end MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for phase in phases:
        print(phase.row())
    client_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\nthis client's peak RSS: {client_peak / MiB:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
