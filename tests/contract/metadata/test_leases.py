"""Leases on cluster-wide jobs and run-time settings."""

from __future__ import annotations

import asyncio

from tests.contract.metadata.conftest import Implementation, Stores


def test_a_lease_has_one_holder_until_released_or_expired(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        leases = s.maintenance.leases
        assert await leases.lease("gc") is None
        assert await leases.try_lease("gc", "a", 60)
        assert not await leases.try_lease("gc", "b", 60)
        assert await leases.try_lease("gc", "a", 60), "re-entrant for its holder"
        held = await leases.lease("gc")
        assert held is not None and (held.holder, held.expired) == ("a", False)
        assert not await leases.renew_lease("gc", "b", 60)
        assert await leases.renew_lease("gc", "a", 0.01)
        await asyncio.sleep(0.05)
        assert await leases.try_lease("gc", "b", 60), "an expired lease is free"
        assert not await leases.try_lease("gc", "a", 60, stale=lambda holder: False)
        assert await leases.try_lease("gc", "a", 60, stale=lambda holder: holder == "b")

    stores.run(scenario)


def test_a_finished_release_makes_the_job_not_due(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        leases = s.maintenance.leases
        assert await leases.due("gc", 3600), "never run: due"
        assert await leases.try_lease("gc", "a", 60)
        await leases.release_lease("gc", "a", finished=False)
        assert await leases.due("gc", 3600), "given up unfinished: still due"
        released = await leases.lease("gc")
        assert released is not None and released.holder is None
        assert released.finished_at is None
        await leases.try_lease("gc", "a", 60)
        await leases.release_lease("gc", "b", finished=True)  # not the holder: no effect
        assert not await leases.try_lease("gc", "b", 60)
        await leases.release_lease("gc", "a", finished=True)
        assert not await leases.due("gc", 3600)
        assert await leases.due("gc", 0)
        done = await leases.lease("gc")
        assert done is not None and done.finished_at is not None

    stores.run(scenario)


def test_settings_read_back_what_was_set(stores: Implementation) -> None:
    async def scenario(s: Stores) -> None:
        settings = s.maintenance.settings
        assert await settings.get_setting("readonly") is None
        await settings.set_setting("readonly", "on")
        assert await settings.get_setting("readonly") == "on"
        await settings.set_setting("readonly", "off")
        assert await settings.get_setting("readonly") == "off"

    stores.run(scenario)
