"""Callboard's errors, in one shallow hierarchy.

    CallboardError
    ├── VerificationError        a callback is not genuine (bad token, signature, credentials): 401
    ├── UnusableBodyError        a callback or request body cannot be used (malformed, wrong shape): 422
    ├── UnknownProviderError     no adapter by that name: 404
    ├── NotFoundError            no such job / event / subscription / delivery: 404
    ├── InvalidRequestError      a well-formed request that asks for something invalid: 400/422
    └── ProviderError            a provider API call failed
        ├── ProviderUnavailableError   timeout, connection error, 5xx, 429: try again later
        └── ProviderRejectedError      4xx: the provider refused; retrying will not help

Third-party errors (httpx) are translated into these at one boundary, `receiver.providers.http`.
"""

from __future__ import annotations


class CallboardError(Exception):
    """Root of Callboard's own errors."""

    code = "error"
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class VerificationError(CallboardError):
    """A callback failed authentication: token, signature, timestamp or credentials."""

    code = "unauthorized"
    status_code = 401


class UnusableBodyError(CallboardError):
    """A body that is not JSON, or not of the shape the endpoint takes."""

    code = "unusable_body"
    status_code = 422


class UnknownProviderError(CallboardError):
    """No provider adapter has that id."""

    code = "unknown_provider"
    status_code = 404


class NotFoundError(CallboardError):
    """The object asked for does not exist."""

    code = "not_found"
    status_code = 404


class InvalidRequestError(CallboardError):
    """The request is well-formed but asks for something Callboard cannot do."""

    code = "invalid_request"
    status_code = 400


class ProviderError(CallboardError):
    """A call to a provider's API failed. `.provider` and `.http_status` say where and how."""

    code = "provider_error"
    status_code = 502

    def __init__(self, provider: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.http_status = http_status


class ProviderUnavailableError(ProviderError):
    """The provider could not be reached or answered 5xx/429; worth retrying later."""

    code = "provider_unavailable"
    status_code = 503


class ProviderRejectedError(ProviderError):
    """The provider refused the request (4xx); retrying the same request will not help."""

    code = "provider_rejected"
    status_code = 502
