"""Realistic provider callbacks for `callboard simulate`, one small builder per provider.

Like `stripe trigger`, `callboard simulate PROVIDER` sends a running instance the callback a
provider would send when a job ends: the same method, headers (the per-job credential Callboard
registered on submission, or the provider's Standard Webhooks signature), query string and body,
with shapes as documented in `docs/providers.md` and read by `receiver/providers/`. The content
is a short two-speaker support call, in the provider's own units and field names.

Full-result providers (`generic`, `gladia`, `deepgram`, `speechmatics`) carry the transcript in
the callback. The others send a thin notice and processing fetches the result from the provider's
API (`fetches`), so a simulated job there only completes when `CALLBOARD_<P>_BASE_URL` knows the
made-up provider job id (a sandbox or a fake provider).

The command itself, which records the job and sends the request, is `receiver/cli/simulate.py`.
"""

from __future__ import annotations

import base64
import secrets
import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec

from receiver.exceptions import CallboardError
from receiver.model import iso
from receiver.providers.assemblyai import AUTH_HEADER as ASSEMBLYAI_AUTH_HEADER
from receiver.providers.deepgram import CALLBACK_USER as DEEPGRAM_USER
from routes.signing import secret_key, signature_header

STATUSES = ("completed", "failed")
#: the call every simulated transcript holds: (speaker, start in seconds, text)
SCRIPT = (
    (0, 0.32, "Thanks for calling Contoso support, this is Maya."),
    (1, 3.48, "Hi Maya, I'd like to check on my order."),
)
LANGUAGE = "en"
AUDIO_URL = "https://storage.example.com/simulated/call-0001.mp3"
WORD_SECONDS, GAP_SECONDS = 0.31, 0.04


class SimulationError(CallboardError):
    """The simulated callback could not be delivered, or the instance refused it."""

    code = "simulation_failed"


@dataclass(frozen=True)
class Simulation:
    """What a builder needs: the job as Callboard knows it and the credentials it handed out."""

    provider: str
    status: str  # completed | failed
    job_id: str
    provider_job_id: str
    url: str  # the callback URL on the target: per-job, or the provider-level one (recall)
    job_secret: str  # the per-job secret Callboard registers on submission
    webhook_secret: str | None  # the provider-level signing secret (recall, generic)
    metadata: Mapping[str, str]
    now: float

    @property
    def ok(self) -> bool:
        return self.status == "completed"


@dataclass(frozen=True)
class SimulatedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    #: processing fetches the result from the provider's API (the callback is a notice only)
    fetches: bool = False


@dataclass(frozen=True)
class SpokenWord:
    speaker: int
    text: str
    start: float
    end: float
    confidence: float


def spoken_words() -> list[SpokenWord]:
    """The script as timed words with punctuation attached, deterministic confidences."""
    words = []
    for speaker, start, text in SCRIPT:
        at = start
        for i, token in enumerate(text.split()):
            confidence = round(0.99 - (len(token) % 5) * 0.015 - (i % 3) * 0.005, 3)
            words.append(SpokenWord(speaker, token, round(at, 2), round(at + WORD_SECONDS, 2), confidence))
            at += WORD_SECONDS + GAP_SECONDS
    return words


def turns() -> list[list[SpokenWord]]:
    """The words grouped by speaker turn, in order."""
    groups: list[list[SpokenWord]] = []
    for word in spoken_words():
        if not groups or groups[-1][0].speaker != word.speaker:
            groups.append([])
        groups[-1].append(word)
    return groups


def _mean(words: list[SpokenWord]) -> float:
    return round(sum(w.confidence for w in words) / len(words), 4)


def duration() -> float:
    return round(spoken_words()[-1].end + 0.6, 2)


def full_text() -> str:
    return " ".join(text for _, _, text in SCRIPT)


def new_provider_job_id(provider: str) -> str:
    """A made-up id in the format the provider uses."""
    alnum = string.ascii_letters + string.digits
    if provider == "generic":
        return "transcript_" + secrets.token_hex(6)
    if provider == "revai":
        return "".join(secrets.choice(alnum) for _ in range(12))
    if provider == "speechmatics":
        return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(10))
    if provider == "aitronos":
        return "trans_" + uuid.uuid4().hex
    return str(uuid.uuid4())


def _json(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _signed(sim: Simulation, body: bytes, secret: str) -> dict[str, str]:
    """Standard Webhooks headers, as Svix (Recall) and the generic API send them."""
    msg_id = "msg_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
    ts = int(sim.now)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header([secret_key(secret)], msg_id, ts, body),
    }


# -- one builder per provider ---------------------------------------------------------------------


