"""`generic`: any deployment of the `/v1/transcripts` API (`seeds/002`), Callboard itself included.

Its callback carries the whole transcript, as a Standard Webhooks envelope
`{"type": "transcript.completed" | "transcript.failed", "timestamp", "data": <transcript>}` or as a
bare transcript object, signed with `CALLBOARD_GENERIC_WEBHOOK_SECRET` when that is set. When a
callback omits the text, the transcript is fetched with `GET /v1/transcripts/{id}`.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from receiver.exceptions import ProviderUnavailableError, UnusableBodyError
from receiver.model import (
    Transcript,
    Utterance,
    Word,
    completed,
    failed,
    iso_or_none,
    seconds,
    speaker_label,
)
from receiver.providers.base import Identity, Inbound, JobView, Provider, StoredCallback, SubmitRequest, SubmitResult
from receiver.providers.http import call_json, call_object, join
from receiver.verify import verify_standard_webhook

TERMINAL = {"completed": "completed", "failed": "failed", "error": "failed"}
NO_TRANSCRIPT = "expected a transcript object with an `id` (bare, or as `data` of an envelope)"


def transcript_of(body: dict[str, Any]) -> dict[str, Any]:
    """The transcript object of an envelope, or the body itself when it is a bare transcript."""
    data = body.get("data") if "type" in body and isinstance(body.get("data"), dict) else body
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise UnusableBodyError(NO_TRANSCRIPT)
    return data


class _Fields(msgspec.Struct):
    """What `identify` reads of a transcript object: its `id` and `status`, the rest skipped."""

    id: Any = None
    status: Any = ""


class _Body(_Fields):
    """What `identify` reads of a callback body: an envelope's `type` and `data`, or a bare
    transcript's `id` and `status`."""

    type: Any = msgspec.UNSET  # present (even null) or not, as `transcript_of` asks
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_BODY = msgspec.json.Decoder(_Body)
_FIELDS = msgspec.json.Decoder(_Fields)


def _id_and_status(inbound: Inbound) -> tuple[str, str]:
    """`transcript_of(inbound.json_object())`'s `id` and `str(status)`, decoding only those fields.

    Every callback is identified before the 200, and a 1.5 KB transcript decoded whole cost
    4.9 µs against 1.2 µs for these fields. A body that is not a JSON object (or not JSON) goes
    the whole way, so its error is the one `Inbound.json_object` gives."""
    try:
        body = _BODY.decode(inbound.body)
        fields: _Fields = body
        if body.type is not msgspec.UNSET and isinstance(body.data, msgspec.Raw) and bytes(body.data)[:1] == b"{":
            fields = _FIELDS.decode(body.data)  # an envelope whose `data` is an object: the transcript
    except msgspec.DecodeError:
        data = transcript_of(inbound.json_object())  # raises the error a full decode gives
        return str(data["id"]), str(data.get("status", ""))
    if not isinstance(fields.id, str) or not fields.id:
        raise UnusableBodyError(NO_TRANSCRIPT)
    return fields.id, str(fields.status)


def normalize(data: dict[str, Any]) -> Transcript | None:
    """A `/v1/transcripts` object → Transcript; None while it is not terminal."""
    status = TERMINAL.get(str(data.get("status", "")))
    if status is None:
        return None
    job_id = str(data["id"])
    words = [
        Word(
            word=str(w.get("word", w.get("text", ""))),
            start=seconds(w.get("start")),
            end=seconds(w.get("end")),
            confidence=w.get("confidence"),
            speaker=speaker_label(w.get("speaker")),
        )
        for w in data.get("words") or []
        if isinstance(w, dict)
    ]
    utterances = [
        Utterance(
            speaker=speaker_label(u.get("speaker")),
            start=seconds(u.get("start")),
            end=seconds(u.get("end")),
            text=str(u.get("text", "")),
            confidence=u.get("confidence"),
        )
        for u in data.get("utterances") or []
        if isinstance(u, dict)
    ]
    common: dict[str, Any] = {
        "language": data.get("language"),
        "duration": seconds(data.get("duration")),
        "completed_at": iso_or_none(data.get("completed_at")),
        "metadata": data.get("metadata") if isinstance(data.get("metadata"), dict) else {},
    }
    if status == "failed":
        error = data.get("error")
        if isinstance(error, dict):
            code, message = str(error.get("code", "failed")), str(error.get("message", ""))
        else:
            code, message = "failed", str(error or "the provider reported a failure")
        return failed("generic", job_id, code, message, **common)
    confidence = data.get("confidence")
    return completed(
        "generic",
        job_id,
        text=str(data.get("text") or ""),
        confidence=confidence if isinstance(confidence, int | float) else None,
        words=words,
        utterances=utterances,
        **common,
    )


class Generic(Provider):
    name = "generic"

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    def authenticate(self, inbound: Inbound) -> None:
        if self.config.webhook_secret:
            verify_standard_webhook(
                inbound.body, inbound.headers, secrets=[self.config.webhook_secret], now=time.time()
            )

    def identify(self, inbound: Inbound) -> Identity:
        transcript_id, status = _id_and_status(inbound)
        msg_id = inbound.headers.get("webhook-id")
        return Identity(dedupe_key=msg_id or f"{transcript_id}:{status}", provider_job_id=transcript_id)

    async def resolve(self, callback: StoredCallback, job: JobView) -> Transcript | None:
        data = transcript_of(callback.inbound().json_object())
        if data.get("status") == "completed" and "text" not in data:
            data = await self._fetch(str(data["id"]))
        return normalize(data)

    async def _fetch(self, transcript_id: str) -> dict[str, Any]:
        return await call_object(
            self.http,
            self.name,
            "GET",
            join(self.config.base_url, f"/v1/transcripts/{transcript_id}"),
            what="fetch transcript",
            headers=self._headers(),
        )

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        body: dict[str, Any] = {**request.options, "webhook_url": request.callback_url}
        if request.audio_url:
            body["audio_url"] = request.audio_url
        if request.metadata:
            body["metadata"] = {str(k): str(v) for k, v in request.metadata.items()}
        data = await call_json(
            self.http,
            self.name,
            "POST",
            join(self.config.base_url, "/v1/transcripts"),
            what="create transcript",
            headers=self._headers(),
            json=body,
        )
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderUnavailableError(self.name, "create transcript: the answer has no `id`")
        return SubmitResult(provider_job_id=str(data["id"]))

    async def poll(self, job: JobView) -> Transcript | None:
        assert job.provider_job_id is not None
        return normalize(await self._fetch(job.provider_job_id))
