"""`dockyard user add|passwd|remove|list`: managing the htpasswd users offline.

Passwords are read from a terminal prompt or from standard input (`--password-stdin`),
never from the command line, where other users could see them in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path

from dockyard.auth import htpasswd
from dockyard.cli.command import Handler, Subparsers, add_command
from dockyard.config import Config


def register(subparsers: Subparsers) -> None:
    user = add_command(subparsers, "user", "manage the htpasswd users (bcrypt)")
    user.add_argument("--file", help="htpasswd file (default: auth.htpasswd.path)")
    actions = user.add_subparsers(dest="user_command", required=True)
    for name, text, create in (("add", "add a user", True),
                               ("passwd", "change a user's password", False)):
        setter = add_command(actions, name, text)
        setter.add_argument("name")
        setter.add_argument("--password-stdin", action="store_true",
                            help="read the password from standard input")
        setter.set_defaults(handler=_on_htpasswd(_set_password), create=create)
    remove = add_command(actions, "remove", "remove a user")
    remove.add_argument("name")
    remove.set_defaults(handler=_on_htpasswd(_remove))
    add_command(actions, "list", "list the users").set_defaults(handler=_on_htpasswd(_list))


def _on_htpasswd(action: Callable[[argparse.Namespace, Path], None]) -> Handler:
    """A handler running `action` on the htpasswd file; what goes wrong is reported, exit 1."""
    def handler(args: argparse.Namespace, config: Config) -> int:
        try:
            action(args, _htpasswd_path(args, config))
        except (htpasswd.HtpasswdError, OSError) as exc:
            print(f"dockyard: {exc}", file=sys.stderr)
            return 1
        return 0
    return handler


def _htpasswd_path(args: argparse.Namespace, config: Config) -> Path:
    if args.file:
        return Path(args.file)
    if config.auth.htpasswd is None:
        raise htpasswd.HtpasswdError("no --file and no auth.htpasswd.path in the configuration")
    return Path(config.auth.htpasswd.path)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise htpasswd.HtpasswdError("no password: standard input is empty")
        return line.rstrip("\r\n")
    try:
        first = getpass.getpass("Password: ")
        repeated = getpass.getpass("Repeat password: ")
    except EOFError:
        raise htpasswd.HtpasswdError(
            "no password: input ended before one was typed (pipe it with --password-stdin)"
        ) from None
    if repeated != first:
        raise htpasswd.HtpasswdError("the passwords differ")
    return first


def _set_password(args: argparse.Namespace, path: Path) -> None:
    htpasswd.check_user_name(args.name)
    password = _read_password(args.password_stdin)
    htpasswd.set_password(path, args.name, password, create=args.create)


def _remove(args: argparse.Namespace, path: Path) -> None:
    htpasswd.remove_user(path, args.name)


def _list(args: argparse.Namespace, path: Path) -> None:
    for name in htpasswd.list_users(path):
        print(name)
