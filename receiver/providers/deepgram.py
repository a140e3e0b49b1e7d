"""`deepgram`: pre-recorded `POST /v1/listen` with `callback=`; the callback body is the full result.

Submission sends the audio URL as `{"url": …}` and everything else as query parameters:
`callback=<url>`, `callback_method=POST|PUT` (option `callback_method`), each job option (`model`,
`diarize`, `utterances`, `smart_format`, `language`, …; booleans as `true`/`false`, lists repeated),
and `extra=key:value` pairs, which Deepgram echoes in `metadata.extra`: the job's metadata,
`callboard_job_id`, and `callback_secret`. The answer is `{"request_id"}`, the only job id there is.

Authenticity (Deepgram signs nothing; `dg-token` is no longer supported since the 2026-10-27
changelog): the registered URL embeds basic-auth credentials, `https://callboard:<secret>@host/…`,
which Deepgram sends back as `Authorization: Basic …`; the password must equal the job's secret.
A result body must also carry the same secret in `metadata.extra.callback_secret`. The failure
body (`{"err_code", "err_msg", "request_id"}`, an UNCONFIRMED shape taken from the synchronous API)
has no metadata, so basic auth alone authenticates it. Deepgram retries a non-2xx answer 10 times,
30 s apart.

Port rule: Deepgram only calls back on ports 80, 443, 8080 and 8443, so `CALLBOARD_PUBLIC_URL`
must use one of them (a default `https://` or `http://` URL does). Submitting to the real API
(`*.deepgram.com`) with a callback URL on another port is refused here with a clear error rather
than left to fail at Deepgram; other base URLs (test fakes, proxies) are not checked.

There is no API to fetch a result by `request_id`, so `poll()` raises PollUnsupportedError and
the reconciler times such jobs out. The callback body holds `callback_secret`; it is stored raw
like every callback, but never copied into the transcript's metadata.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec

from receiver.exceptions import (
    InvalidRequestError,
    ProviderError,
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
    mean,
    seconds,
    speaker_label,
    utterances_from_words,
)
from receiver.providers.base import (
    Identity,
    Inbound,
    JobView,
    PollUnsupportedError,
    Provider,
    StoredCallback,
    SubmitRequest,
    SubmitResult,
)
from receiver.providers.http import call_json, join

ALLOWED_PORTS = frozenset({80, 443, 8080, 8443})
CALLBACK_USER = "callboard"
JOB_KEY, SECRET_KEY = "callboard_job_id", "callback_secret"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def with_credentials(url: str, secret: str) -> str:
    """`url` with `callboard:<secret>@` as its user info (replacing any there)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{CALLBACK_USER}:{quote(secret, safe='')}@{host}"))


