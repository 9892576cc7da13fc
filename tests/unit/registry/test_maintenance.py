"""Cluster-wide jobs: leases held by dead processes, exclusive runs, the scheduler."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.registry import maintenance
from dockyard.registry.maintenance import LeaseBusy, holder_id, holder_is_dead, run_exclusive
from tests.unit.registry.kit import database_url, open_kit, run

__all__ = ["database_url"]


def test_a_dead_holders_lease_is_taken_over_and_runs_are_exclusive(
        tmp_path: Path, database_url: str) -> None:
    async def scenario() -> None:
        kit = await open_kit(tmp_path, database_url)
        leases = kit.registry.maintenance.leases
        try:
            dead = subprocess.Popen([sys.executable, "-c", "pass"])
            dead.wait()
            holder = holder_id().rsplit(":", 2)[0] + f":{dead.pid}:x"
            assert holder_is_dead(holder)
            assert not holder_is_dead(holder_id())
            assert not holder_is_dead(f"elsewhere:boot:{os.getpid() + 1}:x")
            assert await leases.try_lease("gc", holder, 60)
            assert not await leases.try_lease("gc", "b", 60)
            assert await leases.try_lease("gc", "b", 60, stale=holder_is_dead)

            async def job() -> str:
                return "ran"

            with pytest.raises(LeaseBusy):
                await run_exclusive(leases, "gc", job)
            await leases.release_lease("gc", "b", finished=False)
            assert await run_exclusive(leases, "gc", job) == "ran"
            assert not await leases.due("gc", 3600), "a run that finished records it"
        finally:
            await kit.registry.close()

    run(scenario)


def test_scheduled_jobs_run_on_one_worker_at_a_time(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maintenance, "FIRST_CHECK", (0.0, 0.05))

    async def scenario() -> None:
        kit = await open_kit(tmp_path)
        running: list[int] = []
        overlaps: list[int] = []

        async def job() -> None:
            running.append(1)
            overlaps.append(len(running))
            await asyncio.sleep(0.2)
            running.pop()

        async def never() -> bool:
            return False

        leases = kit.registry.maintenance.leases
        workers = [maintenance.MaintenanceScheduler(
            leases, [maintenance.Job("job", 0.5, job),
                        maintenance.Job("paused", 0.1, job, allowed=never)])
            for _ in range(3)]
        try:
            for worker in workers:
                worker.start()
            await asyncio.sleep(2.0)
        finally:
            for worker in workers:
                await worker.stop()
            await kit.registry.close()
        assert overlaps and max(overlaps) == 1
        assert 2 <= len(overlaps) <= 5, overlaps

    run(scenario)
