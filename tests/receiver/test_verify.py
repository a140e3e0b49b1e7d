"""Inbound Standard Webhooks / Svix verification: pure, on raw bytes, every failure a VerificationError."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import standardwebhooks

from receiver.exceptions import VerificationError
from receiver.verify import verify_standard_webhook

# The Standard Webhooks specification's own example (also svix's test vector).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


def headers(
    signature: str = SIGNATURE,
    *,
    msg_id: str = MSG_ID,
    timestamp: str = str(TIMESTAMP),
    prefix: str = "webhook",
) -> dict[str, str]:
    return {f"{prefix}-id": msg_id, f"{prefix}-timestamp": timestamp, f"{prefix}-signature": signature}


def verify(
    hdrs: dict[str, str], *, body: bytes = BODY, secrets: list[str] | None = None, now: float = TIMESTAMP
) -> str:
    return verify_standard_webhook(body, hdrs, secrets=secrets or [SECRET], now=now)


def test_known_answer_vector_verifies_and_returns_the_message_id() -> None:
    assert verify(headers()) == MSG_ID


def test_signature_made_by_the_standardwebhooks_library_verifies() -> None:
    """Signed by the reference library as a provider would, verified by ours."""
    now = datetime(2026, 11, 21, 10, 2, 11, tzinfo=UTC)
    body = b'{"type":"transcript.completed","data":{"id":"tr_1","status":"completed"}}'
    signature = standardwebhooks.Webhook(OTHER_SECRET).sign("msg_2", now, body.decode())
    hdrs = headers(signature, msg_id="msg_2", timestamp=str(int(now.timestamp())))
    assert verify(hdrs, body=body, secrets=[OTHER_SECRET], now=now.timestamp()) == "msg_2"


def test_svix_prefixed_headers_verify() -> None:
    assert verify(headers(prefix="svix")) == MSG_ID


def test_one_matching_signature_among_several_is_enough() -> None:
    """A sender rotating its secret sends several signatures; unknown versions are skipped."""
    other = standardwebhooks.Webhook(OTHER_SECRET).sign(
        MSG_ID, datetime.fromtimestamp(TIMESTAMP, UTC), BODY.decode()
    )
    listed = f"v2,abc v1,{base64.b64encode(b'x' * 32).decode()} {other} {SIGNATURE}"
    assert verify(headers(listed)) == MSG_ID
    assert verify(headers(f"{SIGNATURE} {other}"), secrets=[OTHER_SECRET]) == MSG_ID


def test_any_of_several_configured_secrets_verifies() -> None:
    assert verify(headers(), secrets=[OTHER_SECRET, SECRET]) == MSG_ID


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamp_within_five_minutes_either_side_verifies(offset: int) -> None:
    assert verify(headers(), now=TIMESTAMP + offset) == MSG_ID


def test_timestamp_older_than_five_minutes_is_refused() -> None:
    with pytest.raises(VerificationError, match="too old"):
        verify(headers(), now=TIMESTAMP + 301)


def test_timestamp_more_than_five_minutes_ahead_is_refused() -> None:
    with pytest.raises(VerificationError, match="too new"):
        verify(headers(), now=TIMESTAMP - 301)


def test_changed_body_is_refused() -> None:
    with pytest.raises(VerificationError, match="no matching"):
        verify(headers(), body=BODY.replace(b"2432232314", b"2432232315"))


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(VerificationError, match="no matching"):
        verify(headers(), secrets=[OTHER_SECRET])


def test_signature_for_another_message_id_is_refused() -> None:
    with pytest.raises(VerificationError):
        verify(headers(msg_id="msg_other"))


@pytest.mark.parametrize(
    "hdrs",
    [
        pytest.param({}, id="no-headers"),
        pytest.param({"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP)}, id="no-signature"),
        pytest.param({"webhook-id": MSG_ID, "webhook-signature": SIGNATURE}, id="no-timestamp"),
        pytest.param({"webhook-timestamp": str(TIMESTAMP), "webhook-signature": SIGNATURE}, id="no-id"),
        pytest.param(headers(msg_id=""), id="empty-id"),
        pytest.param(headers(""), id="empty-signature"),
        pytest.param(headers(timestamp=""), id="empty-timestamp"),
        pytest.param(headers("v1,!!!not base64!!!"), id="signature-not-base64"),
        pytest.param(headers("v1,Zm9v="), id="signature-bad-padding"),
        pytest.param(headers("v1,"), id="signature-empty-after-version"),
        pytest.param(headers("v1"), id="signature-no-comma"),
        pytest.param(headers(SIGNATURE.replace("v1,", "v2,")), id="signature-other-version-only"),
        pytest.param(headers("v1,gÖhM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), id="signature-non-ascii"),
        pytest.param(headers("   "), id="signature-blank"),
        pytest.param(headers(timestamp="abc"), id="timestamp-letters"),
        pytest.param(headers(timestamp="1614265330.5"), id="timestamp-float"),
        pytest.param(headers(timestamp="1e9"), id="timestamp-exponent"),
        pytest.param(headers(timestamp="9" * 400), id="timestamp-huge"),
        pytest.param(headers(timestamp="-1"), id="timestamp-negative"),
        pytest.param(headers(timestamp="١٦١٤٢٦٥٣٣٠"), id="timestamp-arabic-digits"),
        pytest.param(headers(timestamp="1614265330\x00"), id="timestamp-nul"),
        pytest.param(headers(msg_id="msg_ü\udcff"), id="id-lone-surrogate"),
    ],
)
def test_malformed_input_raises_verification_error_never_value_error(hdrs: dict[str, str]) -> None:
    with pytest.raises(VerificationError):
        verify(hdrs)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("whsec_%%%not-base64%%%", id="not-base64"),
        pytest.param("whsec_ünïcode", id="non-ascii"),
    ],
)
def test_invalid_configured_secret_raises_verification_error(secret: str) -> None:
    with pytest.raises(VerificationError):
        verify(headers(), secrets=[secret])


def test_no_configured_secret_verifies_nothing() -> None:
    with pytest.raises(VerificationError):
        verify_standard_webhook(BODY, headers(), secrets=[], now=TIMESTAMP)
