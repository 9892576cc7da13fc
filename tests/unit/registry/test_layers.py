"""registry/ reaches the database only through the metadata ports and their values."""

from __future__ import annotations

import ast
from pathlib import Path

import dockyard.registry

PORTS = {"dockyard.metadata.interfaces", "dockyard.metadata.records"}


def test_registry_imports_no_metadata_implementation() -> None:
    imported: dict[str, set[str]] = {}
    for path in Path(dockyard.registry.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.setdefault(node.module, set()).add(path.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    imported.setdefault(alias.name, set()).add(path.name)
    metadata = {module: sorted(files) for module, files in imported.items()
                if module.startswith("dockyard.metadata") and module not in PORTS}
    assert metadata == {}
    assert set(imported) >= PORTS, "the check looks at the modules that hold the imports"
