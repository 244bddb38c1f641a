"""One Realtime session on the embedded server, whatever carries it: the core every edge plugs into.

    Edge (WebRTC call, WebSocket, memory) --ClientMessage, ConnectionOpened/Lost, input audio--> the inbox
    TurnHandler (input buffer, VAD, transcription, idle timer)  --VadDecision, IdleTimeout-->  the inbox
    the inbox (one ordered queue of `server/inbox.py` messages) --> `_consume` --> the handlers (here)
    Conversation (items, order, answered)  <--  TurnHandler, ResponseEngine, the handlers
    ResponseEngine (responses, cancel, truncation) --> the edge's AudioOutput (RTP playout, or audio delta events)
    `send(events)` --> every sideband, the console's watchers, then `edge.deliver(text)`
    Dialect (`server/dialect.py`): client messages -> commands; the parts' happenings -> wire events; the session's
        schema. The Realtime API's is `server/realtime.py`; nothing else here knows an event type.

Client messages, voice activity decisions and timers go through one inbox with one consumer, so the server
handles them in arrival order, as the real API does. Every background task belongs to the session's `TaskOwner`,
which `close()` cancels and awaits; a second `close()` waits for the first. The edge (`server/edge.py`) owns the
connection: it supplies the output, delivers the event text, carries out what a fault does to the connection and
closes it. Which faults there are and when they strike is decided here, in `_inject`, and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any, assert_never, final

import numpy as np

from voiceclient.audio.format import API_RATE
from voiceclient.audio.resample import resample
from voiceclient.audio.wire import WireDecoder, wire_format
from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.events import new_id
from voiceclient.server.context import SessionContext
from voiceclient.server.conversation import Conversation
from voiceclient.server.dialect import (
    AppendAudio,
    AppendContext,
    CancelResponse,
    ClearAudio,
    ClearOutput,
    CloseSession,
    Command,
    CommitAudio,
    CreateItem,
    CreateResponse,
    DeleteItem,
    Dialect,
    EndReason,
    MuteInput,
    ResponseRequest,
    RetrieveItem,
    TruncateItem,
    UpdateSession,
    Wire,
)
from voiceclient.server.edge import Edge
from voiceclient.server.faults import FaultSpec
from voiceclient.server.inbox import (
    ClientMessage,
    ConnectionLost,
    ConnectionOpened,
    ConnectTimeout,
    FaultDue,
    IdleTimeout,
    Inbox,
    QueuedResponseDue,
    SessionExpired,
    VadDecision,
)
from voiceclient.server.network import CallNetwork
from voiceclient.server.responders import Responder
from voiceclient.server.responses import ResponseEngine
from voiceclient.server.sideband import Listener
from voiceclient.server.speech_port import OfflineSpeech
from voiceclient.server.turns import TurnEvent, TurnHandler
from voiceclient.server.vad import VadEvent
from voiceclient.tasks import TaskOwner

log = logging.getLogger(__name__)
WORD_TIMING_BYTES = 140  # what Python spends on one word's entry in `Conversation.word_starts`, besides its text


def session_expired(max_seconds: float) -> ProtocolError:
    """The error the real service sends when a session reaches its maximum duration (then it ends the session)."""
    minutes = max_seconds / 60
    length = f"{minutes:g} minutes" if minutes >= 1 and minutes == int(minutes) else f"{max_seconds:g} seconds"
    return ProtocolError(f"Your session hit the maximum duration of {length}.", "session_expired")


def server_shutting_down() -> ProtocolError:
    """What `serve` tells every open call or session as it stops, before it closes them. The real service's
    behaviour when it restarts is not documented; a client given this reason need not wait for missing audio."""
    return ProtocolError(
        "The server is shutting down; this session has ended.", "server_shutting_down", type="server_error"
    )


# What a transcription session refuses: it has no model, so no responses and no conversation to add to (the
# stricter reading of the real service's "transcription events only"; docs/differences.md).
NOT_IN_TRANSCRIPTION = (CreateResponse, CancelResponse, CreateItem, TruncateItem, ClearOutput)
NOT_IN_TRANSCRIPTION_EVENTS = {
    CreateResponse: "response.create",
    CancelResponse: "response.cancel",
    CreateItem: "conversation.item.create",
    TruncateItem: "conversation.item.truncate",
    ClearOutput: "output_audio_buffer.clear",
}


def not_in_transcription(command: Command) -> ProtocolError:
    """The refusal of a client event a transcription session cannot carry out."""
    name = NOT_IN_TRANSCRIPTION_EVENTS.get(type(command), type(command).__name__)
    return ProtocolError(
        f"{name} is not supported in a transcription session: it transcribes input audio and makes no model "
        'responses. Open a realtime session (session.type "realtime") for responses.',
        "invalid_value",
        "type",
    )


@final
class ServerSession:
    """The conversation, turn handling and responses of one session, carried by one `Edge`."""

    def __init__(
        self,
        session_id: str,
        session: dict[str, Any],
        responder: Responder,
        edge: Edge,
        *,
        dialect: Dialect,
        on_closed: Callable[[ServerSession], None] | None = None,
        max_seconds: float = 3600.0,
        speech: OfflineSpeech | None = None,
        vad: str = "auto",
        faults: list[FaultSpec] | None = None,
        network: CallNetwork | None = None,
    ) -> None:
        """`edge`: the connection (attached here, before anything is sent); `dialect`: the wire protocol it speaks
        (`server/realtime.py`'s `RealtimeDialect` for the Realtime API); `network`: the emulated link to the
        client (`server/network.py`), which the edge applies to its transport and the `network` fault switches; its
        counters are logged when the session ends."""
        self.id = session_id
        self.dialect = dialect
        self.network = network
        self.on_closed = on_closed
        self.created_at = time.time()
        self.inbox: asyncio.Queue[Inbox] = asyncio.Queue()
        self.tasks = TaskOwner(f"session {session_id}")
        self.max_seconds = max_seconds
        self.expires_at = int(self.created_at + max_seconds)  # the session cap, as `session.created` says
        self.ctx = SessionContext(
            session_id,
            {**session, "expires_at": self.expires_at},
            self.send,
            self.post,
            self.tasks,
            responder,
            speech,
            dialect=dialect,
            on_response_done=self._response_done,
        )
        self.events_sent = 0
        self.responses_done = 0
        self.faults = list(faults or [])
        self.media_stopped = False  # an injected fault: no audio either way
        self.input_muted = False  # the client muted the input (`MuteInput`): the model hears nothing
        self.end_reason: EndReason = "connection_lost"  # why the session ends, for `Dialect.session_closed`
        self.queued: list[ResponseRequest] = []  # responses waiting for the running one to end (commentary)
        self.event_delay = 0.0  # an injected fault: every event this many seconds late
        self.listeners: set[Listener] = set()
        # Who sees the session's events as they happen (the console): (direction, event) with "client" for what
        # the client sent, "server" for what it was sent, "local" for the server's own (an injected fault).
        self.watchers: list[Callable[[str, dict[str, Any]], None]] = []
        self.closed = asyncio.Event()
        self.retained_bytes = 0  # once ended: about what the session still holds (`retained_size()`)
        self.opened = False  # the client's event path has opened (`ConnectionOpened`)
        self._closing = False
        self._timers: list[asyncio.TimerHandle] = []
        self.edge = edge
        edge.attach(self)
        output = edge.output
        self.conversation = Conversation()
        self.output = output
        self.turns = TurnHandler(self.ctx, self.conversation, vad)
        self.responses = ResponseEngine(
            self.ctx,
            self.conversation,
            output,
            self.turns.transcript_of,
            lambda: self.turns.audio_samples / API_RATE,
            self.turns.arm_idle_timer,
        )
        self.input = WireDecoder()
        self.later(max_seconds, SessionExpired())
        for fault in self.faults:
            if fault.at_seconds is not None:
                self.later(fault.at_seconds, FaultDue(fault))
        self.tasks.spawn(self._consume(), "event consumer")

    @property
    def session(self) -> dict[str, Any]:
        return self.ctx.session

    @property
    def transport(self) -> str:
        """The edge's transport ("webrtc", "websocket" or "memory"), for logs, the index and the console."""
        return self.edge.transport

    # ------------------------------------------------------------------------------------------ the edge's port
    def post(self, message: Inbox) -> None:
        """Into the one ordered inbox (the edge, the turn handler, the timers)."""
        self.inbox.put_nowait(message)

    def later(self, seconds: float, message: Inbox) -> asyncio.TimerHandle:
        """Into the inbox after `seconds`; the timer is cancelled when the session ends."""
        timer = asyncio.get_running_loop().call_later(seconds, self.post, message)
        self._timers = [t for t in self._timers if not t.cancelled()] + [timer]
        return timer

    def input_audio(self, pcm24: np.ndarray) -> None:
        """Input audio at 24 kHz, from RTP or `input_audio_buffer.append`."""
        if not self.media_stopped and not self.input_muted:
            self.turns.append(pcm24)

    def output_audio(self, ids: dict[str, Any], audio: str) -> None:
        """A chunk of answer audio as an event (base64, the session's output format): an edge's delta output."""
        self.send(self.dialect.output_audio_delta(ids, audio))

    def _greet(self) -> None:
        """The connection is open: `session.created`, then the MCP tools the session already has."""
        self.opened = True
        self.send(self.dialect.session_created(self.session))
        self.responses.tools.list_mcp_tools()

    def send(self, events: list[Wire]) -> None:
        """To the connection and every sideband, in order: the one place the server serializes an event. `events`:
        what one happening became, built by the dialect (`self.send(self.dialect.session_updated(...))`)."""
        for event in events:
            text = json.dumps(event, separators=(",", ":"))
            for listener in list(self.listeners):
                listener.push(text)
            self._watched("server", event)
            if self.event_delay:
                asyncio.get_running_loop().call_later(self.event_delay, self._count, text, event["type"])
            else:
                self._count(text, event["type"])

    def _response_done(self) -> None:
        """A response has ended (its last event sent): the faults due after so many turns."""
        self.responses_done += 1
        if self.queued:
            self.post(QueuedResponseDue())
        for fault in self.faults:
            if fault.after_turns == self.responses_done:
                self.post(FaultDue(fault))

    def _count(self, text: str, kind: str) -> None:
        if self.edge.deliver(text, kind):
            self.events_sent += 1

    def _watched(self, direction: str, event: dict[str, Any]) -> None:
        if not self.watchers:
            return
        key = self.dialect.audio_fields.get(event.get("type", ""))
        if key is not None:
            if isinstance(event.get(key), str):  # the audio stays out of the log, its length in
                event = {**event, key: f"<{len(event[key])} base64 characters>"}
        for watcher in list(self.watchers):
            try:
                watcher(direction, event)
            except Exception:
                log.exception("session watcher failed")

    async def _inject(self, fault: FaultSpec) -> None:
        """Apply an injected fault (see server/faults.py): every fault a session takes, in one place."""
        log.info("%s %s: injecting %s", self.transport, self.id, fault.action)
        self._watched("local", {"type": "server.fault", **fault.model_dump(exclude_none=True)})
        match fault.action:
            case "expire_session":
                self.post(SessionExpired())
            case "delay_events":
                self.event_delay = fault.delay_ms / 1000
            case "network":
                if self.network is None:  # (the server gives a network to every session a network fault hits)
                    log.warning("%s %s: no emulated network to switch", self.transport, self.id)
                else:
                    self.network.switch(fault.network_spec)
            case "stop_media":  # no audio either way
                self.media_stopped = True
                self.edge.pause_media()
            case "close_channel":
                self.edge.close_channel()
            case "drop_connection":
                await self.edge.drop()
            case "http_status" | "unreachable":  # (faults of the HTTP request, `server/app.py`: never due here)
                log.warning("%s %s: %s is not a fault of a live session", self.transport, self.id, fault.action)
            case _:
                assert_never(fault.action)

    # ------------------------------------------------------------------------------------------ sidebands
    def join(self, listener: Listener) -> None:
        self.listeners.add(listener)
        for event in self.dialect.session_created(self.session):
            listener.push(json.dumps(event, separators=(",", ":")))

    def submit(self, message: str | bytes) -> None:
        self.post(ClientMessage(message))

    def leave(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    # ------------------------------------------------------------------------------------------ consumer
    async def _consume(self) -> None:
        while True:
            message = await self.inbox.get()
            try:
                if await self._handle_message(message):
                    self.tasks.spawn(self.close(), "close")
                    return
            except asyncio.CancelledError:
                raise
            except ProtocolError as exc:
                self.send(self.dialect.error(exc))
            except Exception as exc:  # the session goes on whatever one event did
                log.exception("%s %s: handling %s failed", self.transport, self.id, type(message).__name__)
                failure = ProtocolError(
                    f"The server failed to handle the event: {exc}", "server_error", type="server_error"
                )
                self.send(self.dialect.error(failure))

    async def _handle_message(self, message: Inbox) -> bool:
        """Handle one inbox message; True when the session ends with it."""
        match message:
            case ClientMessage(text):
                return await self._on_client_message(text)
            case ConnectionOpened():
                self._greet()
            case VadDecision(vad_event):
                await self._on_vad(vad_event)
            case IdleTimeout():
                if self.responses.active is None and self.turns.on_idle_timeout():
                    self._respond(None)
            case FaultDue(fault):
                await self._inject(fault)
            case SessionExpired():  # the session cap, as the real service ends a session
                self.end_reason = "expired"
                self.send(self.dialect.error(session_expired(self.max_seconds)))
                log.info("%s %s: the session hit its maximum duration; ending it", self.transport, self.id)
                return True
            case ConnectTimeout():
                if self.opened:
                    return False
                log.info("%s %s: the client never opened the connection in time; ending it", self.transport, self.id)
                return True
            case QueuedResponseDue():
                if self.queued and self.responses.active is None:
                    self._respond(self.queued.pop(0))
            case ConnectionLost(reason):
                log.info("%s %s: %s", self.transport, self.id, reason)
                return True
            case _:
                assert_never(message)
        return False

    async def _on_vad(self, vad_event: VadEvent) -> None:
        outcome = self.turns.on_vad(vad_event)
        if self.transcribing:  # a transcription session never answers nor interrupts
            return
        td = self.ctx.turn_detection or {}
        if outcome is TurnEvent.STARTED and td.get("interrupt_response", True):
            await self.responses.interrupt("turn_detected")
        elif outcome is TurnEvent.COMMITTED and td.get("create_response", True):
            if self.responses.active is None:
                self._respond(None)
            else:  # [SDK] ServerVad.create_response: with interrupt_response false this "may fail to create a
                # response if the model is already responding"; the stricter reading (docs/differences.md). The
                # turn is in the conversation, for the client's next response.create.
                log.info(
                    "%s %s: turn ended while response %s runs; not starting another",
                    self.transport,
                    self.id,
                    self.responses.active.id,
                )

    def _respond(self, request: ResponseRequest | None) -> None:
        if request is None or not request.out_of_band:
            self.turns.cancel_idle_timer()
        self.responses.start(request)

    # ------------------------------------------------------------------------------------------ client events
    async def _on_client_message(self, message: str | bytes) -> bool:
        """Handle one client message; True when the session ends with it (`CloseSession`)."""
        if self.watchers:
            try:
                data = json.loads(message)
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = None
            self._watched(
                "client",
                data if isinstance(data, dict) else {"type": "voiceclient.malformed", "reason": "not a JSON object"},
            )
        command = self.dialect.decode(message)  # (a ProtocolError names the message it answers)
        try:
            return await self._handle(command)
        except ProtocolError as exc:
            raise exc.with_event(command) from None

    @property
    def transcribing(self) -> bool:
        """A transcription session (`session.type: "transcription"`): turns are transcribed, never answered."""
        return self.session.get("type") == "transcription"

    async def _handle(self, command: Command) -> bool:
        """Carry out one command; True when the session ends with it."""
        if self.transcribing and isinstance(command, NOT_IN_TRANSCRIPTION):
            raise not_in_transcription(command)
        match command:
            case UpdateSession(update):
                self._session_update(update)
            case AppendAudio(audio):
                fmt = self.session["audio"]["input"]["format"]
                try:
                    pcm = self.input.decode(audio, fmt)
                except ValueError as exc:
                    raise ProtocolError(
                        f"Invalid 'audio': {exc} (the session's input format is {fmt['type']}).",
                        "invalid_value",
                        "audio",
                    ) from None
                self.input_audio(pcm)
            case CommitAudio():
                tail = self.input.flush()  # (what the resampler from G.711 still holds belongs to this turn)
                if tail.size:
                    self.input_audio(tail)
                self.turns.commit()
            case ClearAudio():
                self.turns.clear()
            case ClearOutput():
                if not self.output.announces_playout:
                    raise ProtocolError(
                        "output_audio_buffer.clear is only supported for WebRTC and SIP sessions: over "
                        "a WebSocket the client plays the audio, stops it itself and sends "
                        "conversation.item.truncate.",
                        "invalid_value",
                        "type",
                    )
                if not self.responses.clear_output():
                    # Nothing is playing (none yet, or the last answer has played out): no source says what the
                    # real service does, so the stricter answer, an error (docs/differences.md).
                    raise ProtocolError("There is no output audio to clear.", "output_audio_buffer_empty")
            case CreateItem(item, previous_item_id):
                self._item_create(dict(item), previous_item_id)
            case RetrieveItem(item_id):
                self._item_retrieve(item_id)
            case DeleteItem(item_id):
                self.conversation.delete(item_id)
                self.send(self.dialect.item_deleted(item_id))
            case TruncateItem(item_id, audio_end_ms, content_index):
                self.responses.truncate(item_id, audio_end_ms, content_index)
            case CreateResponse(request):
                # Only two default-conversation responses conflict; out-of-band ones run beside it.
                if self.responses.active is not None and request is not None and request.wait:
                    self.queued.append(request)
                    return False
                if self.responses.active is not None and not (request is not None and request.out_of_band):
                    raise ProtocolError(
                        f"Conversation already has an active response in progress: "
                        f"{self.responses.active.id}. Wait until the response is finished before "
                        "creating a new one.",
                        "conversation_already_has_active_response",
                    )
                self._respond(request)
            case CancelResponse(response_id):
                active = self.responses.running(response_id)
                if active is None:
                    raise ProtocolError("Cancellation failed: no active response found.", "response_cancel_not_active")
                await self.responses.cancel(active, "client_cancelled")
            case MuteInput(muted, event_id=event_id):
                self.input_muted = muted
                self.send(self.dialect.input_muted(muted, event_id))
            case AppendContext(kind, content, event_id=event_id):
                self._append_context(kind, content, event_id)
            case CloseSession():
                self.end_reason = "close_requested"
                return True
            case _:
                assert_never(command)
        return False

    def _append_context(self, kind: str, content: str, event_id: str | None) -> None:
        """Instructions steer what follows (added to the session's); thinking is silent; commentary is spoken,
        now or as soon as the response running ends."""
        if kind == "instructions":
            instructions = self.session.get("instructions") or ""
            self.ctx.session = {**self.session, "instructions": f"{instructions}\n{content}".strip()}
        self.send(self.dialect.context_appended(kind, event_id))
        if kind != "commentary":
            return
        request = ResponseRequest(say=content)
        if self.responses.active is None:
            self._respond(request)
        else:
            self.queued.append(request)

    def _session_update(self, update: dict[str, Any]) -> None:
        self.ctx.session = self.dialect.apply_update(self.session, update, audio_started=self.responses.audio_started)
        self.turns.reconfigure()
        self.send(self.dialect.session_updated(self.session))
        self.responses.tools.list_mcp_tools()

    def _item_create(self, item: dict[str, Any], previous_item_id: str | None) -> None:
        """A client's item (the dialect has checked its shape)."""
        if item.get("type") == "mcp_approval_response" and not self.responses.tools.has_request(
            item["approval_request_id"]
        ):
            raise ProtocolError(
                f"No MCP approval request with id '{item['approval_request_id']}'.",
                "item_not_found",
                "item.approval_request_id",
            )
        if item.get("type") == "function_call_output" and not any(
            it.get("type") == "function_call" and it.get("call_id") == item["call_id"] for it in self.conversation.items
        ):  # the real service checks the call id (its wording here is the Responses API's for the same refusal)
            raise ProtocolError(
                f"No tool call found for function call output with call_id {item['call_id']}.",
                "invalid_value",
                "item.call_id",
            )
        item.setdefault("id", new_id("item"))
        if not item["type"].startswith("mcp_"):
            item["object"] = "realtime.item"
            item["status"] = "completed"
        previous = self.conversation.insert(item, previous_item_id)  # "root": first, so null, as the real
        self.send(self.dialect.item_added(item, previous))
        self.send(self.dialect.item_done(item, previous))

    def _item_retrieve(self, item_id: str) -> None:
        """[SDK] ConversationItemRetrieved: the item's full content with its audio, the user's in the session's
        input format and the assistant's in its output format."""
        item = self.conversation.require(item_id)
        out = json.loads(json.dumps(item))
        audio = self.conversation.audio.get(item["id"])
        part = next((p for p in out.get("content") or [] if p.get("type") in ("input_audio", "output_audio")), None)
        if audio is not None and part is not None:
            side = "input" if part["type"] == "input_audio" else "output"
            fmt = wire_format(self.session["audio"][side]["format"])
            pcm = resample(audio.pcm, audio.rate, fmt.rate) if audio.rate != fmt.rate else audio.pcm
            part["audio"] = base64.b64encode(fmt.pack(pcm)).decode()
        self.send(self.dialect.item_retrieved(out))

    # ------------------------------------------------------------------------------------------ teardown
    def retained_size(self) -> int:
        """About the bytes this session holds, for the server's budget of ended sessions (`app.HISTORY_BUDGET`):
        the parts that grow with what a client sends. The conversation's items as JSON (a typed item's text), their
        audio (user turns, the answers), the word timings of the answers, the session (instructions, tools), and the
        input audio not committed (none once ended). What is left out is a few kB whatever the client did."""
        conversation = self.conversation
        size = len(json.dumps(conversation.items, separators=(",", ":"), default=str))
        size += sum(audio.pcm.nbytes for audio in conversation.audio.values())
        size += sum(WORD_TIMING_BYTES + len(word) for words in conversation.word_starts.values() for _, word in words)
        size += len(json.dumps(self.session, separators=(",", ":"), default=str))
        size += sum(chunk.nbytes for chunk in self.turns.buffer)
        return size

    async def hang_up(self) -> None:
        """The API's hangup: the session ends as a client's close would (`close_requested`)."""
        if not self._closing:
            self.end_reason = "close_requested"
        await self.close()

    async def close(self, reason: ProtocolError | None = None) -> None:
        """End the session: cancel the response, stop the media, close the connection and the sidebands.
        `reason`, when the server ends it (shutting down), is sent first as an `error` event, and a response cut
        short ends `failed` with it (not `cancelled` by a client that cancelled nothing). Idempotent; a second
        call waits for the first."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        if reason is not None:
            self.end_reason = "server_shutdown"
        for timer in self._timers:
            timer.cancel()
        self.turns.close()
        if reason is not None:
            self.send(self.dialect.error(reason))
        await self.responses.close(reason)
        self.send(self.dialect.session_closed(self.session, self.end_reason))
        await self.tasks.close()
        await self.edge.close()
        if self.network is not None:
            log.info("%s %s: %s", self.transport, self.id, self.network.describe())
        for listener in list(self.listeners):
            listener.close()
        self.turns.release()
        self.retained_bytes = self.retained_size()
        self.closed.set()
        if self.on_closed is not None:
            self.on_closed(self)
