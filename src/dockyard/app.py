"""The composition root: the one place that reads configuration and wires the drivers."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dockyard.api.accesslog import JsonAccessLogger, TextAccessLogger
from dockyard.api.application import make_web_app
from dockyard.api.urls import UrlBuilder
from dockyard.config import Config
from dockyard.logs import configure_logging
from dockyard.metadata import migrate
from dockyard.metadata.engine import create_engines
from dockyard.metadata.store import MetadataStore
from dockyard.registry.registry import Policy, Registry
from dockyard.storage.filesystem import FilesystemBlobStore


def setup_logging(config: Config) -> None:
    configure_logging(config.log.level, config.log.formatter, config.log.fields)


def _metadata(config: Config) -> MetadataStore:
    engines = create_engines(
        config.database_url(), pool_size=config.database.pool_size, echo=config.database.echo
    )
    return MetadataStore(engines)


async def migrate_database(config: Config) -> None:
    """Run once, before workers start, so they never race on schema changes."""
    engines = create_engines(config.database_url())
    try:
        await migrate.upgrade(engines.write)
    finally:
        await engines.dispose()


def build_registry(config: Config) -> Registry:
    store = FilesystemBlobStore(Path(config.storage.filesystem.rootdirectory).resolve())
    policy = Policy(
        delete_enabled=config.storage.delete.enabled,
        manifest_max_bytes=config.limits.manifestmaxbytes,
    )
    return Registry(store, _metadata(config), policy)


def build_web_app(config: Config) -> web.Application:
    urls = UrlBuilder(host=config.http.host, relative=config.http.relativeurls)
    return make_web_app(build_registry(config), urls)


def access_logger_class(config: Config) -> type[AbstractAccessLogger] | None:
    if config.log.accesslog.disabled:
        return None
    return JsonAccessLogger if config.log.formatter == "json" else TextAccessLogger
