
"""Cluster tests: a real redis-server and real ``bargein serve --redis`` node processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from helpers.cluster_nodes import Cluster
from helpers.redis_server import RedisServer, running_redis


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def start_cluster(redis_server: RedisServer, session: aiohttp.ClientSession, names: list[str]) -> Cluster:
    cluster = Cluster(redis_server.url, names)
    try:
        await cluster.start(session)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def without_clocks(view: list[dict]) -> list[dict]:
    """A view without the durations (they tick between two requests); timestamps stay."""
    return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in view]


async def eventually(check, timeout_s: float = 60.0, what: str = "") -> None:  # noqa: ANN001
    """Failure guard only: poll ``check`` (async, truthy when done)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.2)
