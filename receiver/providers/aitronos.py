"""`aitronos`: Aitronos `/v1/audio/transcribe`, whose webhook is treated as a hint only.

What is documented (docs.aitronos.com, `seeds/004`): `POST /v1/audio/transcribe` (bearer token) with
`organization_id` (`org_…`, billed), `transcription_options {audio_url (https), language}`, optional
`speaker_analysis`, `intelligence_features`, `privacy_settings`, and
`webhook {url, events: ["transcription.completed", "transcription.failed"]}`; it answers an
envelope whose `data.transcription_id` (`trans_…`) is the job id. `GET /v1/audio/transcribe/{id}`
answers `{data: {transcription_id, status (queued|processing|completed|failed), audio_metadata,
timestamps}, billing, metadata, actions: {check_status, get_paragraphs, get_sentences, …}}`.

ASSUMPTIONS (nothing below is documented; confirm with a live test):

* The webhook's body, headers, signing and retries are unknown. Any JSON object is accepted: the
  per-job URL token is the only authentication, and nothing in the body is trusted. Its dedupe key
  is `<id>:<event or status>` from whichever of `transcription_id` / `id` and `event` / `type` /
  `status` it carries (top level, or under `data`, `payload` or `transcription`), else a SHA-256 of
  the body.
* `resolve` and `poll` always take the truth from `GET /v1/audio/transcribe/{id}`, using the job's
  own provider id (the body's id only when the job has none). A webhook that claims a terminal
  state while the API still says queued/processing is retried later.
* The text and words of a completed job are read from the `actions.get_sentences` link, else
  `get_paragraphs`, else from the GET document itself. Either answer may wrap its content in
  `data`; segments are `sentences`, `paragraphs`, `utterances` or `segments`, each
  `{text, start, end, confidence, speaker, words: [{text|word, start, end, confidence, speaker}]}`;
  text is `text` / `transcript` when given, else the segments' texts joined with spaces.
* Times are seconds unless fields are named `start_ms` / `end_ms`, or they exceed the audio
  duration by half (or, with no duration known, are all integers reaching 1000): then milliseconds
  (the field names mirror AssemblyAI's, which counts milliseconds).
* An action link on another host than the configured base URL is fetched at the same path on the
  base URL, so the API key is never sent elsewhere.
* A failed job's `data.error` is `{code, message}` or a string.
* `organization_id` comes from the job option of that name, else `CALLBOARD_AITRONOS_ORGANIZATION_ID`.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote, urlsplit

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
    utterances_from_words,
)
from receiver.providers.base import (
    Identity,
    Inbound,
    JobView,
    Provider,
    StoredCallback,
    SubmitRequest,
    SubmitResult,
)
from receiver.providers.http import call_json, join

EVENTS = ["transcription.completed", "transcription.failed"]
SEGMENT_KEYS = ("sentences", "paragraphs", "utterances", "segments")
TERMINAL_WORDS = ("complete", "fail", "error", "success", "done")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _find(body: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for scope in (body, *(_dict(body.get(k)) for k in ("data", "payload", "transcription"))):
        for key in keys:
            value = scope.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def hint_of(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(transcription id, event or status) as far as an undocumented webhook body says."""
    return _find(body, ("transcription_id", "id")), _find(body, ("event", "type", "status"))


def claims_terminal(label: str | None) -> bool:
    return label is not None and any(word in label.lower() for word in TERMINAL_WORDS)


