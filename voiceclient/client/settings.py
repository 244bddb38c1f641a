"""The client's own settings (where and how it connects) and the session built from files, keywords and --set."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from voiceclient.errors import AuthenticationError, ConfigError
from voiceclient.protocol.session import SessionConfig, TranscriptionSessionConfig
from voiceclient.protocol.validation import deep_merge, read_object_file, validate

DEFAULT_BASE_URL = "https://api.openai.com/v1"
TransportName = Literal["auto", "webrtc", "websocket"]
ApiName = Literal["auto", "realtime", "live"]
DelegationName = Literal["responses", "client"]
NO_KEY = "no API key: pass api_key to ClientSettings or set OPENAI_API_KEY"
CREDENTIAL_HEADERS = ("authorization", "api-key")  # a key carried in `headers` instead (Azure's api-key, the SDK's)


class ClientSettings(BaseModel):
    """Where and how the client connects (not part of the session object)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = DEFAULT_BASE_URL
    # "auto": WebRTC (`/realtime/calls`), or one WebSocket session when ICE does not connect in ~3 s (UDP blocked)
    transport: TransportName = "auto"
    # The voice API: "auto" is GPT-Live (`/live/sessions`) for a `gpt-live-*` model, else the Realtime API
    api: ApiName = "auto"
    # GPT-Live: who the model delegates the call's tools to. "responses": a Responses backend that hands each
    # function call back to the client; "client": the application itself (`session.delegation.created`)
    delegation: DelegationName = "responses"
    api_key: str | None = Field(default=None, repr=False)
    ice_servers: list[str] = Field(default_factory=list)
    http_timeout: float = Field(default=20.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)  # ICE after the answer; then as long again for DTLS and SCTP
    session_update_timeout: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)  # HTTP retries, as the openai SDK does (see client.retry)
    # Sent with every request (the create-call POST, the WebSocket's handshake), after `Authorization`: e.g.
    # Azure's `api-key`, or an `Authorization` of your own (the Agents SDK's `headers` model option).
    headers: dict[str, str] = Field(default_factory=dict, repr=False)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """A malformed base URL is a configuration error at once, not a request retried three times."""
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            ok = False
        if not ok:
            raise PydanticCustomError(
                "explained",
                "{value} is not an http:// or https:// URL with a host, e.g. {example}",
                {"value": json.dumps(value), "example": DEFAULT_BASE_URL},
            )
        return value

    @property
    def has_credential(self) -> bool:
        """Whether requests carry a key: `api_key`, or an `Authorization` or `api-key` among the `headers`."""
        return bool(self.api_key) or any(k.lower() in CREDENTIAL_HEADERS for k in self.headers)

    def request_headers(self) -> dict[str, str]:
        """`Authorization: Bearer <api_key>`, then `headers`; AuthenticationError (naming OPENAI_API_KEY) when no
        key is configured at all, before any request is made."""
        if not self.has_credential:
            raise AuthenticationError(NO_KEY)
        out = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        out.update(self.headers)
        return out

    @classmethod
    def from_env(cls, **overrides: Any) -> "ClientSettings":
        """Settings from `OPENAI_BASE_URL` and `OPENAI_API_KEY` (when set), then the `overrides` that are not None."""
        values: dict[str, Any] = {}
        if os.environ.get("OPENAI_BASE_URL"):
            values["base_url"] = os.environ["OPENAI_BASE_URL"]
        if os.environ.get("OPENAI_API_KEY"):
            values["api_key"] = os.environ["OPENAI_API_KEY"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return validate(cls, values, prefix="")


def base_url_hint(base_url: str) -> str | None:
    """What to suggest after a 404 from a base URL that does not end in `/v1` (the usual mistake), else None."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        return None
    return f"the base URL usually ends in /v1: --base-url {base}/v1"


def load_session_file(path: str | Path) -> dict[str, Any]:
    """Read a session object from a .json or .toml file (a `session` table is also accepted)."""
    data = read_object_file(path, "session file")
    session = data.get("session", data)
    if not isinstance(session, dict):
        raise ConfigError(f"{path}: the session must be an object, not {type(session).__name__}")
    return session


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A config file (TOML or JSON) with optional `session` and `tools` sections."""
    data = read_object_file(path, "config file")
    unknown = sorted(set(data) - {"session", "tools"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; expected session and tools")
    for key in ("session", "tools"):
        if not isinstance(data.get(key, {}), dict):
            raise ConfigError(f"{path}: [{key}] must be a table")
    return data


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """`set_path(d, "audio.output.speed", 1.2)`: deep-assign, creating objects on the way."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"--set {dotted}: not a dotted field path")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def parse_assignment(text: str) -> tuple[str, Any]:
    """`PATH=VALUE` where VALUE is JSON, or a bare string when it is not valid JSON."""
    path, sep, raw = text.partition("=")
    if not sep or not path:
        raise ConfigError(f"--set {text!r}: expected PATH=VALUE, e.g. audio.output.speed=1.2")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return path.strip(), value


def _session_data(
    file: str | Path | None, base: dict[str, Any] | None, assignments: list[str] | None, fields: dict[str, Any]
) -> dict[str, Any]:
    """`base`, then the session file, then `field=value` keywords (dotted keys allowed), then `--set` assignments."""
    data: dict[str, Any] = deep_merge(base or {}, load_session_file(file) if file else {})
    for key, value in fields.items():
        if value is not None:
            set_path(data, key, value)
    for text in assignments or []:
        set_path(data, *parse_assignment(text))
    return data


def build_session(
    file: str | Path | None = None,
    *,
    base: dict[str, Any] | None = None,
    assignments: list[str] | None = None,
    **fields: Any,
) -> SessionConfig:
    """`base` (a config file's session), then the session file, then `field=value` keywords (dotted keys
    allowed), then `--set` assignments; validated once."""
    data = _session_data(file, base, assignments, fields)
    data.setdefault("type", "realtime")
    return validate(SessionConfig, data)


def build_transcription_session(
    file: str | Path | None = None,
    *,
    base: dict[str, Any] | None = None,
    assignments: list[str] | None = None,
    **fields: Any,
) -> TranscriptionSessionConfig:
    """A transcription session, built as `build_session` builds a realtime one:

    build_transcription_session(**{"audio.input.transcription.model": "whisper-1"})
    """
    data = _session_data(file, base, assignments, fields)
    if data.setdefault("type", "transcription") != "transcription":
        raise ConfigError(f'session.type: {json.dumps(data["type"])} is not allowed here; must be "transcription"')
    return validate(TranscriptionSessionConfig, data)
