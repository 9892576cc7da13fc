"""Loading: read the YAML file, apply REGISTRY_* overrides, validate, and word the problems.

Every failure becomes one ConfigError whose lines each name a key path (and the variable that
set it, if any), never a pydantic or YAML exception: callers report one kind of error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dockyard.config.environment import KeyPath, apply_environ
from dockyard.config.errors import ConfigError
from dockyard.config.mirror import ENVIRON
from dockyard.config.root import Config


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last).

    Keys are strict everywhere else; a repeated key is a mistake whose first value would be
    silently dropped.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> dict[Any, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read config file: {reason}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, not {type(data).__name__}")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's messages span several lines; keep the problem and where it is."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{exc.problem or exc.context or 'syntax error'}{where}"
    return str(exc).replace("\n", " ")


def _key_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "<config>"


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a mapping"
    if kind == "value_error" and "ctx" in error:
        return str(error["ctx"]["error"])
    return error["msg"]


def _origin(loc: tuple[int | str, ...], origins: Mapping[KeyPath, str]) -> str:
    """Which variable set this key, so a bad override is traced to the environment."""
    path = tuple(str(part) for part in loc)
    for length in range(len(path), 0, -1):
        name = origins.get(path[:length])
        if name is not None:
            return f" (from {name})"
    return ""


def _validate(raw: dict[Any, Any], origins: Mapping[KeyPath, str],
              environ: Mapping[str, str]) -> Config:
    try:
        return Config.model_validate(raw, context={ENVIRON: environ})
    except ValidationError as exc:
        problems = [
            f"{_key_path(e['loc'])}: {_describe(e)}{_origin(e['loc'], origins)}"
            for e in exc.errors(include_url=False)
        ]
        raise ConfigError(*problems) from None


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the file (or only defaults when path is None), apply REGISTRY_* overrides, validate.

    Raises ConfigError, never a pydantic or YAML exception, so callers report one kind of error.
    """
    raw = _read_yaml(Path(path)) if path is not None else {}
    environ = os.environ if environ is None else environ
    origins = apply_environ(raw, environ)
    return _validate(raw, origins, environ)
