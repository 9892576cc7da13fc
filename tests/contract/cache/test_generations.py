"""Generation-guarded entries: what one node fills every node reads, until an invalidation;
and a value read before a write is never cached after it."""

from __future__ import annotations

from tests.contract.cache.conftest import Nodes, Run


def test_a_filled_entry_is_read_by_every_node(run: Run, scope: str) -> None:
    async def scenario(nodes: Nodes) -> None:
        node_a, node_b = nodes(), nodes()
        miss = await node_a.get(scope, "t:latest")
        assert miss.value is None
        await node_a.fill(scope, miss.generation, "t:latest", b"one")
        assert (await node_b.get(scope, "t:latest")).value == b"one"
        assert (await node_b.get(scope, "t:other")).value is None

    run(scenario)


def test_a_fill_under_a_generation_an_invalidation_passed_is_dropped(run: Run,
                                                                      scope: str) -> None:
    async def scenario(nodes: Nodes) -> None:
        node_a, node_b = nodes(), nodes()
        first = await node_a.get(scope, "t:latest")
        await node_a.fill(scope, first.generation, "t:latest", b"one")
        stale = await node_b.get(scope, "t:other")  # read before the write below
        await node_a.invalidate(scope)
        await node_b.fill(scope, stale.generation, "t:other", b"old")
        assert (await node_a.get(scope, "t:other")).value is None
        assert (await node_b.get(scope, "t:latest")).value is None
        fresh = await node_b.get(scope, "t:latest")
        await node_b.fill(scope, fresh.generation, "t:latest", b"two")
        assert (await node_a.get(scope, "t:latest")).value == b"two"

    run(scenario)


def test_invalidate_drops_its_scope_only(run: Run, scope: str) -> None:
    neighbour = f"{scope}-neighbour"

    async def scenario(nodes: Nodes) -> None:
        node_a, node_b = nodes(), nodes()
        for each in (scope, neighbour):
            lookup = await node_a.get(each, "k")
            await node_a.fill(each, lookup.generation, "k", each.encode())
        await node_b.invalidate(scope)
        assert (await node_a.get(scope, "k")).value is None
        assert (await node_a.get(neighbour, "k")).value == neighbour.encode()

    run(scenario)


def test_invalidate_all_drops_every_scope(run: Run, scope: str) -> None:
    scopes = [scope, f"{scope}-neighbour"]

    async def scenario(nodes: Nodes) -> None:
        node_a, node_b = nodes(), nodes()
        stale = await node_b.get(scope, "late")
        for each in scopes:
            lookup = await node_a.get(each, "k")
            await node_a.fill(each, lookup.generation, "k", b"v")
        await node_b.invalidate_all()
        await node_b.fill(scope, stale.generation, "late", b"old")
        for each in scopes:
            assert (await node_a.get(each, "k")).value is None
        assert (await node_a.get(scope, "late")).value is None

    run(scenario)
