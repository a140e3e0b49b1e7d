"""The Starlette application: routes, error handling, and the background workers' lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver import callbacks, health
from receiver.api import deliveries, events, jobs, replay, subscriptions
from receiver.api.common import error_response, json_response
from receiver.exceptions import CallboardError
from receiver.fastpath import CallbackFastPath
from receiver.logconfig import flush_logs
from receiver.middleware import AdminAuthMiddleware
from receiver.openapi import openapi_document
from receiver.service import open_service
from receiver.settings import Settings
from receiver.workers import Workers
from storage.backend import DatabaseUnavailableError

log = structlog.get_logger("callboard.app")

SHUTDOWN_GRACE = 20.0


async def _callboard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CallboardError)
    return error_response(exc.status_code, exc.code, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _database_error(request: Request, exc: Exception) -> Response:
    log.warning("database.unavailable", error=f"{type(exc).__name__}: {exc}", path=request.url.path)
    return error_response(503, "database_unavailable", "the database is not available; try again", {"retry-after": "5"})


def _database_errors() -> list[type[Exception]]:
    errors: list[type[Exception]] = [DatabaseUnavailableError, sqlite3.OperationalError, ConnectionError, OSError]
    with contextlib.suppress(ImportError):
        import asyncpg

        errors += [asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.InterfaceError]
    return errors


async def _openapi(request: Request) -> Response:
    return json_response(openapi_document())


def routes() -> list[Route]:
    return [
        *callbacks.ROUTES,
        Route("/v1/jobs", jobs.create_job, methods=["POST"]),
        Route("/v1/jobs", jobs.list_jobs, methods=["GET"]),
        Route("/v1/jobs/{job_id}", jobs.get_job, methods=["GET"]),
        Route("/v1/events", events.list_events, methods=["GET"]),
        Route("/v1/events/{event_id}", events.get_event, methods=["GET"]),
        Route("/v1/events/{event_id}/replay", replay.replay_event, methods=["POST"]),
        Route("/v1/replay", replay.replay_filter, methods=["POST"]),
        Route("/v1/subscriptions", subscriptions.create_subscription, methods=["POST"]),
        Route("/v1/subscriptions", subscriptions.list_subscriptions, methods=["GET"]),
        Route("/v1/subscriptions/{subscription_id}", subscriptions.get_subscription, methods=["GET"]),
        Route("/v1/subscriptions/{subscription_id}", subscriptions.update_subscription, methods=["PATCH"]),
        Route("/v1/subscriptions/{subscription_id}", subscriptions.delete_subscription, methods=["DELETE"]),
        Route("/v1/subscriptions/{subscription_id}/rotate-secret", subscriptions.rotate_secret, methods=["POST"]),
        Route("/v1/deliveries", deliveries.list_deliveries, methods=["GET"]),
        Route("/v1/deliveries/{delivery_id}", deliveries.get_delivery, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", health.metrics, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
    ]


def create_app(settings: Settings, *, run_workers: bool = True) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_service(settings) as svc:
            workers = Workers(svc)
            app.state.service = svc
            app.state.workers = workers
            app.state.wake_processor = workers.processor.wake if run_workers else (lambda: None)
            stop = asyncio.Event()
            tasks = workers.start(stop) if run_workers else []
            log.info("callboard.started", database=svc.store.db.dialect, workers=run_workers)
            try:
                yield
            finally:
                stop.set()
                if tasks:
                    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                log.info("callboard.stopped")
                flush_logs()

    handlers: dict[type[Exception], object] = {CallboardError: _callboard_error, HTTPException: _http_error}
    for err in _database_errors():
        handlers[err] = _database_error
    token = str(settings.admin_token) if settings.admin_token else None
    return Starlette(
        routes=routes(),
        middleware=[
            Middleware(CallbackFastPath, handlers=handlers),  # type: ignore[arg-type]
            Middleware(AdminAuthMiddleware, token=token),
        ],
        exception_handlers=handlers,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
