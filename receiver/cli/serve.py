"""`callboard serve`, `callboard worker`, `callboard migrate`."""

from __future__ import annotations

import asyncio
import signal

import click
import structlog

from receiver.cli.common import run, settings
from receiver.gc_settings import tune_for_server
from receiver.logconfig import configure_logging, log_level


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--server", type=click.Choice(["uvicorn", "hypercorn"]), default="uvicorn", show_default=True)
@click.option("--no-worker", is_flag=True, help="Serve HTTP only; run `callboard worker` for processing and delivery.")
def serve_cmd(host: str, port: int, server: str, no_worker: bool) -> None:
    """Run the HTTP service (and, unless --no-worker, processing and delivery)."""
    from receiver.app import create_app

    cfg = settings()
    configure_logging(cfg.log_format, level=log_level(cfg.log_level))
    app = create_app(cfg, run_workers=not no_worker)
    tune_for_server()
    if server == "uvicorn":
        import uvicorn

        uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=20,
                server_header=False,
            )  # fmt: skip
        ).run()
        return
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 20

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    run(main())


@click.command("worker")
def worker_cmd() -> None:
    """Process callbacks and deliver events, without serving HTTP (for scale-out)."""
    from receiver.service import open_service
    from receiver.workers import Workers

    cfg = settings()
    configure_logging(cfg.log_format, level=log_level(cfg.log_level))
    tune_for_server()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with open_service(cfg) as svc:
            tasks = Workers(svc).start(stop)
            structlog.get_logger("callboard.worker").info(
                "callboard.started", database=svc.store.db.dialect, http=False
            )
            await stop.wait()
            _, pending = await asyncio.wait(tasks, timeout=20)
            for task in pending:
                task.cancel()

    run(main())


@click.command("migrate")
def migrate_cmd() -> None:
    """Create or upgrade the database schema."""
    from storage.store import backend_for

    async def main() -> list[str]:
        backend = backend_for(settings().database_url)
        await backend.connect()
        try:
            return await backend.migrate()
        finally:
            await backend.close()

    applied = run(main())
    click.echo(f"applied: {', '.join(applied)}" if applied else "the schema is up to date")


def register(group: click.Group) -> None:
    group.add_command(serve_cmd)
    group.add_command(worker_cmd)
    group.add_command(migrate_cmd)
