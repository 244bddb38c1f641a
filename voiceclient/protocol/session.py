"""Pydantic models of the Realtime session objects (GA: `type: "realtime"`, and `type: "transcription"`), shared by
client and server.

Every model serialises to exactly the wire shape with `to_wire()`: only what the user set is sent, and an
explicit `None` (for example `turn_detection: null`, which turns server VAD off) is kept.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator


class WireModel(BaseModel):
    """Base for wire objects: unknown fields are refused, `to_wire()` sends only what was set.

    Fields named in `_always` (the `type` discriminators) are sent even when left at their default.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True, defer_build=True)
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
    # [SDK] NoiseReduction.strength: "higher values apply more suppression; defaults to 1 when noise reduction is
    # first enabled". No range is published: 0 to 1 is the stricter reading (docs/differences.md).
    strength: float | None = Field(default=None, ge=0.0, le=1.0)


class AudioTranscription(WireModel):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    # [SDK] AudioTranscription: `delay` for gpt-realtime-whisper; `keywords`, `languages` for gpt-transcribe and
    # gpt-live-transcribe (accepted whatever the model: the SDK's types do not tie them to it).
    delay: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None
    keywords: list[str] | None = None
    languages: list[str] | None = None


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
    tunnel_id: str | None = None  # [SDK] Mcp.tunnel_id: a Secure MCP Tunnel instead of a server URL
    defer_loading: bool | None = None  # [SDK] Mcp.defer_loading: discovered via tool search
    allowed_callers: list[Literal["direct", "programmatic"]] | None = None  # [SDK] Mcp.allowed_callers
    connector_id: str | None = None
    authorization: str | None = None
    headers: dict[str, str] | None = None
    allowed_tools: list[str] | McpToolFilter | None = None
    require_approval: Literal["always", "never"] | McpApprovalFilter | None = None
    server_description: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "McpTool":
        if not (self.server_url or self.connector_id or self.tunnel_id):
            raise ValueError("an mcp tool with server_url or connector_id (or tunnel_id)")
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


class TranscriptionAudioInput(WireModel):
    format: AudioFormat | None = None
    noise_reduction: NoiseReduction | None = None
    transcription: AudioTranscription | None = None
    turn_detection: TurnDetection | None = None


class TranscriptionAudio(WireModel):
    input: TranscriptionAudioInput | None = None


class TranscriptionSessionConfig(WireModel):
    """A transcription session (`type: "transcription"`), as the create-call `session` part and `session.update`
    carry it: input audio only, each committed turn transcribed, no model, no responses. The shape of the openai
    SDK's `RealtimeTranscriptionSessionCreateRequest`.

        TranscriptionSessionConfig.model_validate(
            {"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
        )
    """

    type: Literal["transcription"] = "transcription"
    audio: TranscriptionAudio | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None


def _session_kind(value: Any) -> str:
    """Which session a value is: its `type` (a realtime session when it names none, as `SessionConfig` reads it)."""
    kind = value.get("type", "realtime") if isinstance(value, dict) else getattr(value, "type", "realtime")
    return "transcription" if kind == "transcription" else "realtime"


# Either kind of session, told apart by `type` (a realtime session when it has none).
AnySession = Annotated[
    Annotated[SessionConfig, Tag("realtime")] | Annotated[TranscriptionSessionConfig, Tag("transcription")],
    Discriminator(_session_kind),
]


REDACTED = "[redacted]"


def redact_secrets(value: Any, *, drop: bool = False) -> Any:
    """A copy of a session, event or any JSON value with credentials hidden: `authorization` and `api_key`
    values become "[redacted]" (or are dropped, with `drop`, as the API never echoes them), and every value of an
    MCP tool's `headers` becomes "[redacted]"."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key.lower() in ("authorization", "api_key") and item is not None:
                if not drop:
                    out[key] = REDACTED
            elif key == "headers" and isinstance(item, dict):
                out[key] = dict.fromkeys(item, REDACTED)
            else:
                out[key] = redact_secrets(item, drop=drop)
        return out
    if isinstance(value, list):
        return [redact_secrets(item, drop=drop) for item in value]
    return value
