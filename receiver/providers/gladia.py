"""`gladia`: Gladia v2 pre-recorded jobs, with a per-job callback that carries the full result.

Submission is `POST /v2/pre-recorded` (header `x-gladia-key`) with `callback: true`,
`callback_config: {url, method}` (method from the `callback_method` option, POST by default, or
PUT) and `custom_metadata` holding `callboard_job_id` next to the job's metadata. Gladia signs
nothing and offers no auth header, so the per-job URL token is the only authentication of a callback.

The callback is `{"id", "event", "payload" | "error", "custom_metadata"}` and its `payload` is the
whole result (it can be several MB: the receiver's body limit must allow it). Events are
`transcription.success` / `transcription.error`; a help-center page shows `success` / `error`, so
both spellings are accepted. Times are seconds; speakers are integers (diarization only).

Gladia also has account-level webhooks, configured in its dashboard, to be pointed at
`POST /callbacks/gladia`: thin and unsigned (`{"event", "payload": {"id"}}`). Their content is never
trusted: `resolve` always fetches `GET /v2/pre-recorded/{id}`, and they never create a job
(`adopts_unknown_jobs = False`). When `CALLBOARD_GLADIA_WEBHOOK_SECRET` is set, those webhooks must
also carry it as `?secret=…` in the URL configured at Gladia (Gladia itself has no such mechanism).
Polling uses the same `GET`.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import quote

from receiver.exceptions import (
    InvalidRequestError,
    ProviderUnavailableError,
    UnusableBodyError,
    VerificationError,
)
from receiver.model import Transcript, Utterance, Word, completed, failed, iso_or_none, seconds, speaker_label
from receiver.providers.base import (
    Identity,
    Inbound,
    JobView,
    Provider,
    StoredCallback,
    SubmitRequest,
    SubmitResult,
)
from receiver.providers.http import call_json, call_object, join

JOB_KEY = "callboard_job_id"
SUCCESS, ERROR = "transcription.success", "transcription.error"
EVENTS = {"success": SUCCESS, "error": ERROR, "created": "transcription.created"}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def event_name(value: Any) -> str:
    """The event, with the help-center spellings (`success`, `error`) mapped to the API's."""
    return EVENTS.get(str(value), str(value))


def user_metadata(custom: Any) -> dict[str, Any]:
    return {k: v for k, v in _dict(custom).items() if k != JOB_KEY}


def weighted_confidence(utterances: list[Utterance]) -> float | None:
    """Utterance confidences weighted by utterance duration (Gladia gives no overall figure)."""
    pairs = [
        (u.confidence, u.end - u.start)
        for u in utterances
        if u.confidence is not None and u.start is not None and u.end is not None and u.end > u.start
    ]
    total = sum(d for _, d in pairs)
    return round(sum(c * d for c, d in pairs) / total, 4) if total > 0 else None


