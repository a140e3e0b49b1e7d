"""`recall`: Recall.ai async transcripts of a recording, announced by Svix-signed workspace webhooks.

Recall has no per-request callback URL. A job is started with
`POST /api/v1/recording/{recording_id}/create_transcript/` and Recall later sends
`transcript.processing|done|failed|deleted` to the endpoints configured in its dashboard, which
must include Callboard's provider-level URL `POST /callbacks/recall`. Those webhooks go through
Svix and are signed with the workspace verification secret (`whsec_…`,
`CALLBOARD_RECALL_WEBHOOK_SECRET`; several secrets may be given, separated by spaces or commas,
while one rotates). Both header families are accepted: `webhook-id/-timestamp/-signature` (workspace
secrets) and `svix-id/-timestamp/-signature` (legacy per-endpoint secrets), with ±5 minutes of
clock tolerance as the reference libraries. Without a configured secret every callback is refused:
an unsigned endpoint would let anyone finish jobs.

The webhook carries no content. For `transcript.done` the artifact is fetched
(`GET /api/v1/transcript/{id}/`), then its pre-signed `data.download_url` (no auth header): a
JSON array of participant segments with word times in seconds (`relative`). The download has no
confidence, language or duration: those stay null, except the language, which is taken from the
provider config of the artifact (`language_code` / `language`) when one was set.

Correlation: the transcript's `metadata.callboard_job_id` (set on submit) is the job hint; a
transcript Callboard did not start (made in the dashboard or by another system) is adopted as a
new job (`adopts_unknown_jobs`). Other workspace events (`recording.done`, `bot.*`) are accepted and
ignored, because answering 4xx would make Svix retry and eventually disable the endpoint.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from receiver.exceptions import (
    InvalidRequestError,
    ProviderUnavailableError,
    UnusableBodyError,
    VerificationError,
)
from receiver.model import Transcript, Utterance, Word, completed, failed, iso_or_none, seconds
from receiver.providers.base import (
    Identity,
    Inbound,
    JobView,
    Provider,
    ProviderConfig,
    StoredCallback,
    SubmitRequest,
    SubmitResult,
)
from receiver.providers.http import call_json, call_object, join
from receiver.verify import verify_standard_webhook

JOB_KEY = "callboard_job_id"
#: the keys of Recall's `provider` object (one of them selects the transcription provider)
PROVIDER_KEYS = frozenset(
    {
        "recallai_async",
        "assembly_ai_async",
        "deepgram_async",
        "gladia_v1_async",
        "gladia_v2_async",
        "rev_async",
        "speechmatics_async",
        "aws_transcribe_async",
        "google_speech_v2_async",
        "elevenlabs_async",
    }
)
DEFAULT_PROVIDER: dict[str, Any] = {"recallai_async": {}}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def user_metadata(metadata: Any) -> dict[str, Any]:
    """The metadata Recall echoes back, without Callboard's own correlation key."""
    return {k: v for k, v in _dict(metadata).items() if k != JOB_KEY}


def speaker_of(participant: Any) -> str | None:
    """`participant.name`, else its id as a string (speech before the bot joined has no name)."""
    p = _dict(participant)
    name = p.get("name")
    if isinstance(name, str) and name:
        return name
    pid = p.get("id")
    return None if pid is None or pid == "" else str(pid)


def _relative(stamp: Any) -> float | None:
    return seconds(_dict(stamp).get("relative"))


