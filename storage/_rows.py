"""Row ↔ record conversion shared by the store's modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from storage.records import Attempt, Callback, Delivery, Event, Job, Subscription

_decoder = msgspec.json.Decoder()


def dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def loads(text: str | bytes | None) -> Any:
    if text is None:
        return None
    return _decoder.decode(text)


def job(row: Any) -> Job:
    return Job(
        id=row["id"],
        provider=row["provider"],
        provider_job_id=row["provider_job_id"],
        status=row["status"],
        audio_url=row["audio_url"],
        recording_id=row["recording_id"],
        options=loads(row["options"]),
        metadata=loads(row["metadata"]),
        error=loads(row["error"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        reconcile_at=row["reconcile_at"],
        reconcile_attempts=row["reconcile_attempts"],
    )


def callback(row: Any) -> Callback:
    return Callback(
        id=row["id"],
        provider=row["provider"],
        dedupe_key=row["dedupe_key"],
        job_id=row["job_id"],
        provider_job_id=row["provider_job_id"],
        job_hint=row["job_hint"],
        method=row["method"],
        headers=loads(row["headers"]),
        query=loads(row["query"]),
        body=bytes(row["body"]),
        received_at=row["received_at"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        processed_at=row["processed_at"],
    )


def event(row: Any) -> Event:
    return Event(
        id=row["id"],
        type=row["type"],
        job_id=row["job_id"],
        transcript_id=row["transcript_id"],
        provider=row["provider"],
        metadata=loads(row["metadata"]),
        created_at=row["created_at"],
        payload=bytes(row["payload"]),
    )


def subscription(row: Any) -> Subscription:
    return Subscription(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        event_types=loads(row["event_types"]),
        filter=loads(row["filter"]),
        enabled=bool(row["enabled"]),
        disabled_reason=row["disabled_reason"],
        disabled_at=row["disabled_at"],
        secret=row["secret"],
        previous_secret=row["previous_secret"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        failing_since=row["failing_since"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def delivery(row: Any) -> Delivery:
    return Delivery(
        id=row["id"],
        event_id=row["event_id"],
        subscription_id=row["subscription_id"],
        status=row["status"],
        attempts=row["attempts"],
        schedule_index=row["schedule_index"],
        next_attempt_at=row["next_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def attempt(row: Any) -> Attempt:
    return Attempt(
        id=row["id"],
        delivery_id=row["delivery_id"],
        attempted_at=row["attempted_at"],
        status_code=row["status_code"],
        latency_ms=row["latency_ms"],
        error=row["error"],
        response_excerpt=row["response_excerpt"],
        trigger=row["trigger"],
    )


def where(clauses: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """`{"provider = ?": "x", "created_at >= ?": None}` → (" WHERE provider = ?", ["x"]), skipping Nones."""
    parts, args = [], []
    for clause, value in clauses.items():
        if value is not None:
            parts.append(clause)
            args.append(value)
    return (" WHERE " + " AND ".join(parts) if parts else ""), args
