"""`dockyard events status|dead|replay`: what the webhook queues hold, and sending again.

These read and write the metadata database directly, so they work whether or not the
server runs; a running server picks up replays at its next poll.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from dockyard.app.backends import database_engines
from dockyard.app.notifications import endpoints
from dockyard.cli.command import Subparsers, add_command, async_handler
from dockyard.config import Config
from dockyard.metadata.outbox import EndpointStatus, Outbox


def register(subparsers: Subparsers) -> None:
    events = add_command(subparsers, "events", "webhook notifications: status and replay")
    actions = events.add_subparsers(dest="events_command", required=True)
    status = add_command(actions, "status", "pending, delivered and failed per endpoint")
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(handler=async_handler(_outbox, _status))
    dead = add_command(actions, "dead", "list an endpoint's dead-lettered events")
    dead.add_argument("--endpoint", required=True, help="endpoint name")
    dead.add_argument("--json", action="store_true", help="one JSON document")
    dead.set_defaults(handler=async_handler(_outbox, _dead))
    replay = add_command(
        actions, "replay", "send events again: dead letters (--dead), or all retained events")
    replay.add_argument("--endpoint", help="endpoint name (default: every endpoint)")
    replay.add_argument("--dead", action="store_true",
                        help="queue the dead letters again instead of rewinding the cursor")
    replay.set_defaults(handler=async_handler(_outbox, _replay))


@asynccontextmanager
async def _outbox(config: Config) -> AsyncIterator[Outbox]:
    """On the engines the server uses: sslmode, TLS files, pool and timeouts apply here too."""
    outbox = Outbox(database_engines(config))
    try:
        yield outbox
    finally:
        await outbox.close()


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def status_document(item: EndpointStatus, threshold: int) -> dict[str, Any]:
    state = item.state
    return {
        "endpoint": state.name,
        "pending": item.pending,
        "delivered": state.delivered,
        "failed": item.dead,
        "replaying": item.replaying,
        "failures": state.failures,
        "failing": state.failures >= threshold,
        "last_error": state.last_error,
        "last_success": _when(state.last_success_at),
        "last_failure": _when(state.last_failure_at),
        "next_attempt": _when(state.next_attempt_at),
        "cursor": state.last_seq,
        "lease_holder": state.lease_holder,
    }


async def _status(args: argparse.Namespace, config: Config, outbox: Outbox) -> int:
    configured = {e.name: e for e in endpoints(config)}
    ignored = {name: (e.ignored_actions, e.ignored_media_types) for name, e in configured.items()}
    found = await outbox.status(list(configured), ignored)
    documents = [status_document(item, configured[item.state.name].threshold) for item in found]
    if args.json:
        print(json.dumps({"endpoints": documents}, indent=2))
        return 0
    if not documents:
        print("no notification endpoints configured")
        return 0
    print(f"{'ENDPOINT':<20} {'PENDING':>8} {'DELIVERED':>10} {'FAILED':>7} {'RETRIES':>7}  "
          "LAST ERROR")
    for doc in documents:
        print(f"{doc['endpoint']:<20} {doc['pending']:>8} {doc['delivered']:>10} "
              f"{doc['failed']:>7} {doc['failures']:>7}  {doc['last_error'] or '-'}")
    return 0


async def _dead(args: argparse.Namespace, config: Config, outbox: Outbox) -> int:
    name = args.endpoint
    letters = await outbox.dead_letters(name)
    if args.json:
        print(json.dumps({"endpoint": name, "events": [
            {"seq": event.seq, "id": event.id, "action": event.action,
             "created_at": _when(event.created_at), "failed_at": _when(failed_at),
             "last_error": error, "event": json.loads(event.payload)}
            for event, failed_at, error in letters
        ]}, indent=2))
        return 0
    if not letters:
        print(f"dockyard: no dead-lettered events for {name!r}", file=sys.stderr)
    for event, failed_at, error in letters:
        print(f"{event.seq}\t{event.id}\t{event.action}\t{_when(failed_at)}\t{error or '-'}")
    return 0


async def _replay(args: argparse.Namespace, config: Config, outbox: Outbox) -> int:
    names = [e.name for e in endpoints(config)]
    name = args.endpoint
    if name is not None:
        if name not in names:
            print(f"dockyard: no enabled endpoint named {name!r}", file=sys.stderr)
            return 2
        names = [name]
    if args.dead:
        count = await outbox.requeue_dead(names)
        print(f"dockyard: {count} dead-lettered events queued for delivery again")
    else:
        count = await outbox.rewind(names)
        print(f"dockyard: {count} endpoints will receive every retained event again")
    return 0
