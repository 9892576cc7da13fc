"""Failed logins: a sliding window per key, Retry-After until the oldest failure ages out."""

from __future__ import annotations

from dockyard.auth.ratelimit import MemoryFailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_the_limit_and_recovers() -> None:
    clock = Clock()
    limiter = MemoryFailureLimiter(60.0, lambda key: 3, clock)
    keys = ["user:alice", "addr:1.2.3.4"]
    for _ in range(2):
        limiter.failed(keys)
        clock.now += 1
    assert limiter.blocked_for(keys) == 0
    limiter.failed(keys)
    assert limiter.blocked_for(keys) == 58  # the first failure ages out at 1060
    assert limiter.blocked_for(["user:alice"]) == 58
    assert limiter.blocked_for(["user:bob"]) == 0
    clock.now += 58
    assert limiter.blocked_for(keys) == 0


def test_limits_per_kind_and_success_clears_the_user() -> None:
    clock = Clock()
    limiter = MemoryFailureLimiter(60.0, lambda key: 2 if key.startswith("user:") else 5, clock)
    limiter.failed(["user:alice", "addr:a"])
    limiter.succeeded(["user:alice"])
    limiter.failed(["user:alice", "addr:a"])
    assert limiter.blocked_for(["user:alice"]) == 0
    for name in ("b", "c", "d"):
        limiter.failed([f"user:{name}", "addr:a"])
    assert limiter.blocked_for(["user:zed", "addr:a"]) > 0, "one address guessing many users"
