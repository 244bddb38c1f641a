"""One Realtime session on the embedded server, whatever carries it: the core every edge plugs into.

    Edge (WebRTC call, WebSocket, memory) --ClientMessage, ConnectionOpened/Lost, input audio--> the inbox
    TurnHandler (input buffer, VAD, transcription, idle timer)  --VadDecision, IdleTimeout-->  the inbox
    the inbox (one ordered queue of `server/inbox.py` messages) --> `_consume` --> the handlers (here)
    Conversation (items, order, answered)  <--  TurnHandler, ResponseEngine, the handlers
    ResponseEngine (responses, cancel, truncation) --> the edge's AudioOutput (RTP playout, or audio delta events)
    `send(event)` --> every sideband, the console's watchers, then `edge.deliver(text)`

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
from voiceclient.audio.wire import WireDecoder
from voiceclient.protocol import events as ev
from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.events import new_id
from voiceclient.protocol.session import redact_secrets
from voiceclient.server.context import SessionContext
from voiceclient.server.conversation import Conversation
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
    SessionExpired,
    VadDecision,
)
from voiceclient.server.network import CallNetwork
from voiceclient.server.responders import Responder
from voiceclient.server.responses import ResponseEngine
from voiceclient.server.session_rules import apply_update
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


def public_session(session: dict[str, Any]) -> dict[str, Any]:
    """The session as sent to clients: MCP credentials are never echoed back."""
    out: dict[str, Any] = redact_secrets(session, drop=True)
    return out


@final
class ServerSession:
    """The conversation, turn handling and responses of one session, carried by one `Edge`."""

    def __init__(
        self,
        session_id: str,
        session: dict[str, Any],
        responder: Responder,
        edge: Edge,
        on_closed: Callable[[ServerSession], None] | None = None,
        max_seconds: float = 3600.0,
        speech: OfflineSpeech | None = None,
        vad: str = "auto",
        faults: list[FaultSpec] | None = None,
        network: CallNetwork | None = None,
    ) -> None:
        """`edge`: the connection (attached here, before anything is sent); `network`: the emulated link to the
        client (`server/network.py`), which the edge applies to its transport and the `network` fault switches; its
        counters are logged when the session ends."""
        self.id = session_id
        self.network = network
        self.on_closed = on_closed
        self.created_at = time.time()
        self.inbox: asyncio.Queue[Inbox] = asyncio.Queue()
        self.tasks = TaskOwner(f"session {session_id}")
        self.max_seconds = max_seconds
        self.expires_at = int(self.created_at + max_seconds)  # the session cap, as `session.created` says
        self.ctx = SessionContext(
            session_id, {**session, "expires_at": self.expires_at}, self.send, self.post, self.tasks, responder, speech
        )
        self.events_sent = 0
        self.responses_done = 0
        self.faults = list(faults or [])
        self.media_stopped = False  # an injected fault: no audio either way
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
        if not self.media_stopped:
            self.turns.append(pcm24)

    def _greet(self) -> None:
        """The connection is open: `session.created`, then the MCP tools the session already has."""
        self.opened = True
        self.send(ev.SessionCreated(session=public_session(self.session)))
        self.responses.list_mcp_tools()

    def send(self, server_event: ev.ServerEvent) -> None:
        """To the connection and every sideband, in order: the one place the server serializes an event."""
        event = ev.server_event_wire(server_event)
        text = json.dumps(event, separators=(",", ":"))
        for listener in list(self.listeners):
            listener.push(text)
        self._watched("server", event)
        if event["type"] == "response.done":
            self.responses_done += 1
            for fault in self.faults:
                if fault.after_turns == self.responses_done:
                    self.post(FaultDue(fault))
        if self.event_delay:
            asyncio.get_running_loop().call_later(self.event_delay, self._count, text, event["type"])
        else:
            self._count(text, event["type"])

    def _count(self, text: str, kind: str) -> None:
        if self.edge.deliver(text, kind):
            self.events_sent += 1

    def _watched(self, direction: str, event: dict[str, Any]) -> None:
        if not self.watchers:
            return
        if event.get("type") in ("input_audio_buffer.append", "response.output_audio.delta"):
            key = "audio" if "audio" in event else "delta"
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
        event = ev.server_event_wire(ev.SessionCreated(session=public_session(self.session)))
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
                self.send(ev.error_event(exc))
            except Exception as exc:  # the session goes on whatever one event did
                log.exception("%s %s: handling %s failed", self.transport, self.id, type(message).__name__)
                failure = ProtocolError(
                    f"The server failed to handle the event: {exc}", "server_error", type="server_error"
                )
                self.send(ev.error_event(failure))

    async def _handle_message(self, message: Inbox) -> bool:
        """Handle one inbox message; True when the session ends with it."""
        match message:
            case ClientMessage(text):
                await self._on_client_message(text)
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
                self.send(ev.error_event(session_expired(self.max_seconds)))
                log.info("%s %s: the session hit its maximum duration; ending it", self.transport, self.id)
                return True
            case ConnectTimeout():
                if self.opened:
                    return False
                log.info("%s %s: the client never opened the connection in time; ending it", self.transport, self.id)
                return True
            case ConnectionLost(reason):
                log.info("%s %s: %s", self.transport, self.id, reason)
                return True
            case _:
                assert_never(message)
        return False

    async def _on_vad(self, vad_event: VadEvent) -> None:
        outcome = self.turns.on_vad(vad_event)
        td = self.ctx.turn_detection or {}
        if outcome is TurnEvent.STARTED and td.get("interrupt_response", True):
            await self.responses.interrupt("turn_detected")
        elif outcome is TurnEvent.COMMITTED and td.get("create_response", True):
            if self.responses.active is None:
                self._respond(None)
            else:
                log.info(
                    "%s %s: turn ended while response %s runs; not starting another",
                    self.transport,
                    self.id,
                    self.responses.active.id,
                )

    def _respond(self, params: ev.ResponseParams | None) -> None:
        self.turns.cancel_idle_timer()
        self.responses.start(params)

    # ------------------------------------------------------------------------------------------ client events
    async def _on_client_message(self, message: str | bytes) -> None:
        event = ev.parse_client_event(message)
        if self.watchers:
            try:
                data = json.loads(message)
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = None
            self._watched(
                "client",
                data if isinstance(data, dict) else {"type": "voiceclient.malformed", "reason": "not a JSON object"},
            )
        if isinstance(event, ev.MalformedEvent):
            if event.event_type is None:
                raise ProtocolError(f"Invalid client event: {event.reason}.", "invalid_json").with_event(event)
            param = event.reason.split(":", 1)[0]
            code = "missing_required_parameter" if "required" in event.reason else "invalid_value"
            raise ProtocolError(f"Invalid '{event.event_type}' event: {event.reason}.", code, param or None).with_event(
                event
            )
        if isinstance(event, ev.UnknownEvent):
            raise ProtocolError(
                f"Invalid value: '{event.type}'. Supported values are: {', '.join(sorted(ev.CLIENT_EVENT_TYPES))}.",
                "invalid_value",
                "type",
            ).with_event(event)
        try:
            await self._handle(event)
        except ProtocolError as exc:
            raise exc.with_event(event) from None

    async def _handle(self, event: ev.KnownClientEvent) -> None:
        if isinstance(event, ev.SessionUpdate):
            self._session_update(event)
        elif isinstance(event, ev.InputAudioBufferAppend):
            fmt = self.session["audio"]["input"]["format"]
            try:
                pcm = self.input.decode(event.audio, fmt)
            except ValueError as exc:
                raise ProtocolError(
                    f"Invalid 'audio': {exc} (the session's input format is {fmt['type']}).", "invalid_value", "audio"
                ) from None
            self.input_audio(pcm)
        elif isinstance(event, ev.InputAudioBufferCommit):
            self.turns.commit()
        elif isinstance(event, ev.InputAudioBufferClear):
            self.turns.clear()
        elif isinstance(event, ev.OutputAudioBufferClear):
            if not self.output.announces_playout:
                raise ProtocolError(
                    "output_audio_buffer.clear is only supported for WebRTC and SIP sessions: over "
                    "a WebSocket the client plays the audio, stops it itself and sends "
                    "conversation.item.truncate.",
                    "invalid_value",
                    "type",
                )
            if not self.responses.clear_output():
                if self.responses.last_response_id is None:
                    raise ProtocolError("There is no output audio to clear.", "output_audio_buffer_empty")
                self.send(ev.OutputAudioBufferCleared(response_id=self.responses.last_response_id))
        elif isinstance(event, ev.ConversationItemCreate):
            self._item_create(event)
        elif isinstance(event, ev.ConversationItemRetrieve):
            self._item_retrieve(event)
        elif isinstance(event, ev.ConversationItemDelete):
            self.conversation.delete(event.item_id)
            self.send(ev.ConversationItemDeleted(item_id=event.item_id))
        elif isinstance(event, ev.ConversationItemTruncate):
            self.responses.truncate(event.item_id, event.audio_end_ms)
        elif isinstance(event, ev.ResponseCreate):
            if self.responses.active is not None:
                raise ProtocolError(
                    f"Conversation already has an active response in progress: "
                    f"{self.responses.active.id}. Wait until the response is finished before "
                    "creating a new one.",
                    "conversation_already_has_active_response",
                )
            self._respond(event.response)
        elif isinstance(event, ev.ResponseCancel):
            active = self.responses.active
            if active is None or (event.response_id and event.response_id != active.id):
                raise ProtocolError("Cancellation failed: no active response found.", "response_cancel_not_active")
            await self.responses.cancel(active, "client_cancelled")

    def _session_update(self, event: ev.SessionUpdate) -> None:
        raw = json.loads(event.model_dump_json(exclude_unset=True))["session"]
        self.ctx.session = apply_update(self.session, raw, audio_started=self.responses.audio_started)
        self.turns.reconfigure()
        self.send(ev.SessionUpdated(session=public_session(self.session)))
        self.responses.list_mcp_tools()

    def _item_create(self, event: ev.ConversationItemCreate) -> None:
        item = event.item.model_dump(mode="json", exclude_none=True)
        problem = check_item(item)
        if problem:
            raise ProtocolError(problem[0], "invalid_value", problem[1])
        if item.get("type") == "mcp_approval_response" and not self.responses.has_mcp_request(
            item["approval_request_id"]
        ):
            raise ProtocolError(
                f"No MCP approval request with id '{item['approval_request_id']}'.",
                "item_not_found",
                "item.approval_request_id",
            )
        item.setdefault("id", new_id("item"))
        if not item["type"].startswith("mcp_"):
            item["object"] = "realtime.item"
            item["status"] = "completed"
        previous = self.conversation.insert(item, event.previous_item_id)  # "root": first, so null, as the real
        self.send(ev.ConversationItemAdded(previous_item_id=previous, item=ev.Item.model_validate(item)))
        self.send(ev.ConversationItemDone(previous_item_id=previous, item=ev.Item.model_validate(item)))

    def _item_retrieve(self, event: ev.ConversationItemRetrieve) -> None:
        item = self.conversation.require(event.item_id)
        out = json.loads(json.dumps(item))
        audio = self.conversation.audio.get(item["id"])
        if audio is not None and out.get("role") == "user":
            out["content"][0]["audio"] = base64.b64encode(audio.pcm.astype("<i2").tobytes()).decode()
        self.send(ev.ConversationItemRetrieved(item=ev.Item.model_validate(out)))

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

    async def close(self, reason: ProtocolError | None = None) -> None:
        """End the session: cancel the response, stop the media, close the connection and the sidebands.
        `reason`, when the server ends it (shutting down), is sent first as an `error` event, and a response cut
        short ends `failed` with it (not `cancelled` by a client that cancelled nothing). Idempotent; a second
        call waits for the first."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        for timer in self._timers:
            timer.cancel()
        self.turns.close()
        if reason is not None:
            self.send(ev.error_event(reason))
        await self.responses.close(reason)
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
