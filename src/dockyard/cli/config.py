"""`dockyard config check FILE`: validate a configuration and show what it amounts to.

Valid means the server would start on it: besides the keys and values, every file it names
(certificates, keys, CA bundles, token keys, htpasswd) is read and parsed.

FILE may also be given as `--config FILE`, in any place every other command takes it.

The output is the effective configuration (file, REGISTRY_* overrides and defaults) as YAML,
with every secret masked so it can be pasted into an issue or a chat.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

import yaml
from sqlalchemy.engine import make_url

from dockyard.cli.command import Subparsers, add_command
from dockyard.config import Config

MASK = "********"
SECRET_KEYS = frozenset({"secret", "password", "secretkey", "sessiontoken", "accesskey"})
_SECRET_HEADER = re.compile(r"(?i)authorization|cookie|token|secret|api[-_]?key|signature")
_URL_PASSWORD = re.compile(r"^(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(?=@)", re.I)


def register(subparsers: Subparsers) -> None:
    config = add_command(subparsers, "config", "work with configuration files")
    actions = config.add_subparsers(dest="config_command", required=True)
    check = add_command(
        actions, "check", "validate FILE and print the effective settings, secrets masked")
    # The same destination as --config, so main loads FILE however it was given.
    check.add_argument("config", metavar="FILE", nargs="?", default=argparse.SUPPRESS,
                       help="configuration file to check")
    check.set_defaults(handler=_check)


def _mask_headers(headers: dict[str, Any]) -> dict[str, Any]:
    masked: dict[str, Any] = {}
    for name, value in headers.items():
        if not _SECRET_HEADER.search(name):
            masked[name] = value
        else:
            masked[name] = [MASK] * len(value) if isinstance(value, list) else MASK
    return masked


def mask(value: Any, key: str = "") -> Any:
    """A copy of a dumped configuration with secrets replaced by MASK."""
    if isinstance(value, dict):
        if key == "headers":
            return _mask_headers(value)
        return {name: mask(item, str(name)) for name, item in value.items()}
    if isinstance(value, list):
        return [mask(item, key) for item in value]
    if key.lower() in SECRET_KEYS and value is not None:
        return MASK
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, value)
    return value


def effective(config: Config) -> dict[str, Any]:
    """The settings in force, with derived defaults (the database URL) filled in."""
    dumped: dict[str, Any] = config.model_dump(mode="json")
    url = make_url(config.database_url())
    dumped["database"]["url"] = url.render_as_string(hide_password=False)
    return dumped


def _check(args: argparse.Namespace, config: Config) -> int:
    if args.config is None:
        print("dockyard config check: error: the following arguments are required: FILE",
              file=sys.stderr)
        return 2
    from dockyard.server.preflight import file_problems

    problems = file_problems(config)
    if problems:
        print("dockyard: invalid configuration:\n" + "\n".join(problems), file=sys.stderr)
        return 2
    sys.stdout.write(f"# {args.config}: valid\n")
    sys.stdout.write(yaml.safe_dump(mask(effective(config)), sort_keys=False))
    return 0
