"""The API description served at `/openapi.json` (OpenAPI 3.1), kept beside the routes it describes."""

from __future__ import annotations

from typing import Any

from receiver import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


def _op(
    summary: str, *, tag: str, params: list[str] | None = None, body: bool = False, ok: str = "200"
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {}}},
            "default": {"description": "Error", "content": {"application/json": {"schema": _ERROR}}},
        },
    }
    if params:
        op["parameters"] = [{"name": p, "in": "query", "required": False, "schema": {"type": "string"}} for p in params]
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


PAGE = ["cursor", "limit"]


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/callbacks/{provider}/{token}": {
            "parameters": [_path_param("provider"), _path_param("token")],
            "post": _op("Receive a provider callback for one job", tag="callbacks", body=True),
            "put": _op("Receive a provider callback for one job (PUT)", tag="callbacks", body=True),
        },
        "/callbacks/{provider}": {
            "parameters": [_path_param("provider")],
            "post": _op("Receive a provider-level (workspace) webhook", tag="callbacks", body=True),
        },
        "/v1/jobs": {
            "post": _op("Submit a transcription job", tag="jobs", body=True, ok="201"),
            "get": _op("List jobs", tag="jobs", params=["provider", "status", "since", "until", *PAGE]),
        },
        "/v1/jobs/{job_id}": {
            "parameters": [_path_param("job_id")],
            "get": _op("A job, with its transcript", tag="jobs"),
        },
        "/v1/events": {"get": _op("List events", tag="events", params=["type", "provider", "since", "until", *PAGE])},
        "/v1/events/{event_id}": {"parameters": [_path_param("event_id")], "get": _op("An event", tag="events")},
        "/v1/events/{event_id}/replay": {
            "parameters": [_path_param("event_id")],
            "post": _op("Re-deliver one event", tag="replay", body=True),
        },
        "/v1/replay": {"post": _op("Re-deliver every event matching a filter", tag="replay", body=True)},
        "/v1/subscriptions": {
            "post": _op(
                "Create a subscription (the answer holds its secret)", tag="subscriptions", body=True, ok="201"
            ),
            "get": _op("List subscriptions", tag="subscriptions", params=PAGE),
        },
        "/v1/subscriptions/{subscription_id}": {
            "parameters": [_path_param("subscription_id")],
            "get": _op("A subscription", tag="subscriptions"),
            "patch": _op('Change a subscription; {"enabled": true} re-enables', tag="subscriptions", body=True),
            "delete": _op("Delete a subscription", tag="subscriptions"),
        },
        "/v1/subscriptions/{subscription_id}/rotate-secret": {
            "parameters": [_path_param("subscription_id")],
            "post": _op("Rotate the signing secret (the old one signs too for a grace period)", tag="subscriptions"),
        },
        "/v1/deliveries": {
            "get": _op("List deliveries", tag="deliveries", params=["event_id", "subscription_id", "status", *PAGE])
        },
        "/v1/deliveries/{delivery_id}": {
            "parameters": [_path_param("delivery_id")],
            "get": _op("A delivery with every attempt", tag="deliveries"),
        },
        "/healthz": {"get": _op("Liveness", tag="operations")},
        "/readyz": {"get": _op("Readiness: the database answers", tag="operations")},
        "/metrics": {"get": _op("Prometheus metrics", tag="operations")},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Callboard", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                            "required": ["code", "message"],
                        }
                    },
                }
            },
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"admin": []}],
    }
