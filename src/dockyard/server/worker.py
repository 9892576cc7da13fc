"""A worker process as the supervisor starts it: `python -m dockyard.server.worker [--config FILE]`.

The configuration arrives pickled on stdin, exactly as `dockyard serve` validated it before
any worker started; the file's path is only for SIGHUP reloads.
"""

from __future__ import annotations

import argparse
import pickle
import signal
import sys


def main() -> None:
    # Until the worker's own handler is installed, a reload must not kill it; it then starts
    # with the configuration it was given, as a worker started a moment earlier would.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m dockyard.server.worker")
    parser.add_argument("--config", help="configuration file, re-read on SIGHUP")
    args = parser.parse_args()
    config = pickle.loads(sys.stdin.buffer.read())

    from dockyard.server.serve import run_worker  # after the signal: importing takes a while

    run_worker(config, args.config)


if __name__ == "__main__":
    main()
