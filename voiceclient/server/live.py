"""GPT-Live as a `Dialect` (`server/dialect.py`): `session.start` taken apart into the core's session, the client
events decoded into the core's commands, and the core's happenings built as the event models of
`voiceclient/protocol/live_events.py`. The only server module that builds GPT-Live events.

GPT-Live is not the Realtime API with other names: the model takes its own turns (no commit, no
`input_audio_buffer.*`, no `response.*` for the voice), transcripts come as deltas placed on the session's timeline
(`start_ms`/`end_ms`, no `.done`), and the voice model has no tools: a function a responder plans is delegated to
the application (`session.delegation.created`), which answers with commentary to be spoken, or, with Responses
delegation, made by the session's Responses backend (`server/live_backend.py`), whose events go out in
`response.event` envelopes and whose answer the voice model says. So most of the core's
happenings are nothing here, and the dialect keeps what it needs to place events on the timeline: one instance
per session (`LiveDialect()`), its clock started with it.

The session timeline, as `serve` keeps it: milliseconds since the session started. The user's speech is placed by
the input audio (a client streams from the start), an answer's words where its audio begins (when it is announced,
and not before the turn it answers nor the audio before it) plus the word's place in that audio.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, final

from pydantic import ValidationError

from voiceclient.protocol import live_events as lv
from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.events import new_id
from voiceclient.protocol.validation import api_error
from voiceclient.server.dialect import (
    AppendAudio,
    AppendContext,
    CloseSession,
    Command,
    CreateItem,
    CreateResponse,
    EndReason,
    MuteInput,
    PartIds,
    ResponseRequest,
    UpdateSession,
    Wire,
)
from voiceclient.server.live_backend import Envelope, ResponsesBackend

DEFAULT_MODEL = "gpt-live-1"
DEFAULT_INSTRUCTIONS = (
    "You are a helpful voice assistant running inside voiceclient's embedded server. Replies come from the "
    "server's responder (echo, a scenario or the offline agent), not from a language model."
)
SESSION_SECONDS = 3600
DEFAULT_FORMAT: dict[str, Any] = {"type": "audio/pcm", "rate": 24000}
# The core's turn detection: the model's own turn-taking, emulated by the server's VAD (no setting of it is on the
# wire: GPT-Live has none).
TURN_DETECTION: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
END_REASONS: dict[EndReason, lv.CloseReason] = {
    "close_requested": "close_requested",
    "expired": "expired",
    "connection_lost": "connection_lost",
    "server_shutdown": "connection_lost",  # (the API names no such reason; the server's `error` says it first)
}
APPEND_EVENTS: dict[str, type[lv.InstructionsAppended | lv.ThinkingAppended | lv.CommentaryAppended]] = {
    "instructions": lv.InstructionsAppended,
    "thinking": lv.ThinkingAppended,
    "commentary": lv.CommentaryAppended,
}


def one(event: lv.ServerEvent) -> list[Wire]:
    return [event.wire()]


def new_session_id() -> str:
    """`live_` and base62-ish characters ([SDK] the id pattern `^live_[A-Za-z0-9_-]{1,128}$`)."""
    return new_id("live")


def check_model(model: str) -> None:
    """A GPT-Live model (`gpt-live-1`, `gpt-live-1.1` and any dated snapshot of them): any other name is
    `model_not_found`, in the words the Realtime path uses (a Realtime model is no GPT-Live one)."""
    if not model.startswith("gpt-live"):
        raise ProtocolError(
            f"The model `{model}` does not exist or you do not have access to it.", "model_not_found", status=404
        )


def _refusal(message: str, code: str, param: str | None, event_id: str | None) -> ProtocolError:
    exc = ProtocolError(message, code, param)
    exc.event_id = event_id
    return exc


@final
class LiveDialect:
    """OpenAI's GPT-Live, over a WebSocket (`/v1/live/sessions`). One per session."""

    name = "live"
    audio_fields: Mapping[str, str] = {"session.input_audio.append": "audio", "session.output_audio.delta": "delta"}

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._t0 = clock()
        self._heard: dict[str, list[int]] = {}  # user item id -> [start_ms, end_ms] of its speech (input audio)
        self._spoken: dict[str, int] = {}  # assistant item id -> where its audio begins on the timeline
        self._spoken_until = 0  # where the last word said so far ends on the timeline
        self._heard_until = 0  # where the last user turn ended (on the input audio)
        self.delegations: dict[str, str] = {}  # delegation id -> the call id of the function it stands for
        self.backend: ResponsesBackend | None = None  # (Responses delegation)
        # The voice model has no tools: with delegation to the application every function a responder plans is
        # the application's; with Responses delegation only the backend's function tools are called.
        self.delegates_tools = True

    def now_ms(self) -> int:
        """The session timeline: milliseconds since the session started."""
        return int((self._clock() - self._t0) * 1000)

    # ------------------------------------------------------------------------------------------ the session's schema
    def default_session(self, model: str | None = None) -> dict[str, Any]:
        """The core's session for a GPT-Live session started with nothing but its model (the Realtime-shaped
        fields the core reads, and under `live` what only GPT-Live shows)."""
        if model is not None:
            check_model(model)
        return {
            "id": new_session_id(),
            "object": "live.session",
            "model": model or DEFAULT_MODEL,
            "output_modalities": ["audio"],
            "instructions": DEFAULT_INSTRUCTIONS,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "expires_at": int(time.time()) + SESSION_SECONDS,
            "audio": {
                "input": {
                    "format": dict(DEFAULT_FORMAT),
                    "transcription": {"model": "gpt-live"},  # GPT-Live always transcribes the input
                    "noise_reduction": None,
                    "turn_detection": dict(TURN_DETECTION),
                },
                "output": {"format": dict(DEFAULT_FORMAT), "voice": lv.DEFAULT_VOICE, "speed": 1.0},
            },
            "live": {
                "instructions": None,
                "format": dict(DEFAULT_FORMAT),
                "delegation": {"type": "client"},
                "input": [],
            },
        }

    def default_transcription_session(self) -> dict[str, Any]:
        raise ProtocolError("GPT-Live has no transcription sessions.", "invalid_value", "session.type")

    def start_session(self, message: str | bytes, *, websocket: bool = True) -> dict[str, Any]:
        """The core's session from a client's first message, which must be `session.start` (raises
        ProtocolError naming it otherwise, or for a session the API refuses). `websocket`: the session's audio
        is on the socket (`audio.format` is taken; WebRTC negotiates its own)."""
        event = lv.parse_client_event(message)
        if not isinstance(event, lv.SessionStart):
            raise _refusal(
                f"The session has not started: send session.start first (got {event.type}).",
                "session_not_started",
                "type",
                event.event_id,
            )
        try:
            return self.configured(event.session, websocket=websocket)
        except ProtocolError as exc:
            raise exc.with_event(event) from None

    def create_session(self, body: Any) -> tuple[dict[str, Any], str]:
        """A WebRTC session from `POST /v1/live/sessions`'s body: (the core's session, the client's SDP offer)."""
        request = lv.parse_create(body)
        return self.configured(request.session, websocket=False), request.transport.sdp

    def configured(self, config: lv.SessionConfig, *, websocket: bool) -> dict[str, Any]:
        """The core's session from a startup configuration (`session.start`'s, or a WebRTC POST's)."""
        for name in ("wake_policy", "idle_timeout_s"):
            if websocket and getattr(config, name) is not None:  # (WebRTC and SIP only)
                raise ProtocolError(f"Unknown parameter: 'session.{name}'.", "unknown_parameter", f"session.{name}")
        session = self.default_session(config.model)
        live = session["live"]
        if config.instructions and config.instructions.strip():
            session["instructions"] = live["instructions"] = config.instructions
        audio = config.audio or lv.Audio()
        if audio.format is not None:
            if not websocket:
                raise ProtocolError(
                    "audio.format is only supported on a WebSocket: WebRTC negotiates its own media format.",
                    "unknown_parameter",
                    "session.audio.format",
                )
            fmt = audio.format.model_dump()
            session["audio"]["input"]["format"] = session["audio"]["output"]["format"] = live["format"] = fmt
        if not websocket:
            live["format"] = None
        voice = audio.output.voice if audio.output is not None else None
        if isinstance(voice, str):
            if voice not in lv.VOICES:
                raise ProtocolError(
                    f"The voice '{voice}' is not available: use a built-in voice or a custom voice's id.",
                    "forbidden",
                    "session.audio.output.voice",
                )
            session["audio"]["output"]["voice"] = voice
        elif voice is not None:
            session["audio"]["output"]["voice"] = {"id": voice.id}
        delegation = config.delegation
        if isinstance(delegation, lv.OtherDelegation):
            raise ProtocolError(
                f"Delegation to {delegation.type} is not emulated by voiceclient serve yet: use delegation to the "
                'application ({"type": "client"}, the default) or to Responses ({"type": "responses"}).',
                "invalid_value",
                "session.delegation.type",
            )
        if delegation is not None:
            live["delegation"] = delegation.model_dump(exclude_none=True)
        if isinstance(delegation, lv.ResponsesDelegation):
            self._use_backend(session, live["delegation"]["responses"])
        live["input"] = [item.model_dump(exclude_none=True) for item in config.input or []]
        for name in ("store", "safety_identifier", "triggers", "client"):
            value = getattr(config, name)
            if value is not None:
                live[name] = value
        return session

    def _use_backend(self, session: dict[str, Any], config: dict[str, Any]) -> None:
        """Responses delegation: the backend's function tools are the session's (what a responder may call), and
        its tool choice where the core can hold a plan to it (a mode or a function; hosted tools are never
        called)."""
        if self.backend is None:
            self.backend = ResponsesBackend(config)
        else:  # (an update: the calls open stay open)
            self.backend.config = config
        self.delegates_tools = False
        tools = config.get("tools") or []
        session["tools"] = [{**t, "type": "function"} for t in tools if t.get("type") == "function"]
        choice = config.get("tool_choice")
        function_choice = isinstance(choice, dict) and choice.get("type") == "function"
        if choice in ("auto", "none", "required") or function_choice:
            session["tool_choice"] = choice

    def apply_update(self, current: dict[str, Any], update: Any, *, audio_started: bool) -> dict[str, Any]:
        """`session.update`: only the delegation's settings (its type cannot change) and triggers."""
        if not isinstance(update, dict):
            raise ProtocolError("Invalid type for 'session': expected an object.", "invalid_type", "session")
        for key in update:
            if key not in ("delegation", "triggers"):
                raise ProtocolError(f"Unknown parameter: 'session.{key}'.", "unknown_parameter", f"session.{key}")
        live = dict(current["live"])
        delegation = update.get("delegation")
        current = {**current}
        if delegation is not None:
            kind = live["delegation"].get("type")
            if not isinstance(delegation, dict) or delegation.get("type") != kind:
                raise ProtocolError(
                    "The delegation type cannot change during a session.", "invalid_value", "session.delegation.type"
                )
            model = lv.ResponsesDelegationUpdate if kind == "responses" else lv.ClientDelegation
            try:
                given = model.model_validate(delegation).model_dump(exclude_none=True)
            except ValidationError as exc:
                code, message, param = api_error(exc.errors(include_url=False)[0], delegation, "session.delegation")
                raise ProtocolError(message, code, param) from None
            if "responses" in given:  # the backend's settings given replace those kept; the rest is kept
                backend = {**live["delegation"]["responses"], **given["responses"]}
                try:
                    given["responses"] = lv.ResponsesConfig.model_validate(backend).model_dump(exclude_none=True)
                except ValidationError as exc:
                    code, message, param = api_error(
                        exc.errors(include_url=False)[0], backend, "session.delegation.responses"
                    )
                    raise ProtocolError(message, code, param) from None
                self._use_backend(current, given["responses"])
            live["delegation"] = {**live["delegation"], **given}
        if "triggers" in update:
            live["triggers"] = update["triggers"]
        return {**current, "live": live}

    def resource(self, session: dict[str, Any]) -> dict[str, Any]:
        """The session as the client is shown it ([SDK] `SessionResource`)."""
        live = session["live"]
        audio: dict[str, Any] = {"output": {"voice": session["audio"]["output"]["voice"]}}
        if live.get("format") is not None:
            audio["format"] = live["format"]
        out: dict[str, Any] = {
            "id": session["id"],
            "expires_at": session["expires_at"],
            "model": session["model"],
            "status": "active",
            "instructions": live.get("instructions") or session["instructions"],
            "audio": audio,
            "delegation": live["delegation"],
            "input": live["input"],
        }
        for name in ("store", "safety_identifier", "triggers", "client"):
            if name in live:
                out[name] = live[name]
        return out

    # ------------------------------------------------------------------------------------------ in
    def decode(self, message: str | bytes) -> Command:
        event = lv.parse_client_event(message)
        try:
            return self._command(event)
        except ProtocolError as exc:
            raise exc.with_event(event) from None

    def _command(self, event: lv.ClientEvent) -> Command:
        """Each client event the server handles (tests/test_core_live.py drives each)."""
        eid = event.event_id
        if isinstance(event, lv.InputAudioAppend):
            return AppendAudio(event.audio, event_id=eid)
        if isinstance(event, (lv.InputAudioMute, lv.InputAudioUnmute)):
            return MuteInput(isinstance(event, lv.InputAudioMute), event_id=eid)
        if isinstance(event, (lv.InstructionsAppend, lv.ThinkingAppend, lv.CommentaryAppend)):
            if event.delegation_id is not None and event.delegation_id not in self.delegations:
                raise ProtocolError(f"Unknown delegation '{event.delegation_id}'.", "invalid_value", "delegation_id")
            if isinstance(event, lv.InstructionsAppend):
                return AppendContext("instructions", event.content, event.delegation_id, event_id=eid)
            if isinstance(event, lv.ThinkingAppend):
                return AppendContext("thinking", event.content, event.delegation_id, event_id=eid)
            return AppendContext("commentary", event.content, event.delegation_id, event_id=eid)
        if isinstance(event, lv.SessionUpdate):
            return UpdateSession(event.session, event_id=eid)
        if isinstance(event, lv.SessionClose):
            return CloseSession(event_id=eid)
        if isinstance(event, (lv.ResponseItemCreate, lv.ResponseCreate)):
            if self.backend is None:
                raise ProtocolError(f"{event.type} requires Responses delegation.", "invalid_value", "type")
            if isinstance(event, lv.ResponseCreate):
                delegation_id = self.backend.continuation()
                # (the core runs it when the voice model has the floor: after the answer playing, if one is)
                request = ResponseRequest(metadata={"live_delegation": delegation_id}, wait=True)
                return CreateResponse(request, event_id=eid)
            try:
                output = lv.FunctionCallOutput.model_validate(event.item)
            except ValidationError as exc:
                code, message, param = api_error(exc.errors(include_url=False)[0], event.item, "item")
                if event.item.get("type") == "function_call_output":
                    raise ProtocolError(message, code, param) from None
                output = None
            return CreateItem(self.backend.take_output(output.model_dump() if output else event.item), event_id=eid)
        if isinstance(event, lv.SessionStart):
            raise ProtocolError(
                "The session has already started: session.start is only the first message.",
                "session_already_started",
                "type",
            )
        raise AssertionError(f"a client event with no command: {event.type}")

    # ------------------------------------------------------------------------------------------ the session
    def session_created(self, session: dict[str, Any]) -> list[Wire]:
        return one(lv.SessionStarted(session=self.resource(session)))

    def session_updated(self, session: dict[str, Any]) -> list[Wire]:
        return one(lv.SessionUpdated(session=self.resource(session)))

    def session_closed(self, session: dict[str, Any], reason: EndReason) -> list[Wire]:
        return one(
            lv.SessionClosed(
                reason=END_REASONS[reason],
                usage=self._usage(),
                session=self.resource(session),
            )
        )

    def _usage(self) -> lv.Usage:
        return lv.Usage(seconds=float(self.now_ms() // 1000))

    def error(self, exc: ProtocolError) -> list[Wire]:
        return one(lv.error_event(exc))

    def input_muted(self, muted: bool, event_id: str | None) -> list[Wire]:
        if muted:
            return one(lv.InputAudioMuted(client_event_id=event_id))
        return one(lv.InputAudioUnmuted(client_event_id=event_id))

    def context_appended(self, kind: str, event_id: str | None) -> list[Wire]:
        now = self.now_ms()
        return one(APPEND_EVENTS[kind](start_ms=now, end_ms=now, client_event_id=event_id))

    # ------------------------------------------------------------------------------------------ the user's side
    def speech_started(self, item_id: str, audio_start_ms: int) -> list[Wire]:
        self._heard[item_id] = [audio_start_ms, audio_start_ms]
        return []

    def speech_stopped(self, item_id: str, audio_end_ms: int) -> list[Wire]:
        self._heard.setdefault(item_id, [audio_end_ms, audio_end_ms])[1] = audio_end_ms
        self._heard_until = max(self._heard_until, audio_end_ms)
        return []

    def input_committed(self, item_id: str, previous_item_id: str | None) -> list[Wire]:
        return []

    def input_cleared(self) -> list[Wire]:
        return []

    def input_timed_out(self, item_id: str, start_ms: int, end_ms: int) -> list[Wire]:
        return []

    def input_transcript_delta(self, item_id: str, delta: str) -> list[Wire]:
        start, end = self._heard.get(item_id, [self.now_ms()] * 2)
        return one(lv.InputTranscriptDelta(delta=delta, start_ms=start, end_ms=end))

    def input_transcript_done(self, item_id: str, transcript: str, seconds: float) -> list[Wire]:
        return []

    def input_transcript_failed(self, item_id: str, message: str) -> list[Wire]:
        return []  # (GPT-Live has no such event: no transcript comes)

    # ------------------------------------------------------------------------------------------ the conversation
    def item_added(self, item: dict[str, Any], previous_item_id: str | None) -> list[Wire]:
        return []

    def item_done(self, item: dict[str, Any], previous_item_id: str | None) -> list[Wire]:
        return []

    def item_retrieved(self, item: dict[str, Any]) -> list[Wire]:
        return []

    def item_deleted(self, item_id: str) -> list[Wire]:
        return []

    def item_truncated(self, item_id: str, audio_end_ms: int) -> list[Wire]:
        return []

    # ------------------------------------------------------------------------------------------ responses
    def _envelopes(self, events: list[Envelope]) -> list[Wire]:
        return [lv.ResponseEvent(event=event, delegation_id=deleg).wire() for event, deleg in events]

    def response_created(self, response: dict[str, Any]) -> list[Wire]:
        continues = (response.get("metadata") or {}).get("live_delegation")
        if self.backend is not None and continues is not None:  # the backend's next turn (`response.create`)
            self.backend.continuing(response["id"], continues)
        return []

    def response_done(self, response: dict[str, Any]) -> list[Wire]:
        backend = self.backend.finish(response["id"], ended=True) if self.backend is not None else []
        return self._envelopes(backend) + one(lv.SessionUsageUpdated(usage=self._usage()))

    def output_item_added(
        self,
        response_id: str,
        output_index: int,
        item: dict[str, Any],
        previous_item_id: str | None,
        *,
        in_conversation: bool = True,
    ) -> list[Wire]:
        if item.get("type") == "message":
            self._spoken[item["id"]] = self._answer_starts()
            return []
        if item.get("type") == "function_call" and self.backend is not None:  # the backend makes the call
            resp, events, new = self.backend.begin(response_id)
            out = []
            if new:
                delegation = lv.Delegation(id=resp.delegation_id, target="responses", response_id=resp.id)
                out = one(lv.DelegationCreated(delegation=delegation, offset_ms=self.now_ms()))
            return out + self._envelopes(events + self.backend.call_added(resp, item))
        if item.get("type") == "function_call":  # the model delegates: the application works out the task
            delegation_id = new_id("deleg")
            self.delegations[delegation_id] = item.get("call_id") or ""
            delegation = lv.Delegation(id=delegation_id, target="client")
            return one(lv.DelegationCreated(delegation=delegation, offset_ms=self.now_ms()))
        return []

    def output_item_done(
        self,
        response_id: str,
        output_index: int,
        item: dict[str, Any],
        previous_item_id: str | None,
        *,
        in_conversation: bool = True,
    ) -> list[Wire]:
        if item.get("type") == "function_call" and self.backend is not None:
            return self._envelopes(self.backend.call_done(response_id, item))
        return []

    def content_part_added(self, ids: PartIds, part: dict[str, Any]) -> list[Wire]:
        return []

    def content_part_done(self, ids: PartIds, part: dict[str, Any]) -> list[Wire]:
        return []

    def message_planned(self, ids: PartIds, text: str) -> list[Wire]:
        """A continuation's answer: the backend writes it (a Responses message, then `response.completed`) before
        the voice model says it."""
        if self.backend is None or ids["response_id"] not in self.backend.continues:
            return []
        return self._envelopes(self.backend.message(ids["response_id"], text))

    def output_text_delta(self, ids: PartIds, delta: str) -> list[Wire]:
        return []

    def output_text_done(self, ids: PartIds, text: str) -> list[Wire]:
        return []

    def _answer_starts(self) -> int:
        """Where an answer's audio begins on the timeline: now, but never before the user's turn it answers ended
        (a client may send its audio faster than real time) nor before the answer before it was said."""
        return max(self.now_ms(), self._heard_until, self._spoken_until)

    def output_transcript_delta(self, ids: PartIds, delta: str, span_ms: tuple[int, int]) -> list[Wire]:
        begins = self._spoken.setdefault(ids["item_id"], self._answer_starts())
        start, end = begins + span_ms[0], begins + span_ms[1]
        self._spoken_until = max(self._spoken_until, end)
        return one(lv.OutputTranscriptDelta(delta=delta, start_ms=start, end_ms=end))

    def output_transcript_done(self, ids: PartIds, transcript: str) -> list[Wire]:
        return []

    def output_audio_delta(self, ids: PartIds, audio: str) -> list[Wire]:
        return one(lv.OutputAudioDelta(delta=audio))

    def output_audio_done(self, ids: PartIds) -> list[Wire]:
        return []

    def function_arguments_delta(self, ids: PartIds, delta: str) -> list[Wire]:
        if self.backend is None:
            return []
        return self._envelopes(self.backend.arguments_delta(ids["response_id"], ids["item_id"], delta))

    def function_arguments_done(self, ids: PartIds, name: str, arguments: str) -> list[Wire]:
        if self.backend is None:
            return []
        return self._envelopes(self.backend.arguments_done(ids["response_id"], ids["item_id"], name, arguments))

    def mcp_arguments_delta(self, ids: PartIds, delta: str) -> list[Wire]:
        return []

    def mcp_arguments_done(self, ids: PartIds, arguments: str) -> list[Wire]:
        return []

    def mcp_call_in_progress(self, item_id: str, output_index: int) -> list[Wire]:
        return []

    def mcp_call_finished(self, item_id: str, output_index: int, *, failed: bool) -> list[Wire]:
        return []

    def mcp_tools_listing(self, item_id: str) -> list[Wire]:
        return []

    def mcp_tools_listed(self, item_id: str) -> list[Wire]:
        return []

    # ------------------------------------------------------------------------------------------ playout (WebRTC)
    def playout_started(self, response_id: str) -> list[Wire]:
        return []

    def playout_stopped(self, response_id: str) -> list[Wire]:
        return []

    def playout_cleared(self, response_id: str) -> list[Wire]:
        return []
