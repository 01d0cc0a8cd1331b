"""The one settings model for gateway, runtime processes and CLI: flags and YOI_* env agree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.ids import is_runtime_id
from shared.logs import LOG_LEVELS, LogFormat, url_secrets

EMBEDDED_RUNTIME_ID = "backend-internal"
PROVIDERS = ("echo", "chaos", "openai")
MIN_EVENTS_MAXLEN = 10
"""The shortest event window allowed; readers rely on trimming never leaving fewer entries."""


def default_data_dir() -> Path:
    """The per-user data directory: `$XDG_DATA_HOME/yoi`, else `~/.local/share/yoi`."""
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "yoi"


class Settings(BaseSettings):
    """Every field is documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="YOI_", extra="ignore", populate_by_name=True)

    # Redis and the fleet
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("YOI_REDIS_URL", "REDIS_URL", "redis_url")
    )
    # `auto`: a Redis Cluster when the server says so (`INFO cluster`); `on` / `off` force it.
    redis_cluster: Literal["auto", "on", "off"] = "auto"
    # Every Redis call on a request path answers within this (a typed 503 past it).
    redis_call_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # arq's own Redis (one node): required for scheduled work when the fleet runs on a cluster.
    scheduler_redis_url: str | None = None
    namespace: str = Field(default="yoi", pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    fleets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    runtime_id: str = "fleet"
    member_id: str | None = None
    capacity: int = Field(default=1000, ge=1, le=100_000)
    lease_ttl_ms: int = Field(default=5000, ge=200)
    heartbeat_ms: int = Field(default=1000, ge=50)
    sweep_interval_ms: int = Field(default=2000, ge=50)
    max_deliveries: int = Field(default=3, ge=1)
    retention_s: int = Field(default=86_400, ge=1)
    events_maxlen: int = Field(default=5000, ge=MIN_EVENTS_MAXLEN)
    drain_grace_s: float = Field(default=5.0, ge=0)
    # Scheduled work (arq, once across the fleet): the housekeeping tick that expands recurring
    # inputs and prunes indexes, and how often members poll arq's queue (scheduled work only).
    schedule_tick_s: int = Field(default=60, ge=1, le=3600)
    schedule_poll_s: float = Field(default=0.25, gt=0, le=5)
    # Schedules (`…/schedules`): how far ahead an `at` may be, and how many one Worker may have.
    schedule_max_ahead_days: int = Field(default=366, ge=1, le=3660)
    max_schedules_per_worker: int = Field(default=100, ge=1, le=10_000)
    # `yoi up` only: how many runtime processes its supervisor starts (YOI_PROCESSES, --processes)
    processes: int = Field(default=2, ge=1, le=64)
    # `yoi up` only: a runtime process that dies is started again, at most `restart_limit` times
    # within `restart_window_s` (more means it cannot run: everything stops).
    restart_limit: int = Field(default=5, ge=0, le=1000)
    restart_window_s: float = Field(default=60.0, gt=0)

    # Gateway
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_token: SecretStr | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_input_chars: int = Field(default=32_000, ge=1)
    # Backpressure: inputs accepted and unfinished per Worker (429 past it, checked in the
    # store's atomic submit); an optional request rate per API token (429); how long a create or
    # send waits for a fleet member with room before 503 `capacity_exhausted` (`admission`
    # false: fleets accept work with no member, queued in Redis until one comes).
    max_queued_inputs: int = Field(default=1000, ge=1)
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    rate_limit_burst: int = Field(default=20, ge=1)
    capacity_wait_s: float = Field(default=2.0, ge=0, le=60)
    admission: bool = True
    workspace: str = "workspace"
    sse_heartbeat_s: float = Field(default=15.0, gt=0)
    sse_buffer_events: int = Field(default=1000, ge=10)
    stream_ticket_ttl_s: int = Field(default=60, ge=5)
    # OpenAI-compatible facade: where `model` = a profile creates its Workers, and how long a
    # completion waits for its run to finish (then 504 `timeout`, the run cancelled)
    chat_runtime: str = Field(default=EMBEDDED_RUNTIME_ID, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    chat_timeout_s: float = Field(default=600.0, gt=0, le=3600)
    # Where the gateway's embedded runtime keeps its Workers; None (`YOI_DATA_DIR=` empty, or
    # `--ephemeral`) keeps them in memory only.
    data_dir: Path | None = Field(default_factory=default_data_dir)

    # LLM engine
    provider: str = "echo"
    echo_delay_ms: int = Field(default=0, ge=0)
    flush_interval_ms: int = Field(default=25, ge=0)
    turn_timeout_s: float = Field(default=120.0, gt=0)
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("YOI_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key"),
    )
    openai_api_key_file: Path | None = None
    openai_model: str = "gpt-4o-mini"
    profiles_dir: Path | None = None

    # Webhooks (runtime_worker/webhooks.py): a POST on every run_finished, signed the Standard
    # Webhooks way. Targets must be on the allow-list (hosts or host:port); none: refused.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_retry_s: float = Field(default=600.0, gt=0, le=7 * 86_400)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_lease_s: float = Field(default=30.0, gt=0, le=3600)

    # Logs (every entry point): level, and `json` for one JSON object per line on stderr
    log_level: str = "INFO"
    log_format: LogFormat = "text"

    @field_validator("fleets", "cors_origins", "webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(
                f"unknown log level {value!r}; expected one of {', '.join(LOG_LEVELS)}"
            )
        return value.upper()

    @field_validator("data_dir", mode="before")
    @classmethod
    def _empty_is_ephemeral(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; expected one of {', '.join(PROVIDERS)}")
        return value

    @field_validator("fleets")
    @classmethod
    def _fleet_ids(cls, value: list[str]) -> list[str]:
        for runtime_id in value:
            if not is_runtime_id(runtime_id) or runtime_id == EMBEDDED_RUNTIME_ID:
                raise ValueError(f"invalid fleet runtime id {runtime_id!r}")
        return value

    def openai_key(self) -> str | None:
        """The provider key from the environment or a secret file; never stored or logged."""
        if self.openai_api_key is not None:
            return self.openai_api_key.get_secret_value()
        if self.openai_api_key_file is not None and self.openai_api_key_file.is_file():
            return self.openai_api_key_file.read_text().strip() or None
        return None

    def secret_values(self) -> list[str]:
        """Every configured value that must never appear in a log line (for the log filter)."""
        found = url_secrets(self.redis_url) + url_secrets(self.scheduler_redis_url)
        found += url_secrets(self.openai_base_url)
        found += url_secrets(self.webhook_url)
        for secret in (self.api_token, self.openai_api_key, self.webhook_secret):
            if secret is not None:
                found.append(secret.get_secret_value())
        return [value for value in found if value]


class InvalidSettings(ValueError):
    """A flag or YOI_* variable that does not validate; its message is one line naming it."""


def load_settings(**flags: Any) -> Settings:
    """Settings from the environment, with the flags that were given (not None) on top."""
    try:
        return Settings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise InvalidSettings(f"invalid {where}: {first['msg']}") from None
