"""Callback URL tokens name one job of one provider and cannot be forged, moved or kept forever."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from receiver.exceptions import VerificationError
from receiver.tokens import SALT, TOKEN_MAX_AGE, Tokens

KEY = "test-secret-key"
JOB = "job_01jd7zk3q9w5x2m8r4t6y1b3n0"


class _PastSigner(TimestampSigner):
    ago = 0.0

    def get_timestamp(self) -> int:
        return int(time.time() - self.ago)


def token_signed_ago(seconds: float, *, key: str = KEY, value: str = f"generic.{JOB}") -> str:
    """A token as `Tokens.make` writes it, stamped `seconds` ago (through itsdangerous' clock hook)."""
    signer = _PastSigner(key, salt=SALT)
    signer.ago = seconds
    return signer.sign(value).decode()


def legacy_token(seconds: float = 0, *, value: object = (JOB, "generic")) -> str:
    """A token as releases before the `{provider}.{job_id}` format wrote it: a serialized list."""

    class PastSigner(_PastSigner):
        ago = seconds

    serializer = URLSafeTimedSerializer(KEY, salt=SALT, signer=PastSigner)
    return str(serializer.dumps(list(value) if isinstance(value, tuple) else value))


def test_token_roundtrip_returns_the_job_id() -> None:
    tokens = Tokens(KEY)
    token = tokens.make(JOB, "assemblyai")
    assert tokens.verify(token, "assemblyai") == JOB


def test_token_is_url_safe() -> None:
    token = Tokens(KEY).make(JOB, "generic")
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@pytest.mark.parametrize("position", [-5, -12, -20], ids=["signature-end", "signature-middle", "signature-start"])
def test_tampered_token_is_refused(position: int) -> None:
    """Any character of the signature changed. (Not the last one: of its six bits only four are
    signature, so some changes to it decode to the same bytes.)"""
    tokens = Tokens(KEY)
    token = tokens.make(JOB, "generic")
    swapped = "A" if token[position] != "A" else "B"
    tampered = token[:position] + swapped + token[position + 1 :]
    with pytest.raises(VerificationError, match="not valid"):
        tokens.verify(tampered, "generic")


def test_token_with_swapped_payload_is_refused() -> None:
    """A payload taken from one token and the signature from another do not verify."""
    tokens = Tokens(KEY)
    other = tokens.make("job_01jd7zk3q9w5x2m8r4t6y1b3n1", "generic").rsplit(".", 1)[0]
    signature = tokens.make(JOB, "generic").rsplit(".", 1)[1]
    with pytest.raises(VerificationError, match="not valid"):
        tokens.verify(f"{other}.{signature}", "generic")


def test_token_names_its_provider_and_job_in_the_clear() -> None:
    """`{provider}.{job_id}.{time}.{signature}`: readable in a provider's dashboard, still signed."""
    token = Tokens(KEY).make(JOB, "revai")
    assert token.startswith(f"revai.{JOB}.")
    assert token.count(".") == 3


def test_token_for_another_provider_is_refused() -> None:
    tokens = Tokens(KEY)
    token = tokens.make(JOB, "assemblyai")
    with pytest.raises(VerificationError, match="another provider"):
        tokens.verify(token, "generic")


def test_token_signed_with_another_key_is_refused() -> None:
    token = Tokens("another-key").make(JOB, "generic")
    with pytest.raises(VerificationError, match="not valid"):
        Tokens(KEY).verify(token, "generic")


def test_token_older_than_max_age_is_expired() -> None:
    token = token_signed_ago(120)
    assert Tokens(KEY).verify(token, "generic") == JOB
    with pytest.raises(VerificationError, match="expired"):
        Tokens(KEY, max_age=60).verify(token, "generic")


def test_token_past_the_default_90_days_is_expired() -> None:
    assert Tokens(KEY).verify(token_signed_ago(TOKEN_MAX_AGE - 3600), "generic") == JOB
    with pytest.raises(VerificationError, match="expired"):
        Tokens(KEY).verify(token_signed_ago(TOKEN_MAX_AGE + 3600), "generic")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-token", id="no-separator"),
        pytest.param("a.b.c", id="three-parts"),
        pytest.param("....", id="dots"),
        pytest.param("x" * 5000, id="long"),
        pytest.param("jöb.ünïcode.tökén", id="unicode"),
        pytest.param("%2e%2e%2f", id="escaped"),
    ],
)
def test_garbage_token_is_refused_with_verification_error(token: str) -> None:
    with pytest.raises(VerificationError):
        Tokens(KEY).verify(token, "generic")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("generic", id="no-job"),
        pytest.param("generic.", id="empty-job"),
        pytest.param(f"generic.{JOB}.extra", id="dotted-job"),
    ],
)
def test_validly_signed_token_of_the_wrong_shape_is_refused(value: str) -> None:
    """Even a correctly signed value is refused unless it is exactly `{provider}.{job_id}`."""
    with pytest.raises(VerificationError, match="not valid"):
        Tokens(KEY).verify(token_signed_ago(0, value=value), "generic")


