"""The long-lived resources of a Callboard process, opened once and handed around.

Both the HTTP app (in its lifespan) and the CLI open a `Service`: the store, the provider API
client, the adapters and the token signer. Nothing here reads the environment.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from receiver.exceptions import UnknownProviderError
from receiver.providers import REGISTRY
from receiver.providers.base import Provider
from receiver.providers.http import new_client
from receiver.settings import Settings
from receiver.tokens import Tokens
from storage.store import Store, open_store


@dataclass
class Service:
    settings: Settings
    store: Store
    http: httpx.AsyncClient
    tokens: Tokens
    adapters: dict[str, Provider]

    def adapter(self, provider: str) -> Provider:
        try:
            return self.adapters[provider]
        except KeyError:
            known = ", ".join(sorted(self.adapters))
            raise UnknownProviderError(f"unknown provider {provider!r} (known: {known})") from None

    def callback_url(self, provider: str, job_id: str) -> str:
        adapter = self.adapter(provider)
        if not adapter.per_job_callbacks:
            return f"{self.settings.public_url}/callbacks/{provider}"
        return f"{self.settings.public_url}/callbacks/{provider}/{self.tokens.make(job_id, provider)}"


@contextlib.asynccontextmanager
async def open_service(settings: Settings, *, migrate: bool = True) -> AsyncIterator[Service]:
    async with open_store(settings.database_url, migrate=migrate) as store, new_client() as http:
        if settings.secret_key is not None:
            key = str(settings.secret_key)
        else:
            key = await store.meta_setdefault("secret_key", secrets.token_urlsafe(32))
        adapters = {name: cls(settings.providers[name], http) for name, cls in REGISTRY.items()}
        yield Service(settings, store, http, Tokens(key), adapters)
