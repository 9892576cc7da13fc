"""Large transfers driven from Python: blob uploads and downloads, timed end to end.

Bodies come from buffers generated before the clock starts; each upload is new content
(a unique token in its first bytes) so no registry can skip work on a known digest.
Downloads count and length-check the bytes but do not hash them.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.httpclient import Connection, HttpError, expect, path_of
from bench.seed import with_query

MiB = 1024 * 1024
BIG_SIZE = 256 * MiB
SMALL_SIZE = 1 * MiB
SMALL_COUNT = 64
CHUNK_SIZE = 8 * MiB
UPLOAD_CONCURRENCY = 8
DOWNLOAD_CONCURRENCY = 16
TOKEN_BYTES = 64
PARALLEL_TIMEOUT = 600.0


def mb_per_s(size: int, seconds: float) -> float:
    """Decimal megabytes (10^6 bytes) per second."""
    return size / seconds / 1e6 if seconds > 0 else 0.0


class BlobSource:
    """Pre-generated random bytes, stamped with a token to make each blob unique."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        self.view = memoryview(self.data)
        for offset in range(0, size, 16 * MiB):
            piece = min(16 * MiB, size - offset)
            self.view[offset : offset + piece] = os.urandom(piece)

    def stamp(self, token: str, start: int = 0, length: int | None = None,
              ) -> tuple[memoryview, str]:
        """Write ``token`` at ``start`` and return that slice with its digest."""
        end = len(self.data) if length is None else start + length
        raw = token.encode().ljust(TOKEN_BYTES, b"\0")[:TOKEN_BYTES]
        self.data[start : start + TOKEN_BYTES] = raw
        view = self.view[start:end]
        return view, "sha256:" + hashlib.sha256(view).hexdigest()

    def stamp_many(self, token: str, size: int, count: int) -> list[tuple[memoryview, str]]:
        if size * count > len(self.data):
            raise ValueError("blob source too small")
        return [self.stamp(f"{token}-{index}", index * size, size) for index in range(count)]


@dataclass
class Endpoint:
    host: str
    port: int

    def connect(self) -> Connection:
        return Connection(self.host, self.port).connect()


def upload_monolithic(at: Endpoint, repo: str, body: memoryview, digest: str) -> float:
    """POST a session then PUT the whole body with ?digest; seconds from POST to 201."""
    with at.connect() as conn:
        started = time.perf_counter()
        session = expect(conn.request("POST", f"/v2/{repo}/blobs/uploads/"), 202,
                         what="start upload")
        expect(conn.request("PUT", with_query(session.header("location"), "digest", digest),
                            {"Content-Type": "application/octet-stream"}, body),
               201, what="monolithic PUT")
        return time.perf_counter() - started


def upload_chunked(at: Endpoint, repo: str, body: memoryview, digest: str,
                   chunk: int = CHUNK_SIZE) -> float:
    """POST, PATCH ``chunk``-sized pieces with Content-Range, PUT ?digest; seconds."""
    with at.connect() as conn:
        started = time.perf_counter()
        answer = expect(conn.request("POST", f"/v2/{repo}/blobs/uploads/"), 202,
                        what="start upload")
        location = answer.header("location")
        for offset in range(0, body.nbytes, chunk):
            piece = body[offset : offset + chunk]
            answer = expect(conn.request(
                "PATCH", path_of(location),
                {"Content-Type": "application/octet-stream",
                 "Content-Range": f"{offset}-{offset + piece.nbytes - 1}"}, piece),
                202, what=f"PATCH at {offset}")
            location = answer.header("location") or location
        expect(conn.request("PUT", with_query(location, "digest", digest)), 201,
               what="closing PUT")
        return time.perf_counter() - started


Job = Callable[[Connection, int], None]


def parallel(at: Endpoint, concurrency: int, count: int, job: Job) -> float:
    """Run ``job(conn, index)`` for every index over ``concurrency`` connections; seconds."""
    conns = [at.connect() for _ in range(min(concurrency, count))]
    lock = threading.Lock()
    next_index = 0
    failures: list[BaseException] = []
    gate = threading.Barrier(len(conns) + 1)

    def worker(conn: Connection) -> None:
        nonlocal next_index
        gate.wait()
        while True:
            with lock:
                if failures or next_index >= count:
                    return
                index = next_index
                next_index += 1
            try:
                job(conn, index)
            except BaseException as exc:  # re-raised in the caller's thread
                with lock:
                    failures.append(exc)
                return

    threads = [threading.Thread(target=worker, args=(conn,), daemon=True) for conn in conns]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    deadline = started + PARALLEL_TIMEOUT
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.perf_counter()))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    if failures:
        raise failures[0]
    if any(thread.is_alive() for thread in threads):
        raise HttpError(f"parallel transfer did not finish within {PARALLEL_TIMEOUT:.0f}s")
    return elapsed


def upload_many(at: Endpoint, repo: str, blobs: Sequence[tuple[memoryview, str]],
                concurrency: int = UPLOAD_CONCURRENCY) -> float:
    """Monolithic uploads of ``blobs`` over ``concurrency`` connections; seconds."""

    def job(conn: Connection, index: int) -> None:
        body, digest = blobs[index]
        session = expect(conn.request("POST", f"/v2/{repo}/blobs/uploads/"), 202,
                         what="start upload")
        expect(conn.request("PUT", with_query(session.header("location"), "digest", digest),
                            {"Content-Type": "application/octet-stream"}, body),
               201, what="monolithic PUT")

    return parallel(at, concurrency, len(blobs), job)


def check_download(conn: Connection, path: str, size: int) -> None:
    answer = conn.request("GET", path, keep_body=False)
    if answer.status != 200:
        raise HttpError(f"GET {path}: HTTP {answer.status}")
    length = answer.header("content-length")
    if length != str(size) or answer.received != size:
        raise HttpError(f"GET {path}: Content-Length {length!r}, received {answer.received}, "
                        f"expected {size}")


def download_one(at: Endpoint, path: str, size: int) -> float:
    """GET one blob, counting bytes without keeping or hashing them; seconds."""
    with at.connect() as conn:
        started = time.perf_counter()
        check_download(conn, path, size)
        return time.perf_counter() - started


def download_many(at: Endpoint, paths: Sequence[str], size: int,
                  concurrency: int = DOWNLOAD_CONCURRENCY) -> float:
    """GET every path over ``concurrency`` connections; seconds."""

    def job(conn: Connection, index: int) -> None:
        check_download(conn, paths[index], size)

    return parallel(at, concurrency, len(paths), job)
