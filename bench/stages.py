"""Where end to end's time goes, read from the server's own log lines (JSON, one per line).

The sink measures a callback's whole path; these split it at what the server logs, for the
callbacks that arrived in a window (the fixed-rate step):

* stored: the handler's id for the callback (made once it is verified) to its `callback` line,
  written when the 200 is: the durable write, and waiting for the group commit;
* processed: that line to its `callback.processed` line, written once its job's finish is
  committed: the processor's wake-up, claim, resolve and finish;
* attempted: the finish (the delivery's id is made at its start) to the `delivery.attempt` line,
  written once the attempt is recorded: the hand-over or claim, the POST and its record;
* post: the POST alone, as the worker timed it.

Ids carry their creation time to the millisecond (`storage.ids.id_time`), the log lines theirs
to the microsecond, on the same clock.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import msgspec

from bench.stats import summarize
from storage.ids import id_time

STAGES = ("stored", "processed", "attempted", "post")


def _at(record: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(str(record["timestamp"])).timestamp()


def stages(log_path: Path, since: float, until: float) -> dict[str, dict[str, float | None]]:
    """Each stage's summary (milliseconds) for the callbacks that arrived in [since, until]."""
    acknowledged: dict[str, float] = {}  # job → its callback's `callback` line
    processed: dict[str, tuple[float, float]] = {}  # job → (arrival, its `callback.processed` line)
    attempted: list[float] = []
    post: list[float] = []
    with open(log_path, "rb") as lines:
        for line in lines:
            if not line.startswith(b"{"):
                continue
            try:
                record = msgspec.json.decode(line)
                event = record.get("event")
                if event == "callback" and record.get("outcome") == "stored" and record.get("job"):
                    acknowledged[record["job"]] = _at(record)
                elif event == "callback.processed" and record.get("outcome") == "finished" and record.get("job"):
                    arrival = id_time(record["callback"])
                    if since <= arrival <= until:
                        processed[record["job"]] = (arrival, _at(record))
                elif event == "delivery.attempt" and record.get("delivery"):
                    finished = id_time(record["delivery"])
                    if since <= finished <= until:
                        attempted.append((_at(record) - finished) * 1000)
                        post.append(float(record.get("latency_ms") or 0.0))
            except (msgspec.DecodeError, ValueError, KeyError, TypeError, AttributeError):
                continue  # a line of another shape (a traceback, uvicorn's own): not one of these
    stored = [(acknowledged[job] - arrival) * 1000 for job, (arrival, _) in processed.items() if job in acknowledged]
    done = [(at - acknowledged[job]) * 1000 for job, (_, at) in processed.items() if job in acknowledged]
    return {
        "stored": summarize(stored),
        "processed": summarize(done),
        "attempted": summarize(attempted),
        "post": summarize(post),
    }
