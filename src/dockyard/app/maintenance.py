"""Composition for maintenance: GC, purge and mirror eviction from config, the scheduler."""

from __future__ import annotations

from aiohttp import web

from dockyard.app.observability import observed_gc, observed_purge
from dockyard.config import Config
from dockyard.registry.gc import GCOptions
from dockyard.registry.maintenance import Job, MaintenanceScheduler
from dockyard.registry.mirror.eviction import Evictor, MirrorEviction
from dockyard.registry.purge import PurgeOptions
from dockyard.registry.registry import Registry


def gc_options(config: Config, *, dry_run: bool = False, delete_untagged: bool | None = None,
               grace_period: float | None = None) -> GCOptions:
    gc = config.storage.maintenance.gc
    return GCOptions(
        grace_period=gc.grace_seconds if grace_period is None else grace_period,
        delete_untagged=gc.deleteuntagged if delete_untagged is None else delete_untagged,
        dry_run=dry_run,
        remove_orphan_referrers=config.storage.delete.referrers == "remove",
    )


def purge_options(config: Config) -> PurgeOptions:
    purging = config.storage.maintenance.uploadpurging
    return PurgeOptions(age=purging.age_seconds, dry_run=purging.dryrun)


EVICTION_INTERVAL = 600.0
"""Seconds between two eviction runs (each followed by a GC when it evicted something)."""


def mirror_eviction(config: Config, registry: Registry) -> MirrorEviction | None:
    """Eviction by the upstreams' `maxage` and `maxsize`, with the GC that frees the bytes;
    None when no upstream sets either."""
    evictor = Evictor(registry.routes, registry.maintenance.mirror)
    if not evictor.needed:
        return None
    options = gc_options(config)
    return MirrorEviction(evictor, registry.maintenance.leases,
                          observed_gc(lambda: registry.collector.run(options)))


def maintenance_jobs(config: Config, registry: Registry) -> list[Job]:
    maintenance = config.storage.maintenance

    async def writable() -> bool:
        """Scheduled jobs pause in read-only mode, as distribution's purging does."""
        return not await registry.readonly.enabled()

    jobs: list[Job] = []
    if maintenance.gc.enabled:
        options = gc_options(config)
        jobs.append(Job("gc", maintenance.gc.interval_seconds,
                        observed_gc(lambda: registry.collector.run(options)), writable))
    if maintenance.uploadpurging.enabled:
        purge = purge_options(config)
        jobs.append(Job("uploadpurging", maintenance.uploadpurging.interval_seconds,
                        observed_purge(lambda: registry.purger.run(purge)), writable))
    eviction = mirror_eviction(config, registry)
    if eviction is not None:
        jobs.append(Job("mirror-eviction", EVICTION_INTERVAL, eviction.run, writable))
    return jobs


def add_maintenance(app: web.Application, config: Config, registry: Registry) -> None:
    """Every worker runs the scheduler; the lease lets one of them do each job at a time."""
    jobs = maintenance_jobs(config, registry)
    if not jobs:
        return
    scheduler = MaintenanceScheduler(registry.maintenance.leases, jobs)

    async def start(_app: web.Application) -> None:
        scheduler.start()

    async def stop(_app: web.Application) -> None:
        await scheduler.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
