"""Shared fixtures for provider adapter tests: an httpx client and a callback sink, both real."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.fakes.sink import CallbackSink, running_sink


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


@pytest.fixture
def sink() -> Iterator[CallbackSink]:
    with running_sink() as s:
        yield s
