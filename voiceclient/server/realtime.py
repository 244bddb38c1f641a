"""The Realtime API as a `Dialect` (`server/dialect.py`): its client events decoded into the core's commands, the
core's happenings built as the event models of `voiceclient/protocol/events.py` (serialized by
`server_event_wire`, so the client's parser knows everything the server sends), and its session schema
(`server/session_rules.py`). The only server module that builds Realtime events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, final

from voiceclient.protocol import events as ev
from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.session import redact_secrets
from voiceclient.protocol.validation import api_message
from voiceclient.server.dialect import (
    AppendAudio,
    CancelResponse,
    ClearAudio,
    ClearOutput,
    Command,
    CommitAudio,
    CreateItem,
    CreateResponse,
    DeleteItem,
    EndReason,
    PartIds,
    ResponseRequest,
    RetrieveItem,
    TruncateItem,
    UpdateSession,
    Wire,
)
from voiceclient.server.responders import check_tool_choice
from voiceclient.server.session_rules import apply_update, check_model, default_session
from voiceclient.server.transcription import (
    apply_transcription_update,
    changes_type,
    default_transcription_session,
    type_change_refused,
)

RATE_LIMITS = [
    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
    {"name": "tokens", "limit": 400000, "remaining": 399000, "reset_seconds": 0.15},
]


def one(event: ev.ServerEvent) -> list[Wire]:
    return [ev.server_event_wire(event)]


def public_session(session: dict[str, Any]) -> dict[str, Any]:
    """The session as sent to clients: MCP credentials are never echoed back."""
    out: dict[str, Any] = redact_secrets(session, drop=True)
    return out


def check_item(item: dict[str, Any]) -> tuple[str, str] | None:
    """What is wrong with a client's item (message, param), or None."""
    kind = item.get("type")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system"):
            return f"Invalid 'item.role': {role!r}.", "item.role"
        allowed = {
            "user": {"input_text", "input_audio", "input_image"},
            "system": {"input_text"},
            "assistant": {"output_text", "output_audio", "text", "audio"},
        }[role]
        for i, part in enumerate(item.get("content") or []):
            if part.get("type") not in allowed:
                return f"Invalid content type {part.get('type')!r} for a {role} message.", f"item.content[{i}].type"
        if not item.get("content"):
            return "A message item needs content.", "item.content"
    elif kind == "function_call_output":
        if not item.get("call_id") or item.get("output") is None:
            return "A function_call_output item needs call_id and output.", "item.call_id"
    elif kind == "function_call":
        if not item.get("call_id") or not item.get("name"):
            return "A function_call item needs call_id and name.", "item.call_id"
    elif kind == "mcp_approval_response":
        if not isinstance(item.get("approval_request_id"), str) or not isinstance(item.get("approve"), bool):
            return "An mcp_approval_response needs approval_request_id and approve.", "item.approval_request_id"
    else:
        return f"Invalid 'item.type': {kind!r}.", "item.type"
    return None


def request_of(params: ev.ResponseParams | None) -> ResponseRequest | None:
    if params is None:
        return None
    modalities = None if params.output_modalities is None else list[str](params.output_modalities)
    output = (params.audio or {}).get("output") or {}
    if params.conversation not in (None, "auto", "none"):  # [SDK] `conversation`: "auto" or "none"
        raise ProtocolError(
            f"Invalid value: '{params.conversation}'. Supported values are: 'auto' and 'none'.",
            "invalid_value",
            "response.conversation",
        )
    for i, item in enumerate(params.input or []):
        if item.get("type") == "item_reference":
            if not isinstance(item.get("id"), str):
                raise ProtocolError(
                    "An item reference needs an id.", "missing_required_parameter", f"response.input[{i}].id"
                )
            continue
        problem = check_item(item)
        if problem:
            raise ProtocolError(problem[0], "invalid_value", f"response.input[{i}]" + problem[1][len("item") :])
    return ResponseRequest(
        modalities,
        params.max_output_tokens,
        params.conversation,
        params.metadata,
        instructions=params.instructions,
        tools=params.tools,
        tool_choice=params.tool_choice,
        voice=output.get("voice") if isinstance(output, dict) else None,
        input=params.input,
    )


def transcription_update(message: str | bytes) -> UpdateSession | None:
    """A `session.update` carrying a transcription session (`session.type: "transcription"`) that the client's
    event model refuses: the session as the client wrote it, for `apply_update` to refuse in the API's words."""
    try:
        data = json.loads(message)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("type") != "session.update":
        return None
    session, event_id = data.get("session"), data.get("event_id")
    if not isinstance(session, dict) or session.get("type") != "transcription":
        return None
    return UpdateSession(session, event_id=event_id if isinstance(event_id, str) else None)


