"""Wire models of every GA Realtime event, client and server, each a closed union discriminated on `type`.

Server events allow extra fields (the API adds fields over time); client events refuse unknown fields so a
typo never reaches the wire. Input that is not a known event never raises: an unknown `type` decodes to
`UnknownEvent`, broken JSON or a known type with a broken shape to `MalformedEvent`.
"""

from __future__ import annotations

import json
import secrets
import typing
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.session import AnySession, Reasoning, WireModel
from voiceclient.protocol.validation import api_error


def new_id(prefix: str) -> str:
    """`event_…`, `item_…`, `resp_…`, `call_…`, `rtc_…` style ids."""
    return f"{prefix}_{secrets.token_hex(12)}"


# ----------------------------------------------------------------------------------------------- items
class ContentPart(BaseModel):
    """A content entry of an item: input_text, input_audio, input_image, output_text, output_audio, text, audio."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    transcript: str | None = None
    audio: str | None = None


class Item(BaseModel):
    """A conversation item (message, function_call, function_call_output, mcp_*)."""

    model_config = ConfigDict(extra="allow")
    type: str
    id: str | None = None
    object: str | None = None
    status: str | None = None
    role: str | None = None
    content: list[ContentPart] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None

    @classmethod
    def user_text(cls, text: str) -> "Item":
        """A user message item with `text` as its one `input_text` part."""
        return cls(type="message", role="user", content=[ContentPart(type="input_text", text=text)])

    @classmethod
    def function_call_output(cls, call_id: str, output: str) -> "Item":
        """The output of function call `call_id` (a string, usually JSON)."""
        return cls(type="function_call_output", call_id=call_id, output=output)

    def transcript(self) -> str:
        """The text or transcript of a message item, joined over its parts."""
        return "".join((p.transcript or p.text or "") for p in self.content or [])


# ----------------------------------------------------------------------------------------------- client
class ClientEvent(WireModel):
    """Base of events the client sends. `event_id` is filled in so errors can be matched to requests."""

    model_config = ConfigDict(defer_build=True)  # built on first use, as ServerEvent

    event_id: str | None = Field(default_factory=lambda: new_id("event"))
    _always: ClassVar[tuple[str, ...]] = ("type", "event_id")

    def to_wire(self) -> dict[str, Any]:
        data = super().to_wire()
        return {k: v for k, v in data.items() if not (k == "event_id" and v is None)}

    def to_json(self) -> str:
        return json.dumps(self.to_wire(), separators=(",", ":"))


class SessionUpdate(ClientEvent):
    """A realtime session's update (`SessionConfig`) or a transcription session's (`TranscriptionSessionConfig`)."""

    type: Literal["session.update"] = "session.update"
    session: AnySession
    _always = ("type", "event_id", "session")


class InputAudioBufferAppend(ClientEvent):
    type: Literal["input_audio_buffer.append"] = "input_audio_buffer.append"
    audio: str


class InputAudioBufferCommit(ClientEvent):
    type: Literal["input_audio_buffer.commit"] = "input_audio_buffer.commit"


class InputAudioBufferClear(ClientEvent):
    type: Literal["input_audio_buffer.clear"] = "input_audio_buffer.clear"


class OutputAudioBufferClear(ClientEvent):
    type: Literal["output_audio_buffer.clear"] = "output_audio_buffer.clear"


class ConversationItemCreate(ClientEvent):
    type: Literal["conversation.item.create"] = "conversation.item.create"
    item: Item
    previous_item_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        data = super().to_wire()
        data["item"] = self.item.model_dump(mode="json", exclude_none=True)
        return data


class ConversationItemRetrieve(ClientEvent):
    type: Literal["conversation.item.retrieve"] = "conversation.item.retrieve"
    item_id: str


class ConversationItemTruncate(ClientEvent):
    type: Literal["conversation.item.truncate"] = "conversation.item.truncate"
    item_id: str
    content_index: int = 0
    audio_end_ms: int = Field(ge=0)
    _always = ("type", "event_id", "content_index")


class ConversationItemDelete(ClientEvent):
    type: Literal["conversation.item.delete"] = "conversation.item.delete"
    item_id: str


class ResponseParams(BaseModel):
    """The optional `response` object of `response.create` (docs/protocol.md, "Client events")."""

    model_config = ConfigDict(extra="forbid")
    output_modalities: list[Literal["audio", "text"]] | None = None
    instructions: str | None = None
    audio: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    max_output_tokens: int | Literal["inf"] | None = None
    conversation: str | None = None
    metadata: dict[str, str] | None = None
    prompt: dict[str, Any] | None = None
    input: list[dict[str, Any]] | None = None
    # [SDK] RealtimeResponseCreateParams: for reasoning models such as gpt-realtime-2. Validated, not applied by
    # `serve` (no model reasons there) and not in the response object (RealtimeResponse has no such fields).
    reasoning: Reasoning | None = None
    parallel_tool_calls: bool | None = None


class ResponseCreate(ClientEvent):
    type: Literal["response.create"] = "response.create"
    response: ResponseParams | None = None


class ResponseCancel(ClientEvent):
    type: Literal["response.cancel"] = "response.cancel"
    response_id: str | None = None


KnownClientEvent = Union[
    SessionUpdate,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioBufferClear,
    OutputAudioBufferClear,
    ConversationItemCreate,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    ConversationItemDelete,
    ResponseCreate,
    ResponseCancel,
]
AnyClientEvent = Annotated[KnownClientEvent, Field(discriminator="type")]


# ----------------------------------------------------------------------------------------------- server
class ServerEvent(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)  # built on first use: a call meets a few types
    event_id: str | None = None


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    message: str
    code: str | None = None
    param: str | None = None
    event_id: str | None = None


class Error(ServerEvent):
    type: Literal["error"] = "error"
    error: ErrorDetail


class SessionCreated(ServerEvent):
    type: Literal["session.created"] = "session.created"
    session: dict[str, Any]


class SessionUpdated(ServerEvent):
    type: Literal["session.updated"] = "session.updated"
    session: dict[str, Any]


class ConversationCreated(ServerEvent):
    type: Literal["conversation.created"] = "conversation.created"
    conversation: dict[str, Any]


class _ItemEvent(ServerEvent):
    item: Item
    previous_item_id: str | None = None


class ConversationItemAdded(_ItemEvent):
    type: Literal["conversation.item.added"] = "conversation.item.added"


class ConversationItemDone(_ItemEvent):
    type: Literal["conversation.item.done"] = "conversation.item.done"


class ConversationItemCreated(_ItemEvent):
    type: Literal["conversation.item.created"] = "conversation.item.created"


class ConversationItemRetrieved(_ItemEvent):
    type: Literal["conversation.item.retrieved"] = "conversation.item.retrieved"


class ConversationItemTruncated(ServerEvent):
    type: Literal["conversation.item.truncated"] = "conversation.item.truncated"
    item_id: str
    content_index: int
    audio_end_ms: int


class ConversationItemDeleted(ServerEvent):
    type: Literal["conversation.item.deleted"] = "conversation.item.deleted"
    item_id: str


class InputTranscriptionDelta(ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.delta"] = (
        "conversation.item.input_audio_transcription.delta"
    )
    item_id: str
    content_index: int | None = None
    delta: str | None = None


class InputTranscriptionEnd(ServerEvent):
    """The end of a turn's transcription, either way: `InputTranscriptionCompleted` or `InputTranscriptionFailed`
    (subscribe to this class for both)."""

    item_id: str
    content_index: int


class InputTranscriptionCompleted(InputTranscriptionEnd):
    type: Literal["conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed"
    )
    transcript: str
    usage: dict[str, Any] | None = None


class InputTranscriptionFailed(InputTranscriptionEnd):
    type: Literal["conversation.item.input_audio_transcription.failed"] = (
        "conversation.item.input_audio_transcription.failed"
    )
    error: dict[str, Any]


class InputTranscriptionSegment(ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.segment"] = (
        "conversation.item.input_audio_transcription.segment"
    )
    item_id: str
    text: str


class SpeechStarted(ServerEvent):
    type: Literal["input_audio_buffer.speech_started"] = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str


class SpeechStopped(ServerEvent):
    type: Literal["input_audio_buffer.speech_stopped"] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str


class InputAudioBufferCommitted(ServerEvent):
    type: Literal["input_audio_buffer.committed"] = "input_audio_buffer.committed"
    item_id: str
    previous_item_id: str | None = None


class InputAudioBufferCleared(ServerEvent):
    type: Literal["input_audio_buffer.cleared"] = "input_audio_buffer.cleared"


class InputAudioBufferTimeoutTriggered(ServerEvent):
    type: Literal["input_audio_buffer.timeout_triggered"] = "input_audio_buffer.timeout_triggered"
    audio_start_ms: int
    audio_end_ms: int
    item_id: str


class InputAudioBufferDtmf(ServerEvent):
    type: Literal["input_audio_buffer.dtmf_event_received"] = "input_audio_buffer.dtmf_event_received"
    event: str
    received_at: int


class OutputAudioBufferStarted(ServerEvent):
    type: Literal["output_audio_buffer.started"] = "output_audio_buffer.started"
    response_id: str


class OutputAudioBufferStopped(ServerEvent):
    type: Literal["output_audio_buffer.stopped"] = "output_audio_buffer.stopped"
    response_id: str


class OutputAudioBufferCleared(ServerEvent):
    type: Literal["output_audio_buffer.cleared"] = "output_audio_buffer.cleared"
    response_id: str


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    object: str | None = None
    status: str | None = None
    status_details: dict[str, Any] | None = None
    output: list[Item] | None = None
    usage: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class ResponseCreated(ServerEvent):
    type: Literal["response.created"] = "response.created"
    response: Response


class ResponseDone(ServerEvent):
    type: Literal["response.done"] = "response.done"
    response: Response


class _OutputItemEvent(ServerEvent):
    response_id: str
    output_index: int
    item: Item


class ResponseOutputItemAdded(_OutputItemEvent):
    type: Literal["response.output_item.added"] = "response.output_item.added"


class ResponseOutputItemDone(_OutputItemEvent):
    type: Literal["response.output_item.done"] = "response.output_item.done"


class _PartEvent(ServerEvent):
    response_id: str
    item_id: str
    output_index: int
    content_index: int


class ResponsePart(ContentPart):
    """The `part` of `response.content_part.added/done`: its `type` is optional ([SDK] ResponseContentPartAddedEvent
    .Part, `type: Optional[Literal["text", "audio"]]`), so a part without one is read, not refused."""

    type: str | None = None  # type: ignore[assignment]


class ResponseContentPartAdded(_PartEvent):
    type: Literal["response.content_part.added"] = "response.content_part.added"
    part: ResponsePart


class ResponseContentPartDone(_PartEvent):
    type: Literal["response.content_part.done"] = "response.content_part.done"
    part: ResponsePart


class ResponseOutputAudioTranscriptDelta(_PartEvent):
    type: Literal["response.output_audio_transcript.delta"] = "response.output_audio_transcript.delta"
    delta: str


class ResponseOutputAudioTranscriptDone(_PartEvent):
    type: Literal["response.output_audio_transcript.done"] = "response.output_audio_transcript.done"
    transcript: str


class ResponseOutputTextDelta(_PartEvent):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    delta: str


class ResponseOutputTextDone(_PartEvent):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    text: str


class ResponseOutputAudioDelta(_PartEvent):
    type: Literal["response.output_audio.delta"] = "response.output_audio.delta"
    delta: str


class ResponseOutputAudioDone(_PartEvent):
    type: Literal["response.output_audio.done"] = "response.output_audio.done"


class ResponseFunctionCallArgumentsDelta(ServerEvent):
    type: Literal["response.function_call_arguments.delta"] = "response.function_call_arguments.delta"
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    delta: str


class ResponseFunctionCallArgumentsDone(ServerEvent):
    type: Literal["response.function_call_arguments.done"] = "response.function_call_arguments.done"
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    name: str | None = None
    arguments: str


class ResponseMcpCallArgumentsDelta(ServerEvent):
    type: Literal["response.mcp_call_arguments.delta"] = "response.mcp_call_arguments.delta"
    item_id: str
    response_id: str | None = None
    output_index: int | None = None
    delta: str


class ResponseMcpCallArgumentsDone(ServerEvent):
    type: Literal["response.mcp_call_arguments.done"] = "response.mcp_call_arguments.done"
    item_id: str
    response_id: str | None = None
    output_index: int | None = None
    arguments: str


class ResponseMcpCallInProgress(ServerEvent):
    type: Literal["response.mcp_call.in_progress"] = "response.mcp_call.in_progress"
    item_id: str
    output_index: int | None = None


class ResponseMcpCallCompleted(ServerEvent):
    type: Literal["response.mcp_call.completed"] = "response.mcp_call.completed"
    item_id: str
    output_index: int | None = None


class ResponseMcpCallFailed(ServerEvent):
    type: Literal["response.mcp_call.failed"] = "response.mcp_call.failed"
    item_id: str
    output_index: int | None = None


class McpListToolsInProgress(ServerEvent):
    type: Literal["mcp_list_tools.in_progress"] = "mcp_list_tools.in_progress"
    item_id: str


class McpListToolsCompleted(ServerEvent):
    type: Literal["mcp_list_tools.completed"] = "mcp_list_tools.completed"
    item_id: str


class McpListToolsFailed(ServerEvent):
    type: Literal["mcp_list_tools.failed"] = "mcp_list_tools.failed"
    item_id: str


class RateLimitsUpdated(ServerEvent):
    type: Literal["rate_limits.updated"] = "rate_limits.updated"
    rate_limits: list[dict[str, Any]]


KnownServerEvent = Union[
    Error,
    SessionCreated,
    SessionUpdated,
    ConversationCreated,
    ConversationItemAdded,
    ConversationItemDone,
    ConversationItemCreated,
    ConversationItemRetrieved,
    ConversationItemTruncated,
    ConversationItemDeleted,
    InputTranscriptionDelta,
    InputTranscriptionCompleted,
    InputTranscriptionFailed,
    InputTranscriptionSegment,
    SpeechStarted,
    SpeechStopped,
    InputAudioBufferCommitted,
    InputAudioBufferCleared,
    InputAudioBufferTimeoutTriggered,
    InputAudioBufferDtmf,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
    OutputAudioBufferCleared,
    ResponseCreated,
    ResponseDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseOutputAudioTranscriptDelta,
    ResponseOutputAudioTranscriptDone,
    ResponseOutputTextDelta,
    ResponseOutputTextDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseMcpCallArgumentsDelta,
    ResponseMcpCallArgumentsDone,
    ResponseMcpCallInProgress,
    ResponseMcpCallCompleted,
    ResponseMcpCallFailed,
    McpListToolsInProgress,
    McpListToolsCompleted,
    McpListToolsFailed,
    RateLimitsUpdated,
]
AnyServerEvent = Annotated[KnownServerEvent, Field(discriminator="type")]


# ----------------------------------------------------------------------------------------------- fallbacks
class UnknownEvent(BaseModel):
    """A well-formed event whose `type` this version does not know. Kept, logged, never fatal."""

    model_config = ConfigDict(extra="allow")
    type: str
    event_id: str | None = None


class MalformedEvent(BaseModel):
    """Input that could not be decoded as an event: broken JSON, no `type`, or a known type with a bad shape."""

    type: Literal["voiceclient.malformed"] = "voiceclient.malformed"
    raw: str
    reason: str
    event_type: str | None = None
    event_id: str | None = None
    # A known type with a bad shape: the API's error code and the field's path (`api_error`), else None.
    code: str | None = None
    param: str | None = None


# What decoding a message gives: a known event, or one of the fallbacks (never an exception).
ReceivedServerEvent = Union[KnownServerEvent, UnknownEvent, MalformedEvent]
ReceivedClientEvent = Union[KnownClientEvent, UnknownEvent, MalformedEvent]


def _classes_of(members: Any) -> dict[str, type[BaseModel]]:
    """The closed union as a map from `type` to its class: decoding picks the class by the discriminator, as a
    discriminated union does, but only the classes of types actually received are ever built."""
    return {name: m for m in typing.get_args(members) for name in typing.get_args(m.model_fields["type"].annotation)}


_SERVER_CLASSES = _classes_of(KnownServerEvent)
_CLIENT_CLASSES = _classes_of(KnownClientEvent)
SERVER_EVENT_TYPES = frozenset(_SERVER_CLASSES)
CLIENT_EVENT_TYPES = frozenset(_CLIENT_CLASSES)


def _decode(text: str | bytes, classes: dict[str, type[BaseModel]]) -> BaseModel:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return MalformedEvent(raw=raw[:2000], reason=f"not JSON: {exc.msg} at {exc.pos}")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return MalformedEvent(raw=raw[:2000], reason="not an object with a string `type`")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    cls = classes.get(data["type"])
    if cls is None:
        return UnknownEvent.model_validate(data)
    if classes is _CLIENT_CLASSES and "event_id" not in data:  # the client's id or none, never a made-up one:
        data["event_id"] = None  # an error names the event it answers by the id the client gave (null if none)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        code, _, where = api_error(err, data)  # the path as the client wrote it: no union tags (`server_vad`)
        return MalformedEvent(
            raw=raw[:2000],
            reason=f"{where}: {err['msg']}",
            event_type=data["type"],
            event_id=event_id,
            code=code,
            param=where or None,
        )


def parse_server_event(text: str | bytes) -> ReceivedServerEvent:
    """Decode one data-channel message from the server. Never raises."""
    return typing.cast(ReceivedServerEvent, _decode(text, _SERVER_CLASSES))


def server_event_wire(event: ServerEvent) -> dict[str, Any]:
    """A server event as the server puts it on the wire: its `event_id` (a new one unless set) and `type` first,
    then exactly the fields it was built with (a field set to None is sent as null; one left out is not sent).
    The embedded server builds every event it sends from the models above and serializes it here, so the two
    halves share one schema: what the server can send, the client's parser knows."""
    data = event.model_dump(mode="json", exclude_unset=True)
    data.pop("type", None)
    event_id = data.pop("event_id", None) or new_id("event")
    return {"event_id": event_id, "type": type(event).model_fields["type"].default, **data}


def error_event(exc: ProtocolError) -> Error:
    """The `error` event of a refusal, naming the client event it answers."""
    return Error(error=ErrorDetail(**exc.body(with_event_id=True)))


def parse_client_event(text: str | bytes) -> ReceivedClientEvent:
    """Decode one data-channel message from a client (used by the embedded server). Never raises."""
    return typing.cast(ReceivedClientEvent, _decode(text, _CLIENT_CLASSES))
