"""Logging: structlog, JSON lines in production, a readable console on a terminal.

`configure_logging()` is called once at startup. uvicorn's and hypercorn's stdlib loggers go
through the same renderer. Log an event name with key/values; never a secret or a raw body.

A line is logged per callback and per delivery attempt, so the path is kept short: the timestamp
is formatted once per second (then only the microseconds), JSON lines are encoded to bytes once
and written with one `write()` each, without a lock (a line is one write; lines never interleave).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from typing import IO, Any

import msgspec
import structlog

_encode = msgspec.json.Encoder().encode


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


class LineWriter:
    """A structlog logger writing each rendered line (bytes or str) with a single `os.write`."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        try:
            self._fd: int | None = file.fileno()
            file.flush()
        except (AttributeError, OSError, ValueError):  # not a real file (a test capture): write through it
            self._fd = None

    def msg(self, message: str | bytes) -> None:
        data = message.encode() if isinstance(message, str) else message
        data += b"\n"
        if self._fd is None:
            self._file.write(data.decode())
            self._file.flush()
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


class LineWriterFactory:
    def __init__(self, file: IO[str]) -> None:
        self._writer = LineWriter(file)

    def __call__(self, *args: object) -> LineWriter:
        return self._writer


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
    logging.getLogger("uvicorn.access").disabled = True  # one canonical line per callback is ours
    logging.getLogger("hypercorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
