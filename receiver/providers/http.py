"""The one boundary where httpx errors become Callboard's.

Adapters call `call()`; nothing else in Callboard catches `httpx.*`. Retrying is not done here:
a failed fetch leaves the callback stored and the processor tries again later with backoff.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import msgspec

from receiver.exceptions import ProviderRejectedError, ProviderUnavailableError
from storage.records import storable

DEFAULT_PROVIDER_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
ERROR_EXCERPT = 300


def new_client() -> httpx.AsyncClient:
    """The shared client for provider APIs: pooled, explicit timeouts, no redirects followed silently."""
    return httpx.AsyncClient(
        timeout=DEFAULT_PROVIDER_TIMEOUT,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=True,
        headers={"user-agent": "callboard"},
    )


@contextlib.contextmanager
def map_httpx_errors(provider: str, what: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ProviderUnavailableError(provider, f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise ProviderUnavailableError(provider, f"{what}: {type(exc).__name__}: {exc}") from exc
    except httpx.InvalidURL as exc:
        raise ProviderRejectedError(provider, f"{what}: invalid URL: {exc}") from exc


def _excerpt(response: httpx.Response) -> str:
    """The start of an error's answer, one line, as text every backend stores (`storable`)."""
    text = storable(response.text.strip().replace("\n", " "))
    return text[:ERROR_EXCERPT] + ("…" if len(text) > ERROR_EXCERPT else "")


def check(provider: str, what: str, response: httpx.Response) -> None:
    """Raise the right ProviderError for a non-2xx answer."""
    if response.is_success:
        return
    status = response.status_code
    message = f"{what}: HTTP {status} {_excerpt(response)}".rstrip()
    if status >= 500 or status in (408, 409, 425, 429):
        raise ProviderUnavailableError(provider, message, http_status=status)
    raise ProviderRejectedError(provider, message, http_status=status)


async def call(
    http: httpx.AsyncClient,
    provider: str,
    method: str,
    url: str,
    *,
    what: str,
    headers: Mapping[str, str] | None = None,
    params: Any = None,
    json: Any = None,
    content: bytes | None = None,
    files: Any = None,
    data: Any = None,
) -> httpx.Response:
    """Make one provider API call; translate every failure into a ProviderError."""
    with map_httpx_errors(provider, what):
        response = await http.request(
            method, url, headers=headers, params=params, json=json, content=content, files=files, data=data
        )
    check(provider, what, response)
    return response


async def call_json(http: httpx.AsyncClient, provider: str, method: str, url: str, *, what: str, **kwargs: Any) -> Any:
    """`call()` and decode the JSON answer (a provider answering non-JSON is treated as unavailable)."""
    response = await call(http, provider, method, url, what=what, **kwargs)
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        raise ProviderUnavailableError(
            provider, f"{what}: the answer is not JSON: {_excerpt(response)}", http_status=response.status_code
        ) from None


async def call_object(
    http: httpx.AsyncClient, provider: str, method: str, url: str, *, what: str, **kwargs: Any
) -> dict[str, Any]:
    """`call_json()` for answers that must be a JSON object (anything else: unavailable, retried)."""
    data = await call_json(http, provider, method, url, what=what, **kwargs)
    if not isinstance(data, dict):
        raise ProviderUnavailableError(provider, f"{what}: the answer is not a JSON object")
    return data


def join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path.lstrip("/")
