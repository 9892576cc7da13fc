"""The registry's configuration: distribution's config.yml layout plus REGISTRY_* overrides.

Operators move between Dockyard and CNCF distribution, so the file layout and the environment
override scheme follow distribution's. Loading is strict: an unknown key or a bad value stops
the server with a message naming the key, because a silently ignored typo (say, a misspelled
`delete` section) changes behaviour in ways that only show up much later.

One module per section (storage, http, auth, ...), the shared value types in `values`, the
root model in `root`, the REGISTRY_* resolver in `environment` and the loader in `loader`.
This package re-exports what the rest of Dockyard uses.
"""

from dockyard.config.auth import AuthConfig
from dockyard.config.errors import ConfigError
from dockyard.config.http import TlsConfig
from dockyard.config.loader import load_config
from dockyard.config.mirror import MirrorConfig, ProxyConfig
from dockyard.config.notifications import NotificationEndpointConfig
from dockyard.config.root import Config
from dockyard.config.values import parse_duration, split_host_port

__all__ = [
    "AuthConfig",
    "Config",
    "ConfigError",
    "MirrorConfig",
    "NotificationEndpointConfig",
    "ProxyConfig",
    "TlsConfig",
    "load_config",
    "parse_duration",
    "split_host_port",
]
