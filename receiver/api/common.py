"""Helpers shared by the admin API: JSON responses, errors, query parsing, request bodies."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from receiver.exceptions import InvalidRequestError, UnusableBodyError
from receiver.service import Service
from receiver.timeparse import parse_time

T = TypeVar("T")

MAX_LIMIT = 500


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status_code, media_type="application/json")


def error_response(status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def query_time(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{name}: {exc}") from None


def query_limit(request: Request, default: int = 50) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return default
    try:
        limit = int(value)
    except ValueError:
        raise InvalidRequestError("limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def page_response(items: list[Any], next_cursor: str | None) -> Response:
    return json_response(
        {"object": "list", "data": items, "has_more": next_cursor is not None, "next_cursor": next_cursor}
    )


async def decode_body(request: Request, kind: type[T], *, max_bytes: int = 1_048_576) -> T:
    """The request body as `kind` (a msgspec Struct); 422 with the reason when it does not fit."""
    body = await request.body()
    if len(body) > max_bytes:
        raise UnusableBodyError(f"the body is larger than {max_bytes} bytes")
    if not body.strip():
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise UnusableBodyError(f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise UnusableBodyError(f"the body is not valid JSON: {exc}") from None
