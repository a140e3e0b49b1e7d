"""What the store holds, as plain frozen records. JSON columns are decoded; bodies stay bytes.

The records are frozen `msgspec.Struct`s, not frozen dataclasses: a dataclass's `__init__` sets
each field through `object.__setattr__`, 1.4-1.6 µs for a delivery's eleven, against 0.1-0.3 µs
for a Struct, and a delivery makes four or five of them (its row, its event, the attempt, its
record). In-process drains and ingest, at the same moment as the dataclasses: 2-4.5 % less CPU
a delivery or callback, by the medians (docs/benchmarks.md, change 55). Copy with
`msgspec.structs.replace`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")

JOB_SUBMITTING = "submitting"
JOB_SUBMITTED = "submitted"
JOB_COMPLETED = "completed"
JOB_FAILED = "failed"

CB_PENDING = "pending"
CB_DONE = "done"
CB_IGNORED = "ignored"
CB_FAILED = "failed"

DLV_PENDING = "pending"
DLV_SUCCEEDED = "succeeded"
DLV_FAILED = "failed"


def storable(text: str) -> str:
    """Text from outside (an answer's excerpt) as every backend stores it: PostgreSQL's text holds
    no NUL, and a record carrying one fails to be written, so NUL becomes U+FFFD, as undecodable
    bytes already do."""
    return text.replace("\x00", "\ufffd")


class Job(msgspec.Struct, frozen=True):
    id: str
    provider: str
    provider_job_id: str | None
    status: str
    audio_url: str | None
    recording_id: str | None
    options: Mapping[str, Any]
    metadata: Mapping[str, Any]
    error: Mapping[str, Any] | None
    created_at: float
    updated_at: float
    completed_at: float | None
    reconcile_at: float | None
    reconcile_attempts: int


class NewCallback(msgspec.Struct, frozen=True):
    """A callback as received, before it is stored."""

    id: str
    provider: str
    dedupe_key: str
    job_id: str | None
    provider_job_id: str | None
    job_hint: str | None
    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    received_at: float


class IngestResult(msgspec.Struct, frozen=True):
    """`id` is the stored callback's id (the first one's, for a duplicate)."""

    id: str
    duplicate: bool = False
    unknown_job: bool = False


class Callback(msgspec.Struct, frozen=True):
    id: str
    provider: str
    dedupe_key: str
    job_id: str | None
    provider_job_id: str | None
    job_hint: str | None
    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    received_at: float
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    processed_at: float | None


class Event(msgspec.Struct, frozen=True):
    id: str
    type: str
    job_id: str
    transcript_id: str
    provider: str
    metadata: Mapping[str, Any]
    created_at: float
    payload: bytes


class Subscription(msgspec.Struct, frozen=True):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    filter: Mapping[str, Any]
    enabled: bool
    disabled_reason: str | None
    disabled_at: float | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: float | None
    failing_since: float | None
    created_at: float
    updated_at: float


class Delivery(msgspec.Struct, frozen=True):
    id: str
    event_id: str
    subscription_id: str
    status: str
    attempts: int
    schedule_index: int
    next_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    updated_at: float


class Attempt(msgspec.Struct, frozen=True):
    id: str
    delivery_id: str
    attempted_at: float
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None
    trigger: str


class Page(msgspec.Struct, Generic[T], frozen=True):
    """One page of a listing, newest first; pass `next_cursor` back to get the next one."""

    items: list[T]
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


class EventFilter(msgspec.Struct, frozen=True):
    type: str | None = None
    provider: str | None = None
    since: float | None = None
    until: float | None = None
    job_id: str | None = None


class JobFilter(msgspec.Struct, frozen=True):
    provider: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None


class Finish(msgspec.Struct, frozen=True):
    """Everything written when a job reaches its end, in one transaction."""

    callback_id: str | None
    job_id: str
    job_status: str
    error: Mapping[str, Any] | None
    transcript_id: str
    transcript_body: bytes
    event: Event
    subscription_ids: list[str] = msgspec.field(default_factory=list)
    #: when set, the deliveries are written already leased until then, to be sent by the
    #: caller's delivery worker at once instead of being claimed (see `Finished`)
    lease_until: float | None = None


class Finished(msgspec.Struct, frozen=True):
    """What `Store.finish` wrote: whether the job got its event (False: it had one already), and,
    when the finish asked for a lease, the deliveries written leased, each with its (enabled)
    subscription as read in the same transaction."""

    created: bool
    leased: list[tuple[Delivery, Subscription]] = msgspec.field(default_factory=list)
