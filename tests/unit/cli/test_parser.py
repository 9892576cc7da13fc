"""The `dockyard` parser: `--config` in the same places for every command, and `--version`.

The commands are read from the parser itself, so a command added later is covered too.
"""

from __future__ import annotations

import argparse

import pytest

from dockyard import __version__
from dockyard.cli import build_parser, main


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _required_arguments(parser: argparse.ArgumentParser) -> list[str]:
    """The least a command needs to parse: a value for each required argument."""
    needed: list[str] = []
    for action in parser._actions:
        if not action.required:
            continue
        value = str(next(iter(action.choices))) if action.choices else "x"
        needed += [action.option_strings[0], value] if action.option_strings else [value]
    return needed


def _commands(parser: argparse.ArgumentParser,
              path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list[str]]]:
    """Every runnable command: its path of (sub)command names and its required arguments."""
    children = _subcommands(parser)
    if not children:
        return [(path, _required_arguments(parser))]
    return [found for name, child in children.items()
            for found in _commands(child, (*path, name))]


COMMANDS = _commands(build_parser())


def test_every_group_is_reached() -> None:
    assert {path[0] for path, _ in COMMANDS} >= {
        "serve", "migrate", "config", "user", "key", "events", "gc", "du", "check", "readonly"}
    assert ("events", "status") in [path for path, _ in COMMANDS]


@pytest.mark.parametrize(("path", "required"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_config_before_the_command_and_after_each_subcommand(
        path: tuple[str, ...], required: list[str]) -> None:
    parser = build_parser()
    places = [[*path[:level], "--config", "given.yml", *path[level:], *required]
              for level in range(len(path) + 1)]
    places.append([*path, *required, "--config", "given.yml"])
    for argv in places:
        args = parser.parse_args(argv)
        assert args.config == "given.yml", argv
        assert callable(args.handler), argv


@pytest.mark.parametrize(("path", "required"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_without_config_there_is_none(path: tuple[str, ...], required: list[str]) -> None:
    """None: the defaults and REGISTRY_* only (a command's default must not be a path)."""
    assert build_parser().parse_args([*path, *required]).config is None


def test_the_deepest_config_wins() -> None:
    args = build_parser().parse_args(["--config", "top.yml", "events", "--config", "group.yml",
                                      "status", "--config", "deep.yml"])
    assert args.config == "deep.yml"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"dockyard {__version__}\n"


def test_an_unknown_command_exits_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["nonsense"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: dockyard") and "invalid choice: 'nonsense'" in err


def test_config_check_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check"]) == 2
    assert "FILE" in capsys.readouterr().err


@pytest.mark.parametrize("count", ["0", "-3", "two"])
def test_serve_needs_one_worker_or_more(capsys: pytest.CaptureFixture[str], count: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", count])
    assert exited.value.code == 2
    assert "argument --workers:" in capsys.readouterr().err


def test_serve_takes_a_worker_count() -> None:
    assert build_parser().parse_args(["serve", "--workers", "3"]).workers == 3
