"""Crash safety: SIGKILL during a burst of callbacks loses nothing that was acknowledged."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.base import CallbackRequest
from tests.fakes.generic import GenericFake
from tests.harness import CallboardProcess, wait_until

JOBS = 150
KILL_AFTER = 50  # acknowledged callbacks before the SIGKILL
SENDERS = 16


def send(req: CallbackRequest) -> httpx.Response | None:
    """POST one callback as the provider would; None when the server was gone (not acknowledged)."""
    try:
        return httpx.request(req.method, req.url, headers=req.headers, content=req.content, timeout=10.0)
    except httpx.TransportError:
        return None


def completed_jobs(cb: CallboardProcess) -> set[str]:
    page = cb.http.get("/v1/jobs", params={"status": "completed", "limit": "500"}).json()
    return {j["id"] for j in page["data"]}


def events_by_job(cb: CallboardProcess) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for event in cb.events():
        found.setdefault(event["job_id"], []).append(event["id"])
    return found


def test_sigkill_during_callback_burst_keeps_every_acknowledged_callback(
    tmp_path: Path, database_url: str, generic_fake: GenericFake
) -> None:
    """Fire 150 signed callbacks from 16 threads and SIGKILL the server once 50 are acknowledged.

    After a restart on the same database every acknowledged job completes with exactly one
    event; re-sending every callback (as providers retry) creates nothing for the acknowledged
    ones and at most the one missing event for the others.
    """
    env = {"CALLBOARD_PROCESSING_LEASE": "1"}  # a callback claimed when the process dies is retaken soon
    fakes = {"generic": generic_fake}
    with CallboardProcess(tmp_path, database_url=database_url, fakes=fakes, env=env) as cb:
        def create(i: int) -> tuple[str, str]:
            body = {"provider": "generic", "audio_url": f"https://example.com/{i}.wav"}
            response = httpx.post(f"{cb.url}/v1/jobs", json=body, timeout=30.0)
            assert response.status_code == 201, response.text
            return response.json()["provider_job_id"], response.json()["id"]

        with ThreadPoolExecutor(SENDERS) as pool:
            jobs = dict(pool.map(create, range(JOBS)))  # provider job id → our job id
        requests = {
            pjid: generic_fake.callback_request(generic_fake.finish(pjid), "completed") for pjid in jobs
        }

        acked: set[str] = set()
        lock = threading.Lock()

        def fire(pjid: str) -> None:
            response = send(requests[pjid])
            if response is None:
                return
            assert response.status_code == 200, response.text
            with lock:
                acked.add(jobs[pjid])
                if len(acked) == KILL_AFTER:
                    assert cb.proc is not None
                    cb.proc.kill()  # SIGKILL while the other senders are still in flight

        with ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(fire, jobs))
        assert cb.proc is not None
        assert cb.proc.wait(timeout=10) == -9  # SIGKILL
        assert KILL_AFTER <= len(acked) < JOBS

        cb.start()  # same database file, same port
        wait_until(lambda: acked <= completed_jobs(cb), timeout=30, what="every acknowledged job to complete")
        before = events_by_job(cb)
        for job_id in acked:
            assert len(before[job_id]) == 1, job_id
        assert all(len(ids) == 1 for ids in before.values())

        # the providers retry everything: acknowledged ones are duplicates, the rest complete once
        with ThreadPoolExecutor(SENDERS) as pool:
            retried: list[Any] = list(pool.map(send, requests.values()))
        assert all(r is not None and r.status_code == 200 for r in retried)
        for pjid, response in zip(requests, retried, strict=True):
            if jobs[pjid] in acked:
                assert response.json()["duplicate"] is True
        wait_until(lambda: len(completed_jobs(cb)) == JOBS, timeout=30, what="every job to complete")
        after = events_by_job(cb)
        assert set(after) == set(jobs.values())
        assert all(len(ids) == 1 for ids in after.values())
        assert {job_id: after[job_id] for job_id in before} == before