def normalize_result(
    job_id: str,
    result: dict[str, Any],
    *,
    duration: float | None = None,
    completed_at: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Transcript:
    """A result (`payload` of the callback, `result` of the GET) → completed Transcript."""
    transcription = _dict(result.get("transcription"))
    words: list[Word] = []
    utterances: list[Utterance] = []
    for u in transcription.get("utterances") or []:
        if not isinstance(u, dict):
            continue
        speaker = speaker_label(u.get("speaker"))
        utterances.append(
            Utterance(
                speaker=speaker,
                start=seconds(u.get("start")),
                end=seconds(u.get("end")),
                text=str(u.get("text") or "").strip(),
                confidence=u.get("confidence"),
            )
        )
        words.extend(
            Word(
                word=str(w.get("word", "")).strip(),
                start=seconds(w.get("start")),
                end=seconds(w.get("end")),
                confidence=w.get("confidence"),
                speaker=speaker,
            )
            for w in u.get("words") or []
            if isinstance(w, dict)
        )
    text = transcription.get("full_transcript")
    languages = transcription.get("languages")
    return completed(
        "gladia",
        job_id,
        text=str(text).strip() if text else " ".join(u.text for u in utterances),
        language=languages[0] if isinstance(languages, list) and languages else None,
        duration=seconds(_dict(result.get("metadata")).get("audio_duration")) or duration,
        confidence=weighted_confidence(utterances),
        completed_at=completed_at,
        words=words,
        utterances=utterances,
        metadata=metadata or {},
    )


def from_callback_error(job_id: str, body: dict[str, Any]) -> Transcript:
    error = _dict(body.get("error"))
    code = error.get("code")
    return failed(
        "gladia",
        job_id,
        str(code) if code not in (None, "") else "transcription_error",
        str(error.get("message") or "Gladia reports the transcription failed"),
        metadata=user_metadata(body.get("custom_metadata")),
    )


def from_document(doc: dict[str, Any]) -> Transcript | None:
    """A `GET /v2/pre-recorded/{id}` answer → Transcript; None while queued or processing."""
    job_id, status = str(doc.get("id", "")), doc.get("status")
    metadata = user_metadata(doc.get("custom_metadata"))
    completed_at = iso_or_none(doc.get("completed_at"))
    if status == "error":
        code = doc.get("error_code")
        detail = f" (error_code {code})" if code is not None else ""
        return failed(
            "gladia",
            job_id,
            str(code) if code is not None else "transcription_error",
            f"Gladia reports the transcription failed{detail}",
            completed_at=completed_at,
            metadata=metadata,
        )
    if status != "done":
        return None
    return normalize_result(
        job_id,
        _dict(doc.get("result")),
        duration=seconds(_dict(doc.get("file")).get("audio_duration")),
        completed_at=completed_at,
        metadata=metadata,
    )


class Gladia(Provider):
    name = "gladia"
    provider_level = True  # account webhooks, as hints
    adopts_unknown_jobs = False
    secret_headers = frozenset({"authorization", "x-gladia-key"})

    def _headers(self) -> dict[str, str]:
        return {"x-gladia-key": self.config.api_key or ""}

    def authenticate(self, inbound: Inbound) -> None:
        if inbound.job_id is not None or not self.config.webhook_secret:
            return  # per-job: the URL token was verified; account webhooks: hints, re-fetched
        given = inbound.query.get("secret", "")
        if not hmac.compare_digest(given.encode(), self.config.webhook_secret.encode()):
            raise VerificationError("missing or wrong ?secret= on a Gladia account webhook")

    def identify(self, inbound: Inbound) -> Identity:
        body = inbound.json_object()
        event = body.get("event")
        if not isinstance(event, str) or not event:
            raise UnusableBodyError('expected a Gladia callback {"id", "event", ...}')
        gid = body.get("id")
        if isinstance(gid, str) and gid:
            hint = _dict(body.get("custom_metadata")).get(JOB_KEY)
            return Identity(f"{gid}:{event_name(event)}", gid, hint if isinstance(hint, str) else None)
        account_id = _dict(body.get("payload")).get("id")
        if isinstance(account_id, str) and account_id:
            return Identity(f"account:{account_id}:{event_name(event)}", account_id)
        raise UnusableBodyError("a Gladia callback without `id` (or `payload.id` for account webhooks)")

    async def resolve(self, callback: StoredCallback, job: JobView) -> Transcript | None:
        body = callback.inbound().json_object()
        event = event_name(body.get("event"))
        gid = body.get("id")
        if not (isinstance(gid, str) and gid):  # an account webhook: a hint, the GET is the truth
            if event not in (SUCCESS, ERROR):
                return None
            return await self._authoritative(str(_dict(body.get("payload")).get("id", "")))
        if job.provider_job_id is not None and gid != job.provider_job_id:
            raise UnusableBodyError(
                "the callback names another Gladia job than the one its URL was issued for"
            )
        if event == ERROR:
            return from_callback_error(gid, body)
        if event != SUCCESS:
            return None
        payload = _dict(body.get("payload"))
        if "transcription" not in payload:  # no embedded result: fetch it
            return await self._authoritative(gid)
        return normalize_result(gid, payload, metadata=user_metadata(body.get("custom_metadata")))

    async def _authoritative(self, gladia_id: str) -> Transcript:
        """The job's state from the API, which must be terminal since a terminal event was sent."""
        doc = await self._fetch(gladia_id)
        result = from_document(doc)
        if result is None:  # the event said terminal but the API does not agree yet: try again later
            raise ProviderUnavailableError(self.name, f"the job is still {doc.get('status')!r}")
        return result

    async def _fetch(self, gladia_id: str) -> dict[str, Any]:
        return await call_object(
            self.http,
            self.name,
            "GET",
            join(self.config.base_url, f"/v2/pre-recorded/{quote(gladia_id, safe='')}"),
            what="fetch result",
            headers=self._headers(),
        )

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        if not request.audio_url:
            raise UnusableBodyError("gladia needs an audio_url")
        options = dict(request.options)
        method = str(options.pop("callback_method", "POST")).upper()
        if method not in ("POST", "PUT"):
            raise UnusableBodyError('gladia option "callback_method" must be POST or PUT')
        custom = {**_dict(options.pop("custom_metadata", None)), **request.metadata, JOB_KEY: request.job_id}
        body = {
            **options,
            "audio_url": request.audio_url,
            "callback": True,
            "callback_config": {"url": request.callback_url, "method": method},
            "custom_metadata": custom,
        }
        data = await call_json(
            self.http,
            self.name,
            "POST",
            join(self.config.base_url, "/v2/pre-recorded"),
            what="submit transcription",
            headers=self._headers(),
            json=body,
        )
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderUnavailableError(self.name, "submit transcription: the answer has no `id`")
        return SubmitResult(provider_job_id=str(data["id"]))

    async def poll(self, job: JobView) -> Transcript | None:
        if job.provider_job_id is None:
            raise InvalidRequestError("the job has no Gladia id to poll")
        return from_document(await self._fetch(job.provider_job_id))
