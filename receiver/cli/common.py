"""Shared CLI plumbing: settings, running async work, output as rich tables or `--json`."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import click
import msgspec
from rich.console import Console
from rich.table import Table

from receiver.logconfig import configure_logging
from receiver.service import Service, open_service
from receiver.settings import Settings
from receiver.timeparse import parse_time

P = ParamSpec("P")
T = TypeVar("T")

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout, nothing else.")


def settings() -> Settings:
    return Settings.from_env()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def with_service(fn: Callable[[Service], Awaitable[T]]) -> T:
    """Open the service (store, provider client) for one CLI command and run `fn` with it.

    Logging goes to stderr at WARNING: stdout holds the command's output only (one JSON document
    with `--json`), and a failure is the one line `main()` prints, not a log line beside it.
    """
    cfg = settings()
    configure_logging(cfg.log_format, level=logging.WARNING)

    async def go() -> T:
        async with open_service(cfg) as svc:
            return await fn(svc)

    return run(go())


def print_json(data: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(data), indent=2).decode() + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if not rows:
        console.print(f"[dim]{empty}[/dim]")
        return
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def time_option(name: str, help_text: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            return parse_time(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(name, callback=convert, help=help_text + " (ISO 8601, epoch seconds, or 2h / 7d ago)")


def parse_pairs(pairs: Sequence[str], *, what: str, json_values: bool) -> dict[str, Any]:
    """`K=V` pairs → dict. With `json_values`, V is parsed as JSON when it is (`true`, `3`, `{"a":1}`)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=what)
        parsed: Any = value
        if json_values:
            try:
                parsed = msgspec.json.decode(value.encode())
            except msgspec.DecodeError:
                parsed = value
        result[key] = parsed
    return result


def short_time(iso_text: str | None) -> str:
    return (iso_text or "").replace("T", " ").replace("Z", "")
