"""`dockyard user`: a password that never comes is one line, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("stdin_flag", [[], ["--password-stdin"]])
def test_no_password_on_an_empty_input(tmp_path: Path, stdin_flag: list[str]) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.touch()
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "user", "--file", str(htpasswd), "add", "bob",
         *stdin_flag],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "dockyard: no password: " in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert htpasswd.read_text() == ""
