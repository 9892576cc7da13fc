"""`dockyard key rotate`: a new signing key for the built-in token service, offline."""

from __future__ import annotations

import argparse

from dockyard.auth.keys import rotate
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
