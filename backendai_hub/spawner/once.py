"""Per-process set-up done once however many spawns ask for it at the same moment (single flight)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Hashable, MutableMapping, TypeVar

T = TypeVar("T")

_locks: dict[tuple[int, Hashable], asyncio.Lock] = {}


async def once(cache: MutableMapping[Hashable, T], key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
    """``cache[key]``, made by ``await make()`` if missing; concurrent callers wait for the one making it.

    A burst of spawns on a fresh hub would otherwise each set up the session network and its host guard
    (iptables, serialised by the xtables lock) and hold the executor threads the admissions need. A
    ``make()`` that fails caches nothing: the next caller tries again.
    """
    if key in cache:
        return cache[key]
    lock = _locks.setdefault((id(cache), key), asyncio.Lock())
    async with lock:
        if key not in cache:
            cache[key] = await make()
    return cache[key]
