"""What a provider's error answer becomes: the message stored with the callback or job."""

from __future__ import annotations

import httpx
import pytest

from receiver.exceptions import ProviderRejectedError, ProviderUnavailableError
from receiver.providers.http import ERROR_EXCERPT, check


def answer(status: int, body: bytes) -> httpx.Response:
    return httpx.Response(status, content=body, request=httpx.Request("GET", "https://api.example.com/v1/x"))


def test_an_error_answer_with_nul_bytes_becomes_storable_text() -> None:
    with pytest.raises(ProviderUnavailableError) as caught:
        check("generic", "fetch result", answer(503, b"down\x00\nfor now"))
    assert caught.value.message == "fetch result: HTTP 503 down\ufffd for now"
    assert caught.value.http_status == 503


def test_a_long_error_answer_is_cut_and_a_success_is_not_an_error() -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        check("generic", "submit", answer(400, b"x" * (ERROR_EXCERPT * 2)))
    assert caught.value.message == f"submit: HTTP 400 {'x' * ERROR_EXCERPT}…"
    check("generic", "submit", answer(201, b"\x00"))
