"""SIGHUP: re-read the configuration and apply what can change while serving.

Features register a hook with the settings it applies live (`register(("log.level",), fn)`).
On SIGHUP the file is re-read and validated; an invalid file is logged and the settings in
force are kept. Every hook then runs with the settings in force, so hooks that re-read files
(htpasswd, TLS certificates) pick up new file contents even when the configuration itself
did not change. Settings that changed but no hook applies are logged as needing a restart.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.config import Config, ConfigError, load_config

log = logging.getLogger("dockyard.app.reload")

Hook = Callable[[Config], Awaitable[None] | None]


@dataclass(frozen=True)
class _Registered:
    keys: tuple[str, ...]
    hook: Hook


_hooks: list[_Registered] = []


def register(keys: Iterable[str], hook: Hook) -> None:
    """Call `hook(config)` on every reload; `keys` are the settings (or sections) it applies."""
    _hooks.append(_Registered(tuple(keys), hook))


def clear() -> None:
    """Forget all hooks (tests, and a worker that rebuilds its application)."""
    _hooks.clear()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat or {prefix: {}}
    return {prefix: value}


def changed_settings(old: Config, new: Config) -> list[str]:
    before, after = _flatten(old.model_dump()), _flatten(new.model_dump())
    return sorted(key for key in before.keys() | after.keys()
                  if before.get(key) != after.get(key))


def _covered(setting: str, keys: Iterable[str]) -> bool:
    return any(setting == key or setting.startswith(key + ".") for key in keys)


class Reloader:
    """Holds the configuration in force for one process and applies reloads to it."""

    def __init__(self, path: str | Path | None, config: Config) -> None:
        self.path = path
        self.config = config

    def read(self) -> Config | None:
        """The file's new settings, or None (logged) when it cannot be used."""
        try:
            return load_config(self.path)
        except ConfigError as exc:
            log.error("reload: configuration not applied, keeping the settings in force:\n%s",
                      exc)
            return None

    async def reload(self) -> None:
        new = self.read()
        if new is not None:
            pending = [setting for setting in changed_settings(self.config, new)
                       if not any(_covered(setting, entry.keys) for entry in _hooks)]
            if pending:
                log.warning("reload: changed settings that need a restart: %s",
                            ", ".join(pending))
            self.config = new
        for entry in list(_hooks):
            try:
                result = entry.hook(self.config)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("reload of %s failed", ", ".join(entry.keys) or "hook")
        if new is None:
            log.info("reload: done; the file was rejected, the configuration in force stays "
                     "(files it names were re-read)")
        else:
            log.info("reload: done")
        log.debug("reload: debug logging is on")  # shows the level took effect
