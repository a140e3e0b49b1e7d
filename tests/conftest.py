"""Shared fixtures: fake providers served on 127.0.0.1 and a real `callboard serve` process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from routes.signing import new_secret
from storage.store import Store, open_store
from tests.databases import BACKENDS, database, postgres_database
from tests.fakes.assemblyai import AssemblyAIFake
from tests.fakes.base import running
from tests.fakes.generic import GenericFake
from tests.harness import CallboardProcess


@pytest.fixture
def generic_fake() -> Iterator[GenericFake]:
    with running(GenericFake(webhook_secret=new_secret())) as fake:
        yield fake


@pytest.fixture
def assemblyai_fake() -> Iterator[AssemblyAIFake]:
    with running(AssemblyAIFake()) as fake:
        yield fake


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each backend: every test that takes it runs on SQLite and on PostgreSQL."""
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, for what only PostgreSQL does."""
    with postgres_database() as url:
        yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store on `database_url` (both backends), closed after the test."""
    async with open_store(database_url) as s:
        yield s


@pytest.fixture
def callboard(
    tmp_path: Path, database_url: str, generic_fake: GenericFake, assemblyai_fake: AssemblyAIFake
) -> Iterator[CallboardProcess]:
    with CallboardProcess(
        tmp_path, database_url=database_url, fakes={"generic": generic_fake, "assemblyai": assemblyai_fake}
    ) as cb:
        yield cb
