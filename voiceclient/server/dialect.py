"""The protocol seam: how a server session's core reaches the wire protocol it speaks.

    client message --Dialect.decode--> a Command (below) --> ServerSession._handle
    the core's happenings (a response started, a word of the transcript, speech started at ms...)
        --Dialect.<happening>(...)--> wire events (dicts) --> ServerSession.send --> the edge, sidebands, console

The core (`server/session.py`), the turn handler (`server/turns.py`) and the response engine
(`server/responses.py`) know the commands and call the happenings by name; which event types, field names and
shapes go on the wire, what the session object looks like and how it is validated, and how an error is rendered,
are the dialect's. The edges, the turn detector and the responders never see an event at all. The Realtime API is
the first dialect (`server/realtime.py`), GPT-Live the second (`server/live.py`, one instance per session: it keeps
the session's timeline); each is chosen per endpoint (`ServerSession(..., dialect=...)`), without touching the
edges, the turn detector or the responders. A command or happening one protocol has and the other has not (input
mute, `session_closed`) is carried out by the core all the same, and is nothing on the other's wire.

A happening returns the list of wire events it becomes: none when the protocol has no such event, several when it
announces one thing twice (the Realtime API's `response.output_item.added` and `conversation.item.added`).

The core's own models are still shaped as the Realtime API's: the session object (`audio.input.turn_detection`,
`output_modalities`...), the conversation's items and the response object are what the happenings are given. A
dialect with other shapes renders them from these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Union

from voiceclient.protocol.errors import ProtocolError

Wire = dict[str, Any]  # one server event as it goes on the wire (serialized to JSON by the session, in one place)
# Where in a response a part is: response_id, item_id, output_index, content_index (a function call's: call_id).
PartIds = Mapping[str, Any]


# ----------------------------------------------------------------------------------------------- commands
# What a client asked for, whatever the protocol called it. `event_id`: the client's id for its message, which an
# error answering it names (`ProtocolError.with_event`).
@dataclass(frozen=True)
class ResponseRequest:
    """What a client asked of one response (None: the session's setting, for this response only)."""

    output_modalities: list[str] | None = None
    max_output_tokens: int | str | None = None
    conversation: str | None = None  # "none": out of band, in no conversation
    metadata: dict[str, str] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    voice: str | dict[str, Any] | None = None  # `audio.output.voice`
    # The response's whole context, when given (`[]`: none): items, or `{"type": "item_reference", "id": ...}`.
    input: list[dict[str, Any]] | None = None
    # What the response says, word for word, instead of what the responder plans (GPT-Live's spoken commentary).
    say: str | None = None
    # The running response ends first, instead of this one being refused (GPT-Live's `response.create`: the
    # backend's answer is said when the voice model has the floor).
    wait: bool = False

    @property
    def out_of_band(self) -> bool:
        return self.conversation == "none"


@dataclass(frozen=True)
class UpdateSession:
    session: dict[str, Any]  # the fields the client set, as it sent them (validated by `Dialect.apply_update`)
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class AppendAudio:
    audio: str  # base64, in the session's input format
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class CommitAudio:
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class ClearAudio:
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class ClearOutput:
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class CreateItem:
    item: dict[str, Any]  # checked by the dialect
    previous_item_id: str | None = None
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class RetrieveItem:
    item_id: str
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class DeleteItem:
    item_id: str
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class TruncateItem:
    item_id: str
    audio_end_ms: int
    content_index: int = 0  # the audio part cut
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class CreateResponse:
    request: ResponseRequest | None = None
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class CancelResponse:
    response_id: str | None = None
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class MuteInput:
    """The model stops (`muted`) or starts again hearing the input audio; the session goes on."""

    muted: bool
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class AppendContext:
    """Context the application adds while the session runs: `instructions` (steer what follows), `thinking`
    (silent), `commentary` (to be spoken); `delegation_id`: the delegated task it answers, if any."""

    kind: Literal["instructions", "thinking", "commentary"]
    content: str
    delegation_id: str | None = None
    event_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class CloseSession:
    """The client asks the session to end (its last event says why, `Dialect.session_closed`)."""

    event_id: str | None = field(default=None, kw_only=True)


Command = Union[
    UpdateSession,
    AppendAudio,
    CommitAudio,
    ClearAudio,
    ClearOutput,
    CreateItem,
    RetrieveItem,
    DeleteItem,
    TruncateItem,
    CreateResponse,
    CancelResponse,
    MuteInput,
    AppendContext,
    CloseSession,
]
# Why a session ended, as the core knows it (`Dialect.session_closed`).
EndReason = Literal["close_requested", "expired", "connection_lost", "server_shutdown"]


# ----------------------------------------------------------------------------------------------- the dialect
class Dialect(Protocol):
    """One wire protocol: decoding client messages, encoding the core's happenings, the session's schema."""

    name: str  # "realtime": for logs
    # Event type -> the field of it that holds base64 audio (kept out of the console's log).
    audio_fields: Mapping[str, str]
    # The voice model has no tools of its own: every function a responder plans is delegated to the application,
    # declared or not (GPT-Live); False: only the session's declared tools are called (the Realtime API).
    delegates_tools: bool

    # -------------------------------------------------------------------------------------- the session's schema
    def default_session(self, model: str | None = None) -> dict[str, Any]:
        """A fresh session, as the client is first shown it; a `model` the protocol does not have is refused
        (`ProtocolError`)."""

    def default_transcription_session(self) -> dict[str, Any]:
        """A fresh transcription session (`type: "transcription"`: input audio transcribed, no responses)."""

    def apply_update(self, current: dict[str, Any], update: Any, *, audio_started: bool) -> dict[str, Any]:
        """`update` (a client's fields) merged into `current` and validated; raises ProtocolError."""

    # -------------------------------------------------------------------------------------- in
    def decode(self, message: str | bytes) -> Command:
        """One client message as a command; raises ProtocolError (naming the message) when it is not one."""

    # -------------------------------------------------------------------------------------- the session
    def session_created(self, session: dict[str, Any]) -> list[Wire]:
        """The connection is open (also the greeting of a sideband that joins). `session`: the full session; what
        a client is never shown (credentials) is the dialect's to leave out, here and in `session_updated`."""

    def session_updated(self, session: dict[str, Any]) -> list[Wire]: ...

    def error(self, exc: ProtocolError) -> list[Wire]:
        """A refusal or failure, naming the client message it answers (`exc.event_id`)."""

    def session_closed(self, session: dict[str, Any], reason: EndReason) -> list[Wire]:
        """The session has ended (sent last, before the connection closes, where it is still open)."""

    def input_muted(self, muted: bool, event_id: str | None) -> list[Wire]:
        """`MuteInput` carried out."""

    def context_appended(self, kind: str, event_id: str | None) -> list[Wire]:
        """`AppendContext` taken into the session (`kind`: its kind)."""

    # -------------------------------------------------------------------------------------- the user's side
    def speech_started(self, item_id: str, audio_start_ms: int) -> list[Wire]: ...

    def speech_stopped(self, item_id: str, audio_end_ms: int) -> list[Wire]: ...

    def input_committed(self, item_id: str, previous_item_id: str | None) -> list[Wire]: ...

    def input_cleared(self) -> list[Wire]: ...

    def input_timed_out(self, item_id: str, start_ms: int, end_ms: int) -> list[Wire]:
        """The idle timer committed the silent user turn from `start_ms` (the assistant's audio had ended) to
        `end_ms` (the timeout) of input audio."""

    def input_transcript_delta(self, item_id: str, delta: str) -> list[Wire]: ...

    def input_transcript_done(self, item_id: str, transcript: str, seconds: float) -> list[Wire]:
        """`seconds`: the input audio transcribed."""

    def input_transcript_failed(self, item_id: str, message: str) -> list[Wire]: ...

    # -------------------------------------------------------------------------------------- the conversation
    def item_added(self, item: dict[str, Any], previous_item_id: str | None) -> list[Wire]: ...

    def item_done(self, item: dict[str, Any], previous_item_id: str | None) -> list[Wire]: ...

    def item_retrieved(self, item: dict[str, Any]) -> list[Wire]: ...

    def item_deleted(self, item_id: str) -> list[Wire]: ...

    def item_truncated(self, item_id: str, audio_end_ms: int) -> list[Wire]: ...

    # -------------------------------------------------------------------------------------- responses
    def response_created(self, response: dict[str, Any]) -> list[Wire]: ...

    def response_done(self, response: dict[str, Any]) -> list[Wire]:
        """The response ended (completed, cancelled, incomplete or failed: `response["status"]`)."""

    def output_item_added(
        self,
        response_id: str,
        output_index: int,
        item: dict[str, Any],
        previous_item_id: str | None,
        *,
        in_conversation: bool = True,
    ) -> list[Wire]:
        """A response's output item began (it is in the conversation from now on, unless the response is out of
        band: `in_conversation` False)."""

    def output_item_done(
        self,
        response_id: str,
        output_index: int,
        item: dict[str, Any],
        previous_item_id: str | None,
        *,
        in_conversation: bool = True,
    ) -> list[Wire]: ...

    def content_part_added(self, ids: PartIds, part: dict[str, Any]) -> list[Wire]: ...

    def content_part_done(self, ids: PartIds, part: dict[str, Any]) -> list[Wire]: ...

    def message_planned(self, ids: PartIds, text: str) -> list[Wire]:
        """What a message of a response will say, whole, before any of it is said (GPT-Live's Responses backend
        writes the answer the voice model then speaks)."""

    def output_text_delta(self, ids: PartIds, delta: str) -> list[Wire]: ...

    def output_text_done(self, ids: PartIds, text: str) -> list[Wire]: ...

    def output_transcript_delta(self, ids: PartIds, delta: str, span_ms: tuple[int, int]) -> list[Wire]:
        """A word of what the assistant says, as its audio plays (when paced); `span_ms`: where the word is in the
        item's audio (from, to, in ms of that audio)."""

    def output_transcript_done(self, ids: PartIds, transcript: str) -> list[Wire]: ...

    def output_audio_delta(self, ids: PartIds, audio: str) -> list[Wire]:
        """A chunk of the answer's audio, base64 in the session's output format (when the edge sends it as
        events: a WebSocket's)."""

    def output_audio_done(self, ids: PartIds) -> list[Wire]: ...

    def function_arguments_delta(self, ids: PartIds, delta: str) -> list[Wire]: ...

    def function_arguments_done(self, ids: PartIds, name: str, arguments: str) -> list[Wire]: ...

    def mcp_arguments_delta(self, ids: PartIds, delta: str) -> list[Wire]: ...

    def mcp_arguments_done(self, ids: PartIds, arguments: str) -> list[Wire]: ...

    def mcp_call_in_progress(self, item_id: str, output_index: int) -> list[Wire]: ...

    def mcp_call_finished(self, item_id: str, output_index: int, *, failed: bool) -> list[Wire]: ...

    def mcp_tools_listing(self, item_id: str) -> list[Wire]: ...

    def mcp_tools_listed(self, item_id: str) -> list[Wire]: ...

    # -------------------------------------------------------------------------------------- playout (WebRTC)
    def playout_started(self, response_id: str) -> list[Wire]: ...

    def playout_stopped(self, response_id: str) -> list[Wire]: ...

    def playout_cleared(self, response_id: str) -> list[Wire]: ...
