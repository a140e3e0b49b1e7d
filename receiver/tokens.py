"""Callback URL tokens and per-job callback secrets.

A token is an itsdangerous-signed `[job_id, provider]`, so a callback URL names its job without a
lookup and cannot be moved to another job or another provider's path. The per-job secret (an
auth header value, a basic-auth password, …) is derived from the secret key and the job, so it is
never stored and never needs to be read back.
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from receiver.exceptions import VerificationError

TOKEN_MAX_AGE = 90 * 86400  # providers retry for hours or days; jobs can run long: 90 days


class Tokens:
    def __init__(self, secret_key: str, *, max_age: int = TOKEN_MAX_AGE) -> None:
        self._key = secret_key.encode()
        self._serializer = URLSafeTimedSerializer(secret_key, salt="callboard.callback")
        self._max_age = max_age

    def make(self, job_id: str, provider: str) -> str:
        return str(self._serializer.dumps([job_id, provider]))

    def verify(self, token: str, provider: str) -> str:
        """The job id a token names; VerificationError when tampered, expired or for another provider."""
        try:
            value = self._serializer.loads(token, max_age=self._max_age)
        except SignatureExpired:
            raise VerificationError("the callback token has expired") from None
        except BadSignature:
            raise VerificationError("the callback token is not valid") from None
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise VerificationError("the callback token is not valid")
        job_id, token_provider = value
        if not hmac.compare_digest(token_provider, provider):
            raise VerificationError("the callback token belongs to another provider")
        return str(job_id)

    def job_secret(self, job_id: str, provider: str) -> str:
        return hmac.new(self._key, f"job-secret:{provider}:{job_id}".encode(), hashlib.sha256).hexdigest()[:40]