def normalize(
    transcript_id: str,
    segments: Any,
    *,
    language: str | None = None,
    completed_at: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Transcript:
    """A download (list of participant segments) → Transcript, segments in time order.

    One utterance per segment; the text is the segments' texts joined with spaces.
    """
    if not isinstance(segments, list):
        raise UnusableBodyError("the Recall transcript download is not a list of participant segments")
    parsed: list[tuple[str | None, list[Word]]] = []
    for segment in segments:
        seg = _dict(segment)
        speaker = speaker_of(seg.get("participant"))
        words = [
            Word(
                word=str(w.get("text", "")).strip(),
                start=_relative(w.get("start_timestamp")),
                end=_relative(w.get("end_timestamp")),
                confidence=None,
                speaker=speaker,
            )
            for w in seg.get("words") or []
            if isinstance(w, dict) and str(w.get("text", "")).strip()
        ]
        if words:
            parsed.append((speaker, words))
    parsed.sort(key=lambda sw: sw[1][0].start if sw[1][0].start is not None else float("inf"))
    utterances = [
        Utterance(
            speaker=speaker,
            start=words[0].start,
            end=words[-1].end if words[-1].end is not None else words[-1].start,
            text=" ".join(w.word for w in words),
            confidence=None,
        )
        for speaker, words in parsed
    ]
    return completed(
        "recall",
        transcript_id,
        text=" ".join(u.text for u in utterances),
        language=language,
        completed_at=completed_at,
        words=[w for _, words in parsed for w in words],
        utterances=utterances,
        metadata=metadata or {},
    )


def requested_language(artifact: dict[str, Any]) -> str | None:
    """The language set in the artifact's provider config, if any (the download has none)."""
    for config in _dict(artifact.get("provider")).values():
        for key in ("language_code", "language"):
            value = _dict(config).get(key)
            if isinstance(value, str) and value:
                return value
    return None


def failure(transcript_id: str, sub_code: Any, metadata: Any, what: str = "failed") -> Transcript:
    code = sub_code if isinstance(sub_code, str) and sub_code else f"transcript_{what}"
    detail = f" ({sub_code})" if isinstance(sub_code, str) and sub_code else ""
    return failed(
        "recall",
        transcript_id,
        code,
        f"Recall reports the transcript {what}{detail}",
        metadata=user_metadata(metadata),
    )


class Recall(Provider):
    name = "recall"
    provider_level = True
    per_job_callbacks = False
    adopts_unknown_jobs = True

    def __init__(
        self, config: ProviderConfig, http: httpx.AsyncClient, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(config, http)
        self.clock = clock

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Token {self.config.api_key or ''}"}

    # -- receive time ---------------------------------------------------------------------------

    def authenticate(self, inbound: Inbound) -> None:
        if not self.config.webhook_secret:
            raise VerificationError(
                "CALLBOARD_RECALL_WEBHOOK_SECRET is not set: Recall callbacks cannot be verified"
            )
        secrets = [s for s in re.split(r"[\s,]+", self.config.webhook_secret) if s]
        verify_standard_webhook(inbound.body, inbound.headers, secrets=secrets, now=self.clock())

    def identify(self, inbound: Inbound) -> Identity:
        body = inbound.json_object()
        event = body.get("event")
        if not isinstance(event, str) or not event:
            raise UnusableBodyError('expected a Recall webhook {"event", "data"}')
        transcript = _dict(_dict(body.get("data")).get("transcript"))
        tid = transcript.get("id")
        if event.startswith("transcript.") and not (isinstance(tid, str) and tid):
            raise UnusableBodyError(f"a Recall {event} webhook without data.transcript.id")
        hint = _dict(transcript.get("metadata")).get(JOB_KEY)
        msg_id = inbound.headers.get("webhook-id") or inbound.headers.get("svix-id")
        return Identity(
            dedupe_key=msg_id or f"{event}:{tid}",
            provider_job_id=tid if event.startswith("transcript.") else None,
            job_hint=hint if isinstance(hint, str) and hint else None,
        )

    # -- processing time ------------------------------------------------------------------------

    async def resolve(self, callback: StoredCallback, job: JobView) -> Transcript | None:
        body = callback.inbound().json_object()
        event = body.get("event")
        data = _dict(body.get("data"))
        transcript = _dict(data.get("transcript"))
        tid = str(transcript.get("id") or job.provider_job_id or "")
        if event == "transcript.failed":
            return failure(tid, _dict(data.get("data")).get("sub_code"), transcript.get("metadata"))
        if event != "transcript.done":
            return None  # processing, deleted, and other workspace events are acknowledged only
        result = await self._from_artifact(await self._artifact(tid))
        if result is None:  # the webhook said done but the API does not agree yet: try again later
            raise ProviderUnavailableError(self.name, "the transcript artifact is not done yet")
        return result

    async def _artifact(self, transcript_id: str) -> dict[str, Any]:
        return await call_object(
            self.http,
            self.name,
            "GET",
            join(self.config.base_url, f"/api/v1/transcript/{quote(transcript_id, safe='')}/"),
            what="fetch transcript",
            headers=self._headers(),
        )

    async def _from_artifact(self, artifact: dict[str, Any]) -> Transcript | None:
        """The transcript of a terminal artifact; None while it is processing."""
        tid = str(artifact.get("id", ""))
        status = _dict(artifact.get("status"))
        code = status.get("code")
        if code == "failed":
            return failure(tid, status.get("sub_code"), artifact.get("metadata"))
        if code == "deleted":
            return failure(tid, None, artifact.get("metadata"), what="deleted")
        if code != "done":
            return None
        url = _dict(artifact.get("data")).get("download_url")
        if not isinstance(url, str) or not url:
            raise ProviderUnavailableError(self.name, "the done transcript has no download_url yet")
        segments = await call_json(self.http, self.name, "GET", url, what="download transcript")
        return normalize(
            tid,
            segments,
            language=requested_language(artifact),
            completed_at=iso_or_none(status.get("updated_at")),
            metadata=user_metadata(artifact.get("metadata")),
        )

    # -- submission and reconciliation ----------------------------------------------------------

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        if not request.recording_id:
            raise UnusableBodyError("recall needs a recording_id")
        options = dict(request.options)
        provider = options.pop("provider", None)
        if provider is None:
            provider = {k: options.pop(k) for k in list(options) if k in PROVIDER_KEYS}
        if not isinstance(provider, dict):
            raise UnusableBodyError(
                'recall option "provider" must be an object such as {"deepgram_async": {}}'
            )
        metadata = {str(k): str(v) for k, v in request.metadata.items()}
        body = {
            **options,
            "provider": provider or DEFAULT_PROVIDER,
            "metadata": {**metadata, JOB_KEY: request.job_id},
        }
        data = await call_json(
            self.http,
            self.name,
            "POST",
            join(
                self.config.base_url,
                f"/api/v1/recording/{quote(request.recording_id, safe='')}/create_transcript/",
            ),
            what="create transcript",
            headers=self._headers(),
            json=body,
        )
        if not isinstance(data, dict) or not data.get("id"):
            raise ProviderUnavailableError(self.name, "create transcript: the answer has no `id`")
        # nothing is registered per job: Recall calls the workspace endpoints set in its dashboard
        return SubmitResult(provider_job_id=str(data["id"]))

    async def poll(self, job: JobView) -> Transcript | None:
        if job.provider_job_id is None:
            raise InvalidRequestError("the job has no Recall transcript id to poll")
        return await self._from_artifact(await self._artifact(job.provider_job_id))
