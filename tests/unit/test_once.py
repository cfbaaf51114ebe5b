"""once(): per-process set-up made once for a burst of concurrent callers; a failure caches nothing."""

import asyncio

import pytest

from backendai_hub.spawner.once import once


async def test_concurrent_callers_share_one_make_and_its_result():
    cache, calls = {}, []

    async def make():
        calls.append(1)
        await asyncio.sleep(0.05)
        return object()

    results = await asyncio.gather(*(once(cache, "net", make) for _ in range(20)))
    assert len(calls) == 1
    assert all(r is results[0] for r in results) and cache["net"] is results[0]
    assert await once(cache, "net", make) is results[0] and len(calls) == 1
    await once(cache, "other", make)  # another key is its own set-up
    assert len(calls) == 2


async def test_a_failed_make_is_not_cached_and_the_next_caller_tries_again():
    cache, calls = {}, []

    async def make():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("iptables failed")
        return "ok"

    with pytest.raises(RuntimeError, match="iptables failed"):
        await once(cache, "k", make)
    assert "k" not in cache
    assert await once(cache, "k", make) == "ok" and len(calls) == 2
