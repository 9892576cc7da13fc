"""A worker process as the supervisor starts it: `python -m dockyard.server.worker [--config FILE]`.

The configuration arrives pickled on stdin, exactly as `dockyard serve` validated it before
any worker started; the file's path is only for SIGHUP reloads. The worker tells the
supervisor it is serving by writing to `--ready-fd`, and dies with the supervisor: a worker
left behind by a killed supervisor would keep serving beside the next server.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pickle
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGTERM (a graceful drain) when the supervisor dies, however it dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the parent check below still catches a parent already gone
    if os.getppid() != parent:
        sys.exit(0)


def main() -> None:
    # Until the worker's own handler is installed, a reload must not kill it; it then starts
    # with the configuration it was given, as a worker started a moment earlier would.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m dockyard.server.worker")
    parser.add_argument("--config", help="configuration file, re-read on SIGHUP")
    parser.add_argument("--parent", type=int, help="the supervisor's pid: exit when it dies")
    parser.add_argument("--ready-fd", type=int, help="written to once the worker serves")
    args = parser.parse_args()
    if args.parent is not None:
        die_with_parent(args.parent)
    config = pickle.loads(sys.stdin.buffer.read())

    from dockyard.server.serve import run_worker  # after the signal: importing takes a while

    sys.exit(run_worker(config, args.config, ready_fd=args.ready_fd))


if __name__ == "__main__":
    main()
