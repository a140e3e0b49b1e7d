"""Verification of inbound Standard Webhooks / Svix signatures: pure, on raw bytes.

Every failure, malformed input included, is a `VerificationError` (the reference library lets
`ValueError`, `binascii.Error` and `UnicodeDecodeError` escape; this does not).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence

from receiver.exceptions import VerificationError
from routes.signing import digest, secret_key

DEFAULT_TOLERANCE = 300.0  # seconds, both directions, as the reference libraries

_FAMILIES = (
    ("webhook-id", "webhook-timestamp", "webhook-signature"),
    ("svix-id", "svix-timestamp", "svix-signature"),
)


def verify_standard_webhook(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secrets: Sequence[str],
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """Check a Standard Webhooks (or Svix) signed request; return its message id.

    `headers` keys must be lower-case. Any `v1,` signature in the space-separated header matching
    any of `secrets` passes; other versions are skipped.
    """
    for id_name, ts_name, sig_name in _FAMILIES:
        if id_name in headers:
            msg_id, timestamp, signatures = headers.get(id_name), headers.get(ts_name), headers.get(sig_name)
            break
    else:
        raise VerificationError("missing webhook-id / webhook-timestamp / webhook-signature headers")
    if not msg_id or not timestamp or not signatures:
        raise VerificationError("missing webhook-id / webhook-timestamp / webhook-signature headers")
    try:
        ts = int(timestamp)
    except ValueError:
        raise VerificationError("webhook-timestamp is not an integer") from None
    if ts < now - tolerance:
        raise VerificationError("webhook-timestamp is too old")
    if ts > now + tolerance:
        raise VerificationError("webhook-timestamp is too new")
    expected = []
    for secret in secrets:
        try:
            expected.append(digest(secret_key(secret), msg_id, timestamp, body))
        except ValueError:
            raise VerificationError("the configured webhook secret is not valid") from None
    for item in signatures.split(" "):
        version, _, encoded = item.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if any(hmac.compare_digest(given, e) for e in expected):
            return msg_id
    raise VerificationError("no matching webhook signature")