def _turn(words: list[SpokenWord], text_key: str = "text") -> dict[str, Any]:
    text = " ".join(w.text for w in words)
    return {"speaker": words[0].speaker, "start": words[0].start, "end": words[-1].end, text_key: text,
            "confidence": _mean(words)}  # fmt: skip


def _timed(word: SpokenWord, text: str | None = None) -> dict[str, Any]:
    return {"word": word.text if text is None else text, "start": word.start, "end": word.end,
            "confidence": word.confidence}  # fmt: skip


def generic(sim: Simulation) -> SimulatedRequest:
    data: dict[str, Any] = {
        "id": sim.provider_job_id,
        "object": "transcript",
        "status": sim.status,
        "created": int(sim.now) - 42,
        "language": None,
        "duration": None,
        "text": "",
        "utterances": [],
        "words": [],
        "metadata": dict(sim.metadata),
        "error": {"code": "audio_unreachable", "message": "The audio URL could not be fetched."},
    }
    if sim.ok:
        data.update(
            language=LANGUAGE,
            duration=duration(),
            text=full_text(),
            utterances=[_turn(t) for t in turns()],
            words=[{**_timed(w), "speaker": w.speaker} for w in spoken_words()],
            error=None,
        )
    body = _json({"type": f"transcript.{sim.status}", "timestamp": iso(sim.now), "data": data})
    headers = {"content-type": "application/json"}
    if sim.webhook_secret:
        headers.update(_signed(sim, body, sim.webhook_secret))
    return SimulatedRequest("POST", sim.url, headers, body)


def assemblyai(sim: Simulation) -> SimulatedRequest:
    body = _json({"transcript_id": sim.provider_job_id, "status": "completed" if sim.ok else "error"})
    headers = {"content-type": "application/json", "accept": "*/*", ASSEMBLYAI_AUTH_HEADER: sim.job_secret}
    return SimulatedRequest("POST", sim.url, headers, body, fetches=True)


def recall(sim: Simulation) -> SimulatedRequest:
    if not sim.webhook_secret:
        raise SimulationError(
            "CALLBOARD_RECALL_WEBHOOK_SECRET is not set: Recall callbacks are signed with the workspace"
            " secret, so set it to the same whsec_… value the instance uses"
        )
    code = "done" if sim.ok else "failed"
    status = {
        "code": code,
        "sub_code": None if sim.ok else "provider_connection_failed",
        "updated_at": iso(sim.now),
    }
    transcript = {"id": sim.provider_job_id, "metadata": {**sim.metadata, "callboard_job_id": sim.job_id}}
    data = {
        "data": status,
        "transcript": transcript,
        "recording": {"id": str(uuid.uuid4()), "metadata": {}},
        "bot": {"id": str(uuid.uuid4()), "metadata": {}},
    }
    body = _json({"event": f"transcript.{code}", "data": data})
    headers = {"content-type": "application/json", **_signed(sim, body, sim.webhook_secret)}
    return SimulatedRequest("POST", sim.url, headers, body, fetches=sim.ok)


def gladia(sim: Simulation) -> SimulatedRequest:
    body: dict[str, Any] = {"id": sim.provider_job_id}
    if sim.ok:
        utterances = [
            {**_turn(t), "channel": 0, "language": LANGUAGE,
             "words": [_timed(w, (" " if i else "") + w.text) for i, w in enumerate(t)]}
            for t in turns()
        ]  # fmt: skip
        metadata = {"audio_duration": duration(), "number_of_distinct_channels": 1,
                    "billing_time": duration(), "transcription_time": 2.41}  # fmt: skip
        transcription = {"full_transcript": full_text(), "languages": [LANGUAGE], "utterances": utterances}
        body.update(
            event="transcription.success", payload={"metadata": metadata, "transcription": transcription}
        )
    else:
        body.update(
            event="transcription.error", error={"code": 400, "message": "Audio file could not be downloaded"}
        )
    body["custom_metadata"] = {**sim.metadata, "callboard_job_id": sim.job_id}
    return SimulatedRequest("POST", sim.url, {"content-type": "application/json"}, _json(body))


