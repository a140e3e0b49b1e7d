"""The adapter interface every provider implements.

An adapter is the only place that knows a provider's shapes. It has three jobs, split so that the
hot path stays free of I/O:

* at receive time (pure, no I/O, called by the HTTP handler before anything is stored):
  `authenticate()` checks the provider's own mechanism and `identify()` says which job the
  callback is about and what makes it unique (the dedupe key);
* at processing time (may call the provider's API): `resolve()` turns a stored callback into a
  normalized `Transcript`, or `None` when the callback is not terminal and is only acknowledged;
* on submission and reconciliation: `submit()` registers a job with the callback URL, `poll()`
  asks the provider for the state of a job whose callback never came.

Adding a provider means adding one module under `receiver/providers/` and one line in
`receiver/providers/__init__.py`; nothing in the processor, the store or the router changes.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import msgspec

from receiver.exceptions import UnusableBodyError, VerificationError
from receiver.model import Transcript


@dataclass(frozen=True)
class ProviderConfig:
    """Per-provider settings: `CALLBOARD_<PROVIDER>_API_KEY`, `_BASE_URL`, `_WEBHOOK_SECRET`, extras."""

    name: str
    base_url: str
    api_key: str | None = None
    webhook_secret: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inbound:
    """One callback request as received: everything an adapter may look at, nothing else.

    `headers` keys are lower-case. `job_id` and `job_secret` are set when the callback came to a
    per-job URL whose token verified; `job_secret` is the per-job shared secret Callboard handed the
    provider on submission (an auth header value, basic-auth password, `extra` value, ...), derived
    only for adapters that set `uses_job_secret`.
    """

    provider: str
    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    job_id: str | None = None
    job_secret: str | None = None

    def json(self) -> Any:
        """The body as JSON; raises UnusableBodyError when it is not."""
        if not self.body.strip():
            raise UnusableBodyError("the body is empty; JSON was expected")
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError as exc:
            raise UnusableBodyError(f"the body is not valid JSON: {exc}") from None

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise UnusableBodyError("the body must be a JSON object")
        return data


@dataclass(frozen=True)
class Identity:
    """What a callback is about.

    `dedupe_key` is unique per distinct callback (a provider's retry of the same callback has the
    same key). `provider_job_id` is the provider's id for the job, when the callback names it.
    `job_hint` is our own job id when the provider echoes it back (metadata), for provider-level
    callbacks that carry no token.
    """

    dedupe_key: str
    provider_job_id: str | None = None
    job_hint: str | None = None


@dataclass(frozen=True)
class SubmitRequest:
    job_id: str
    callback_url: str  # the full per-job callback URL (or the provider-level one for `recall`)
    callback_secret: str  # the per-job shared secret the provider must send back
    audio_url: str | None
    recording_id: str | None
    options: Mapping[str, Any]
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class SubmitResult:
    provider_job_id: str
    # the callback URL actually registered (differs from the request when credentials are embedded)
    registered_callback_url: str | None = None


@dataclass(frozen=True)
class StoredCallback:
    """A callback as the processor sees it, read back from the inbox."""

    id: str
    provider: str
    job_id: str | None
    provider_job_id: str | None
    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes

    def inbound(self) -> Inbound:
        return Inbound(self.provider, self.method, self.headers, self.query, self.body, self.job_id)


@dataclass(frozen=True)
class JobView:
    """The parts of a job an adapter may need while resolving or polling."""

    id: str
    provider: str
    provider_job_id: str | None
    options: Mapping[str, Any]
    metadata: Mapping[str, Any]
    created_at: float


class PollUnsupportedError(Exception):
    """The provider has no API to ask for a job's state (deepgram): the reconciler times the job out."""


class Provider:
    """Base class of provider adapters. Subclasses set `name` and override what applies."""

    name: ClassVar[str]
    #: accepts callbacks at `POST /callbacks/{name}` without a per-job token (workspace webhooks)
    provider_level: ClassVar[bool] = False
    #: submissions register a per-job URL `/callbacks/{name}/{token}` (False: the provider-level URL)
    per_job_callbacks: ClassVar[bool] = True
    #: a callback for a job Callboard did not submit still creates a job (recall)
    adopts_unknown_jobs: ClassVar[bool] = False
    #: callbacks authenticate with the per-job secret (`Inbound.job_secret`, derived only for these)
    uses_job_secret: ClassVar[bool] = False
    #: credentials that must be redacted when the headers are stored
    secret_headers: ClassVar[frozenset[str]] = frozenset({"authorization"})

    def __init__(self, config: ProviderConfig, http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http

    # -- receive time: pure, no I/O ------------------------------------------------------------

    def authenticate(self, inbound: Inbound) -> None:
        """Raise VerificationError unless the callback is genuine by the provider's own mechanism.

        The per-job URL token has already been verified when `inbound.job_id` is set.
        """

    def identify(self, inbound: Inbound) -> Identity:
        """Say what the callback is about; raise UnusableBodyError when the body is unusable."""
        raise NotImplementedError

    # -- processing time: may call the provider's API -----------------------------------------

    async def resolve(self, callback: StoredCallback, job: JobView) -> Transcript | None:
        """The normalized transcript this callback finishes the job with, or None to ignore it.

        Any ProviderError (the API down, or refusing: a wrong key is fixed by the operator, a job the
        provider has not published yet appears) leaves the callback stored and retried with backoff;
        UnusableBodyError or any other error marks the callback failed.
        """
        raise NotImplementedError

    # -- submission and reconciliation ----------------------------------------------------------

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        raise NotImplementedError

    async def poll(self, job: JobView) -> Transcript | None:
        """The job's terminal transcript when the provider has one, None while it is still running."""
        raise PollUnsupportedError(self.name)


def require_header(inbound: Inbound, name: str, expected: str) -> None:
    """Constant-time check of a static credential header (AssemblyAI, Rev.ai, Speechmatics)."""
    got = inbound.headers.get(name.lower())
    if got is None:
        raise VerificationError(f"missing {name} header")
    if not hmac.compare_digest(got.encode(), expected.encode()):
        raise VerificationError(f"wrong {name} header")