def test_token_signed_for_an_empty_provider_is_another_providers() -> None:
    with pytest.raises(VerificationError, match="another provider"):
        Tokens(KEY).verify(token_signed_ago(0, value=f".{JOB}"), "generic")


def test_legacy_token_still_verifies() -> None:
    """Jobs submitted before an upgrade keep their callback URLs."""
    assert Tokens(KEY).verify(legacy_token(), "generic") == JOB
    with pytest.raises(VerificationError, match="another provider"):
        Tokens(KEY).verify(legacy_token(), "revai")
    with pytest.raises(VerificationError, match="expired"):
        Tokens(KEY, max_age=60).verify(legacy_token(120), "generic")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"job": JOB}, id="object"),
        pytest.param([JOB], id="one-element"),
        pytest.param([JOB, "generic", "extra"], id="three-elements"),
        pytest.param([1, "generic"], id="int-job"),
        pytest.param(JOB, id="bare-string"),
    ],
)
def test_validly_signed_legacy_token_of_the_wrong_shape_is_refused(value: object) -> None:
    """Even a correctly signed legacy value is refused unless it is exactly [job_id, provider]."""
    with pytest.raises(VerificationError, match="not valid"):
        Tokens(KEY).verify(legacy_token(value=value), "generic")


def test_job_secret_is_stable_and_differs_per_job_provider_and_key() -> None:
    secret = Tokens(KEY).job_secret(JOB, "assemblyai")
    assert secret == Tokens(KEY).job_secret(JOB, "assemblyai")
    assert len(secret) == 40 and int(secret, 16) >= 0
    assert secret != Tokens(KEY).job_secret("job_other", "assemblyai")
    assert secret != Tokens(KEY).job_secret(JOB, "revai")
    assert secret != Tokens("another-key").job_secret(JOB, "assemblyai")
    assert secret not in Tokens(KEY).make(JOB, "assemblyai")


def test_job_secret_is_the_hmac_sha256_of_job_and_provider_under_the_secret_key() -> None:
    """Computed from a copied keyed state (`routes.signing.keyed`), it is still exactly this."""
    tokens = Tokens(KEY)
    for job, provider in ((JOB, "assemblyai"), ("job_other", "revai"), (JOB, "assemblyai")):
        expected = hmac.new(KEY.encode(), f"job-secret:{provider}:{job}".encode(), hashlib.sha256).hexdigest()[:40]
        assert tokens.job_secret(job, provider) == expected


def test_one_tokens_instance_signs_and_verifies_many_as_itsdangerous_does() -> None:
    """Each signature copies the signer's keyed HMAC state; using it must not change it."""
    tokens, plain = Tokens(KEY), TimestampSigner(KEY, salt=SALT)
    jobs = [f"job_{i:026d}" for i in range(5)]
    for job in jobs + jobs:
        assert tokens.verify(plain.sign(f"generic.{job}").decode(), "generic") == job
        assert plain.unsign(tokens.make(job, "generic"), max_age=60).decode() == f"generic.{job}"
    with pytest.raises(VerificationError, match="not valid"):
        tokens.verify(TimestampSigner("another-key", salt=SALT).sign(f"generic.{JOB}").decode(), "generic")
    assert tokens.verify(plain.sign(f"generic.{JOB}").decode(), "generic") == JOB


def test_tokens_are_those_itsdangerous_signs_with_the_secret_key_itself() -> None:
    """The signer's key is derived once, up front; a token is still exactly what a plain
    `TimestampSigner(secret_key, salt=SALT)` makes (and verifies), so URLs handed out before and
    after are interchangeable."""
    plain = TimestampSigner(KEY, salt=SALT)
    for _ in range(3):  # the same second for both, unless a second boundary falls between
        made, expected = Tokens(KEY).make(JOB, "generic"), plain.sign(f"generic.{JOB}").decode()
        if made == expected:
            break
    assert made == expected
    assert plain.unsign(made, max_age=60).decode() == f"generic.{JOB}"
    assert Tokens(KEY).verify(expected, "generic") == JOB
