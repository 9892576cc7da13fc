"""The supervisor: the lean process `dockyard serve` becomes when it runs several workers.

The registry (aiohttp, SQLAlchemy, pydantic, the auth libraries) lives in the workers. Once
`serve` has validated the configuration, migrated the database and made the token keys, it
replaces itself (`exec`: same pid, so signals and process managers still reach it) with a
fresh interpreter running this module, which imports the standard library and the logging
set-up only: about 14 MiB resident instead of the 95 MiB a process with the registry loaded
keeps. Keep it so: anything imported at the top here is paid for as long as the server runs.

The supervisor starts the workers (`python -m dockyard.server.worker`, the validated
configuration pickled on stdin), starts another when one dies, and passes SIGTERM/SIGINT and
SIGHUP on so each worker drains or reloads for itself. The configuration stays pickled here:
it is unpickled only for the debug listener, which needs it.

A worker that exits before it ever served during start-up stops the whole server with a
non-zero status (restarting it would only fail again, forever). Later deaths are restarted,
with a delay that doubles while workers keep dying soon after they start, and such a crash
loop is logged as one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, NoReturn

from dockyard.observability import multiproc
from dockyard.observability.logs import configure_logging, set_level

if TYPE_CHECKING:
    from dockyard.server.debug_listener import DebugThread

log = logging.getLogger("dockyard.server.serve")

SUPERVISE_INTERVAL = 0.2
RESTART_BACKOFF = 1.0
MAX_RESTART_BACKOFF = 30.0
STABLE_AFTER = 30.0
"""A worker that served this long before it died is restarted after the shortest delay."""
CRASH_LOOP = 3
"""Quick deaths in a row of one worker slot that are reported as a crash loop."""
LOG_LEVEL_TIMEOUT = 60.0

Worker = subprocess.Popen[bytes]


class Plan(NamedTuple):
    """What the supervisor needs, as plain values: reading them imports nothing heavy.

    (A named tuple, not a dataclass: `dataclasses` alone would add 1 MiB to this process.)
    """

    workers: int
    config_path: str | None
    config: bytes
    """The validated `Config`, pickled: handed to every worker as it is."""
    log_level: str
    log_formatter: str
    log_fields: dict[str, str]
    drain_timeout: float
    metrics: bool
    debug: bool
    """Whether `http.debug.addr` is set: the debug listener runs here, summing the workers."""


def _unnamed_file() -> BinaryIO:
    """A file in no directory, since the configuration holds secrets: in memory where Linux
    offers that, so no writable temporary directory is needed either."""
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create("dockyard-plan"), "w+b")
    return tempfile.TemporaryFile()


def hand_over(plan: Plan) -> NoReturn:
    """Replace this process with the supervisor; `plan` passes through an unnamed file."""
    with _unnamed_file() as handoff:
        pickle.dump(plan._asdict(), handoff)  # plain values, not this module's class
        handoff.seek(0)
        os.set_inheritable(handoff.fileno(), True)
        sys.stdout.flush()
        sys.stderr.flush()
        # The command that started the server follows, unread: `ps` and `pkill -f "dockyard
        # serve"` still find the process by it.
        os.execv(sys.executable, [sys.executable, "-m", "dockyard.server.supervisor",
                                  str(handoff.fileno()), "dockyard", *sys.argv[1:]])


def configured_log_level(config_path: str | None) -> str | None:
    """`log.level` as the configuration says now, or None when it cannot be used.

    Read by a short-lived interpreter: loading the configuration imports pydantic and
    SQLAlchemy, some 35 MiB this process would otherwise keep for good. Why a file is
    invalid is not reported here: every worker logs it.
    """
    program = ("import sys\nfrom dockyard.config import load_config\n"
               "print(load_config(sys.argv[1] or None).log.level)")
    try:
        result = subprocess.run([sys.executable, "-c", program, config_path or ""],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=LOG_LEVEL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


class _Slot:
    """One worker place: its current process, whether it served, when to restart it."""

    __slots__ = ("child", "failures", "ready", "ready_pipe", "reload_pending", "restart_at",
                 "started")

    def __init__(self) -> None:
        self.child: Worker | None = None
        self.ready_pipe: int | None = None
        self.ready = False
        self.started = 0.0
        self.failures = 0
        """Deaths in a row soon after starting: the restart delay doubles with each."""
        self.restart_at = 0.0
        self.reload_pending = False
        """A SIGHUP to pass on once the worker serves: before that it would ignore it."""

    def poll_ready(self) -> None:
        """Read the worker's one-byte 'serving' message, or the pipe's end if it died first."""
        if self.ready_pipe is None:
            return
        try:
            message = os.read(self.ready_pipe, 1)
        except BlockingIOError:
            return
        self.ready = bool(message)
        os.close(self.ready_pipe)
        self.ready_pipe = None
        if self.ready and self.reload_pending and self.child is not None:
            self.reload_pending = False
            self.child.send_signal(signal.SIGHUP)


class Supervisor:
    """Keeps `plan.workers` workers running until SIGTERM or SIGINT, then drains them."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._metrics_dir: str | None = None
        self._slots: list[_Slot] = []
        self._stopping = False
        self._hangup = False
        self._reloaded = False
        """Whether a SIGHUP came: workers started since then are sent one once they serve,
        as the configuration they were handed is the one from before it."""

    @property
    def _children(self) -> list[Worker]:
        return [slot.child for slot in self._slots if slot.child is not None]

    def _spawn(self, slot: _Slot) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        argv = [sys.executable, "-m", "dockyard.server.worker", "--parent", str(os.getpid()),
                "--ready-fd", str(write_end)]
        if self._plan.config_path is not None:
            argv += ["--config", self._plan.config_path]
        try:
            child = subprocess.Popen(argv, stdin=subprocess.PIPE, pass_fds=(write_end,))
        finally:
            os.close(write_end)
        assert child.stdin is not None
        with contextlib.suppress(BrokenPipeError), child.stdin:  # if it died, it is replaced
            child.stdin.write(self._plan.config)
        slot.child, slot.ready_pipe, slot.ready = child, read_end, False
        slot.reload_pending = self._reloaded
        slot.started = time.monotonic()

    def _stop(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def _hung_up(self, signum: int, _frame: object) -> None:
        self._hangup = True  # handled by the loop, not inside a signal handler

    def _reload(self) -> None:
        """SIGHUP: every worker reloads for itself; here only the log level applies."""
        self._hangup, self._reloaded = False, True
        for slot in self._slots:
            slot.poll_ready()
            if slot.child is None or slot.child.poll() is not None:
                continue
            if slot.ready:
                slot.child.send_signal(signal.SIGHUP)
            else:  # still starting, SIGHUP ignored: passed on once it serves
                slot.reload_pending = True
        level = configured_log_level(self._plan.config_path)
        if level is not None:
            set_level(level)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._hung_up)
        if self._plan.metrics:
            self._metrics_dir = multiproc.prepare()
        debug: DebugThread | None = None
        try:
            debug = self._start_debug()
            self._slots = [_Slot() for _ in range(self._plan.workers)]
            for slot in self._slots:
                self._spawn(slot)
            starting = True
            while not self._stopping:
                time.sleep(SUPERVISE_INTERVAL)
                if self._hangup:
                    self._reload()
                if starting:
                    failed = self._failed_start()
                    if failed is not None:
                        log.error("a worker could not start (exit status %s); stopping", failed)
                        self._shutdown()
                        return 1
                    starting = not all(slot.ready for slot in self._slots)
                else:
                    self._replace_dead()
            return self._shutdown()
        finally:
            if debug is not None:
                debug.stop()
            if self._metrics_dir is not None:
                multiproc.remove(self._metrics_dir)

    def _start_debug(self) -> DebugThread | None:
        if not self._plan.debug:
            return None
        # The one part of the supervisor that needs the configuration, and so the imports
        # that come with it (aiohttp, pydantic, the health checks).
        from dockyard.server.debug_listener import DebugThread

        debug = DebugThread(pickle.loads(self._plan.config), self._metrics_dir)
        debug.start()
        return debug

    def _failed_start(self) -> int | None:
        """The exit status of a worker that died before it served, if one did."""
        for slot in self._slots:
            slot.poll_ready()
            if slot.child is not None and not slot.ready and slot.child.poll() is not None:
                return slot.child.returncode
        return None

    def _replace_dead(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            slot.poll_ready()
            child = slot.child
            if child is not None and child.poll() is not None and not self._stopping:
                quick = not slot.ready or now - slot.started < STABLE_AFTER
                slot.failures = slot.failures + 1 if quick else 1
                delay = min(RESTART_BACKOFF * 2 ** (slot.failures - 1), MAX_RESTART_BACKOFF)
                loop = (f" (crash loop: {slot.failures} quick exits in a row)"
                        if slot.failures >= CRASH_LOOP else "")
                log.error("worker %s exited with %s; starting another in %.0f s%s",
                          child.pid, child.returncode, delay, loop)
                self._forget(child)
                slot.child, slot.restart_at = None, now + delay
            if slot.child is None and slot.restart_at <= now and not self._stopping:
                self._spawn(slot)

    def _shutdown(self) -> int:
        for child in self._children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + self._plan.drain_timeout + 5
        for child in self._children:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            self._forget(child)
        for slot in self._slots:
            if slot.ready_pipe is not None:
                os.close(slot.ready_pipe)
                slot.ready_pipe = None
        return 0

    def _forget(self, child: Worker) -> None:
        """A dead worker's live gauges (uploads in progress) must not linger in the sums."""
        if self._metrics_dir is not None:
            multiproc.worker_exited(self._metrics_dir, child.pid)


def main(argv: list[str]) -> int:
    with open(int(argv[0]), "rb") as handoff:
        plan = Plan(**pickle.load(handoff))
    configure_logging(plan.log_level, plan.log_formatter, plan.log_fields)
    return Supervisor(plan).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
