"""Where end to end's time goes, read from the server's own log lines (JSON, one per line) and
from its delivery log (the attempts table).

The sink measures a callback's whole path; these split it for the callbacks that arrived in a
window (the fixed-rate step):

* stored: the handler's id for the callback (made once it is verified) to its 200, as the load
  generator read it (`acked_at`): the durable write, waiting for the group commit, and the answer;
* processed: that 200 to the callback's `callback.processed` line, written once its job's finish
  is committed: the processor's wake-up, claim, resolve and finish;
* attempted: the finish (the delivery's id is made at its start) to the end of the delivery's
  first POST (its attempt's start plus its latency): the hand-over or claim, and the POST;
* post: the POST alone, as the worker timed it.

Ids carry their creation time to the millisecond (`storage.ids.id_time`), the log lines theirs
to the microsecond, attempts theirs as stored, all on the same clock as the generator's. A
stored callback's own `callback` line and successful attempts' lines are not written at the
default level, so the 200 comes from the generator and the last two stages from the database.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from bench.stats import summarize
from storage.ids import id_time
from storage.store import Store

STAGES = ("stored", "processed", "attempted", "post")


def _at(record: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(str(record["timestamp"])).timestamp()


async def stages(
    log_path: Path, store: Store, since: float, until: float, acked_at: Mapping[str, float]
) -> dict[str, dict[str, float | None]]:
    """Each stage's summary (milliseconds) for the callbacks that arrived in [since, until];
    `acked_at`: by job id, when the generator read each callback's 200."""
    processed: dict[str, tuple[float, float]] = {}  # job → (arrival, its `callback.processed` line)
    with open(log_path, "rb") as lines:
        for line in lines:
            if not line.startswith(b"{"):
                continue
            try:
                record = msgspec.json.decode(line)
                if record.get("event") == "callback.processed" and record.get("outcome") == "finished":
                    arrival = id_time(record["callback"])
                    if since <= arrival <= until and record.get("job") in acked_at:
                        processed[record["job"]] = (arrival, _at(record))
            except (msgspec.DecodeError, ValueError, KeyError, TypeError, AttributeError):
                continue  # a line of another shape (a traceback, uvicorn's own): not one of these
    stored = [(acked_at[job] - arrival) * 1000 for job, (arrival, _) in processed.items()]
    done = [(at - acked_at[job]) * 1000 for job, (_, at) in processed.items()]
    attempted, post = await _first_posts(store, since, until)
    return {
        "stored": summarize(stored),
        "processed": summarize(done),
        "attempted": summarize(attempted),
        "post": summarize(post),
    }


async def _first_posts(store: Store, since: float, until: float) -> tuple[list[float], list[float]]:
    """For deliveries made in the window (or their callbacks' finishes): from each one's creation
    to the end of its first POST, and that POST's latency, in milliseconds."""
    async with store.db.read() as db:
        rows = await db.fetch(
            "SELECT d.id, a.attempted_at, a.latency_ms FROM deliveries d JOIN attempts a ON a.delivery_id = d.id"
            " WHERE d.created_at >= ? AND d.created_at <= ? ORDER BY a.attempted_at",
            since - 1.0,
            until + 1.0,
        )
    attempted: list[float] = []
    post: list[float] = []
    seen: set[str] = set()
    for row in rows:
        delivery, latency = str(row["id"]), float(row["latency_ms"] or 0.0)
        created = id_time(delivery)
        if delivery in seen or not since <= created <= until:
            continue
        seen.add(delivery)
        attempted.append((float(row["attempted_at"]) - created) * 1000 + latency)
        post.append(latency)
    return attempted, post
