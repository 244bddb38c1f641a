"""Pydantic models of the Realtime session object (GA, `type: "realtime"`) and of the client's own settings.

Every model serialises to exactly the wire shape with `to_wire()`: only what the user set is sent, and an
explicit `None` (for example `turn_detection: null`, which turns server VAD off) is kept.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class WireModel(BaseModel):
    """Base for wire objects: unknown fields are refused, `to_wire()` sends only what was set.

    Fields named in `_always` (the `type` discriminators) are sent even when left at their default.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    _always: ClassVar[tuple[str, ...]] = ("type",)

    def model_post_init(self, context: Any, /) -> None:
        for name in self._always:
            if name in type(self).model_fields:
                self.model_fields_set.add(name)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


# ----------------------------------------------------------------------------------------------- audio
class AudioPCM(WireModel):
    type: Literal["audio/pcm"] = "audio/pcm"
    rate: Literal[24000] = 24000


class AudioPCMU(WireModel):
    type: Literal["audio/pcmu"] = "audio/pcmu"


class AudioPCMA(WireModel):
    type: Literal["audio/pcma"] = "audio/pcma"


AudioFormat = Annotated[AudioPCM | AudioPCMU | AudioPCMA, Field(discriminator="type")]


class NoiseReduction(WireModel):
    type: Literal["near_field", "far_field"]


class AudioTranscription(WireModel):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class ServerVad(WireModel):
    type: Literal["server_vad"] = "server_vad"
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    prefix_padding_ms: int | None = Field(default=None, ge=0)
    silence_duration_ms: int | None = Field(default=None, ge=0)
    idle_timeout_ms: int | None = Field(default=None, ge=5000, le=30000)
    create_response: bool | None = None
    interrupt_response: bool | None = None


class SemanticVad(WireModel):
    type: Literal["semantic_vad"] = "semantic_vad"
    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None


TurnDetection = Annotated[ServerVad | SemanticVad, Field(discriminator="type")]


class AudioInput(WireModel):
    format: AudioFormat | None = None
    noise_reduction: NoiseReduction | None = None
    transcription: AudioTranscription | None = None
    turn_detection: TurnDetection | None = None


class VoiceId(WireModel):
    id: str


class AudioOutput(WireModel):
    format: AudioFormat | None = None
    speed: float | None = Field(default=None, ge=0.25, le=1.5)
    voice: Annotated[str, Field(min_length=1)] | VoiceId | None = None


class AudioConfig(WireModel):
    input: AudioInput | None = None
    output: AudioOutput | None = None


# ----------------------------------------------------------------------------------------------- tools
class FunctionTool(WireModel):
    type: Literal["function"] = "function"
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class McpToolFilter(WireModel):
    _always = ()
    tool_names: list[str] | None = None
    read_only: bool | None = None


class McpApprovalFilter(WireModel):
    _always = ()
    always: McpToolFilter | None = None
    never: McpToolFilter | None = None


class McpTool(WireModel):
    type: Literal["mcp"] = "mcp"
    server_label: str = Field(min_length=1)
    server_url: str | None = None
    connector_id: str | None = None
    authorization: str | None = None
    headers: dict[str, str] | None = None
    allowed_tools: list[str] | McpToolFilter | None = None
    require_approval: Literal["always", "never"] | McpApprovalFilter | None = None
    server_description: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "McpTool":
        if not (self.server_url or self.connector_id):
            raise ValueError("an mcp tool with server_url or connector_id")
        return self


Tool = Annotated[FunctionTool | McpTool, Field(discriminator="type")]


class ToolChoiceFunction(WireModel):
    type: Literal["function"] = "function"
    name: str


class ToolChoiceMcp(WireModel):
    type: Literal["mcp"] = "mcp"
    server_label: str
    name: str | None = None


ToolChoice = Union[
    Literal["none", "auto", "required"],
    Annotated[ToolChoiceFunction | ToolChoiceMcp, Field(discriminator="type")],
]


# ----------------------------------------------------------------------------------------------- misc
class TracingConfig(WireModel):
    _always = ()
    workflow_name: str | None = None
    group_id: str | None = None
    metadata: dict[str, Any] | None = None


class TokenLimits(WireModel):
    _always = ()
    post_instructions: int | None = Field(default=None, ge=0)


class RetentionRatioTruncation(WireModel):
    type: Literal["retention_ratio"] = "retention_ratio"
    retention_ratio: float = Field(ge=0.0, le=1.0)
    token_limits: TokenLimits | None = None


class Prompt(WireModel):
    _always = ()
    id: str
    version: str | None = None
    variables: dict[str, Any] | None = None


