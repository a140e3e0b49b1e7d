"""`assemblyai`: v2 `/v2/transcript` with `webhook_url` and a per-job auth header.

The callback is thin (`{"transcript_id", "status"}`) and unsigned; it is authenticated by the
header Callboard registered (`webhook_auth_header_name/value`, compared in constant time) and the
content is always fetched with `GET /v2/transcript/{id}`. Times there are integer milliseconds.
AssemblyAI stops retrying on any 4xx, so a genuine callback is always acknowledged.
"""

from __future__ import annotations

from typing import Any

from receiver.exceptions import ProviderUnavailableError, UnusableBodyError, VerificationError
from receiver.model import Transcript, Utterance, Word, completed, failed, iso_or_none, seconds, speaker_label
from receiver.providers.base import (
    Identity,
    Inbound,
    JobView,
    Provider,
    StoredCallback,
    SubmitRequest,
    SubmitResult,
    require_header,
)
from receiver.providers.http import call_json, call_object, join

AUTH_HEADER = "X-Callboard-Auth"


def normalize(data: dict[str, Any]) -> Transcript | None:
    """A `GET /v2/transcript/{id}` answer → Transcript; None while queued or processing."""
    status, tid = data.get("status"), str(data.get("id", ""))
    common: dict[str, Any] = {
        "language": data.get("language_code"),
        "duration": seconds(data.get("audio_duration")),
        "completed_at": iso_or_none(data.get("completed")),
    }
    if status == "error":
        return failed("assemblyai", tid, "transcription_error", str(data.get("error") or "unknown error"), **common)
    if status != "completed":
        return None
    words = [
        Word(
            word=str(w.get("text", "")),
            start=seconds(w.get("start"), scale=1000),
            end=seconds(w.get("end"), scale=1000),
            confidence=w.get("confidence"),
            speaker=speaker_label(w.get("speaker")),
        )
        for w in data.get("words") or []
    ]
    utterances = [
        Utterance(
            speaker=speaker_label(u.get("speaker")),
            start=seconds(u.get("start"), scale=1000),
            end=seconds(u.get("end"), scale=1000),
            text=str(u.get("text", "")),
            confidence=u.get("confidence"),
        )
        for u in data.get("utterances") or []
    ]
    return completed(
        "assemblyai",
        tid,
        text=str(data.get("text") or ""),
        confidence=data.get("confidence"),
        words=words,
        utterances=utterances,
        **common,
    )


class AssemblyAI(Provider):
    name = "assemblyai"
    uses_job_secret = True
    secret_headers = frozenset({"authorization", AUTH_HEADER.lower()})

    def authenticate(self, inbound: Inbound) -> None:
        if inbound.job_secret is None:
            raise VerificationError("assemblyai callbacks must come to a per-job callback URL")
        require_header(inbound, AUTH_HEADER, inbound.job_secret)

    def identify(self, inbound: Inbound) -> Identity:
        body = inbound.json_object()
        tid, status = body.get("transcript_id"), body.get("status")
        if isinstance(tid, str) and tid and isinstance(status, str):
            return Identity(dedupe_key=f"{tid}:{status}", provider_job_id=tid)
        if status == "redacted_audio_ready":  # the older second webhook: no transcript id
            return Identity(dedupe_key=f"redacted_audio_ready:{inbound.job_id}")
        raise UnusableBodyError("expected {\"transcript_id\", \"status\"}")

    async def resolve(self, callback: StoredCallback, job: JobView) -> Transcript | None:
        body = callback.inbound().json_object()
        if body.get("status") not in ("completed", "error"):
            return None  # redacted-audio notices and anything non-terminal are acknowledged only
        data = await self._fetch(str(body["transcript_id"]))
        result = normalize(data)
        if result is None:  # the callback said terminal but the API does not agree yet: try again later
            raise ProviderUnavailableError(self.name, f"transcript is still {data.get('status')!r}")
        return result

    async def _fetch(self, transcript_id: str) -> dict[str, Any]:
        return await call_object(
            self.http,
            self.name,
            "GET",
            join(self.config.base_url, f"/v2/transcript/{transcript_id}"),
            what="fetch transcript",
            headers={"authorization": self.config.api_key or ""},
        )

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        if not request.audio_url:
            raise UnusableBodyError("assemblyai needs an audio_url")
        body = {
            **request.options,
            "audio_url": request.audio_url,
            "webhook_url": request.callback_url,
            "webhook_auth_header_name": AUTH_HEADER,
            "webhook_auth_header_value": request.callback_secret,
        }
        data = await call_json(
            self.http,
            self.name,
            "POST",
            join(self.config.base_url, "/v2/transcript"),
            what="submit transcript",
            headers={"authorization": self.config.api_key or ""},
            json=body,
        )
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderUnavailableError(self.name, "submit transcript: the answer has no `id`")
        return SubmitResult(provider_job_id=str(data["id"]))

    async def poll(self, job: JobView) -> Transcript | None:
        assert job.provider_job_id is not None
        return normalize(await self._fetch(job.provider_job_id))
