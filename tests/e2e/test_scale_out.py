"""Scale-out on PostgreSQL: two receivers (`serve --no-worker`) and two workers on one database.

1,000 callbacks are spread over both receivers with provider retries of the same callbacks mixed
in; two subscribers take every event. The run proves every subscriber got every event, no job has
two events, nothing is left pending, and reports how many deliveries were repeated (only a lease
expiry may repeat one). Then the same with one worker killed by SIGKILL midway.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.tokens import Tokens
from routes.signing import new_secret, secret_key, signature_header
from storage.ids import new_id
from storage.store import open_store
from tests.databases import postgres_database
from tests.harness import CallboardProcess, wait_until
from tests.subscribers import Subscriber, running_subscriber

CALLBACKS = 1000
RETRIES = 250  # provider retries of callbacks already sent, mixed in
SECRET_KEY = "scale-out-secret-key"


def _callback_body(provider_job_id: str) -> bytes:
    return (
        b'{"type":"transcript.completed","timestamp":"2026-11-21T10:00:00Z","data":{"id":"'
        + provider_job_id.encode()
        + b'","object":"transcript","status":"completed","language":"en","duration":3.5,'
        b'"text":"Thanks for calling.","words":[],"utterances":[],"metadata":{}}}'
    )


async def _create_jobs(url: str, n: int) -> list[tuple[str, str]]:
    """(job id, provider job id) pairs, written straight to the database (what submission would do)."""
    jobs = [(new_id("job"), f"transcript_{i:05d}") for i in range(n)]
    now = time.time()
    async with open_store(url) as store, store.db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO jobs (id, provider, provider_job_id, status, audio_url, options, metadata, created_at,"
            " updated_at, reconcile_at) VALUES (?, 'generic', ?, 'submitted', 'https://example.com/a.wav', '{}', ?,"
            " ?, ?, ?)",
            [(job_id, pjid, f'{{"n": "{i}"}}', now, now, now + 3600) for i, (job_id, pjid) in enumerate(jobs)],
        )
    return jobs


async def _counts(url: str) -> dict[str, Any]:
    async with open_store(url, migrate=False) as store, store.db.read() as db:
        rows = await db.fetch(
            "SELECT (SELECT COUNT(*) FROM events) AS events,"
            " (SELECT COUNT(DISTINCT job_id) FROM events) AS jobs_with_events,"
            " (SELECT COUNT(*) FROM callbacks WHERE status = 'pending') AS pending_callbacks,"
            " (SELECT COUNT(*) FROM deliveries WHERE status <> 'succeeded') AS unfinished_deliveries,"
            " (SELECT COUNT(*) FROM deliveries) AS deliveries"
        )
    return dict(rows[0])


def _send_all(receivers: list[CallboardProcess], jobs: list[tuple[str, str]], webhook_secret: str) -> list[int]:
    tokens = Tokens(SECRET_KEY)
    key = secret_key(webhook_secret)
    sends = list(range(len(jobs))) + random.Random(7).sample(range(len(jobs)), RETRIES)
    random.Random(11).shuffle(sends)

    local = threading.local()

    def send(i: int) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=10)
        job_id, provider_job_id = jobs[i]
        body = _callback_body(provider_job_id)
        ts = int(time.time())
        msg_id = f"msg_{provider_job_id}"
        receiver = receivers[i % len(receivers)] if random.random() < 0.5 else receivers[(i + 1) % len(receivers)]
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": signature_header([key], msg_id, ts, body),
        }
        url = f"{receiver.url}/callbacks/generic/{tokens.make(job_id, 'generic')}"
        for _ in range(20):  # a provider retries 5xx; 200 is the only acknowledgement
            try:
                status = client.post(url, content=body, headers=headers).status_code
            except httpx.TransportError:
                status = 0
            if status == 200:
                return status
            time.sleep(0.2)
        return status

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(send, sends))


def _run(tmp_path: Path, *, kill_a_worker: bool) -> None:
    with postgres_database() as url, running_subscriber() as sub_a, running_subscriber() as sub_b:
        webhook_secret = new_secret()
        env = {"CALLBOARD_SECRET_KEY": SECRET_KEY, "CALLBOARD_GENERIC_WEBHOOK_SECRET": webhook_secret,
               "CALLBOARD_DELIVERY_TIMEOUT": "2", "CALLBOARD_PROCESSING_LEASE": "5"}  # fmt: skip
        jobs = asyncio.run(_create_jobs(url, CALLBACKS))

        def proc(name: str, **kw: Any) -> CallboardProcess:
            d = tmp_path / name
            d.mkdir()
            return CallboardProcess(d, database_url=url, env=env, **kw)

        receivers = [proc(f"r{i}", args=("--no-worker",)) for i in range(2)]
        workers = [proc(f"w{i}", command="worker") for i in range(2)]
        try:
            for p in (*receivers, *workers):
                p.start()
            for sub in (sub_a, sub_b):
                receivers[0].cli_json("subscriptions", "add", sub.url)
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=1) as bg:
                sending = bg.submit(_send_all, receivers, jobs, webhook_secret)
                if kill_a_worker:
                    wait_until(lambda: len(set(sub_a.webhook_ids())) > CALLBACKS // 4, timeout=60, what="a quarter")
                    workers[0].kill()
                statuses = sending.result(timeout=180)
            sent_at = time.monotonic()
            assert statuses.count(200) == len(statuses), "every callback is acknowledged (after provider retries)"

            def everyone_has_everything(sub: Subscriber) -> bool:
                return len(set(sub.webhook_ids())) == CALLBACKS

            wait_until(lambda: everyone_has_everything(sub_a) and everyone_has_everything(sub_b), timeout=120,
                       interval=0.5, what="both subscribers to receive every event")  # fmt: skip
            wait_until(lambda: asyncio.run(_counts(url))["unfinished_deliveries"] == 0, timeout=60, what="deliveries")
            counts = asyncio.run(_counts(url))
            print(f"\nsent in {sent_at - started:.1f} s, all delivered after {time.monotonic() - started:.1f} s")
            assert counts["events"] == CALLBACKS
            assert counts["jobs_with_events"] == CALLBACKS, "no job was processed twice"
            assert counts["pending_callbacks"] == 0
            assert counts["deliveries"] == 2 * CALLBACKS
            repeated = sum(len(s.webhook_ids()) - len(set(s.webhook_ids())) for s in (sub_a, sub_b))
            print(f"\nscale-out (kill={kill_a_worker}): {CALLBACKS} events, {len(statuses)} callbacks sent, "
                  f"{repeated} repeated deliveries")  # fmt: skip
            if not kill_a_worker:
                assert repeated == 0, "without a crash no delivery repeats"
            for sub in (sub_a, sub_b):
                ids = sub.webhook_ids()
                assert all(i.startswith("evt_") for i in ids)
        finally:
            for p in (*receivers, *workers):
                p.__exit__(None, None, None)


@pytest.mark.parametrize("kill_a_worker", [False, True], ids=["steady", "worker-sigkilled"])
def test_receivers_and_workers_share_one_postgres_database(tmp_path: Path, kill_a_worker: bool) -> None:
    _run(tmp_path, kill_a_worker=kill_a_worker)
