"""Realistic signed `generic` callbacks (~1.5 KB), each for a distinct job.

A callback is a Standard Webhooks envelope `{"type", "timestamp", "data": <transcript object>}`
signed with `CALLBOARD_GENERIC_WEBHOOK_SECRET`, posted to `/callbacks/generic/{token}`. The body
is one fixed template with two holes, cheap to fill per request:

    PREFIX + <transcript id> + MIDDLE + <send time, epoch seconds> + SUFFIX

The send time travels in the transcript's metadata (`bench_sent`), so it comes back in the
delivered event and the sink can measure end-to-end latency without any shared state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from receiver.model import iso
from receiver.tokens import Tokens
from routes.signing import secret_key, sign

HOLE_ID = "\x00ID\x00"
HOLE_SENT = "\x00SENT\x00"
SENT_KEY = b'"bench_sent":"'

_WORDS = ("Thanks for calling Contoso, this is Dana. Hi Dana, I was charged twice.").split()


def transcript_document() -> dict[str, object]:
    """A completed `/v1/transcripts` object with words, utterances and metadata."""
    words, t = [], 0.24
    for i, w in enumerate(_WORDS):
        words.append(
            {
                "word": w,
                "start": round(t, 2),
                "end": round(t + 0.31, 2),
                "confidence": round(0.9 + (i % 9) / 100, 2),
                "speaker": 0 if i < 7 else 1,
            }
        )
        t += 0.36
    return {
        "id": HOLE_ID,
        "metadata": {"bench_sent": HOLE_SENT, "external_id": "call-55123", "queue": "billing"},
        "object": "transcript",
        "status": "completed",
        "created": 1763719200,
        "model": "qwen3-asr",
        "language": "en",
        "duration": round(t, 2),
        "confidence": 0.94,
        "text": " ".join(_WORDS),
        "utterances": [
            {"speaker": 0, "start": 0.24, "end": 2.72, "text": " ".join(_WORDS[:7]), "confidence": 0.95},
            {
                "speaker": 1,
                "start": 2.76,
                "end": round(t, 2),
                "text": " ".join(_WORDS[7:]),
                "confidence": 0.93,
            },
        ],
        "words": words,
        "redactions": [],
    }


@dataclass(frozen=True)
class Template:
    prefix: bytes
    middle: bytes
    suffix: bytes

    def body(self, transcript_id: str, sent: float | str = "0") -> bytes:
        sent_text = sent if isinstance(sent, str) else f"{sent:.6f}"
        return self.prefix + transcript_id.encode() + self.middle + sent_text.encode() + self.suffix


def template(now: float | None = None) -> Template:
    envelope = {
        "type": "transcript.completed",
        "timestamp": iso(time.time() if now is None else now),
        "data": transcript_document(),
    }
    text = msgspec.json.encode(envelope)
    prefix, rest = text.split(msgspec.json.encode(HOLE_ID)[1:-1], 1)
    middle, suffix = rest.split(msgspec.json.encode(HOLE_SENT)[1:-1], 1)
    return Template(prefix, middle, suffix)


class Signer:
    """Standard Webhooks headers for an inbound generic callback."""

    def __init__(self, webhook_secret: str) -> None:
        self.key = secret_key(webhook_secret)

    def headers(self, msg_id: str, body: bytes, ts: int | None = None) -> dict[str, str]:
        ts = int(time.time()) if ts is None else ts
        return {
            "content-type": "application/json",
            "user-agent": "generic-transcripts/1.0",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(self.key, msg_id, ts, body),
        }


def callback_paths(secret_key_: str, job_ids: list[str]) -> list[str]:
    tokens = Tokens(secret_key_)
    return [f"/callbacks/generic/{tokens.make(job_id, 'generic')}" for job_id in job_ids]


def sent_time(body: bytes) -> float | None:
    """The `bench_sent` value a delivered event carries back (None when absent)."""
    at = body.find(SENT_KEY)
    if at < 0:
        return None
    start = at + len(SENT_KEY)
    end = body.find(b'"', start)
    try:
        return float(body[start:end])
    except ValueError:
        return None


def event_payload() -> bytes:
    """The event Callboard delivers for one of these callbacks, built by Callboard's own code."""
    from receiver.processor import build_finish
    from receiver.providers.generic import normalize, transcript_of
    from storage.records import Job

    class _NoSubscriptions:
        def matching(self, *args: object) -> list[str]:
            return []

    now = time.time()
    transcript = normalize(transcript_of(msgspec.json.decode(template(now).body("transcript_bare", now))))
    assert transcript is not None
    job = Job(
        id="job_bare",
        provider="generic",
        provider_job_id="transcript_bare",
        status="submitted",
        audio_url="https://example.com/a.wav",
        recording_id=None,
        options={},
        metadata={"bench": "bare"},
        error=None,
        created_at=now,
        updated_at=now,
        completed_at=None,
        reconcile_at=None,
        reconcile_attempts=0,
    )
    finish = build_finish(_NoSubscriptions(), job, transcript, None, now)  # type: ignore[arg-type]
    return finish.event.payload
