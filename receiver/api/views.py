"""How stored records look on the wire (API answers and `--json` CLI output share these)."""

from __future__ import annotations

from typing import Any

import msgspec

from receiver.model import iso
from storage.records import Attempt, Delivery, Event, Job, Subscription


def job_view(job: Job, transcript: bytes | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job.id,
        "object": "job",
        "provider": job.provider,
        "provider_job_id": job.provider_job_id,
        "status": job.status,
        "audio_url": job.audio_url,
        "recording_id": job.recording_id,
        "options": job.options,
        "metadata": job.metadata,
        "error": job.error,
        "created": iso(job.created_at),
        "updated": iso(job.updated_at),
        "completed_at": iso(job.completed_at),
    }
    if transcript is not None:
        view["transcript"] = msgspec.json.decode(transcript)
    return view


def event_view(event: Event, *, with_data: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": event.id,
        "object": "event",
        "type": event.type,
        "created": iso(event.created_at),
        "job_id": event.job_id,
        "transcript_id": event.transcript_id,
        "provider": event.provider,
    }
    if with_data:
        view["data"] = msgspec.json.decode(event.payload)["data"]
    return view


def subscription_view(sub: Subscription, *, secret: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": sub.id,
        "object": "subscription",
        "url": sub.url,
        "description": sub.description,
        "event_types": sub.event_types,
        "filter": sub.filter,
        "enabled": sub.enabled,
        "disabled_reason": sub.disabled_reason,
        "disabled_at": iso(sub.disabled_at),
        "rotating_until": iso(sub.previous_secret_expires_at) if sub.previous_secret else None,
        "created": iso(sub.created_at),
        "updated": iso(sub.updated_at),
    }
    if secret:  # only on creation and rotation
        view["secret"] = sub.secret
    return view


def attempt_view(att: Attempt) -> dict[str, Any]:
    return {
        "id": att.id,
        "object": "attempt",
        "attempted_at": iso(att.attempted_at),
        "status_code": att.status_code,
        "latency_ms": att.latency_ms,
        "error": att.error,
        "response_excerpt": att.response_excerpt,
        "trigger": att.trigger,
    }


def delivery_view(dlv: Delivery, attempts: list[Attempt] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": dlv.id,
        "object": "delivery",
        "event_id": dlv.event_id,
        "subscription_id": dlv.subscription_id,
        "status": dlv.status,
        "attempts": dlv.attempts,
        "next_attempt_at": iso(dlv.next_attempt_at),
        "last_status_code": dlv.last_status_code,
        "last_error": dlv.last_error,
        "created": iso(dlv.created_at),
        "updated": iso(dlv.updated_at),
    }
    if attempts is not None:
        view["attempt_log"] = [attempt_view(a) for a in attempts]
    return view
