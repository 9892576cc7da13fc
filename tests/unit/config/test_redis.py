"""redis.pool.idletimeout: distribution's key loads, but only where it promises nothing."""

from __future__ import annotations

import pytest

from dockyard.config import ConfigError, load_config

REDIS = {"REGISTRY_REDIS_ADDR": "127.0.0.1:6379"}


@pytest.mark.parametrize("value", ["300s", "5m"])
def test_idletimeout_at_distributions_default_loads(value: str) -> None:
    config = load_config(None, {**REDIS, "REGISTRY_REDIS_POOL_IDLETIMEOUT": value})
    assert config.redis is not None


@pytest.mark.parametrize("value", ["60s", "0"])
def test_other_idletimeouts_are_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, {**REDIS, "REGISTRY_REDIS_POOL_IDLETIMEOUT": value})
    assert str(raised.value) == (
        "redis.pool.idletimeout: only 300s is supported: the Redis client does not close idle "
        "connections (the server's own `timeout` setting does); remove the key "
        "(from REGISTRY_REDIS_POOL_IDLETIMEOUT)")