def deepgram(sim: Simulation) -> SimulatedRequest:
    credentials = base64.b64encode(f"{DEEPGRAM_USER}:{sim.job_secret}".encode()).decode()
    headers = {"content-type": "application/json", "authorization": f"Basic {credentials}"}
    if not sim.ok:
        error = {
            "err_code": "REMOTE_CONTENT_ERROR",
            "err_msg": "Could not download the media: the remote server answered 404 Not Found.",
            "request_id": sim.provider_job_id,
        }
        return SimulatedRequest("POST", sim.url, headers, _json(error))
    words = [
        {**_timed(w, w.text.strip(",.!?").lower()), "speaker": w.speaker, "speaker_confidence": 0.7,
         "punctuated_word": w.text}
        for w in spoken_words()
    ]  # fmt: skip
    utterances = [{**_turn(t, "transcript"), "id": str(uuid.uuid4()), "channel": 0} for t in turns()]
    model = str(uuid.uuid4())
    extra = {**sim.metadata, "callboard_job_id": sim.job_id, "callback_secret": sim.job_secret}
    body = {
        "metadata": {
            "transaction_key": "deprecated",
            "request_id": sim.provider_job_id,
            "sha256": secrets.token_hex(32),
            "created": iso(sim.now),
            "duration": duration(),
            "channels": 1,
            "models": [model],
            "model_info": {
                model: {"name": "general-nova-3", "version": "2025-04-17.21547", "arch": "nova-3"}
            },
            "extra": extra,
        },
        "results": {
            "channels": [
                {
                    "detected_language": LANGUAGE,
                    "alternatives": [
                        {"transcript": full_text(), "confidence": _mean(spoken_words()), "words": words}
                    ],
                }
            ],
            "utterances": utterances,
        },
    }
    return SimulatedRequest("POST", sim.url, headers, _json(body))


def revai(sim: Simulation) -> SimulatedRequest:
    job: dict[str, Any] = {
        "id": sim.provider_job_id,
        "status": "transcribed" if sim.ok else "failed",
        "created_on": iso(sim.now - 75),
        "completed_on": iso(sim.now),
        "source_config": {"url": AUDIO_URL},
        "metadata": sim.job_id,
        "type": "async",
        "transcriber": "machine",
    }
    if sim.ok:
        job.update(duration_seconds=duration(), language=LANGUAGE)
    else:
        job.update(
            failure="download_failure",
            failure_detail="Failed to download media file. Please check your url and file type",
        )
    headers = {"content-type": "application/json", "authorization": f"Bearer {sim.job_secret}"}
    return SimulatedRequest("POST", sim.url, headers, _json({"job": job}), fetches=sim.ok)


def speechmatics(sim: Simulation) -> SimulatedRequest:
    outcome = "success" if sim.ok else "error"
    query = urlencode({"id": sim.provider_job_id, "status": outcome})
    url = f"{sim.url}{'&' if '?' in sim.url else '?'}{query}"
    headers = {"user-agent": "Speechmatics-API/2.0", "authorization": f"Bearer {sim.job_secret}"}
    if not sim.ok:  # contents ["transcript"]: on error there is nothing to send
        return SimulatedRequest("POST", url, headers, b"")
    results: list[dict[str, Any]] = []
    for w in spoken_words():
        word, punct = w.text.rstrip(",.!?"), w.text[len(w.text.rstrip(",.!?")) :]
        alt = {"confidence": w.confidence, "language": LANGUAGE, "speaker": f"S{w.speaker + 1}"}
        results.append(
            {
                "type": "word",
                "start_time": w.start,
                "end_time": w.end,
                "alternatives": [{"content": word, **alt}],
            }
        )
        if punct:
            results.append(
                {
                    "type": "punctuation",
                    "start_time": w.end,
                    "end_time": w.end,
                    "is_eos": punct != ",",
                    "attaches_to": "previous",
                    "alternatives": [{"content": punct, **alt, "confidence": 1.0}],
                }
            )
    body = {
        "format": "2.9",
        "job": {
            "id": sim.provider_job_id,
            "created_at": iso(sim.now - 40),
            "data_name": "call-0001.mp3",
            "duration": round(duration()),
            "tracking": {"reference": sim.job_id, "details": dict(sim.metadata)},
        },
        "metadata": {
            "created_at": iso(sim.now),
            "type": "transcription",
            "transcription_config": {"language": LANGUAGE, "diarization": "speaker"},
            "language_pack_info": {"word_delimiter": " ", "writing_direction": "left-to-right"},
        },
        "results": results,
    }
    return SimulatedRequest("POST", url, {**headers, "content-type": "application/json"}, _json(body))


def aitronos(sim: Simulation) -> SimulatedRequest:
    body = {
        "event": f"transcription.{sim.status}",
        "timestamp": iso(sim.now),
        "data": {"transcription_id": sim.provider_job_id, "status": sim.status},
    }
    return SimulatedRequest("POST", sim.url, {"content-type": "application/json"}, _json(body), fetches=True)


BUILDERS: dict[str, Callable[[Simulation], SimulatedRequest]] = {
    "generic": generic,
    "assemblyai": assemblyai,
    "recall": recall,
    "gladia": gladia,
    "deepgram": deepgram,
    "revai": revai,
    "speechmatics": speechmatics,
    "aitronos": aitronos,
}


def build(sim: Simulation) -> SimulatedRequest:
    try:
        builder = BUILDERS[sim.provider]
    except KeyError:
        raise SimulationError(f"no simulated callback for provider {sim.provider!r}") from None
    return builder(sim)