@final
class RealtimeDialect:
    """OpenAI's Realtime API (GA), over WebRTC, WebSocket and sidebands."""

    name = "realtime"
    audio_fields: Mapping[str, str] = {"input_audio_buffer.append": "audio", "response.output_audio.delta": "delta"}
    delegates_tools = False

    # ------------------------------------------------------------------------------------------ the session's schema
    def default_session(self, model: str | None = None) -> dict[str, Any]:
        if model is not None:
            check_model(model)
        return default_session(model)

    def default_transcription_session(self) -> dict[str, Any]:
        return default_transcription_session()

    def apply_update(self, current: dict[str, Any], update: Any, *, audio_started: bool) -> dict[str, Any]:
        if current.get("type") == "transcription":
            return apply_transcription_update(current, update)
        if changes_type(current, update):
            raise type_change_refused(current, update)
        session = apply_update(current, update, audio_started=audio_started)
        if isinstance(update, dict) and ("tool_choice" in update or "tools" in update):
            check_tool_choice(session.get("tool_choice"), session.get("tools") or [], "session.tool_choice")
        return session

    # ------------------------------------------------------------------------------------------ in
    def decode(self, message: str | bytes) -> Command:
        event = ev.parse_client_event(message)
        if isinstance(event, ev.MalformedEvent) and event.event_type == "session.update":
            # (a transcription session's update is no realtime session: only then is the message read again)
            update = transcription_update(message)
            if update is not None:
                return update
        if isinstance(event, ev.MalformedEvent):
            if event.event_type is None:
                raise ProtocolError(f"Invalid client event: {event.reason}.", "invalid_json").with_event(event)
            if event.code is None or event.param is None:
                raise ProtocolError(f"Invalid '{event.event_type}' event: {event.reason}.", "invalid_value").with_event(
                    event
                )
            detail = event.reason.split(": ", 1)[-1]
            raise ProtocolError(api_message(event.code, event.param, detail), event.code, event.param).with_event(event)
        if isinstance(event, ev.UnknownEvent):
            raise ProtocolError(
                f"Invalid value: '{event.type}'. Supported values are: {', '.join(sorted(ev.CLIENT_EVENT_TYPES))}.",
                "invalid_value",
                "type",
            ).with_event(event)
        try:
            return self._command(event, message)
        except ProtocolError as exc:
            raise exc.with_event(event) from None

    @staticmethod
    def _command(event: ev.KnownClientEvent, message: str | bytes) -> Command:
        """Each client event the server handles (tests/test_protocol_doc.py reads these branches)."""
        eid = event.event_id
        if isinstance(event, ev.SessionUpdate):
            # The session as the client wrote it: the model fills in `type`, but an update without one is refused
            # whole by the real service (`missing_required_parameter`, `session.type`).
            return UpdateSession(json.loads(message)["session"], event_id=eid)
        if isinstance(event, ev.InputAudioBufferAppend):
            return AppendAudio(event.audio, event_id=eid)
        if isinstance(event, ev.InputAudioBufferCommit):
            return CommitAudio(event_id=eid)
        if isinstance(event, ev.InputAudioBufferClear):
            return ClearAudio(event_id=eid)
        if isinstance(event, ev.OutputAudioBufferClear):
            return ClearOutput(event_id=eid)
        if isinstance(event, ev.ConversationItemCreate):
            item = event.item.model_dump(mode="json", exclude_none=True)
            problem = check_item(item)
            if problem:
                raise ProtocolError(problem[0], "invalid_value", problem[1])
            return CreateItem(item, event.previous_item_id, event_id=eid)
        if isinstance(event, ev.ConversationItemRetrieve):
            return RetrieveItem(event.item_id, event_id=eid)
        if isinstance(event, ev.ConversationItemDelete):
            return DeleteItem(event.item_id, event_id=eid)
        if isinstance(event, ev.ConversationItemTruncate):
            return TruncateItem(event.item_id, event.audio_end_ms, event.content_index, event_id=eid)
        if isinstance(event, ev.ResponseCreate):
            return CreateResponse(request_of(event.response), event_id=eid)
        if isinstance(event, ev.ResponseCancel):
            return CancelResponse(event.response_id, event_id=eid)
        raise AssertionError(f"a client event with no command: {event.type}")

    # ------------------------------------------------------------------------------------------ the session
    def session_created(self, session: dict[str, Any]) -> list[Wire]:
        return one(ev.SessionCreated(session=public_session(session)))

    def session_updated(self, session: dict[str, Any]) -> list[Wire]:
        return one(ev.SessionUpdated(session=public_session(session)))

    def error(self, exc: ProtocolError) -> list[Wire]:
        return one(ev.error_event(exc))

    # (the Realtime API has no closing event, no input mute and no appended context: its decode makes none of those
    # commands)
    def session_closed(self, session: dict[str, Any], reason: EndReason) -> list[Wire]:
        return []

    def input_muted(self, muted: bool, event_id: str | None) -> list[Wire]:
        return []

    def context_appended(self, kind: str, event_id: str | None) -> list[Wire]:
        return []

    # ------------------------------------------------------------------------------------------ the user's side
    def speech_started(self, item_id: str, audio_start_ms: int) -> list[Wire]:
        return one(ev.SpeechStarted(audio_start_ms=audio_start_ms, item_id=item_id))

    def speech_stopped(self, item_id: str, audio_end_ms: int) -> list[Wire]:
        return one(ev.SpeechStopped(audio_end_ms=audio_end_ms, item_id=item_id))

    def input_committed(self, item_id: str, previous_item_id: str | None) -> list[Wire]:
        return one(ev.InputAudioBufferCommitted(previous_item_id=previous_item_id, item_id=item_id))

    def input_cleared(self) -> list[Wire]:
        return one(ev.InputAudioBufferCleared())

    def input_timed_out(self, item_id: str, start_ms: int, end_ms: int) -> list[Wire]:
        return one(ev.InputAudioBufferTimeoutTriggered(audio_start_ms=start_ms, audio_end_ms=end_ms, item_id=item_id))

    def input_transcript_delta(self, item_id: str, delta: str) -> list[Wire]:
        return one(ev.InputTranscriptionDelta(item_id=item_id, content_index=0, delta=delta))

    def input_transcript_done(self, item_id: str, transcript: str, seconds: float) -> list[Wire]:
        usage = {"type": "duration", "seconds": seconds}
        return one(ev.InputTranscriptionCompleted(item_id=item_id, content_index=0, transcript=transcript, usage=usage))

    def input_transcript_failed(self, item_id: str, message: str) -> list[Wire]:
        # (no `param`: OpenAI's JavaScript SDK takes it as a string when present, and refuses the event with null)
        error = {"type": "transcription_error", "code": "transcription_unavailable", "message": message}
        return one(ev.InputTranscriptionFailed(item_id=item_id, content_index=0, error=error))

    # ------------------------------------------------------------------------------------------ the conversation
    def item_added(self, item: dict[str, Any], previous_item_id: str | None) -> list[Wire]:
        return one(ev.ConversationItemAdded(previous_item_id=previous_item_id, item=ev.Item.model_validate(item)))

    def item_done(self, item: dict[str, Any], previous_item_id: str | None) -> list[Wire]:
        return one(ev.ConversationItemDone(previous_item_id=previous_item_id, item=ev.Item.model_validate(item)))

    def item_retrieved(self, item: dict[str, Any]) -> list[Wire]:
        return one(ev.ConversationItemRetrieved(item=ev.Item.model_validate(item)))

    def item_deleted(self, item_id: str) -> list[Wire]:
        return one(ev.ConversationItemDeleted(item_id=item_id))

    def item_truncated(self, item_id: str, audio_end_ms: int) -> list[Wire]:
        return one(ev.ConversationItemTruncated(item_id=item_id, content_index=0, audio_end_ms=audio_end_ms))

    # ------------------------------------------------------------------------------------------ responses
    def response_created(self, response: dict[str, Any]) -> list[Wire]:
        return [
            *one(ev.ResponseCreated(response=ev.Response.model_validate(response))),
            *one(ev.RateLimitsUpdated(rate_limits=RATE_LIMITS)),
        ]

    def response_done(self, response: dict[str, Any]) -> list[Wire]:
        return one(ev.ResponseDone(response=ev.Response.model_validate(response)))

    def output_item_added(
        self,
        response_id: str,
        output_index: int,
        item: dict[str, Any],
        previous_item_id: str | None,
        *,
        in_conversation: bool = True,
    ) -> list[Wire]:
        # An out-of-band response's items are in no conversation: no `conversation.item.added` ([SDK]
        # `RealtimeResponseCreateParams.conversation`: "none" does not add items to the default conversation).
        model = ev.Item.model_validate(item)  # (validated once for both events)
        added = one(ev.ResponseOutputItemAdded(response_id=response_id, output_index=output_index, item=model))
        if not in_conversation:
            return added
        return added + one(ev.ConversationItemAdded(previous_item_id=previous_item_id, item=model))

    def output_item_done(
        self,
        response_id: str,
        output_index: int,
        item: dict[str, Any],
        previous_item_id: str | None,
        *,
        in_conversation: bool = True,
    ) -> list[Wire]:
        model = ev.Item.model_validate(item)
        done = one(ev.ResponseOutputItemDone(response_id=response_id, output_index=output_index, item=model))
        if not in_conversation:
            return done
        return done + one(ev.ConversationItemDone(previous_item_id=previous_item_id, item=model))

    def content_part_added(self, ids: PartIds, part: dict[str, Any]) -> list[Wire]:
        return one(ev.ResponseContentPartAdded(**ids, part=ev.ResponsePart.model_validate(part)))

    def content_part_done(self, ids: PartIds, part: dict[str, Any]) -> list[Wire]:
        return one(ev.ResponseContentPartDone(**ids, part=ev.ResponsePart.model_validate(part)))

    def message_planned(self, ids: PartIds, text: str) -> list[Wire]:
        return []

    def output_text_delta(self, ids: PartIds, delta: str) -> list[Wire]:
        return one(ev.ResponseOutputTextDelta(**ids, delta=delta))

    def output_text_done(self, ids: PartIds, text: str) -> list[Wire]:
        return one(ev.ResponseOutputTextDone(**ids, text=text))

    def output_transcript_delta(self, ids: PartIds, delta: str, span_ms: tuple[int, int]) -> list[Wire]:
        return one(ev.ResponseOutputAudioTranscriptDelta(**ids, delta=delta))

    def output_transcript_done(self, ids: PartIds, transcript: str) -> list[Wire]:
        return one(ev.ResponseOutputAudioTranscriptDone(**ids, transcript=transcript))

    def output_audio_delta(self, ids: PartIds, audio: str) -> list[Wire]:
        return one(ev.ResponseOutputAudioDelta(**ids, delta=audio))

    def output_audio_done(self, ids: PartIds) -> list[Wire]:
        return one(ev.ResponseOutputAudioDone(**ids))

    def function_arguments_delta(self, ids: PartIds, delta: str) -> list[Wire]:
        return one(ev.ResponseFunctionCallArgumentsDelta(**ids, delta=delta))

    def function_arguments_done(self, ids: PartIds, name: str, arguments: str) -> list[Wire]:
        return one(ev.ResponseFunctionCallArgumentsDone(**ids, name=name, arguments=arguments))

    def mcp_arguments_delta(self, ids: PartIds, delta: str) -> list[Wire]:
        return one(ev.ResponseMcpCallArgumentsDelta(**ids, delta=delta))

    def mcp_arguments_done(self, ids: PartIds, arguments: str) -> list[Wire]:
        return one(ev.ResponseMcpCallArgumentsDone(**ids, arguments=arguments))

    def mcp_call_in_progress(self, item_id: str, output_index: int) -> list[Wire]:
        return one(ev.ResponseMcpCallInProgress(item_id=item_id, output_index=output_index))

    def mcp_call_finished(self, item_id: str, output_index: int, *, failed: bool) -> list[Wire]:
        if failed:
            return one(ev.ResponseMcpCallFailed(item_id=item_id, output_index=output_index))
        return one(ev.ResponseMcpCallCompleted(item_id=item_id, output_index=output_index))

    def mcp_tools_listing(self, item_id: str) -> list[Wire]:
        return one(ev.McpListToolsInProgress(item_id=item_id))

    def mcp_tools_listed(self, item_id: str) -> list[Wire]:
        return one(ev.McpListToolsCompleted(item_id=item_id))

    # ------------------------------------------------------------------------------------------ playout (WebRTC)
    def playout_started(self, response_id: str) -> list[Wire]:
        return one(ev.OutputAudioBufferStarted(response_id=response_id))

    def playout_stopped(self, response_id: str) -> list[Wire]:
        return one(ev.OutputAudioBufferStopped(response_id=response_id))

    def playout_cleared(self, response_id: str) -> list[Wire]:
        return one(ev.OutputAudioBufferCleared(response_id=response_id))
