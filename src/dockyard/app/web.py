"""The composition root: the one place that reads configuration and wires the drivers."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dockyard.api.accesslog import JsonAccessLogger, TextAccessLogger
from dockyard.api.application import make_web_app
from dockyard.api.urls import UrlBuilder
from dockyard.app import reload
from dockyard.app.backends import build_blob_store, build_cache, database_engines
from dockyard.app.maintenance import add_maintenance
from dockyard.app.mirror import build_mirror
from dockyard.app.notifications import add_notifications, build_outbox, build_recorder
from dockyard.app.observability import Observed, metrics_enabled
from dockyard.app.observability import access_logger as observed_access_logger
from dockyard.config import Config
from dockyard.config.validation import ValidationConfig
from dockyard.metadata.cached import CachedMetadataStore
from dockyard.metadata.interfaces import MetadataStore
from dockyard.metadata.outbox import Outbox
from dockyard.metadata.store import SQLMetadataStore
from dockyard.observability.logs import configure_logging
from dockyard.oci.manifest import Platform
from dockyard.registry.registry import Registry, RegistryOptions
from dockyard.registry.validation import IndexChildren, ManifestRules


def setup_logging(config: Config) -> None:
    configure_logging(config.log.level, config.log.formatter, config.log.fields)


async def migrate_database(config: Config, apply: bool | None = None) -> list[str]:
    """Run once, before workers start, so they never race on schema changes.

    `apply` defaults to `database.automigrate`; without it the schema is only checked, and a
    schema this Dockyard does not know (or an outdated one) stops the server. Returns the
    revisions applied (see `migrate.upgrade`).
    """
    engines = database_engines(config)
    try:
        from dockyard.metadata import migrate  # Alembic: only the process that migrates

        if config.database.automigrate if apply is None else apply:
            return await migrate.upgrade(engines.write)
        await migrate.check(engines.write)
        return []
    finally:
        await engines.dispose()


def manifest_rules(validation: ValidationConfig) -> ManifestRules:
    """The `validation` section as the registry's rules; `disabled` lifts them all."""
    if validation.disabled:
        return ManifestRules(index_children=IndexChildren.NONE)
    urls, indexes = validation.manifests.urls, validation.manifests.indexes
    return ManifestRules(
        url_allow=tuple(urls.allow),
        url_deny=tuple(urls.deny),
        index_children=IndexChildren(indexes.platforms),
        platforms=tuple(Platform(p.architecture, p.os) for p in indexes.platformlist),
    )


def build_registry(config: Config, observed: Observed | None = None) -> Registry:
    """The registry on the configured drivers."""
    return _build_registry(config, observed)[0]


def _build_registry(config: Config, observed: Observed | None
                    ) -> tuple[Registry, Outbox | None]:
    """The registry, and the outbox it records events in (to deliver them from), if any."""
    store = build_blob_store(config)
    options = RegistryOptions(
        delete_enabled=config.storage.delete.enabled,
        manifest_max_bytes=config.limits.manifestmaxbytes,
        read_only=config.storage.maintenance.readonly.enabled,
        remove_referrers=config.storage.delete.referrers == "remove",
        manifest_rules=manifest_rules(config.validation),
    )
    engines = database_engines(config)
    cache = build_cache(config)
    if observed is not None:
        cache = observed.wrap_cache(cache)
    metadata: MetadataStore = SQLMetadataStore(engines)
    if cache is not None:
        metadata = CachedMetadataStore(metadata, cache)
    if observed is not None:
        store, metadata = observed.wrap(engines, store, metadata)
    outbox = build_outbox(config, engines)
    mirror = build_mirror(config, metrics_enabled(config))
    return Registry(store, metadata, options, build_recorder(config, outbox), mirror), outbox


def build_web_app(config: Config) -> web.Application:
    urls = UrlBuilder(host=config.http.host, relative=config.http.relativeurls)
    observed = Observed(config)
    registry, outbox = _build_registry(config, observed)
    auth = None
    if config.auth.enabled:
        # Imported only here: the auth libraries (PyJWT, cryptography, bcrypt) cost a worker
        # about 9 MiB, which a registry without auth need not pay.
        from dockyard.app.auth import build_auth, reload_htpasswd

        auth = build_auth(config)
    headers = [(name, value) for name, values in config.http.headers.items()
               for value in values]
    app = make_web_app(registry, urls, auth, headers)
    if auth is not None:
        reload.register(("auth.htpasswd.path",), reload_htpasswd(auth))
    add_maintenance(app, config, registry)
    add_notifications(app, config, registry, outbox)
    observed.install(app)
    return app


def access_logger_class(config: Config) -> type[AbstractAccessLogger] | None:
    inner: type[AbstractAccessLogger] | None = None
    if not config.log.accesslog.disabled:
        inner = JsonAccessLogger if config.log.formatter == "json" else TextAccessLogger
    return observed_access_logger(config, inner)
