"""deploy/: the compose file and Kubernetes manifests pass their schemas, and the Dockyard
configuration they hand the nodes (file + REGISTRY_* variables) loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from dockyard.config import load_config
from tests.server import unavailable

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
RESOURCES = [path for path in MANIFESTS if path.name != "kustomization.yaml"]


def _module_cli(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        __import__(module)
    except ImportError:
        unavailable(f"{module} is not installed", "it is a test extra")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_compose_file_matches_the_compose_spec() -> None:
    result = _module_cli("check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                         str(DEPLOY / "compose.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_manifests_match_their_schemas() -> None:
    result = _module_cli("kubernetes_validate", "--strict", "--quiet",
                         *(str(path) for path in RESOURCES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(path.name for path in RESOURCES)


def _environment(entries: list[dict[str, Any]] | dict[str, str]) -> dict[str, str]:
    """Variables as the node sees them; secret references get a placeholder value."""
    if isinstance(entries, dict):
        return dict(entries)
    return {entry["name"]: entry.get("value", "postgresql+asyncpg://u@h/db"
                                      if entry["name"].endswith("DATABASE_URL") else "x")
            for entry in entries}


def test_compose_nodes_get_a_valid_configuration() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    node = compose["services"]["dockyard"]
    config = load_config(DEPLOY / "config.yml", _environment(node["environment"]))
    assert config.storage.s3 is not None and config.redis is not None
    assert config.database_url().startswith("postgresql+asyncpg://")
    assert not config.database.automigrate


def test_kubernetes_nodes_get_a_valid_configuration(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "config.yaml").read_text()))
    config_map = next(doc for doc in documents if doc["kind"] == "ConfigMap")
    config_file = tmp_path / "config.yml"
    config_file.write_text(config_map["data"]["config.yml"])
    workloads = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "dockyard.yaml").read_text()))
    for workload in workloads:
        if workload["kind"] not in ("Deployment", "Job"):
            continue
        pod = workload["spec"]["template"]["spec"]
        assert pod["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
        config = load_config(config_file, _environment(pod["containers"][0]["env"]))
        assert config.storage.s3 is not None and config.redis is not None
        labels = workload["spec"]["template"].get("metadata", {}).get("labels")
        if workload["kind"] == "Deployment":
            assert workload["spec"]["selector"]["matchLabels"] == labels


def test_the_proxy_passes_what_dockyard_reads() -> None:
    """Request ids join nginx's log to Dockyard's; the forwarded host builds Location URLs."""
    nginx = (DEPLOY / "nginx.conf").read_text()
    for header in ("X-Forwarded-Host $http_host", "X-Forwarded-Proto $scheme",
                   "X-Request-Id $request_id"):
        assert f"proxy_set_header {header};" in nginx


def test_the_image_context_leaves_local_state_out() -> None:
    """`make run` leaves a venv and data in the tree: neither belongs in the build context."""
    ignored = (DEPLOY.parent / ".dockerignore").read_text().split()
    assert {".venv", "data", ".git"} <= set(ignored)
    assert "README.md" not in ignored and "src" not in ignored  # the Dockerfile copies them
