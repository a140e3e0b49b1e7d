"""Configuration: `CALLBOARD_*` environment variables (and a `.env` file) → one frozen `Settings`.

Handlers never read the environment; `Settings.from_env()` is called once by the CLI and handed
down. Secrets are wrapped in `starlette.datastructures.Secret` so a repr never shows them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.config import Config
from starlette.datastructures import Secret

from receiver.providers import DEFAULT_BASE_URLS
from receiver.providers.base import ProviderConfig
from routes.retry import DEFAULT_RETRY_SCHEDULE, parse_schedule

LOG_LEVELS = ("debug", "info", "warning", "error")
PROVIDERS = ("generic", "assemblyai", "recall", "gladia", "deepgram", "revai", "speechmatics", "aitronos")


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable."""


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    lowered = value.strip().lower()
    if lowered not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return lowered


def _number(name: str, value: str, kind: type[int] | type[float] = float) -> float:
    try:
        number = kind(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {value!r}") from None
    if number < 0:
        raise SettingsError(f"{name} must not be negative")
    return number


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///callboard.db"
    public_url: str = "http://127.0.0.1:8000"
    secret_key: Secret | None = None
    admin_token: Secret | None = None
    allow_private_targets: bool = False
    retry_schedule: str = DEFAULT_RETRY_SCHEDULE
    max_body_bytes: int = 26_214_400
    reconcile_after: float = 600.0
    delivery_timeout: float = 15.0
    fetch_retry_base: float = 2.0
    processing_lease: float = 65.0
    disable_after: float = 5 * 86400.0
    health_interval: float = 60.0
    rotation_grace: float = 86400.0
    log_format: str = "auto"
    log_level: str = "info"
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
        env = dict(os.environ if environ is None else environ)
        if env_file and os.path.isfile(env_file):
            file_values = Config(env_file, environ={})
            for key, value in file_values.file_values.items():
                env.setdefault(key, value)

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(f"CALLBOARD_{name}")
            return default if value is None or value == "" else value

        providers = {}
        for name in PROVIDERS:
            up = name.upper()
            extra = {}
            if name == "aitronos" and get("AITRONOS_ORGANIZATION_ID"):
                extra["organization_id"] = get("AITRONOS_ORGANIZATION_ID") or ""
            providers[name] = ProviderConfig(
                name=name,
                base_url=get(f"{up}_BASE_URL", DEFAULT_BASE_URLS[name]) or "",
                api_key=get(f"{up}_API_KEY"),
                webhook_secret=get(f"{up}_WEBHOOK_SECRET"),
                extra=extra,
            )
        secret_key, admin_token = get("SECRET_KEY"), get("ADMIN_TOKEN")
        public_url = (get("PUBLIC_URL", cls.public_url) or "").rstrip("/")
        if not public_url.startswith(("http://", "https://")):
            raise SettingsError("CALLBOARD_PUBLIC_URL must start with http:// or https://")
        schedule = get("RETRY_SCHEDULE", DEFAULT_RETRY_SCHEDULE) or DEFAULT_RETRY_SCHEDULE
        try:
            parse_schedule(schedule)
        except ValueError as exc:
            raise SettingsError(f"CALLBOARD_RETRY_SCHEDULE: {exc}") from None
        return cls(
            database_url=get("DATABASE_URL", cls.database_url) or cls.database_url,
            public_url=public_url,
            secret_key=Secret(secret_key) if secret_key else None,
            admin_token=Secret(admin_token) if admin_token else None,
            allow_private_targets=_bool("CALLBOARD_ALLOW_PRIVATE_TARGETS", get("ALLOW_PRIVATE_TARGETS", "false") or ""),
            retry_schedule=schedule,
            max_body_bytes=int(_number("CALLBOARD_MAX_BODY_BYTES", get("MAX_BODY_BYTES", "26214400") or "", int)),
            reconcile_after=_number("CALLBOARD_RECONCILE_AFTER", get("RECONCILE_AFTER", "600") or ""),
            fetch_retry_base=_number("CALLBOARD_FETCH_RETRY_BASE", get("FETCH_RETRY_BASE", "2") or ""),
            processing_lease=_number("CALLBOARD_PROCESSING_LEASE", get("PROCESSING_LEASE", "65") or ""),
            delivery_timeout=_number("CALLBOARD_DELIVERY_TIMEOUT", get("DELIVERY_TIMEOUT", "15") or ""),
            disable_after=_number("CALLBOARD_DISABLE_AFTER", get("DISABLE_AFTER", str(5 * 86400)) or ""),
            health_interval=_number("CALLBOARD_HEALTH_INTERVAL", get("HEALTH_INTERVAL", "60") or ""),
            rotation_grace=_number("CALLBOARD_ROTATION_GRACE", get("ROTATION_GRACE", "86400") or ""),
            log_format=get("LOG_FORMAT", "auto") or "auto",
            log_level=_choice("CALLBOARD_LOG_LEVEL", get("LOG_LEVEL", "info") or "", LOG_LEVELS),
            providers=providers,
        )
