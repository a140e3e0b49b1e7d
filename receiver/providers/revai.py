"""`revai`: Rev.ai async jobs with `notification_config`; the callback is the job object only.

Submission is `POST /speechtotext/v1/jobs` (bearer API key) with `source_config: {url}`,
`notification_config: {url, auth_headers: {"Authorization": "Bearer <job secret>"}}` (Rev sends
only an `Authorization` header back, and signs nothing) and `metadata` set to Callboard's job id
(a free string of at most 512 characters). The deprecated `callback_url` is never sent.

The callback is `{"job": {id, status, …}}` with status `transcribed`, `failed` or `in_progress`
(other job types, such as sentiment or topics, say `completed` and are ignored). For `transcribed`
the transcript is fetched with `GET /speechtotext/v1/jobs/{id}/transcript` and
`Accept: application/vnd.rev.transcript.v1.0+json`: monologues of `text` / `punct` elements, times
in seconds. Punctuation elements carry the spaces, so a monologue's text is its values joined as
they are; monologues are joined with a space. Rev retries every 30 minutes for 24 hours until it
gets a 200 (exactly 200), and stops when answered 410.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from receiver.exceptions import (
    InvalidRequestError,
    ProviderUnavailableError,
    UnusableBodyError,
    VerificationError,
)
from receiver.model import (
    Transcript,
    Utterance,
    Word,
    completed,
    failed,
    iso_or_none,
    mean,
    seconds,
    speaker_label,
)
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
from receiver.providers.http import call_json, join

TRANSCRIPT_TYPE = "application/vnd.rev.transcript.v1.0+json"
JOBS = "/speechtotext/v1/jobs"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def normalize(job: dict[str, Any], transcript: dict[str, Any]) -> Transcript:
    """A transcribed job object and its transcript → completed Transcript."""
    words: list[Word] = []
    utterances: list[Utterance] = []
    for monologue in transcript.get("monologues") or []:
        if not isinstance(monologue, dict):
            continue
        speaker = speaker_label(monologue.get("speaker"))
        elements = [e for e in monologue.get("elements") or [] if isinstance(e, dict)]
        spoken = [
            Word(
                word=str(e.get("value", "")),
                start=seconds(e.get("ts")),
                end=seconds(e.get("end_ts")),
                confidence=e.get("confidence"),
                speaker=speaker,
            )
            for e in elements
            if e.get("type") == "text"
        ]
        text = "".join(str(e.get("value", "")) for e in elements).strip()
        if not text:
            continue
        words.extend(spoken)
        utterances.append(
            Utterance(
                speaker=speaker,
                start=spoken[0].start if spoken else None,
                end=spoken[-1].end if spoken else None,
                text=text,
                confidence=mean(w.confidence for w in spoken),
            )
        )
    return completed(
        "revai",
        str(job.get("id", "")),
        text=" ".join(u.text for u in utterances),
        language=job.get("language"),
        duration=seconds(job.get("duration_seconds")),
        confidence=mean(w.confidence for w in words),
        completed_at=iso_or_none(job.get("completed_on")),
        words=words,
        utterances=utterances,
    )


def failure(job: dict[str, Any]) -> Transcript:
    return failed(
        "revai",
        str(job.get("id", "")),
        str(job.get("failure") or "failed"),
        str(job.get("failure_detail") or "Rev.ai reports the job failed"),
        completed_at=iso_or_none(job.get("completed_on")),
    )


class RevAI(Provider):
    name = "revai"
    uses_job_secret = True

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        return {"authorization": f"Bearer {self.config.api_key or ''}", "accept": accept}

    def authenticate(self, inbound: Inbound) -> None:
        if inbound.job_secret is None:
            raise VerificationError("revai callbacks must come to a per-job callback URL")
        require_header(inbound, "Authorization", f"Bearer {inbound.job_secret}")

    def identify(self, inbound: Inbound) -> Identity:
        job = inbound.json_object().get("job")
        if not isinstance(job, dict):
            raise UnusableBodyError('expected a Rev.ai notification {"job": {...}}')
        rid, status = job.get("id"), job.get("status")
        if not (isinstance(rid, str) and rid and isinstance(status, str) and status):
            raise UnusableBodyError("a Rev.ai notification without job.id and job.status")
        hint = job.get("metadata")
        return Identity(f"{rid}:{status}", rid, hint if isinstance(hint, str) and hint else None)

    async def resolve(self, callback: StoredCallback, job: JobView) -> Transcript | None:
        data = _dict(callback.inbound().json_object().get("job"))
        rid = str(data.get("id", ""))
        if job.provider_job_id is not None and rid != job.provider_job_id:
            raise UnusableBodyError(
                "the notification names another Rev.ai job than the one its URL was issued for"
            )
        return await self._from_job(data)

    async def _from_job(self, data: dict[str, Any]) -> Transcript | None:
        status = data.get("status")
        if status == "failed":
            return failure(data)
        if status != "transcribed":
            return None  # in_progress, and other job types' `completed`
        transcript = await call_json(
            self.http,
            self.name,
            "GET",
            join(self.config.base_url, f"{JOBS}/{quote(str(data.get('id', '')), safe='')}/transcript"),
            what="fetch transcript",
            headers=self._headers(TRANSCRIPT_TYPE),
        )
        if not isinstance(transcript, dict):
            raise ProviderUnavailableError(self.name, "fetch transcript: the answer is not a JSON object")
        return normalize(data, transcript)

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        if not request.audio_url:
            raise UnusableBodyError("revai needs an audio_url")
        options = {k: v for k, v in request.options.items() if k not in ("callback_url", "media_url")}
        source = {**_dict(options.pop("source_config", None)), "url": request.audio_url}
        body = {
            **options,
            "source_config": source,
            "notification_config": {
                "url": request.callback_url,
                "auth_headers": {"Authorization": f"Bearer {request.callback_secret}"},
            },
            "metadata": request.job_id,
        }
        data = await call_json(
            self.http,
            self.name,
            "POST",
            join(self.config.base_url, JOBS),
            what="submit job",
            headers=self._headers(),
            json=body,
        )
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderUnavailableError(self.name, "submit job: the answer has no `id`")
        return SubmitResult(provider_job_id=str(data["id"]))

    async def poll(self, job: JobView) -> Transcript | None:
        if job.provider_job_id is None:
            raise InvalidRequestError("the job has no Rev.ai id to poll")
        data = await call_json(
            self.http,
            self.name,
            "GET",
            join(self.config.base_url, f"{JOBS}/{quote(job.provider_job_id, safe='')}"),
            what="fetch job",
            headers=self._headers(),
        )
        if not isinstance(data, dict):
            raise ProviderUnavailableError(self.name, "fetch job: the answer is not a JSON object")
        return await self._from_job(data)