def check_port(url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if port not in ALLOWED_PORTS:
        raise InvalidRequestError(
            f"Deepgram only calls back on ports 80, 443, 8080 and 8443, and the callback URL uses {port}:"
            " set CALLBOARD_PUBLIC_URL to a URL on one of those ports"
        )


def is_deepgram_api(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "deepgram.com" or host.endswith(".deepgram.com")


def query_params(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Job options as `/v1/listen` query parameters."""
    params: list[tuple[str, str]] = []
    for key, value in options.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None:
                continue
            params.append((key, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return params


def basic_password(header: str | None) -> str:
    if header is None:
        raise VerificationError("missing Authorization header (basic auth from the callback URL)")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise VerificationError("the Authorization header is not basic auth")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        raise VerificationError("malformed basic auth") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise VerificationError("malformed basic auth")
    return password


def normalize(body: dict[str, Any], *, language: str | None = None) -> Transcript:
    """A callback body (a `/v1/listen` response, or the error shape) → Transcript."""
    meta = _dict(body.get("metadata"))
    request_id = str(meta.get("request_id") or body.get("request_id") or "")
    if not isinstance(body.get("results"), dict):
        if "err_code" in body or "err_msg" in body:
            code, message = body.get("err_code"), body.get("err_msg")
            return failed(
                "deepgram",
                request_id,
                str(code or "error"),
                str(message or "Deepgram reports the request failed"),
            )
        raise UnusableBodyError("a Deepgram callback with neither `results` nor `err_code`")
    channels = [c for c in body["results"].get("channels") or [] if isinstance(c, dict)]
    alternatives = [_dict((c.get("alternatives") or [{}])[0]) for c in channels]
    words = [
        Word(
            word=str(w.get("punctuated_word") or w.get("word") or ""),
            start=seconds(w.get("start")),
            end=seconds(w.get("end")),
            confidence=w.get("confidence"),
            speaker=speaker_label(w.get("speaker")),
        )
        for alt in alternatives
        for w in alt.get("words") or []
        if isinstance(w, dict)
    ]
    if len(alternatives) > 1:  # multichannel: interleave the channels in time
        words.sort(key=lambda w: w.start if w.start is not None else float("inf"))
    utterances = [
        Utterance(
            speaker=speaker_label(u.get("speaker")),
            start=seconds(u.get("start")),
            end=seconds(u.get("end")),
            text=str(u.get("transcript") or "").strip(),
            confidence=u.get("confidence"),
        )
        for u in body["results"].get("utterances") or []
        if isinstance(u, dict)
    ] or utterances_from_words(words)
    detected = channels[0].get("detected_language") if channels else None
    return completed(
        "deepgram",
        request_id,
        text=" ".join(str(a.get("transcript") or "").strip() for a in alternatives).strip(),
        language=detected if isinstance(detected, str) and detected else language,
        duration=seconds(meta.get("duration")),
        confidence=mean(a.get("confidence") for a in alternatives),
        words=words,
        utterances=utterances,
        metadata={k: v for k, v in _dict(meta.get("extra")).items() if k not in (JOB_KEY, SECRET_KEY)},
    )


class Deepgram(Provider):
    name = "deepgram"
    uses_job_secret = True

    def authenticate(self, inbound: Inbound) -> None:
        secret = inbound.job_secret
        if secret is None:
            raise VerificationError("deepgram callbacks must come to a per-job callback URL")
        password = basic_password(inbound.headers.get("authorization"))
        if not hmac.compare_digest(password.encode(), secret.encode()):
            raise VerificationError("wrong basic auth password")
        try:
            body = msgspec.json.decode(inbound.body)
        except msgspec.DecodeError:
            return  # not JSON: identify() rejects it
        if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
            given = _dict(body["metadata"].get("extra")).get(SECRET_KEY)
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), secret.encode()):
                raise VerificationError("metadata.extra.callback_secret is missing or wrong")

    def identify(self, inbound: Inbound) -> Identity:
        body = inbound.json_object()
        meta = _dict(body.get("metadata"))
        request_id = meta.get("request_id") or body.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise UnusableBodyError("a Deepgram callback without metadata.request_id")
        if not isinstance(body.get("results"), dict) and not ("err_code" in body or "err_msg" in body):
            raise UnusableBodyError("a Deepgram callback with neither `results` nor `err_code`")
        hint = _dict(meta.get("extra")).get(JOB_KEY)
        return Identity(request_id, request_id, hint if isinstance(hint, str) else None)

    async def resolve(self, callback: StoredCallback, job: JobView) -> Transcript | None:
        body = callback.inbound().json_object()
        language = job.options.get("language")
        result = normalize(body, language=language if isinstance(language, str) else None)
        if job.provider_job_id is not None and result.provider_job_id != job.provider_job_id:
            raise UnusableBodyError(
                "the callback names another Deepgram request than the one its URL was issued for"
            )
        return result

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        if not request.audio_url:
            raise UnusableBodyError("deepgram needs an audio_url")
        options = dict(request.options)
        method = str(options.pop("callback_method", "POST")).upper()
        if method not in ("POST", "PUT"):
            raise UnusableBodyError('deepgram option "callback_method" must be POST or PUT')
        if is_deepgram_api(self.config.base_url):
            check_port(request.callback_url)
        user_extra = options.pop("extra", None)
        registered = with_credentials(request.callback_url, request.callback_secret)
        params = [("callback", registered), ("callback_method", method), *query_params(options)]
        extras = [f"{k}:{v}" for k, v in request.metadata.items() if k not in (JOB_KEY, SECRET_KEY)]
        if isinstance(user_extra, dict):
            extras += [f"{k}:{v}" for k, v in user_extra.items()]
        elif user_extra is not None:
            extras += [str(e) for e in (user_extra if isinstance(user_extra, list) else [user_extra])]
        extras += [f"{JOB_KEY}:{request.job_id}", f"{SECRET_KEY}:{request.callback_secret}"]
        params += [("extra", e) for e in extras]
        try:
            data = await call_json(
                self.http,
                self.name,
                "POST",
                join(self.config.base_url, "/v1/listen"),
                what="submit listen request",
                headers={"authorization": f"Token {self.config.api_key or ''}"},
                params=params,
                json={"url": request.audio_url},
            )
        except ProviderError as exc:  # the secret travels in the query string: keep it out of errors
            message = exc.message.replace(request.callback_secret, "[redacted]")
            message = message.replace(quote(request.callback_secret, safe=""), "[redacted]")
            raise type(exc)(self.name, message, http_status=exc.http_status) from None
        if not isinstance(data, dict) or not data.get("request_id"):
            raise ProviderUnavailableError(self.name, "submit listen request: the answer has no `request_id`")
        return SubmitResult(provider_job_id=str(data["request_id"]), registered_callback_url=registered)

    async def poll(self, job: JobView) -> Transcript | None:
        raise PollUnsupportedError("deepgram has no API to fetch a result by request_id")
