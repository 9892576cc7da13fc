"""`dockyard key list` and `key rotate`: the built-in token service's signing keys, offline."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from dockyard.auth.keys import list_keys, rotate
from dockyard.cli.command import Subparsers, add_command
from dockyard.config import Config


def register(subparsers: Subparsers) -> None:
    key = add_command(subparsers, "key", "manage the built-in token service's signing keys")
    actions = key.add_subparsers(dest="key_command", required=True)
    rotate_parser = add_command(
        actions, "rotate", "sign with a new key; old keys verify until retired")
    rotate_parser.add_argument(
        "--retire-after", type=float, default=None,
        help="seconds after which a superseded key is deleted "
             "(default: the refresh token lifetime)")
    rotate_parser.set_defaults(handler=_rotate)
    list_parser = add_command(actions, "list", "the keys, oldest first: the newest signs")
    list_parser.set_defaults(handler=_list)


def _list(args: argparse.Namespace, config: Config) -> int:
    directory = config.token_key_directory()
    keys = list_keys(directory)
    if not keys:
        print(f"dockyard: no signing keys in {directory} (the server makes one at start)")
        return 0
    print(f"{'KID':<44} {'CREATED (UTC)':<20} USE")
    for index, key in enumerate(keys):
        created = datetime.fromtimestamp(key.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        use = "signs and verifies" if index == len(keys) - 1 else "verifies"
        print(f"{key.kid:<44} {created:<20} {use}")
    return 0


def _rotate(args: argparse.Namespace, config: Config) -> int:
    settings = config.auth.tokenservice
    retire_after = args.retire_after
    if retire_after is None:
        retire_after = max(settings.expiration_seconds, settings.refresh_expiration_seconds)
    kid, retired = rotate(config.token_key_directory(), retire_after)
    print(f"signing with key {kid}")
    for old in retired:
        print(f"retired key {old}")
    return 0
