"""`dockyard user ...` and `dockyard key rotate`: managing users and token keys offline.

Passwords are read from a terminal prompt or from standard input (`--password-stdin`),
never from the command line, where other users could see them in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from dockyard.auth import htpasswd
from dockyard.auth.keys import rotate
from dockyard.config import Config


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = commands.add_parser("user", help="manage the htpasswd users (bcrypt)")
    user.add_argument("--config", help="configuration file (finds auth.htpasswd.path)")
    user.add_argument("--file", help="htpasswd file (default: auth.htpasswd.path)")
    actions = user.add_subparsers(dest="user_command", required=True)
    for name, text in (("add", "add a user"), ("passwd", "change a user's password")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("name")
        sub.add_argument("--password-stdin", action="store_true",
                         help="read the password from standard input")
    actions.add_parser("remove", help="remove a user").add_argument("name")
    actions.add_parser("list", help="list the users")

    key = commands.add_parser("key", help="manage the built-in token service's signing keys")
    key.add_argument("--config", help="configuration file")
    key_actions = key.add_subparsers(dest="key_command", required=True)
    rotate_parser = key_actions.add_parser(
        "rotate", help="sign with a new key; old keys verify until retired")
    rotate_parser.add_argument(
        "--retire-after", type=float, default=None,
        help="seconds after which a superseded key is deleted "
             "(default: the refresh token lifetime)")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise htpasswd.HtpasswdError("the passwords differ")
    return first


def _htpasswd_path(args: argparse.Namespace, config: Config) -> Path:
    if args.file:
        return Path(args.file)
    if config.auth.htpasswd is None:
        raise htpasswd.HtpasswdError("no --file and no auth.htpasswd.path in the configuration")
    return Path(config.auth.htpasswd.path)


def run_user(args: argparse.Namespace, config: Config) -> int:
    try:
        path = _htpasswd_path(args, config)
        if args.user_command == "list":
            for name in htpasswd.list_users(path):
                print(name)
        elif args.user_command == "remove":
            htpasswd.remove_user(path, args.name)
        else:
            htpasswd.check_user_name(args.name)
            password = _read_password(args.password_stdin)
            htpasswd.set_password(path, args.name, password,
                                  create=args.user_command == "add")
    except (htpasswd.HtpasswdError, OSError) as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return 1
    return 0


def run_key(args: argparse.Namespace, config: Config) -> int:
    settings = config.auth.tokenservice
    retire_after = args.retire_after
    if retire_after is None:
        retire_after = max(settings.expiration_seconds, settings.refresh_expiration_seconds)
    kid, retired = rotate(config.token_key_directory(), retire_after)
    print(f"signing with key {kid}")
    for old in retired:
        print(f"retired key {old}")
    return 0
