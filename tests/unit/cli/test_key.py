"""`dockyard key list`: which keys verify and which one signs, oldest first."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dockyard.cli import main


def test_list_names_the_signing_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(
        {"storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}}}))
    assert main(["key", "list", "--config", str(config)]) == 0
    assert "no signing keys" in capsys.readouterr().out
    kids = []
    for _ in range(2):
        assert main(["key", "rotate", "--config", str(config)]) == 0
        kids.append(capsys.readouterr().out.split()[-1])
    assert main(["key", "list", "--config", str(config)]) == 0
    header, older, newest = capsys.readouterr().out.splitlines()
    assert header.split()[0] == "KID"
    assert older.startswith(kids[0]) and older.endswith(" verifies")
    assert newest.startswith(kids[1]) and newest.endswith(" signs and verifies")
