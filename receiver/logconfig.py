"""Logging: structlog, JSON lines in production, a readable console on a terminal.

`configure_logging()` is called once at startup. uvicorn's and hypercorn's stdlib loggers go
through the same renderer. Log an event name with key/values; never a secret or a raw body.

A line is logged per callback (by the handler when it is refused or a duplicate, by the processor
once it is processed; the handler's line for a stored one is debug, as are successful delivery
attempts', `CALLBOARD_LOG_LEVEL`), so the path is kept short: the timestamp is formatted once per
second (then only the microseconds), and JSON lines are encoded to bytes once. Lines logged on an
event loop are written together, `FLUSH_DELAY` seconds after the first of them (one `write()` for
all, scheduled with `call_later`), or at once when `FLUSH_BYTES` are pending: a busy process makes
a few hundred system calls a second for its log, not one per line or per pass of the loop (each
pass of a delivery drain carries only a few lines, and a write cost about as much as rendering a
line). Lines logged where no loop runs are written at once. What is pending is written at exit too.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import gc
import logging
import os
import sys
import threading
import time
from typing import IO, Any

import msgspec
import structlog

_encode = msgspec.json.Encoder().encode

FLUSH_DELAY = 0.005  # seconds a line logged on an event loop may wait for others to share its write
FLUSH_BYTES = 64 * 1024  # pending that much, write at once


def _json(obj: object, **_: object) -> str:
    return msgspec.json.encode(obj).decode()


def _json_bytes(logger: object, name: str, event_dict: Any) -> bytes:
    return _encode(event_dict)


class UTCStamper:
    """`TimeStamper(fmt="iso", utc=True)`'s `timestamp` (`2026-11-21T10:02:11.123456Z`), with the
    date and time of day formatted once per second."""

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")

    def __call__(self, logger: object, name: str, event_dict: Any) -> Any:
        now = time.time()
        second = int(now)
        cached = self._cached
        if cached[0] != second:
            cached = (second, dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
            self._cached = cached
        micro = int((now - second) * 1_000_000)
        event_dict["timestamp"] = f"{cached[1]}.{micro:06d}Z" if micro else f"{cached[1]}Z"
        return event_dict


class _Pending(threading.local):
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self.scheduled: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop `scheduled` is on


class LineWriter:
    """A structlog logger writing rendered lines (bytes or str): batched on an event loop for up to
    `FLUSH_DELAY` with one `os.write`, at once when no loop runs in the calling thread."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        try:
            self._fd: int | None = file.fileno()
            file.flush()
        except (AttributeError, OSError, ValueError):  # not a real file (a test capture): write through it
            self._fd = None
        self._pending = _Pending()
        _WRITERS.append(self)

    def msg(self, message: str | bytes) -> None:
        data = message.encode() if isinstance(message, str) else message
        data += b"\n"
        if self._fd is None:
            self._file.write(data.decode())
            self._file.flush()
            return
        pending = self._pending
        loop = asyncio._get_running_loop()
        if loop is None:
            if pending.lines:  # keep this thread's order
                self.flush()
            self._write(data)
            return
        if pending.scheduled is not None and pending.loop is not loop:  # left behind by a loop that ended
            self.flush()
        pending.lines.append(data)
        pending.size += len(data)
        if pending.size >= FLUSH_BYTES:
            self.flush()
        elif pending.scheduled is None:
            pending.scheduled, pending.loop = loop.call_later(FLUSH_DELAY, self.flush), loop

    def flush(self) -> None:
        """Write what this thread has pending."""
        pending = self._pending
        if pending.scheduled is not None:
            pending.scheduled.cancel()
            pending.scheduled = None
        if pending.lines:
            data = b"".join(pending.lines)
            pending.lines.clear()
            pending.size = 0
            self._write(data)

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


_WRITERS: list[LineWriter] = []


@atexit.register
def flush_logs() -> None:
    """Write every line this thread has pending (at exit, and where a process ends its loop
    without running exit handlers: uvicorn re-raises SIGTERM after a clean shutdown)."""
    for writer in _WRITERS:
        with contextlib.suppress(Exception):
            writer.flush()


class LineWriterFactory:
    def __init__(self, file: IO[str]) -> None:
        self._writer = LineWriter(file)

    def __call__(self, *args: object) -> LineWriter:
        return self._writer


def log_level(name: str) -> int:
    """The `logging` level of a name `CALLBOARD_LOG_LEVEL` allows ("debug", "info", …)."""
    return int(logging.getLevelName(name.upper()))


def configure_logging(fmt: str = "auto", level: int = logging.INFO) -> None:
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        UTCStamper(),
    ]
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer(serializer=_json)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer if console else _json_bytes],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=LineWriterFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(processor=renderer, foreign_pre_chain=shared))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "hypercorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # a callback's canonical line is ours: the handler's (callbacks.py) or, once stored, the processor's
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("hypercorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Called once at startup, with the application's modules imported: what exists now lives as
    # long as the process, so the cyclic collector stops scanning it. Each full collection walked
    # all of it (~50,000 objects: 10-35 ms with the event loop stopped), which was the p99 of ingest.
    gc.freeze()
