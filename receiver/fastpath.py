"""The callback endpoint's short way in: `POST|PUT /callbacks/{provider}[/{token}]` straight to
`callbacks.receive`, past Starlette's router and exception middleware.

Every inbound callback is a request on the hot path, and the layers between the server and the
handler (the exception middleware, the router matching each route's pattern, the endpoint and
exception wrappers, the admin-auth check) cost about 15 µs of a callback's 250 µs of CPU here
(measured in-process with `python -m bench.inprocess`). This middleware sits inside
`ServerErrorMiddleware`, so an unexpected error is still a logged 500; it answers the
exceptions `callbacks.receive` can raise with the same handlers the application registers for
them. Anything else (other methods, other paths, a path with more segments) goes down the
ordinary stack unchanged, which answers 404 and 405 as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from receiver import callbacks

PREFIX = "/callbacks/"
METHODS = frozenset({"POST", "PUT"})

Handler = Callable[[Request, Exception], Awaitable[Response]]


def callback_path_params(path: str, root_path: str = "") -> dict[str, str] | None:
    """`{"provider": …[, "token": …]}` for a callback path, as the routes `/callbacks/{provider}`
    and `/callbacks/{provider}/{token}` match it (non-empty segments, no more of them); else None.
    A `root_path` the server was given is not part of the route, as in Starlette's routing."""
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    if not path.startswith(PREFIX):
        return None
    parts = path[len(PREFIX) :].split("/")
    if len(parts) > 2 or not all(parts):
        return None
    if len(parts) == 1:
        return {"provider": parts[0]}
    return {"provider": parts[0], "token": parts[1]}


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
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        params = callback_path_params(scope["path"], scope.get("root_path", ""))
        if params is None:
            await self.app(scope, receive, send)
            return
        scope["path_params"] = params
        request = Request(scope, receive, send)
        try:
            response = await callbacks.receive(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # ServerErrorMiddleware: a logged 500
            response = await handler(request, exc)
        await response(scope, receive, send)
