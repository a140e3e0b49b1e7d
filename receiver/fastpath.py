"""The callback endpoint's short way in: `POST|PUT /callbacks/{provider}[/{token}]` straight to
`callbacks.receive`, past Starlette's router and exception middleware.

Every inbound callback is a request on the hot path, and the layers between the server and the
handler (the exception middleware, the router matching each route's pattern, the endpoint and
exception wrappers, the admin-auth check) cost about 15 µs of a callback's 250 µs of CPU here
(measured in-process with `python -m bench.inprocess`). Paths are matched by the
callback routes themselves (`callbacks.ROUTES`). This middleware sits inside
`ServerErrorMiddleware`, so an unexpected error is still a logged 500; it answers the
exceptions `callbacks.receive` can raise with the same handlers the application registers for
them. Anything else (other methods, other paths, a path with more segments) goes down the
ordinary stack unchanged, which answers 404 and 405 as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from receiver import callbacks

METHODS = frozenset({"POST", "PUT"})  # those of `callbacks.ROUTES`

Handler = Callable[[Request, Exception], Awaitable[Response]]


def _match(scope: Scope) -> Scope | None:
    """What the matching route of `callbacks.ROUTES` adds to the scope (its endpoint and path
    parameters), matched by the routes themselves; None when neither matches."""
    for route in callbacks.ROUTES:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return child
    return None


def callback_path_params(path: str, root_path: str = "") -> dict[str, str] | None:
    """`{"provider": …[, "token": …]}` for a callback path (a POST to it), as the routes match it."""
    child = _match({"type": "http", "method": "POST", "path": path, "root_path": root_path})
    return None if child is None else dict(child["path_params"])


class CallbackFastPath:
    def __init__(self, app: ASGIApp, *, handlers: Mapping[type[Exception], Handler]) -> None:
        self.app = app
        self.handlers = dict(handlers)

    def _handler(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        child = _match(scope) if scope["type"] == "http" and scope["method"] in METHODS else None
        if child is None:
            await self.app(scope, receive, send)
            return
        scope.update(child)
        request = Request(scope, receive, send)
        try:
            response = await callbacks.receive(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # ServerErrorMiddleware: a logged 500
            response = await handler(request, exc)
        await response(scope, receive, send)
