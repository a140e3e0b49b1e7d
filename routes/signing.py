"""Standard Webhooks signing: `whsec_` secrets and `v1,<base64 HMAC-SHA256>` signatures.

The signed content is `"{msg_id}.{timestamp}.{body}"` over the raw body bytes. Consumers verify
with the `standardwebhooks` or `svix` libraries unchanged. The same primitives verify inbound
Standard Webhooks / Svix callbacks (`receiver.verify`).
"""

from __future__ import annotations

import base64
import functools
import hmac
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh subscription secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@functools.lru_cache(maxsize=4096)
def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret. Raises ValueError when it is not valid base64.

    Every delivery and every signed callback needs one, from the same few secrets: decoded once
    each (a failure is not cached, so it raises every time)."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (ValueError, base64.binascii.Error) as exc:  # type: ignore[attr-defined]
        raise ValueError("the webhook secret is not valid base64") from exc


@functools.lru_cache(maxsize=4096)
def keyed(key: bytes, algorithm: str = "sha256") -> hmac.HMAC:
    """An HMAC with `key` already taken in (SHA-256 unless `algorithm` names another), to be copied,
    never updated itself.

    Setting a key up is most of a short HMAC's cost in OpenSSL 3 (the digest is fetched and the
    padded key hashed each time); copying a keyed state skips both: 0.6-0.9 µs less a signature
    of a 1.5 KB body, on every delivery, every signed callback verified and every token."""
    return hmac.new(key, digestmod=algorithm)


def digest(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> bytes:
    mac = keyed(key).copy()
    mac.update(f"{msg_id}.{timestamp}.".encode())
    mac.update(body)
    return mac.digest()


def sign(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    return "v1," + base64.b64encode(digest(key, msg_id, timestamp, body)).decode()


def signature_header(keys: Iterable[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per key, space-separated (rotation)."""
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)
