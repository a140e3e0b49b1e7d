"""End to end through a real `callboard serve`: the `generic` provider's full-result callbacks."""

from __future__ import annotations

import httpx

from tests.fakes.generic import GenericFake
from tests.harness import CallboardProcess


def submit(cb: CallboardProcess, **metadata: str) -> dict:
    response = cb.http.post(
        "/v1/jobs",
        json={"provider": "generic", "audio_url": "https://example.com/a.wav", "metadata": metadata,
              "options": {"diarize": True}},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_submitted_job_completes_with_one_event(callboard: CallboardProcess, generic_fake: GenericFake) -> None:
    job = submit(callboard, external_id="call-1")
    fake_job = generic_fake.jobs[job["provider_job_id"]]
    assert fake_job.callback_url.startswith(f"{callboard.url}/callbacks/generic/")
    assert fake_job.options == {"diarize": True}

    [response] = generic_fake.callback(job["provider_job_id"])
    assert response.status_code == 200
    assert response.json()["duplicate"] is False
    assert response.json()["id"].startswith("cb_")

    done = callboard.wait_job(job["id"], "completed")
    transcript = done["transcript"]
    assert transcript["status"] == "completed"
    assert transcript["provider"] == "generic"
    assert transcript["provider_job_id"] == job["provider_job_id"]
    assert transcript["job_id"] == job["id"]
    assert transcript["id"].startswith("tr_")
    assert transcript["text"]
    assert transcript["metadata"]["external_id"] == "call-1"
    events = callboard.events(provider="generic")
    assert [e["job_id"] for e in events] == [job["id"]]
    assert events[0]["type"] == "transcript.completed"
    assert events[0]["data"] == transcript


def test_repeated_callback_is_a_duplicate_and_makes_no_second_event(
    callboard: CallboardProcess, generic_fake: GenericFake
) -> None:
    job = submit(callboard)
    first, second, third = generic_fake.callback(job["provider_job_id"], times=3)
    assert first.json()["duplicate"] is False
    assert second.json() == {"id": first.json()["id"], "duplicate": True}
    assert third.json()["duplicate"] is True
    callboard.wait_job(job["id"], "completed")
    assert len(callboard.events(provider="generic")) == 1


def test_failed_transcript_records_failed_event(callboard: CallboardProcess, generic_fake: GenericFake) -> None:
    job = submit(callboard)
    generic_fake.callback(job["provider_job_id"], status="failed")
    done = callboard.wait_job(job["id"], "failed")
    assert done["transcript"]["text"] == ""
    assert done["transcript"]["error"]["message"]
    assert done["error"] == done["transcript"]["error"]
    [event] = callboard.events(type="transcript.failed")
    assert event["job_id"] == job["id"]


def test_thin_callback_fetches_the_transcript(callboard: CallboardProcess, generic_fake: GenericFake) -> None:
    job = submit(callboard)
    generic_fake.result_failures = 2  # the provider's API is down for a while; the callback stays stored
    [response] = generic_fake.callback(job["provider_job_id"], thin=True)
    assert response.status_code == 200
    done = callboard.wait_job(job["id"], "completed", timeout=30)
    assert done["transcript"]["text"]
    fetches = [r for r in generic_fake.requests if r.method == "GET"]
    assert len(fetches) >= 3


def test_bare_transcript_object_is_accepted(callboard: CallboardProcess, generic_fake: GenericFake) -> None:
    job = submit(callboard)
    [response] = generic_fake.callback(job["provider_job_id"], bare=True)
    assert response.status_code == 200, response.text
    callboard.wait_job(job["id"], "completed")


def test_bad_callbacks_get_clear_errors_and_store_nothing(
    callboard: CallboardProcess, generic_fake: GenericFake
) -> None:
    job = submit(callboard)
    url = generic_fake.jobs[job["provider_job_id"]].callback_url
    req = generic_fake.callback_request(generic_fake.finish(job["provider_job_id"]), "completed")
    token = url.rsplit("/", 1)[1]

    def post(target: str, content: bytes = req.content, headers: dict | None = None) -> httpx.Response:
        return httpx.post(target, content=content, headers=req.headers if headers is None else headers)

    middle = url[-6:-4]  # inside the signature (its last character is partly padding)
    tampered = post(url[:-6] + ("AA" if middle != "AA" else "BB") + url[-4:])
    assert tampered.status_code == 401
    assert tampered.json()["error"]["code"] == "unauthorized"
    other_provider = post(f"{callboard.url}/callbacks/assemblyai/{token}")
    assert other_provider.status_code == 401
    assert "another provider" in other_provider.json()["error"]["message"]
    bad_signature = post(url, headers={**req.headers, "webhook-signature": "v1,AAAA"})
    assert bad_signature.status_code == 401
    changed_body = post(url, content=req.content.replace(b'"completed"', b'"failed"', 1))
    assert changed_body.status_code == 401
    unknown_provider = post(f"{callboard.url}/callbacks/nosuch/{token}")
    assert unknown_provider.status_code == 404
    assert unknown_provider.json()["error"]["code"] == "unknown_provider"
    huge = httpx.post(url, content=b"x" * 2_000_000, headers=req.headers)
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "body_too_large"
    assert len(callboard.events()) == 0
    assert callboard.job(job["id"])["status"] == "submitted"
    # the genuine one still works afterwards
    assert post(url).status_code == 200
    callboard.wait_job(job["id"], "completed")


def test_malformed_json_with_valid_signature_is_422(tmp_path, database_url: str, generic_fake: GenericFake) -> None:
    with CallboardProcess(tmp_path, database_url=database_url, fakes={"generic": generic_fake}) as cb:
        job = submit(cb)
        fake_job = generic_fake.jobs[job["provider_job_id"]]
        from routes.signing import secret_key, signature_header

        body = b'{"type": "transcript.completed", "data": {'
        import time

        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": "msg_bad",
            "webhook-timestamp": str(ts),
            "webhook-signature": signature_header([secret_key(generic_fake.webhook_secret)], "msg_bad", ts, body),
        }
        response = httpx.post(fake_job.callback_url, content=body, headers=headers)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "unusable_body"