def _content(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data")
    if isinstance(data, list):
        return {"segments": data}
    return data if isinstance(data, dict) else payload


def _scale(items: list[dict[str, Any]], duration: float | None) -> float:
    """1000 when the times look like milliseconds (see the module docstring), else 1."""
    values = [v for i in items for v in (i.get("start"), i.get("end")) if isinstance(v, int | float)]
    if not values:
        return 1.0
    if duration:
        return 1000.0 if max(values) > duration * 1.5 else 1.0
    return 1000.0 if all(isinstance(v, int) for v in values) and max(values) >= 1000 else 1.0


def _time(item: dict[str, Any], key: str, scale: float) -> float | None:
    if f"{key}_ms" in item:
        return seconds(item.get(f"{key}_ms"), scale=1000)
    return seconds(item.get(key), scale=scale)


def _text(item: dict[str, Any]) -> str:
    value = item.get("text", item.get("word", item.get("transcript", "")))
    return str(value or "").strip()


def normalize(doc: dict[str, Any], content: dict[str, Any] | None = None) -> Transcript | None:
    """A GET document (and the content of its action link) → Transcript; None while running."""
    data = _dict(doc.get("data")) or doc
    tid = str(data.get("transcription_id") or data.get("id") or "")
    audio = _dict(data.get("audio_metadata"))
    language = audio.get("language_code") or audio.get("language")
    duration = seconds(audio.get("duration_seconds", audio.get("duration")))
    common: dict[str, Any] = {
        "language": language if isinstance(language, str) else None,
        "duration": duration,
        "completed_at": iso_or_none(_dict(data.get("timestamps")).get("completed_at")),
    }
    status = data.get("status")
    if status == "failed":
        error = data.get("error")
        code = _dict(error).get("code") or "failed"
        message = _dict(error).get("message") if isinstance(error, dict) else error
        return failed("aitronos", tid, str(code), str(message or "Aitronos reports the job failed"), **common)
    if status != "completed":
        return None
    source = _content(content) if content is not None else data
    segments = next((s for k in SEGMENT_KEYS if isinstance(s := source.get(k), list)), [])
    segments = [s for s in segments if isinstance(s, dict)]
    raw_words = [w for s in segments for w in s.get("words") or [] if isinstance(w, dict)]
    raw_words = raw_words or [w for w in source.get("words") or [] if isinstance(w, dict)]
    scale = _scale(segments + raw_words, duration)
    words = [
        Word(
            word=_text(w),
            start=_time(w, "start", scale),
            end=_time(w, "end", scale),
            confidence=w.get("confidence"),
            speaker=speaker_label(w.get("speaker")),
        )
        for w in raw_words
    ]
    utterances = [
        Utterance(
            speaker=speaker_label(s.get("speaker")),
            start=_time(s, "start", scale),
            end=_time(s, "end", scale),
            text=_text(s),
            confidence=s.get("confidence"),
        )
        for s in segments
    ] or utterances_from_words(words)
    text = source.get("text") or source.get("transcript") or data.get("text")
    confidence = data.get("confidence")
    return completed(
        "aitronos",
        tid,
        text=str(text).strip()
        if isinstance(text, str) and text.strip()
        else " ".join(u.text for u in utterances),
        confidence=confidence if isinstance(confidence, int | float) else mean(w.confidence for w in words),
        words=words,
        utterances=utterances,
        **common,
    )


class Aitronos(Provider):
    name = "aitronos"

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.config.api_key or ''}"}

    def authenticate(self, inbound: Inbound) -> None:
        if inbound.job_id is None:  # the per-job URL token is the only authentication there is
            raise VerificationError("aitronos callbacks must come to a per-job callback URL")

    def identify(self, inbound: Inbound) -> Identity:
        body = inbound.json_object()
        tid, label = hint_of(body)
        key = f"{tid}:{label}" if tid and label else "sha256:" + hashlib.sha256(inbound.body).hexdigest()
        return Identity(dedupe_key=key, provider_job_id=tid)

    async def resolve(self, callback: StoredCallback, job: JobView) -> Transcript | None:
        body_id, label = hint_of(callback.inbound().json_object())
        tid = job.provider_job_id or body_id
        if not tid:
            raise UnusableBodyError("neither the job nor the webhook names an Aitronos transcription id")
        result = await self._state(tid)
        if result is None and claims_terminal(label):
            raise ProviderUnavailableError(self.name, "the webhook says terminal but the API does not yet")
        return result

    async def _state(self, tid: str) -> Transcript | None:
        doc = await self._get(
            join(self.config.base_url, f"/v1/audio/transcribe/{quote(tid, safe='')}"), "fetch"
        )
        if _dict(doc.get("data")).get("status") != "completed":
            return normalize(doc)
        actions = _dict(doc.get("actions"))
        for action in ("get_sentences", "get_paragraphs"):
            link = actions.get(action)
            if isinstance(link, str) and link:
                return normalize(doc, await self._get(self._local(link), action))
        return normalize(doc)

    def _local(self, link: str) -> str:
        """The link when it is on the configured API host, else the same path on it."""
        parts, base = urlsplit(link), urlsplit(self.config.base_url)
        if parts.scheme and (parts.scheme, parts.netloc) == (base.scheme, base.netloc):
            return link
        return join(self.config.base_url, parts.path + (f"?{parts.query}" if parts.query else ""))

    async def _get(self, url: str, what: str) -> dict[str, Any]:
        data = await call_json(self.http, self.name, "GET", url, what=what, headers=self._headers())
        if not isinstance(data, dict):
            raise ProviderUnavailableError(self.name, f"{what}: the answer is not a JSON object")
        return data

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        if not request.audio_url:
            raise UnusableBodyError("aitronos needs an audio_url")
        options = dict(request.options)
        organization = options.pop("organization_id", None) or self.config.extra.get("organization_id")
        if not organization:
            raise InvalidRequestError(
                "aitronos needs an organization_id: set CALLBOARD_AITRONOS_ORGANIZATION_ID"
                " or pass the organization_id option"
            )
        transcription = _dict(options.pop("transcription_options", None))
        language = options.pop("language", None) or transcription.get("language") or "en"
        transcription = {**transcription, "audio_url": request.audio_url, "language": str(language)}
        body = {
            **options,
            "organization_id": str(organization),
            "transcription_options": transcription,
            "webhook": {"url": request.callback_url, "events": EVENTS},
        }
        data = await call_json(
            self.http,
            self.name,
            "POST",
            join(self.config.base_url, "/v1/audio/transcribe"),
            what="create transcription",
            headers=self._headers(),
            json=body,
        )
        tid = _dict(_dict(data).get("data")).get("transcription_id")
        if not isinstance(tid, str) or not tid:
            raise ProviderUnavailableError(
                self.name, "create transcription: the answer has no data.transcription_id"
            )
        return SubmitResult(provider_job_id=tid)

    async def poll(self, job: JobView) -> Transcript | None:
        if job.provider_job_id is None:
            raise InvalidRequestError("the job has no Aitronos transcription id to poll")
        return await self._state(job.provider_job_id)
