"""Wire models of GPT-Live's events (`/v1/live/sessions`), as `protocol/events.py` has the Realtime API's: the
client events the embedded server decodes, each refusing unknown fields, and the server events it sends.

The authority on the shapes is the official `openai` package (3.63.0): `openai.types.live`. Only what `serve`
speaks so far is here; a client event of the API that is not here decodes to `UnknownEvent`, and the server says
which ones it takes.
"""

from __future__ import annotations

import json
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.events import new_id
from voiceclient.protocol.validation import api_error

MODELS = ("gpt-live-1", "gpt-live-1.1")
DEFAULT_VOICE = "marin"
# [SDK] `openai.types.live.BuiltInVoice`
VOICES = frozenset(
    "alloy ash ballad beacon bossa cedar cinder coral delta echo gleam marin meridian quartz ripple sage shida "
    "shimmer stone tempo verse vesper willow".split()
)
CloseReason = Literal["close_requested", "expired", "content", "remote_hangup", "connection_lost"]


class Wire(BaseModel):
    """A client's object: unknown fields refused (the real service's `unknown_parameter`)."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)  # built on first use (start-up time)


# ----------------------------------------------------------------------------------------------- session
class AudioPCM(Wire):
    type: Literal["audio/pcm"]
    rate: Literal[16000, 24000] = 24000


class AudioPCMU(Wire):
    type: Literal["audio/pcmu"]
    rate: Literal[8000] = 8000


class AudioPCMA(Wire):
    type: Literal["audio/pcma"]
    rate: Literal[8000] = 8000


AudioFormat = Annotated[Union[AudioPCM, AudioPCMU, AudioPCMA], Field(discriminator="type")]


class VoiceId(Wire):
    id: str


class AudioOutput(Wire):
    voice: str | VoiceId | None = None


class Audio(Wire):
    format: AudioFormat | None = None
    output: AudioOutput | None = None


class FunctionTool(Wire):
    """[SDK] `openai.types.live.FunctionTool`: a function the Responses backend may call (the application's)."""

    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class HostedTool(BaseModel):
    """Any other tool of the Responses backend (web search, MCP...): taken, never called by `serve`."""

    model_config = ConfigDict(extra="allow")
    type: Literal[
        "web_search",
        "file_search",
        "code_interpreter",
        "shell",
        "image_generation",
        "mcp",
        "custom",
        "namespace",
        "tool_search",
        "programmatic_tool_calling",
        "computer",
        "apply_patch",
    ]


class ClientDelegation(Wire):
    type: Literal["client"]
    acknowledgement_delay_ms: int | None = Field(default=None, ge=0)


class ResponsesConfig(Wire):
    """The Responses backend's settings ([SDK] `ResponsesDelegationConfig`). The tools are taken as given, each
    with its `type` (function tools checked: `FunctionTool`); only function tools are ever called."""

    model: str
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    parallel_tool_calls: bool | None = None
    reasoning: dict[str, Any] | None = None
    service_tier: Literal["auto", "default", "fast_tier_temp_pilot", "flex", "priority", "ultrafast"] | None = None
    text: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[Annotated[Union[FunctionTool, HostedTool], Field(discriminator="type")]] | None = None


class ResponsesDelegation(Wire):
    type: Literal["responses"]
    responses: ResponsesConfig
    acknowledgement_delay_ms: int | None = Field(default=None, ge=0)


class ResponsesDelegationUpdate(Wire):
    """`session.update`'s Responses delegation: every backend setting optional (the rest is kept)."""

    type: Literal["responses"]
    responses: dict[str, Any] | None = None
    acknowledgement_delay_ms: int | None = Field(default=None, ge=0)


class OtherDelegation(BaseModel):
    """Decisions delegation: taken apart by the dialect, which refuses it for now."""

    model_config = ConfigDict(extra="allow")
    type: Literal["decisions"]


SessionDelegation = Annotated[
    Union[ClientDelegation, ResponsesDelegation, OtherDelegation], Field(discriminator="type")
]


class TextPart(Wire):
    text: str
    type: Literal["input_text", "output_text", "text"] | None = None


class InitialItem(Wire):
    """One message of the text-only history a session starts with."""

    role: Literal["developer", "user", "assistant"]
    content: list[TextPart] = Field(min_length=1, max_length=1)
    type: Literal["message"] | None = None
    id: str | None = None
    status: Literal["incomplete", "completed"] | None = None


class SessionConfig(Wire):
    """`session.start`'s `session` ([SDK] `SessionConfig`)."""

    model: str
    instructions: str | None = None
    audio: Audio | None = None
    delegation: SessionDelegation | None = None
    input: list[InitialItem] | None = Field(default=None, max_length=128)
    store: bool | None = None
    safety_identifier: str | None = None
    triggers: list[dict[str, Any]] | None = None
    client: dict[str, Any] | None = None
    # WebRTC and SIP only ([SDK] `MediaSessionConfigParam`): taken, not emulated
    wake_policy: dict[str, Any] | None = None
    idle_timeout_s: int | None = None


class WebRTCTransport(Wire):
    type: Literal["webrtc"]
    sdp: str


class CreateSession(Wire):
    """The body of `POST /v1/live/sessions` ([SDK] `LiveCreateParams`)."""

    session: SessionConfig
    transport: WebRTCTransport


def parse_create(body: Any) -> CreateSession:
    """A WebRTC session's creation request; raises ProtocolError with the API's codes, the field's path as the
    client wrote it (`session.model`)."""
    try:
        return CreateSession.model_validate(body)
    except ValidationError as exc:
        code, message, param = api_error(exc.errors(include_url=False)[0], body)
        raise ProtocolError(message, code, param or None) from None


# ----------------------------------------------------------------------------------------------- client events
class ClientEvent(Wire):
    type: str
    event_id: str | None = None


class SessionStart(ClientEvent):
    type: Literal["session.start"]
    session: SessionConfig


class SessionUpdate(ClientEvent):
    type: Literal["session.update"]
    session: dict[str, Any]


class InputAudioAppend(ClientEvent):
    type: Literal["session.input_audio.append"]
    audio: str


class InputAudioMute(ClientEvent):
    type: Literal["session.input_audio.mute"]


class InputAudioUnmute(ClientEvent):
    type: Literal["session.input_audio.unmute"]


class _Append(ClientEvent):
    content: str
    delegation_id: str | None  # [SDK] "Required, nullable"


class InstructionsAppend(_Append):
    type: Literal["session.instructions.append"]


class ThinkingAppend(_Append):
    type: Literal["session.thinking.append"]


class CommentaryAppend(_Append):
    type: Literal["session.commentary.append"]


class ResponseItemCreate(ClientEvent):
    """(Responses delegation only.) The item is a Responses input item ([SDK] `ResponseInputItem`): the dialect
    takes a `function_call_output` and says so of the others."""

    type: Literal["response.item.create"]
    item: dict[str, Any]


class FunctionCallOutput(Wire):
    """[SDK] `openai.types.responses.response_input_item.FunctionCallOutput` (the text output)."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class ResponseCreate(ClientEvent):
    type: Literal["response.create"]


class SessionClose(ClientEvent):
    type: Literal["session.close"]


KnownClientEvent = Annotated[
    Union[
        SessionStart,
        SessionUpdate,
        InputAudioAppend,
        InputAudioMute,
        InputAudioUnmute,
        InstructionsAppend,
        ThinkingAppend,
        CommentaryAppend,
        ResponseItemCreate,
        ResponseCreate,
        SessionClose,
    ],
    Field(discriminator="type"),
]
CLIENT_CLASSES: dict[str, type[ClientEvent]] = {
    typing.get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in typing.get_args(typing.get_args(KnownClientEvent)[0])
}
# [SDK] `openai.types.live.ClientEvent`: every client event of the API (an unknown one's error lists them)
API_CLIENT_EVENTS = (
    "session.start",
    "session.update",
    "session.input_audio.append",
    "session.input_audio.mute",
    "session.input_audio.unmute",
    "session.output_audio.fixture.play",
    "session.instructions.append",
    "session.thinking.append",
    "session.commentary.append",
    "decision.create",
    "decision.item.create",
    "decision.item.delete",
    "response.item.create",
    "response.create",
    "session.close",
)


def parse_client_event(message: str | bytes) -> ClientEvent:
    """One client message as its event model; raises ProtocolError (naming the message's `event_id`) for broken
    JSON, an unknown type or a bad shape, with the API's codes (`unknown_parameter`, `invalid_value`...)."""
    try:
        data = json.loads(message)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"Invalid client event: not JSON ({exc}).", "invalid_json") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("Invalid client event: not an object with a string 'type'.", "invalid_json")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    cls = CLIENT_CLASSES.get(data["type"])
    if cls is None:
        refusal = ProtocolError(
            f"Invalid value: '{data['type']}'. Supported values are: {', '.join(API_CLIENT_EVENTS)}.",
            "invalid_value",
            "type",
        )
        refusal.event_id = event_id
        raise refusal
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        code, message, param = api_error(exc.errors(include_url=False)[0], data)
        refusal = ProtocolError(message, code, param or None)
        refusal.event_id = event_id
        raise refusal from None


# ----------------------------------------------------------------------------------------------- server events
class ServerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use: a Realtime call uses none
    event_id: str = Field(default_factory=lambda: new_id("event"))
    client_event_id: str | None = None

    def wire(self) -> dict[str, Any]:
        """The event as it goes on the wire: `event_id` and `type` first, unset optional fields left out."""
        data = self.model_dump(mode="json", exclude_none=True)
        return {"event_id": data.pop("event_id"), "type": data.pop("type"), **data}


class SessionStarted(ServerEvent):
    type: Literal["session.started"] = "session.started"
    session: dict[str, Any]


class SessionUpdated(ServerEvent):
    type: Literal["session.updated"] = "session.updated"
    session: dict[str, Any]


class Usage(BaseModel):
    seconds: float


class SessionClosed(ServerEvent):
    type: Literal["session.closed"] = "session.closed"
    reason: CloseReason
    usage: Usage
    session: dict[str, Any]


class SessionUsageUpdated(ServerEvent):
    type: Literal["session.usage.updated"] = "session.usage.updated"
    usage: Usage


class InputAudioMuted(ServerEvent):
    type: Literal["session.input_audio.muted"] = "session.input_audio.muted"


class InputAudioUnmuted(ServerEvent):
    type: Literal["session.input_audio.unmuted"] = "session.input_audio.unmuted"


class _Timed(ServerEvent):
    start_ms: int
    end_ms: int


class InstructionsAppended(_Timed):
    type: Literal["session.instructions.appended"] = "session.instructions.appended"


class ThinkingAppended(_Timed):
    type: Literal["session.thinking.appended"] = "session.thinking.appended"


class CommentaryAppended(_Timed):
    type: Literal["session.commentary.appended"] = "session.commentary.appended"


class InputTranscriptDelta(_Timed):
    type: Literal["session.input_transcript.delta"] = "session.input_transcript.delta"
    delta: str


class OutputTranscriptDelta(_Timed):
    type: Literal["session.output_transcript.delta"] = "session.output_transcript.delta"
    delta: str


class OutputAudioDelta(ServerEvent):
    type: Literal["session.output_audio.delta"] = "session.output_audio.delta"
    delta: str


class Delegation(BaseModel):
    id: str
    type: Literal["delegation"] = "delegation"
    target: Literal["client", "responses", "decisions"]
    response_id: str | None = None  # (Responses delegation: the backend's first response)


class DelegationCreated(ServerEvent):
    type: Literal["session.delegation.created"] = "session.delegation.created"
    delegation: Delegation
    offset_ms: int


class ResponseEvent(ServerEvent):
    """One Responses streaming event of the delegated backend (`event`, in the Responses API's shape)."""

    type: Literal["response.event"] = "response.event"
    event: dict[str, Any]
    delegation_id: str | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str
    type: str
    param: str | None = None
    client_event_id: str | None = None


class Error(ServerEvent):
    type: Literal["error"] = "error"
    error: ErrorDetail


def error_event(exc: ProtocolError) -> Error:
    """The `error` event of a refusal: `{code, message, type, param?, client_event_id?}`, the client's id also
    beside it (both are in the SDK's `ErrorEvent`)."""
    detail = ErrorDetail(
        code=exc.code or "invalid_request_error",
        message=exc.message,
        type=exc.type,
        param=exc.param,
        client_event_id=exc.event_id,
    )
    return Error(error=detail, client_event_id=exc.event_id)


# ----------------------------------------------------------------------------------------------- the client's side
LiveServerEvent = Union[
    ResponseEvent,
    SessionStarted,
    SessionUpdated,
    SessionClosed,
    SessionUsageUpdated,
    InputAudioMuted,
    InputAudioUnmuted,
    InstructionsAppended,
    ThinkingAppended,
    CommentaryAppended,
    InputTranscriptDelta,
    OutputTranscriptDelta,
    OutputAudioDelta,
    DelegationCreated,
]
SERVER_CLASSES: dict[str, type[ServerEvent]] = {
    typing.get_args(cls.model_fields["type"].annotation)[0]: cls for cls in typing.get_args(LiveServerEvent)
}


def parse_server_event(data: dict[str, Any]) -> ServerEvent | None:
    """A server event the client reads, as its model; None when its type is not one of `SERVER_CLASSES` (`error`
    is the caller's: its envelope is the Realtime API's). Fields the model does not know are dropped, not refused
    (the real service may add some); a known field of the wrong shape raises pydantic's ValidationError."""
    cls = SERVER_CLASSES.get(str(data.get("type")))
    if cls is None:
        return None
    return cls.model_validate({k: v for k, v in data.items() if k in cls.model_fields})
