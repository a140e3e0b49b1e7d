"""`speechmatics`: batch jobs (`POST /v2/jobs`) with a `notification_config` callback.

Submission is a multipart form whose `config` field is the job config as a JSON string:
`type: transcription`, `transcription_config` (default language `en`; job options ending in
`_config` go to the top level of the config, every other option into `transcription_config`),
`fetch_data: {url}`, one notification `{url, contents: ["transcript"], method: "post",
auth_headers: ["Authorization: Bearer <job secret>"]}` and `tracking: {reference: <job id>,
details: <metadata>}`. `contents` is always explicit: omitted, Speechmatics would send the transcript
as a multipart attachment; empty, no body at all.

Speechmatics appends `?id=<job id>&status=<outcome>` to the callback URL; the outcome is `success`,
`error`, `fetch_error` or `trim_error` (not a job status). On success the body is the json-v2
transcript; when it is missing or is not a transcript, it is fetched with
`GET /v2/jobs/{id}/transcript?format=json-v2`. On error only job info (or nothing) is sent, so the
failure message comes from `GET /v2/jobs/{id}` (`job.errors[].message`) when that answers, and is the
outcome itself otherwise. Speechmatics signs nothing: the `Authorization` header is the credential.
Retries are few and quick (about a minute in the documented example), hence the reconciler.

Text is rebuilt from `results`: words joined with the language pack's `word_delimiter`,
punctuation glued on the side its `attaches_to` says (`previous` by default). Utterances group
consecutive words of one speaker, split at sentence ends (`is_eos`). Speaker `UU` (no diarization)
means unknown and becomes null. Result items of other types (`entity`) are ignored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec

from receiver.exceptions import (
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    UnusableBodyError,
    VerificationError,
)
from receiver.model import Transcript, Utterance, Word, completed, failed, iso_or_none, mean, seconds
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

FAILURES = frozenset({"error", "fetch_error", "trim_error"})
UNKNOWN_SPEAKER = "UU"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _alternative(item: dict[str, Any]) -> dict[str, Any]:
    alternatives = item.get("alternatives")
    return _dict(alternatives[0]) if isinstance(alternatives, list) and alternatives else {}


def _speaker(item: dict[str, Any]) -> str | None:
    speaker = _alternative(item).get("speaker")
    return speaker if isinstance(speaker, str) and speaker and speaker != UNKNOWN_SPEAKER else None


def join_tokens(items: list[dict[str, Any]], delimiter: str = " ") -> str:
    """Words and punctuation → text, with punctuation attached where `attaches_to` says."""
    out, glue_next = "", False
    for item in items:
        content = str(_alternative(item).get("content", ""))
        if item.get("type") == "punctuation":
            attaches = item.get("attaches_to", "previous")
            out += content if attaches in ("previous", "both") or not out else delimiter + content
            glue_next = attaches in ("next", "both")
        else:
            out += (delimiter if out and not glue_next else "") + content
            glue_next = False
    return out


def _word(item: dict[str, Any]) -> Word:
    alt = _alternative(item)
    return Word(
        word=str(alt.get("content", "")),
        start=seconds(item.get("start_time")),
        end=seconds(item.get("end_time")),
        confidence=alt.get("confidence"),
        speaker=_speaker(item),
    )


def group_utterances(items: list[dict[str, Any]], delimiter: str = " ") -> list[Utterance]:
    """Consecutive words of one speaker, split at sentence ends, with their punctuation."""
    groups: list[list[dict[str, Any]]] = []
    sentence_ended = True
    for item in items:
        if item.get("type") == "word":
            if sentence_ended or not groups or _speaker(groups[-1][0]) != _speaker(item):
                groups.append([])
            sentence_ended = False
        elif not groups:
            continue  # punctuation before any word
        groups[-1].append(item)
        if item.get("type") == "punctuation" and item.get("is_eos"):
            sentence_ended = True
    utterances = []
    for group in groups:
        words = [_word(i) for i in group if i.get("type") == "word"]
        utterances.append(
            Utterance(
                speaker=words[0].speaker,
                start=words[0].start,
                end=words[-1].end,
                text=join_tokens(group, delimiter),
                confidence=mean(w.confidence for w in words),
            )
        )
    return utterances


def normalize(doc: dict[str, Any], job_id: str | None = None) -> Transcript:
    """A json-v2 transcript → completed Transcript."""
    job, meta = _dict(doc.get("job")), _dict(doc.get("metadata"))
    items = [
        i
        for i in doc.get("results") or []
        if isinstance(i, dict) and i.get("type") in ("word", "punctuation")
    ]
    delimiter = _dict(meta.get("language_pack_info")).get("word_delimiter")
    delimiter = delimiter if isinstance(delimiter, str) else " "
    words = [_word(i) for i in items if i.get("type") == "word"]
    language = _dict(meta.get("transcription_config")).get("language")
    return completed(
        "speechmatics",
        str(job.get("id") or job_id or ""),
        text=join_tokens(items, delimiter),
        language=language if isinstance(language, str) else None,
        duration=seconds(job.get("duration")),
        confidence=mean(w.confidence for w in words),
        completed_at=iso_or_none(meta.get("created_at")),
        words=words,
        utterances=group_utterances(items, delimiter),
        metadata=_dict(_dict(job.get("tracking")).get("details")),
    )


def error_messages(job: dict[str, Any]) -> str | None:
    messages = [
        str(e.get("message")) for e in job.get("errors") or [] if isinstance(e, dict) and e.get("message")
    ]
    return "; ".join(messages) or None


class Speechmatics(Provider):
    name = "speechmatics"
    uses_job_secret = True

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.config.api_key or ''}"}

    def authenticate(self, inbound: Inbound) -> None:
        if inbound.job_secret is None:
            raise VerificationError("speechmatics callbacks must come to a per-job callback URL")
        require_header(inbound, "Authorization", f"Bearer {inbound.job_secret}")

    def identify(self, inbound: Inbound) -> Identity:
        sid, status = inbound.query.get("id"), inbound.query.get("status")
        if not sid or not status:
            raise UnusableBodyError("a Speechmatics notification without ?id= and ?status=")
        return Identity(f"{sid}:{status}", sid)

    async def resolve(self, callback: StoredCallback, job: JobView) -> Transcript | None:
        sid, status = callback.query.get("id", ""), callback.query.get("status", "")
        if job.provider_job_id is not None and sid != job.provider_job_id:
            raise UnusableBodyError(
                "the notification names another Speechmatics job than the one its URL was issued for"
            )
        if status in FAILURES:
            try:
                message = error_messages(await self._job(sid))
            except ProviderError:
                message = None
            return failed("speechmatics", sid, status, message or f"Speechmatics reports {status}")
        if status != "success":
            return None
        try:
            body = msgspec.json.decode(callback.body) if callback.body.strip() else None
        except msgspec.DecodeError:
            body = None
        if not (isinstance(body, dict) and isinstance(body.get("results"), list)):
            body = await self._transcript(sid)
        return normalize(body, sid)

    async def _get(self, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        return await call_object(
            self.http,
            self.name,
            "GET",
            join(self.config.base_url, path),
            what=what,
            headers=self._headers(),
            **kwargs,
        )

    async def _job(self, sid: str) -> dict[str, Any]:
        return _dict((await self._get(f"/v2/jobs/{quote(sid, safe='')}", "fetch job")).get("job"))

    async def _transcript(self, sid: str) -> dict[str, Any]:
        return await self._get(
            f"/v2/jobs/{quote(sid, safe='')}/transcript", "fetch transcript", params={"format": "json-v2"}
        )

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        if not request.audio_url:
            raise UnusableBodyError("speechmatics needs an audio_url")
        options = dict(request.options)
        top = {
            k: options.pop(k) for k in list(options) if k.endswith("_config") and k != "transcription_config"
        }
        top.pop("notification_config", None)
        transcription = {"language": "en", **_dict(options.pop("transcription_config", None)), **options}
        config = {
            **top,
            "type": "transcription",
            "transcription_config": transcription,
            "fetch_data": {"url": request.audio_url},
            "notification_config": [
                {
                    "url": request.callback_url,
                    "contents": ["transcript"],
                    "method": "post",
                    "auth_headers": [f"Authorization: Bearer {request.callback_secret}"],
                }
            ],
            "tracking": {"reference": request.job_id, "details": dict(request.metadata)},
        }
        data = await call_json(
            self.http,
            self.name,
            "POST",
            join(self.config.base_url, "/v2/jobs"),
            what="submit job",
            headers=self._headers(),
            files={"config": (None, msgspec.json.encode(config).decode())},
        )
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderUnavailableError(self.name, "submit job: the answer has no `id`")
        return SubmitResult(provider_job_id=str(data["id"]))

    async def poll(self, job: JobView) -> Transcript | None:
        if job.provider_job_id is None:
            raise InvalidRequestError("the job has no Speechmatics id to poll")
        sid = job.provider_job_id
        info = await self._job(sid)
        status = info.get("status")
        if status == "done":
            return normalize(await self._transcript(sid), sid)
        if status in ("rejected", "deleted", "expired"):
            return failed("speechmatics", sid, str(status), error_messages(info) or f"the job is {status}")
        return None
