"""htpasswd: bcrypt only, constant-time for unknown users, reloaded on change, edited safely."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.auth import htpasswd
from dockyard.auth.htpasswd import Htpasswd, HtpasswdError
from dockyard.cli import main
from tests.authkit import FAST_ROUNDS, write_htpasswd


def test_verify_right_wrong_and_unknown(tmp_path: Path) -> None:
    users = Htpasswd(write_htpasswd(tmp_path / "htpasswd", {"alice": "s3cret", "bob": "pw"}))
    assert users.verify("alice", "s3cret")
    assert not users.verify("alice", "s3cret ")
    assert not users.verify("alice", "")
    assert not users.verify("nobody", "s3cret")
    assert users.users() == ["alice", "bob"]


def test_unknown_user_costs_a_bcrypt_check_too(tmp_path: Path) -> None:
    """Timing must not tell whether a user exists: both paths run one bcrypt check."""
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{htpasswd.hash_password('pw', htpasswd.DEFAULT_ROUNDS)}\n")
    users = Htpasswd(path)

    def timed(user: str) -> float:
        start = time.perf_counter()
        users.verify(user, "wrong")
        return time.perf_counter() - start

    known: list[float] = []
    unknown: list[float] = []
    for _ in range(4):  # interleaved, best of each: robust against a busy machine
        known.append(timed("alice"))
        unknown.append(timed("nobody"))
    # Without the dummy check an unknown user would answer about a thousand times faster.
    assert 0.33 < min(unknown) / min(known) < 3.0


def test_only_bcrypt_entries_count(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(
        "# comment\n"
        "md5:$apr1$abcdefgh$0123456789012345678901\n"
        "sha:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n"
        "plain:test\n"
        f"good:{htpasswd.hash_password('test', FAST_ROUNDS)}\n"
    )
    users = Htpasswd(path)
    assert users.users() == ["good"]
    assert not users.verify("plain", "test")
    assert not users.verify("sha", "test")
    assert users.verify("good", "test")


def test_apache_htpasswd_entries_verify(tmp_path: Path) -> None:
    """Files written by Apache's htpasswd -B ($2y$) work unchanged."""
    tool = shutil.which("htpasswd")
    if tool is None:
        pytest.skip("htpasswd (apache2-utils) is not installed")
    line = subprocess.run([tool, "-nbB", "-C", "4", "carol", "pa:ss"], capture_output=True,
                          check=True, text=True).stdout.strip()
    assert line.startswith("carol:$2y$")
    (tmp_path / "htpasswd").write_text(line + "\n")
    users = Htpasswd(tmp_path / "htpasswd")
    assert users.verify("carol", "pa:ss")
    assert not users.verify("carol", "pa")


def test_file_changes_are_picked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(htpasswd, "_CHECK_INTERVAL", 0.0)
    path = write_htpasswd(tmp_path / "htpasswd", {"alice": "one"})
    users = Htpasswd(path)
    assert users.verify("alice", "one")
    htpasswd.set_password(path, "alice", "two", create=False, rounds=FAST_ROUNDS)
    assert not users.verify("alice", "one"), "a cached old password must not survive a change"
    assert users.verify("alice", "two")
    htpasswd.remove_user(path, "alice")
    assert not users.verify("alice", "two")
    path.unlink()
    assert users.users() == []


def test_editing_keeps_other_lines_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "htpasswd"
    htpasswd.set_password(path, "alice", "a", create=True, rounds=FAST_ROUNDS)
    htpasswd.set_password(path, "bob", "b", create=True, rounds=FAST_ROUNDS)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert htpasswd.list_users(path) == ["alice", "bob"]
    assert "a" not in path.read_text().split(":")[1:2]  # hashed, never plain
    with pytest.raises(HtpasswdError):
        htpasswd.set_password(path, "alice", "x", create=True, rounds=FAST_ROUNDS)
    with pytest.raises(HtpasswdError):
        htpasswd.set_password(path, "carol", "x", create=False, rounds=FAST_ROUNDS)
    with pytest.raises(HtpasswdError):
        htpasswd.remove_user(path, "carol")
    for bad in ("", "a:b", "a b"):
        with pytest.raises(HtpasswdError):
            htpasswd.set_password(path, bad, "x", create=True, rounds=FAST_ROUNDS)
    htpasswd.remove_user(path, "alice")
    assert htpasswd.list_users(path) == ["bob"]
    assert Htpasswd(path).verify("bob", "b")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> Callable[..., Result]:
    """`dockyard ...` in this process (the command is main(); a subprocess only adds start-up)."""
    def run(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)
    return run


def test_user_command(tmp_path: Path, cli: Callable[..., Result]) -> None:
    path = str(tmp_path / "htpasswd")
    assert cli("user", "--file", path, "add", "alice", "--password-stdin",
                stdin="first\n").returncode == 0
    assert cli("user", "--file", path, "add", "bob", "--password-stdin",
                stdin="b\n").returncode == 0
    again = cli("user", "--file", path, "add", "alice", "--password-stdin", stdin="x\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert cli("user", "--file", path, "list").stdout.split() == ["alice", "bob"]
    assert cli("user", "--file", path, "passwd", "alice", "--password-stdin",
                stdin="second\n").returncode == 0
    text = Path(path).read_text()
    assert "first" not in text and "second" not in text
    users = Htpasswd(path)
    assert users.verify("alice", "second") and not users.verify("alice", "first")
    assert cli("user", "--file", path, "remove", "bob").returncode == 0
    assert cli("user", "--file", path, "list").stdout.split() == ["alice"]
    missing = cli("user", "--file", path, "remove", "bob")
    assert missing.returncode == 1


def test_user_command_reads_the_path_from_config(tmp_path: Path,
                                                 cli: Callable[..., Result]) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"auth:\n  htpasswd:\n    path: {tmp_path / 'users'}\n")
    assert cli("user", "--config", str(config), "add", "dora", "--password-stdin",
                stdin="pw\n").returncode == 0
    assert htpasswd.list_users(tmp_path / "users") == ["dora"]
    no_path = cli("user", "list")
    assert no_path.returncode == 1 and "auth.htpasswd.path" in no_path.stderr
