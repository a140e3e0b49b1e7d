"""Outbound signatures verify with the consumers' libraries, unchanged (design.md, "Outbound events")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

import pytest
import standardwebhooks
import svix.webhooks

from routes import signing

# Known-answer vector, computed once with `standardwebhooks.Webhook(SECRET).sign(...)` (1.1.0).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECOND_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
MSG_ID = "evt_01JD7ZK3Q9W5X2M8R4T6Y1B3N0"
TIMESTAMP = 1763719331
BODY = (
    b'{"type":"transcript.completed","timestamp":"2026-11-21T10:02:11Z","data":{"id":"tr_01",'
    b'"object":"transcript","status":"completed","text":"Thanks for calling Contoso."}}'
)
SIGNATURE = "v1,svzP/mTXatadKEk596GNFugSAjO5FdG3EqRtgSxMpDU="
SECOND_SIGNATURE = "v1,LBX3jT0mYCzTc+16MLoUpRGty4sOPRFNIMsPqAvuThg="

Verify = Callable[[str, bytes, dict[str, str]], object]


def _verify_standardwebhooks(secret: str, body: bytes, headers: dict[str, str]) -> object:
    return standardwebhooks.Webhook(secret).verify(body, headers)


def _verify_svix(secret: str, body: bytes, headers: dict[str, str]) -> object:
    svix.webhooks.Webhook(secret).verify(body, headers)  # returns None, raises on failure
    return None


VERIFIERS = [
    pytest.param(_verify_standardwebhooks, id="standardwebhooks"),
    pytest.param(_verify_svix, id="svix"),
]


def _headers(secrets: list[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers the delivery worker sends, built with routes.signing only."""
    ts = int(time.time()) if timestamp is None else timestamp  # the libraries check ±5 min of now
    keys = [signing.secret_key(secret) for secret in secrets]
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signing.signature_header(keys, msg_id, ts, body),
    }


def test_sign_matches_the_known_answer_vector() -> None:
    assert SIGNATURE == signing.sign(signing.secret_key(SECRET), MSG_ID, TIMESTAMP, BODY)


def test_signing_again_with_a_key_gives_the_same_answers() -> None:
    """Each signature copies the key's cached keyed state (`signing.keyed`); using it must not
    change it, so signatures interleaved across keys and bodies keep the known answers."""
    first, second = signing.secret_key(SECRET), signing.secret_key(SECOND_SECRET)
    for _ in range(3):
        assert signing.sign(first, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
        assert signing.sign(first, MSG_ID, TIMESTAMP, BODY + b" ") != SIGNATURE
        assert signing.sign(second, MSG_ID, TIMESTAMP, BODY) == SECOND_SIGNATURE
    expected = hmac.new(first, f"{MSG_ID}.{TIMESTAMP}.".encode() + BODY, hashlib.sha256).digest()
    assert signing.digest(first, MSG_ID, TIMESTAMP, BODY) == expected


def test_sign_accepts_the_timestamp_as_string_or_int() -> None:
    key = signing.secret_key(SECRET)
    assert signing.sign(key, MSG_ID, str(TIMESTAMP), BODY) == signing.sign(key, MSG_ID, TIMESTAMP, BODY)


def test_signature_header_during_rotation_lists_each_signature_space_separated() -> None:
    keys = [signing.secret_key(SECRET), signing.secret_key(SECOND_SECRET)]
    assert f"{SIGNATURE} {SECOND_SIGNATURE}" == signing.signature_header(keys, MSG_ID, TIMESTAMP, BODY)


def test_new_secret_is_whsec_prefixed_base64_of_32_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert secret != signing.new_secret()


def test_secret_key_accepts_unpadded_base64() -> None:
    raw = SECRET.removeprefix("whsec_")
    assert signing.secret_key(SECRET) == signing.secret_key("whsec_" + raw.rstrip("="))
    assert signing.secret_key(SECRET) == signing.secret_key(raw)


def test_secret_key_rejects_invalid_base64_with_value_error() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        signing.secret_key("whsec_not*base64!")


@pytest.mark.parametrize("verify", VERIFIERS)
def test_one_secret_headers_verify_with_consumer_library(verify: Verify) -> None:
    verify(SECRET, BODY, _headers([SECRET], MSG_ID, BODY))


@pytest.mark.parametrize("verify", VERIFIERS)
@pytest.mark.parametrize("secret", [pytest.param(SECRET, id="old"), pytest.param(SECOND_SECRET, id="new")])
def test_rotation_header_verifies_with_each_secret_alone(verify: Verify, secret: str) -> None:
    verify(secret, BODY, _headers([SECRET, SECOND_SECRET], MSG_ID, BODY))


@pytest.mark.parametrize("verify", VERIFIERS)
def test_fresh_secret_headers_verify_with_consumer_library(verify: Verify) -> None:
    secret = signing.new_secret()
    verify(secret, BODY, _headers([secret], "evt_fresh", BODY))


@pytest.mark.parametrize("verify", VERIFIERS)
def test_consumer_library_rejects_a_tampered_body(verify: Verify) -> None:
    headers = _headers([SECRET, SECOND_SECRET], MSG_ID, BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verify(SECRET, BODY.replace(b"Contoso", b"Fabrikam"), headers)


@pytest.mark.parametrize("verify", VERIFIERS)
def test_consumer_library_rejects_a_secret_that_did_not_sign(verify: Verify) -> None:
    headers = _headers([SECRET], MSG_ID, BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verify(SECOND_SECRET, BODY, headers)
