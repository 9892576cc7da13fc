"""The notifications section: distribution's keys, Dockyard's additions, errors named by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dockyard.app.notifications import build_recorder, endpoints
from dockyard.config import ConfigError, load_config


def load(tmp_path: Path, notifications: dict[str, Any], **environ: str) -> Any:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": 0.1, "notifications": notifications}))
    return load_config(path, environ=environ)


def error(tmp_path: Path, notifications: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, notifications)
    return str(info.value)


def test_distribution_endpoint_keys_load(tmp_path: Path) -> None:
    config = load(tmp_path, {
        "events": {"includereferences": True},
        "endpoints": [{
            "name": "alistener", "disabled": False, "url": "https://my.listener.com/event",
            "headers": {"Authorization": ["Bearer token"]}, "timeout": "1s",
            "threshold": 10, "backoff": "1s",
            "ignoredmediatypes": ["application/octet-stream"],
            "ignore": {"mediatypes": ["application/x"], "actions": ["pull"]},
        }],
    })
    (endpoint,) = endpoints(config)
    assert endpoint.headers == (("Authorization", "Bearer token"),)
    assert endpoint.timeout == 1.0
    assert endpoint.ignored_media_types == {"application/octet-stream", "application/x"}
    assert endpoint.ignored_actions == {"pull"}
    assert endpoint.secret is None and endpoint.format == "distribution"


def test_disabled_endpoints_and_no_endpoints_record_nothing(tmp_path: Path) -> None:
    config = load(tmp_path, {"endpoints": [{"name": "a", "url": "http://x", "disabled": True}]})
    assert endpoints(config) == []
    assert not build_recorder(config, None).enabled


def test_errors_name_the_key(tmp_path: Path) -> None:
    message = error(tmp_path, {"endpoints": [
        {"name": "a", "url": "http://x", "threshold": 0, "ignore": {"actions": ["push", "x"]}},
        {"url": "http://y", "format": "xml"},
    ], "events": {"pulls": {"samplerate": 2}}})
    assert "notifications.endpoints[0].threshold:" in message
    assert "notifications.endpoints[0].ignore.actions[1]:" in message
    assert "notifications.endpoints[1].name: Field required" in message
    assert "notifications.endpoints[1].format:" in message
    assert "notifications.events.pulls.samplerate:" in message


def test_endpoint_names_are_unique(tmp_path: Path) -> None:
    message = error(tmp_path, {"endpoints": [{"name": "a", "url": "http://x"},
                                             {"name": "a", "url": "http://y"}]})
    assert "endpoint names must be unique: a" in message


def test_environment_overrides(tmp_path: Path) -> None:
    config = load(tmp_path, {"endpoints": [{"name": "a", "url": "http://x"}]},
                  REGISTRY_NOTIFICATIONS_EVENTS_PULLS_SAMPLERATE="0.25",
                  REGISTRY_NOTIFICATIONS_LEASE="30s")
    assert config.notifications.events.pulls.samplerate == 0.25
    assert config.notifications.lease == "30s"
