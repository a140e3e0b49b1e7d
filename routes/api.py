"""Admin API routes of the `routes` package: subscriptions, deliveries, replay (filled in by issue 3)."""

from __future__ import annotations

from starlette.routing import Route


def routes() -> list[Route]:
    return []
