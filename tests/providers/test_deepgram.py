"""`deepgram`: basic auth + `extra` secret, full-result callbacks, normalization, submit over HTTP."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from receiver.exceptions import (
    InvalidRequestError,
    ProviderRejectedError,
    UnusableBodyError,
    VerificationError,
)
from receiver.model import Utterance, Word
from receiver.providers.base import (
    Inbound,
    JobView,
    PollUnsupportedError,
    ProviderConfig,
    StoredCallback,
    SubmitRequest,
)
from receiver.providers.deepgram import Deepgram, check_port, normalize, query_params, with_credentials
from tests.fakes.base import fixture, fixture_bytes, running
from tests.fakes.deepgram import DeepgramFake
from tests.fakes.sink import CallbackSink

RID = "b4f6a2c1-8d3e-4f5a-9b7c-1e2d3f4a5b6c"
SECRET = "dg-cb-secret-7Qx2"  # the one in the fixtures
TEXT = "Thanks for calling Contoso. Hi, I need help."
WORDS = [
    Word("Thanks", 0.24, 0.52, 0.98, "0"),
    Word("for", 0.52, 0.68, 0.97, "0"),
    Word("calling", 0.68, 1.04, 0.95, "0"),
    Word("Contoso.", 1.04, 1.6, 0.91, "0"),
    Word("Hi,", 2.1, 2.3, 0.99, "1"),
    Word("I", 2.42, 2.5, 0.96, "1"),
    Word("need", 2.5, 2.72, 0.97, "1"),
    Word("help.", 2.72, 3.1, 0.93, "1"),
]
UTTERANCES = [
    Utterance("0", 0.24, 1.6, "Thanks for calling Contoso.", 0.9525),
    Utterance("1", 2.1, 3.1, "Hi, I need help.", 0.9625),
]
_UNUSED_CLIENT = httpx.AsyncClient()  # pure tests never make a request with it


def adapter(http: httpx.AsyncClient = _UNUSED_CLIENT, base_url: str = "http://deepgram.invalid") -> Deepgram:
    return Deepgram(ProviderConfig("deepgram", base_url, "test-key"), http)


def basic(password: str, user: str = "callboard") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def inbound(body: bytes, authorization: str | None = None, secret: str | None = SECRET) -> Inbound:
    headers = {"authorization": authorization if authorization is not None else basic(SECRET)}
    return Inbound("deepgram", "POST", headers, {}, body, "job_01JDDEEPGRAM", secret)


def job_view(provider_job_id: str | None = RID, options: dict[str, object] | None = None) -> JobView:
    return JobView("job_01JDDEEPGRAM", "deepgram", provider_job_id, options or {}, {}, time.time())


# -- normalization ----------------------------------------------------------------------------


def test_normalize_full_result() -> None:
    t = normalize(fixture("deepgram", "callback_success.json"))
    assert (t.status, t.provider, t.provider_job_id, t.text) == ("completed", "deepgram", RID, TEXT)
    assert t.words == WORDS
    assert t.utterances == UTTERANCES
    assert (t.language, t.duration, t.confidence) == ("en", 3.5, 0.9961)
    assert t.metadata == {"external_id": "call-55123"}  # never the callback secret


def test_normalize_error_body() -> None:
    t = normalize(fixture("deepgram", "callback_error.json"))
    assert (t.status, t.provider_job_id, t.text) == ("failed", RID, "")
    assert t.error is not None and t.error.code == "REMOTE_CONTENT_ERROR"
    assert t.error.message.startswith("Could not download the media")


def test_normalize_without_utterances_or_detection_derives_them() -> None:
    body = fixture("deepgram", "callback_success.json")
    del body["results"]["utterances"], body["results"]["channels"][0]["detected_language"]
    t = normalize(body, language="en-US")
    assert t.language == "en-US"
    assert [(u.speaker, u.text) for u in t.utterances] == [
        ("0", "Thanks for calling Contoso."),
        ("1", "Hi, I need help."),
    ]


def test_normalize_multichannel_joins_channels_in_time_order() -> None:
    body = fixture("deepgram", "callback_success.json")
    alt = body["results"]["channels"][0]["alternatives"][0]
    first = {"transcript": "Thanks for calling Contoso.", "confidence": 0.9, "words": alt["words"][:4]}
    second = {"transcript": "Hi, I need help.", "confidence": 0.8, "words": alt["words"][4:]}
    body["results"]["channels"] = [{"alternatives": [second]}, {"alternatives": [first]}]
    t = normalize(body)
    assert t.text == "Hi, I need help. Thanks for calling Contoso."
    assert [w.word for w in t.words][:2] == ["Thanks", "for"]
    assert t.confidence == 0.85


def test_normalize_empty_transcript_is_completed() -> None:
    body = fixture("deepgram", "callback_success.json")
    body["results"] = {"channels": [{"alternatives": [{"transcript": "", "confidence": 0, "words": []}]}]}
    t = normalize(body)
    assert (t.status, t.text, t.words, t.utterances) == ("completed", "", [], [])


def test_normalize_unusable_body_raises() -> None:
    with pytest.raises(UnusableBodyError):
        normalize({"metadata": {"request_id": RID}})


# -- authenticate / identify ------------------------------------------------------------------


def test_authenticate_accepts_matching_basic_auth_and_extra_secret() -> None:
    adapter().authenticate(inbound(fixture_bytes("deepgram", "callback_success.json")))


def test_authenticate_error_body_needs_basic_auth_only() -> None:
    adapter().authenticate(inbound(fixture_bytes("deepgram", "callback_error.json")))


@pytest.mark.parametrize(
    ("authorization", "body"),
    [
        pytest.param(basic("wrong"), "callback_success.json", id="wrong-password"),
        pytest.param("", "callback_success.json", id="empty-header"),
        pytest.param(f"Bearer {SECRET}", "callback_success.json", id="not-basic"),
        pytest.param("Basic !!!notbase64", "callback_success.json", id="bad-base64"),
        pytest.param(
            "Basic " + base64.b64encode(SECRET.encode()).decode(), "callback_success.json", id="no-colon"
        ),
        pytest.param(basic("wrong"), "callback_error.json", id="error-body-wrong-password"),
    ],
)
def test_authenticate_bad_basic_auth_raises(authorization: str, body: str) -> None:
    with pytest.raises(VerificationError):
        adapter().authenticate(inbound(fixture_bytes("deepgram", body), authorization))


def test_authenticate_missing_header_or_job_secret_raises() -> None:
    body = fixture_bytes("deepgram", "callback_success.json")
    with pytest.raises(VerificationError):
        adapter().authenticate(Inbound("deepgram", "POST", {}, {}, body, "job_1", SECRET))
    with pytest.raises(VerificationError):
        adapter().authenticate(inbound(body, secret=None))


@pytest.mark.parametrize("extra_secret", [None, "someone-else"])
def test_authenticate_extra_secret_missing_or_wrong_raises(extra_secret: str | None) -> None:
    body = fixture("deepgram", "callback_success.json")
    if extra_secret is None:
        del body["metadata"]["extra"]["callback_secret"]
    else:
        body["metadata"]["extra"]["callback_secret"] = extra_secret
    with pytest.raises(VerificationError, match="callback_secret"):
        adapter().authenticate(inbound(httpx.Request("POST", "/", json=body).content))


def test_identify_result_and_error() -> None:
    ok = adapter().identify(inbound(fixture_bytes("deepgram", "callback_success.json")))
    assert (ok.dedupe_key, ok.provider_job_id, ok.job_hint) == (RID, RID, "job_01JDDEEPGRAM")
    error = adapter().identify(inbound(fixture_bytes("deepgram", "callback_error.json")))
    assert (error.dedupe_key, error.job_hint) == (RID, None)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"[1]", id="not-object"),
        pytest.param(b'{"results": {}}', id="no-request-id"),
        pytest.param(b'{"metadata": {"request_id": "x"}}', id="no-results"),
    ],
)
def test_identify_malformed_raises(body: bytes) -> None:
    with pytest.raises(UnusableBodyError):
        adapter().identify(inbound(body))


async def test_resolve_refuses_another_request_id_and_poll_is_unsupported() -> None:
    cb = StoredCallback(
        "cb_1", "deepgram", "job_1", RID, "POST", {}, {}, fixture_bytes("deepgram", "callback_success.json")
    )
    with pytest.raises(UnusableBodyError):
        await adapter().resolve(cb, job_view("another"))
    with pytest.raises(PollUnsupportedError):
        await adapter().poll(job_view())


# -- submission helpers -----------------------------------------------------------------------


def test_with_credentials_and_query_params() -> None:
    assert with_credentials("https://cb.example.com/callbacks/deepgram/t", "s/3") == (
        "https://callboard:s%2F3@cb.example.com/callbacks/deepgram/t"
    )
    assert with_credentials("http://old:x@h:8080/p?q=1", "s") == "http://callboard:s@h:8080/p?q=1"
    assert query_params({"diarize": True, "punctuate": False, "keyterm": ["a", "b"], "x": None, "n": 2}) == [
        ("diarize", "true"),
        ("punctuate", "false"),
        ("keyterm", "a"),
        ("keyterm", "b"),
        ("n", "2"),
    ]


@pytest.mark.parametrize("url", ["https://h/p", "http://h/p", "https://h:8443/p", "http://h:8080/p"])
def test_check_port_accepts_deepgram_ports(url: str) -> None:
    check_port(url)


async def test_submit_to_the_real_api_with_a_bad_port_fails_early() -> None:
    request = SubmitRequest("job_1", "http://127.0.0.1:8000/cb/t", "s", "https://a/b.mp3", None, {}, {})
    with pytest.raises(InvalidRequestError, match="CALLBOARD_PUBLIC_URL"):
        await adapter(base_url="https://api.deepgram.com").submit(request)


# -- against the fake, over HTTP --------------------------------------------------------------


def submit_request(sink: CallbackSink, secret: str = "s3cret-XyZ", **options: object) -> SubmitRequest:
    return SubmitRequest(
        "job_01JDDEEPGRAM",
        f"{sink.url}/callbacks/deepgram/tok",
        secret,
        "https://a.example/call.mp3",
        None,
        {"model": "nova-3", "diarize": True, "utterances": True, **options},
        {"external_id": "call-55123"},
    )


async def test_round_trip_with_basic_auth_from_the_url(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    with running(DeepgramFake()) as fake:
        deepgram = adapter(http, fake.base_url)
        result = await deepgram.submit(submit_request(sink, callback_method="put"))
        rid = result.provider_job_id
        host = sink.url.removeprefix("http://")
        assert result.registered_callback_url == f"http://callboard:s3cret-XyZ@{host}/callbacks/deepgram/tok"
        query = fake.requests[0].query
        assert ("callback", result.registered_callback_url) in query
        assert ("callback_method", "PUT") in query and ("diarize", "true") in query
        extras = [v for k, v in query if k == "extra"]
        assert extras == [
            "external_id:call-55123",
            "callboard_job_id:job_01JDDEEPGRAM",
            "callback_secret:s3cret-XyZ",
        ]
        assert fake.requests[0].headers["authorization"] == "Token test-key"
        await fake.acallback(rid)
        received = sink.last()
        assert received.method == "PUT" and received.path == "/callbacks/deepgram/tok"
        assert received.headers["authorization"] == basic("s3cret-XyZ")
        inbound_ = received.inbound("deepgram", job_id="job_01JDDEEPGRAM", job_secret="s3cret-XyZ")
        deepgram.authenticate(inbound_)
        with pytest.raises(VerificationError):
            deepgram.authenticate(received.inbound("deepgram", job_id="job_01JDDEEPGRAM", job_secret="other"))
        assert deepgram.identify(inbound_).provider_job_id == rid
        t = await deepgram.resolve(received.stored("deepgram", job_id="job_01JDDEEPGRAM"), job_view(rid))
    assert t is not None and (t.provider_job_id, t.text, t.words, t.utterances) == (
        rid,
        TEXT,
        WORDS,
        UTTERANCES,
    )
    assert t.metadata == {"external_id": "call-55123"}


async def test_failed_request_calls_back_with_the_error_shape(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    with running(DeepgramFake()) as fake:
        deepgram = adapter(http, fake.base_url)
        rid = (await deepgram.submit(submit_request(sink))).provider_job_id
        await fake.acallback(rid, status="failed")
        received = sink.last()
        deepgram.authenticate(
            received.inbound("deepgram", job_id="job_01JDDEEPGRAM", job_secret="s3cret-XyZ")
        )
        t = await deepgram.resolve(received.stored("deepgram", job_id="job_01JDDEEPGRAM"), job_view(rid))
        await fake.acallback(rid, empty_body=True)
        with pytest.raises(UnusableBodyError):
            deepgram.identify(
                sink.last().inbound("deepgram", job_id="job_01JDDEEPGRAM", job_secret="s3cret-XyZ")
            )
    assert t is not None and t.status == "failed" and t.error is not None
    assert t.error.code == "REMOTE_CONTENT_ERROR"


async def test_provider_errors_never_carry_the_secret(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    fake = DeepgramFake()
    fake.enforce_ports = True
    with running(fake):
        with pytest.raises(ProviderRejectedError) as caught:
            await adapter(http, fake.base_url).submit(submit_request(sink, secret="top/secret"))
    assert "Invalid callback URL" in caught.value.message
    assert "top" not in caught.value.message and "secret" not in str(caught.value).replace("[redacted]", "")
