"""The `callboard` command line.

It reads the same configuration as the server and talks to the database directly, so it works
while the server is down. User mistakes get one readable line on stderr and exit code 1 (2 for
usage errors), never a traceback.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

import click

from receiver import __version__
from receiver.cli import deliveries, events, jobs, prune, replay, serve, simulate, subscriptions
from receiver.exceptions import CallboardError
from receiver.settings import SettingsError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="callboard")
def cli() -> None:
    """Callboard: verified provider callbacks in, one transcript model, signed webhooks out."""


for module in (serve, jobs, events, subscriptions, deliveries, replay, simulate, prune):
    module.register(cli)


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="callboard", standalone_mode=True)
    except SettingsError as exc:
        click.echo(f"callboard: configuration error: {exc}", err=True)
        sys.exit(2)
    except CallboardError as exc:
        click.echo(f"callboard: {exc.message}", err=True)
        sys.exit(1)
    except (sqlite3.Error, OSError, ValueError) as exc:
        click.echo(f"callboard: {exc}", err=True)
        sys.exit(1)
