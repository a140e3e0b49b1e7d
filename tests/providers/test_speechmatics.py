"""`speechmatics`: query-string outcomes, json-v2 text rebuilding, submit/resolve/poll over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from receiver.exceptions import ProviderUnavailableError, UnusableBodyError, VerificationError
from receiver.model import Utterance, Word
from receiver.providers.base import Inbound, JobView, ProviderConfig, StoredCallback, SubmitRequest
from receiver.providers.speechmatics import Speechmatics, group_utterances, join_tokens, normalize
from tests.fakes.base import fixture, running
from tests.fakes.sink import CallbackSink
from tests.fakes.speechmatics import SpeechmaticsFake

SID = "r6sr3jlzjj"
TEXT = "Thanks for calling Contoso. Hi, I need help."
WORDS = [
    Word("Thanks", 0.24, 0.52, 0.98, "S1"),
    Word("for", 0.52, 0.68, 0.97, "S1"),
    Word("calling", 0.68, 1.04, 0.95, "S1"),
    Word("Contoso", 1.04, 1.6, 0.91, "S1"),
    Word("Hi", 2.1, 2.3, 0.99, "S2"),
    Word("I", 2.42, 2.5, 0.96, "S2"),
    Word("need", 2.5, 2.72, 0.97, "S2"),
    Word("help", 2.72, 3.1, 0.93, "S2"),
]
UTTERANCES = [
    Utterance("S1", 0.24, 1.6, "Thanks for calling Contoso.", 0.9525),
    Utterance("S2", 2.1, 3.1, "Hi, I need help.", 0.9625),
]
_UNUSED_CLIENT = httpx.AsyncClient()  # pure tests never make a request with it


def adapter(http: httpx.AsyncClient = _UNUSED_CLIENT, base_url: str = "http://127.0.0.1:1") -> Speechmatics:
    return Speechmatics(ProviderConfig("speechmatics", base_url, "test-key"), http)


def word(content: str, start: float, speaker: str = "S1") -> dict[str, Any]:
    alt = {"content": content, "confidence": 0.9, "speaker": speaker}
    return {"type": "word", "start_time": start, "end_time": start + 0.1, "alternatives": [alt]}


def punct(content: str, attaches_to: str = "previous", eos: bool = False) -> dict[str, Any]:
    alt = {"content": content, "confidence": 1.0, "speaker": "S1"}
    return {"type": "punctuation", "attaches_to": attaches_to, "is_eos": eos, "alternatives": [alt]}


def job_view(provider_job_id: str | None = SID) -> JobView:
    return JobView("job_01JDSPEECHMATICS", "speechmatics", provider_job_id, {}, {}, time.time())


def stored(query: dict[str, str], body: bytes = b"") -> StoredCallback:
    return StoredCallback("cb_1", "speechmatics", "job_1", SID, "POST", {}, query, body)


# -- normalization ----------------------------------------------------------------------------


def test_normalize_json_v2() -> None:
    t = normalize(fixture("speechmatics", "transcript.json"))
    assert (t.status, t.provider, t.provider_job_id, t.text) == ("completed", "speechmatics", SID, TEXT)
    assert t.words == WORDS
    assert t.utterances == UTTERANCES
    assert (t.language, t.duration, t.confidence) == ("en", 4.0, 0.9575)
    assert (t.completed_at, t.metadata) == ("2026-11-21T10:00:41Z", {"external_id": "call-55123"})


def test_join_tokens_follows_attaches_to() -> None:
    items = [
        word("I", 0),
        word("said", 1),
        punct('"', "next"),
        word("hi", 2),
        punct('"'),
        punct(".", eos=True),
    ]
    assert join_tokens(items) == 'I said "hi".'
    assert (
        join_tokens([word("a", 0), punct("-", "both"), word("b", 1), punct("&", "none"), word("c", 2)])
        == "a-b & c"
    )
    assert join_tokens([word("東京", 0), word("です", 1), punct("。")], "") == "東京です。"


def test_utterances_split_at_sentence_ends_and_speaker_changes() -> None:
    items = [word("Yes", 0), punct(".", eos=True), word("Sure", 1), word("thing", 2), word("No", 3, "S2")]
    assert [(u.speaker, u.text) for u in group_utterances(items)] == [
        ("S1", "Yes."),
        ("S1", "Sure thing"),
        ("S2", "No"),
    ]


def test_unknown_speaker_becomes_null() -> None:
    doc = fixture("speechmatics", "transcript.json")
    for item in doc["results"]:
        item["alternatives"][0]["speaker"] = "UU"
    t = normalize(doc)
    assert {w.speaker for w in t.words} == {None}
    assert [u.text for u in t.utterances] == ["Thanks for calling Contoso.", "Hi, I need help."]


# -- authenticate / identify ------------------------------------------------------------------


def inbound(query: dict[str, str], authorization: str | None = "Bearer s3cret") -> Inbound:
    headers = {"authorization": authorization} if authorization else {}
    return Inbound("speechmatics", "POST", headers, query, b"", "job_1", "s3cret")


def test_identify_uses_the_query_string() -> None:
    identity = adapter().identify(inbound({"id": SID, "status": "success", "job": "x"}))
    assert (identity.dedupe_key, identity.provider_job_id) == (f"{SID}:success", SID)


@pytest.mark.parametrize("query", [{}, {"id": SID}, {"status": "success"}, {"id": "", "status": "error"}])
def test_identify_without_id_and_status_raises(query: dict[str, str]) -> None:
    with pytest.raises(UnusableBodyError):
        adapter().identify(inbound(query))


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic czNjcmV0"])
def test_authenticate_wrong_header_raises(authorization: str | None) -> None:
    adapter().authenticate(inbound({}))
    with pytest.raises(VerificationError):
        adapter().authenticate(inbound({}, authorization))


async def test_error_outcome_falls_back_to_the_status_when_the_api_is_unreachable() -> None:
    t = await adapter().resolve(stored({"id": SID, "status": "trim_error"}), job_view())
    assert t is not None and t.error is not None
    assert (t.status, t.error.code, t.error.message) == (
        "failed",
        "trim_error",
        "Speechmatics reports trim_error",
    )


async def test_unknown_outcome_is_ignored_and_another_job_is_refused() -> None:
    assert await adapter().resolve(stored({"id": SID, "status": "running"}), job_view()) is None
    with pytest.raises(UnusableBodyError):
        await adapter().resolve(stored({"id": "other", "status": "success"}), job_view())


# -- against the fake, over HTTP --------------------------------------------------------------


async def submit(sm: Speechmatics, sink: CallbackSink) -> str:
    request = SubmitRequest(
        "job_01JDSPEECHMATICS",
        f"{sink.url}/callbacks/speechmatics/tok",
        "s3cret",
        "https://a.example/call.mp3",
        None,
        {"language": "de", "diarization": "speaker", "translation_config": {"target_languages": ["en"]}},
        {"external_id": "call-55123"},
    )
    return (await sm.submit(request)).provider_job_id


async def test_submit_sends_a_multipart_config(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    with running(SpeechmaticsFake()) as fake:
        sid = await submit(adapter(http, fake.base_url), sink)
    config = fake.jobs[sid].request
    assert config["type"] == "transcription"
    assert config["transcription_config"] == {"language": "de", "diarization": "speaker"}
    assert config["translation_config"] == {"target_languages": ["en"]}
    assert config["fetch_data"] == {"url": "https://a.example/call.mp3"}
    assert config["notification_config"] == [
        {
            "url": f"{sink.url}/callbacks/speechmatics/tok",
            "contents": ["transcript"],
            "method": "post",
            "auth_headers": ["Authorization: Bearer s3cret"],
        }
    ]
    assert config["tracking"] == {
        "reference": "job_01JDSPEECHMATICS",
        "details": {"external_id": "call-55123"},
    }
    assert fake.requests[0].headers["content-type"].startswith("multipart/form-data")
    assert json.loads(fake.requests[0].body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]) == config


async def test_success_notification_carries_the_transcript(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    with running(SpeechmaticsFake()) as fake:
        sm = adapter(http, fake.base_url)
        sid = await submit(sm, sink)
        await fake.acallback(sid, times=2)
        received = sink.last()
        assert received.query == {"id": sid, "status": "success"}
        assert received.headers["user-agent"] == "Speechmatics-API/2.0"
        inbound_ = received.inbound("speechmatics", job_id="job_01JDSPEECHMATICS", job_secret="s3cret")
        sm.authenticate(inbound_)
        assert sm.identify(inbound_).dedupe_key == f"{sid}:success"
        before = len(fake.requests)
        t = await sm.resolve(received.stored("speechmatics", job_id="job_01JDSPEECHMATICS"), job_view(sid))
        assert len(fake.requests) == before  # the body was the transcript: nothing fetched
    assert t is not None and (t.provider_job_id, t.text, t.words, t.utterances) == (
        sid,
        TEXT,
        WORDS,
        UTTERANCES,
    )


async def test_empty_success_body_fetches_the_transcript(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    with running(SpeechmaticsFake()) as fake:
        sm = adapter(http, fake.base_url)
        sid = await submit(sm, sink)
        await fake.acallback(sid, empty_body=True)
        fake.result_failures = 1
        cb = sink.last().stored("speechmatics", job_id="job_01JDSPEECHMATICS")
        with pytest.raises(ProviderUnavailableError):
            await sm.resolve(cb, job_view(sid))
        t = await sm.resolve(cb, job_view(sid))
    assert t is not None and t.text == TEXT
    assert ("format", "json-v2") in fake.requests[-1].query


async def test_fetch_error_takes_the_message_from_the_job(
    http: httpx.AsyncClient, sink: CallbackSink
) -> None:
    with running(SpeechmaticsFake()) as fake:
        sm = adapter(http, fake.base_url)
        sid = await submit(sm, sink)
        await fake.acallback(sid, status="fetch_error")
        received = sink.last()
        t = await sm.resolve(received.stored("speechmatics", job_id="job_01JDSPEECHMATICS"), job_view(sid))
    assert received.query["status"] == "fetch_error" and received.body == b""
    assert t is not None and t.error is not None
    assert (t.error.code, t.error.message) == ("fetch_error", "unable to fetch audio: http status code 404")


async def test_poll(http: httpx.AsyncClient, sink: CallbackSink) -> None:
    with running(SpeechmaticsFake()) as fake:
        sm = adapter(http, fake.base_url)
        sid = await submit(sm, sink)
        assert await sm.poll(job_view(sid)) is None
        fake.finish(sid, "completed")
        done = await sm.poll(job_view(sid))
        fake.finish(sid, "failed")
        rejected = await sm.poll(job_view(sid))
    assert done is not None and done.words == WORDS and done.metadata == {"external_id": "call-55123"}
    assert rejected is not None and rejected.error is not None and rejected.error.code == "rejected"
