"""REGISTRY_* overrides: distribution's scheme of one environment variable per key.

`REGISTRY_STORAGE_S3_BUCKET` sets `storage.s3.bucket`. The key paths are not listed anywhere:
they are found by walking the Config models, so every key a section declares can be set.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from dockyard.config.errors import ConfigError
from dockyard.config.root import Config

ENV_PREFIX = "REGISTRY_"

RESERVED_SECTIONS: frozenset[str] = frozenset()
"""First segments of REGISTRY_* variables that are never applied.

Variables whose first segment is not a Config section at all are ignored too; this set keeps
such names ignored even after a section of the same name is added.
"""

FOREIGN_VARIABLES: frozenset[str] = frozenset({"REGISTRY_AUTH_FILE"})
"""Variables other tools own in this namespace (podman and buildah read REGISTRY_AUTH_FILE),
often set in the same shell that starts the registry: never applied, even under `auth`."""

KeyPath = tuple[str, ...]


def _members(annotation: Any) -> list[Any]:
    """The plain types behind Optional/Union/Annotated."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _dict_value_type(annotation: Any) -> Any | None:
    for member in _members(annotation):
        if get_origin(member) is dict:
            return get_args(member)[1]
    return None


def _match_field(model: type[BaseModel], segments: list[str]) -> str | None:
    """Longest match first: field names may contain '_' themselves (database.pool_size)."""
    for count in range(len(segments), 0, -1):
        name = "_".join(segments[:count])
        if name in model.model_fields:
            return name
    return None


def _resolve(segments: list[str]) -> tuple[list[str], Any] | None:
    """The key path and its type for a variable's segments, or None if no such key exists.

    The rest of a variable below a mapping-valued field (log.fields, storage.cache) is one key.
    """
    path: list[str] = []
    annotation: Any = Config
    rest = segments
    while rest:
        model = _model_of(annotation)
        value_type = _dict_value_type(annotation)
        if model is not None:
            name = _match_field(model, rest)
            if name is None:
                return None
            path.append(name)
            annotation = model.model_fields[name].annotation
            rest = rest[name.count("_") + 1 :]
        elif value_type is not None and all(rest):
            return [*path, "_".join(rest)], value_type
        else:
            return None
    return path, annotation


def _env_value(text: str, annotation: Any) -> Any:
    """YAML for typed values ("true", "5", "[a, b]"); string fields take the text verbatim.

    Verbatim strings keep secrets such as "a: b" or "*x" from being mangled by YAML; an empty
    value means unset.
    """
    if str in _members(annotation):
        return text or None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError("value is not valid YAML") from None


def _set_path(raw: dict[Any, Any], path: list[str], value: Any) -> None:
    node = raw
    for depth, key in enumerate(path[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise ValueError(f"{'.'.join(path[: depth + 1])} is not a mapping")
        node = child
    node[path[-1]] = value


def _env_segments(name: str) -> list[str] | None:
    """The lower-cased key segments of a variable this module owns, else None."""
    if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
        return None
    if name in FOREIGN_VARIABLES:
        return None
    segments = name[len(ENV_PREFIX) :].lower().split("_")
    if segments[0] in RESERVED_SECTIONS or segments[0] not in Config.model_fields:
        return None
    return segments


def _apply_variable(raw: dict[Any, Any], name: str, text: str) -> KeyPath | None:
    """Set one variable's key in raw; returns the key path it set."""
    segments = _env_segments(name)
    if segments is None:
        return None
    resolved = _resolve(segments)
    if resolved is None:
        raise ValueError(f"unknown key {'.'.join(segments)}")
    path, annotation = resolved
    _set_path(raw, path, _env_value(text, annotation))
    return tuple(path)


def apply_environ(raw: dict[Any, Any], environ: Mapping[str, str]) -> dict[KeyPath, str]:
    """Apply overrides to the file's raw document; map each key path set to its variable.

    Variables apply in name order, so a section's variable comes before its keys' variables.
    Every bad variable is reported at once, in one ConfigError.
    """
    origins: dict[KeyPath, str] = {}
    problems: list[str] = []
    for name in sorted(environ):
        try:
            path = _apply_variable(raw, name, environ[name])
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if path is not None:
            origins[path] = name
    if problems:
        raise ConfigError(*problems)
    return origins
