"""Settings: every knob of the service, from ``SERVICE_*`` variables or ``.env``."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.runtime.capacity import default_concurrency


class Settings(BaseSettings):
    """Every setting of the service, read from ``SERVICE_*`` variables or ``.env``.

    Lists take JSON (``["a", "b"]``) or commas (``a,b``); ``SERVICE_TIMEOUTS`` takes JSON
    (``{"/route": 5}``).
    """

    # A settings error names the variable, never its value (API keys stay out of the logs).
    model_config = SettingsConfigDict(
        env_prefix="SERVICE_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    timeout: float | None = Field(
        default=None, gt=0, description="Seconds, every route (overrides)."
    )
    timeouts: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Seconds per route, e.g. {'/score': 5}."
    )
    max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Larger request bodies get 413."
    )
    concurrency: int = Field(
        default_factory=default_concurrency,
        ge=1,
        description="Requests running notebook code at once, per worker process.",
    )
    queue_timeout: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a request may wait for a slot; one not expected in time gets 503.",
    )
    queue_length: int | None = Field(
        default=None,
        ge=0,
        description="Requests that may wait for a slot, per process (default: concurrency).",
    )
    wedged_grace: float | None = Field(
        default=None,
        ge=0,
        description="Seconds every slot may stay busy with no code finishing in time before "
        "/health and /ready fail (default: the longest route timeout).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    log_flush_seconds: float = Field(
        default=0.05,
        ge=0,
        description="Seconds INFO lines may wait to be written together (0: each at once).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Unset: auth is off. Set, it must hold keys, none of them empty.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection has to send a complete request head.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections per worker process (at most the open-file limit - 32).",
    )
    max_memory_mb: int | None = Field(
        default=None,
        ge=64,
        description="The worker process's address space (RLIMIT_AS) in MiB; unset: no limit.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin for origin in _split(value) if origin]
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        # A string comes from the environment (or .env): the variable is set. Fail closed:
        # set but holding no key is a mistake, never "auth off".
        if isinstance(value, str):
            value = _split(value)
            if not value:
                raise ValueError("is set but holds no key: unset it to turn auth off")
        return value

    @field_validator("api_keys", mode="after")
    @classmethod
    def _no_empty_key(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not key.get_secret_value().strip() for key in value):
            raise ValueError("holds an empty key (an empty X-API-Key header would match it)")
        return value

    def timeout_for(self, route: str, default: float) -> float:
        """The route's timeout: SERVICE_TIMEOUTS, else SERVICE_TIMEOUT, else the notebook's."""
        return self.timeouts.get(route, self.timeout or default)


def _split(text: str) -> list[str]:
    """A JSON list, or comma-separated values (stripped; empty ones kept, to be judged)."""
    text = text.strip()
    if text.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError:  # its message quotes no value, but say it plainly
            raise ValueError("not a JSON list") from None
        return values if isinstance(values, list) else [values]
    return [part.strip() for part in text.split(",")] if text else []


def unknown_settings(environ: dict[str, str] | None = None) -> list[str]:
    """One sentence per ``SERVICE_*`` variable (environment or ``.env``) no setting reads.

    pydantic-settings ignores them (``extra="ignore"``: the environment holds other programs'
    variables too), so a misspelt ``SERVICE_TIMEOUTS`` would silently change nothing.
    """
    names = dict(os.environ if environ is None else environ)
    dotenv = Path(".env")
    if environ is None and dotenv.is_file():
        for line in dotenv.read_text(encoding="utf-8").splitlines():
            key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
            names.setdefault(key, "")
    fields = [name.upper() for name in Settings.model_fields]
    found = []
    for name in sorted(n for n in names if n.upper().startswith("SERVICE_")):
        setting = name.upper().removeprefix("SERVICE_")
        if setting in fields:
            continue
        close = difflib.get_close_matches(setting, fields, n=1, cutoff=0.75)
        hint = f"; did you mean SERVICE_{close[0]}?" if close else ""
        found.append(f"{name} is not a setting of this service and changes nothing{hint}")
    return found