class Reasoning(WireModel):
    _always = ()
    effort: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None


class SessionConfig(WireModel):
    """The session object sent in the create-call `session` part and in `session.update`."""

    type: Literal["realtime"] = "realtime"
    model: str | None = None
    output_modalities: list[Literal["audio", "text"]] | None = None
    instructions: str | None = None
    audio: AudioConfig | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None
    max_output_tokens: Annotated[int, Field(ge=1, le=4096)] | Literal["inf"] | None = None
    prompt: Prompt | None = None
    tool_choice: ToolChoice | None = None
    tools: list[Tool] | None = None
    tracing: Literal["auto"] | TracingConfig | None = None
    truncation: Literal["auto", "disabled"] | RetentionRatioTruncation | None = None
    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None

    @field_validator("output_modalities")
    @classmethod
    def _one_modality(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(v) != 1:
            raise ValueError('["audio"] or ["text"], not both and not empty')
        return v

    @model_validator(mode="after")
    def _tool_names_unique(self) -> "SessionConfig":
        names = [t.name for t in self.tools or [] if isinstance(t, FunctionTool)]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"unique function tool names, not repeated {', '.join(sorted(dup))}")
        return self

    def with_tools(self, tools: list[FunctionTool]) -> "SessionConfig":
        """A copy whose `tools` are the configured ones plus `tools` (a set field stays set)."""
        merged = self.to_wire()
        merged["tools"] = list(merged.get("tools") or []) + [t.to_wire() for t in tools]
        return SessionConfig.model_validate(merged)


# ----------------------------------------------------------------------------------------------- client
class ClientSettings(BaseModel):
    """Where and how the client connects (not part of the session object)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = Field(default=None, repr=False)
    ice_servers: list[str] = Field(default_factory=list)
    http_timeout: float = Field(default=20.0, gt=0)
    connect_timeout: float = Field(default=20.0, gt=0)
    session_update_timeout: float = Field(default=5.0, gt=0)

    @classmethod
    def from_env(cls, **overrides: Any) -> "ClientSettings":
        values: dict[str, Any] = {}
        if os.environ.get("OPENAI_BASE_URL"):
            values["base_url"] = os.environ["OPENAI_BASE_URL"]
        if os.environ.get("OPENAI_API_KEY"):
            values["api_key"] = os.environ["OPENAI_API_KEY"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return validate(cls, values, prefix="")


# ----------------------------------------------------------------------------------------------- loading
def _real_path(loc: tuple[Any, ...], data: Any) -> list[str]:
    """The parts of a pydantic error location that index into the input (union member tags dropped)."""
    out: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            continue
        out.append(str(part))
    return out


def describe_error(exc: ValidationError, prefix: str = "session", data: Any = None) -> str:
    """One line: the field, the value given, and what is allowed."""
    errors = exc.errors(include_url=False)
    paths = [_real_path(e["loc"], data) if data is not None else [str(p) for p in e["loc"]] for e in errors]
    depth = max(len(p) for p in paths)
    best = [(e, p) for e, p in zip(errors, paths) if len(p) == depth]
    err, path = best[0]
    where = ".".join([prefix, *path] if prefix else path)
    if err["type"] == "missing":
        return f"{where}: required field is missing"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    given = err.get("input")
    shown = json.dumps(given, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    allowed: list[str] = []
    for e, _ in best:
        msg = re.sub(r"^(Value error, |Input should be )", "", e["msg"])
        if msg not in allowed:
            allowed.append(msg)
    return f"{where}: {shown} is not allowed; must be {' or '.join(allowed)}"


def validate(model: type[BaseModel], data: Any, prefix: str = "session") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, prefix, data)) from None


def read_object_file(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON or TOML file holding one object (by its suffix); any problem is a one-line ConfigError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror}") from None
    try:
        data: Any = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: not valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected an object, not {type(data).__name__}")
    return data


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


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def build_session(
    file: str | Path | None = None,
    *,
    base: dict[str, Any] | None = None,
    assignments: list[str] | None = None,
    **fields: Any,
) -> SessionConfig:
    """`base` (a config file's session), then the session file, then `field=value` keywords (dotted keys
    allowed), then `--set` assignments; validated once."""
    data: dict[str, Any] = _deep_merge(base or {}, load_session_file(file) if file else {})
    for key, value in fields.items():
        if value is not None:
            set_path(data, key, value)
    for text in assignments or []:
        set_path(data, *parse_assignment(text))
    data.setdefault("type", "realtime")
    return validate(SessionConfig, data)
