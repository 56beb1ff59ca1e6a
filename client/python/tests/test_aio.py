"""picker.aio.Client, the asyncio twin, unary and stream mode."""

from __future__ import annotations

import asyncio
from typing import List

import pytest

import picker
from conftest import TARGETS, Server, Upstreams, releases


def test_async_with_releases_success_and_latency(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()

    async def main() -> None:
        async with picker.aio.Client(server.data) as client:
            async with client.pick(up) as lease:
                assert lease.target in TARGETS
                await asyncio.sleep(0.05)
            assert not lease.valid
            lease = await client.pick(up)
            assert await lease.release() is picker.ReleaseState.RELEASED
            assert await lease.release() is picker.ReleaseState.ALREADY_RELEASED

    asyncio.run(main())
    assert releases(server, up)["success"] == 2
    assert server.sample("picker_request_duration_seconds_sum", upstream=up) >= 0.05


def test_async_exception_releases_failure(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()

    async def main() -> None:
        async with picker.aio.Client(server.data) as client:
            async with client.pick(up):
                raise ValueError("bad answer")

    with pytest.raises(ValueError, match="bad answer"):
        asyncio.run(main())
    assert releases(server, up)["failure"] == 1


def test_async_errors_and_deadline(server: Server, silent_address: str) -> None:
    async def main() -> None:
        async with picker.aio.Client(server.data) as client:
            with pytest.raises(picker.NotFoundError):
                await client.pick("no_such_upstream")
        async with picker.aio.Client(silent_address, deadline=0.2) as client:
            with pytest.raises(picker.DeadlineExceededError):
                await client.pick("users")
        async with picker.aio.Client(silent_address, deadline=0.2, use_stream=True) as client:
            with pytest.raises(picker.DeadlineExceededError):
                await client.pick("users")

    asyncio.run(main())


def test_async_retry(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()

    async def main() -> List[str]:
        async with picker.aio.Client(server.data) as client:
            async def attempt(lease: picker.aio.AsyncLease) -> picker.Outcome:
                await asyncio.sleep(0)
                return picker.Outcome.FAILURE
            result = await client.pick_with_retry(up, attempt)
            assert result.outcome is picker.Outcome.FAILURE and result.attempts == 3
            tried = []
            async for lease in client.retry(up):
                async with lease:
                    tried.append(lease.target)
            return tried

    assert sorted(asyncio.run(main())) == sorted(TARGETS)
    assert releases(server, up)["failure"] == 3


def test_async_stream_concurrent_picks(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()

    async def one(client: picker.aio.Client) -> str:
        async with client.pick(up) as lease:
            await asyncio.sleep(0.001)
            return lease.target

    async def main() -> None:
        async with picker.aio.Client(server.data, use_stream=True) as client:
            targets = await asyncio.gather(*(one(client) for _ in range(200)))
            assert set(targets) == set(TARGETS)
            with pytest.raises(picker.NotFoundError):
                await client.pick("no_such_upstream")
            lease = await client.pick(up)
            assert await lease.release() is picker.ReleaseState.QUEUED
            await client.flush()
            assert upstreams.wait_active(up, 0) == 0

    asyncio.run(main())
    assert releases(server, up)["success"] == 201
    assert releases(server, up)["abandoned"] == 0


def test_async_stream_releases_ride_along(server: Server, upstreams: Upstreams) -> None:
    up = upstreams.make()

    async def main() -> None:
        async with picker.aio.Client(server.data, use_stream=True, release_flush_interval=600) as client:
            first, second = await client.pick(up), await client.pick(up)
            assert await first.release() is picker.ReleaseState.QUEUED
            assert await second.release() is picker.ReleaseState.QUEUED
            assert upstreams.active(up) == 2  # both releases still queued
            held = await client.pick(up)
            assert upstreams.active(up) == 1  # they rode along with this pick
            await held.release()
        assert upstreams.wait_active(up, 0) == 0

    asyncio.run(main())
