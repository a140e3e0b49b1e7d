"""Admin authentication for `/v1/*`, as pure ASGI middleware.

With `CALLBOARD_ADMIN_TOKEN` set, a request needs `Authorization: Bearer <token>`. Without it,
only loopback clients are served, so an unconfigured instance is not an open admin API.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from receiver.api.common import error_response


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class AdminAuthMiddleware:
    def __init__(self, app: ASGIApp, *, token: str | None, prefix: str = "/v1/") -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if self.token is None:
            client = scope.get("client")
            if not _is_loopback(client[0] if client else None):
                response = error_response(
                    403,
                    "forbidden",
                    "the admin API is served to loopback clients only until CALLBOARD_ADMIN_TOKEN is set",
                )
                await response(scope, receive, send)
                return
        else:
            given = b""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    given = value
            scheme, _, credential = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(), self.token):
                response = error_response(
                    401,
                    "unauthorized",
                    "a valid admin token is required (Authorization: Bearer …)",
                    headers={"www-authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
