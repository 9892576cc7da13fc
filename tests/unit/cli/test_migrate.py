"""`dockyard migrate` says what it applied, so an upgrade leaves a record in the shell."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dockyard.cli import main


def test_migrate_names_each_revision_it_applies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(
        {"storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}}}))
    assert main(["migrate", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    applied = [line.removeprefix("dockyard: applied ") for line in lines[:-1]]
    assert [revision.split()[0] for revision in applied] == ["0001", "0002", "0003", "0004"]
    assert all(len(revision.split()) > 1 for revision in applied)  # each says what it does
    assert lines[-1] == "dockyard: database schema is up to date"
    assert main(["migrate", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "dockyard: database schema is up to date\n"
