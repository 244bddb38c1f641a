"""The conversation: `async with VoiceCall(...) as call`, the only module that wires the client's parts together.

    settings -> Transport (WebRTC: create call, aiortc peer) -> server messages -> decode -> Dispatcher
        -> TurnState (first) -> waiters and event streams -> ToolRunner -> your handlers (`call.on(...)`)
    source -> transport (paced 20 ms frames)        received frames -> WAV sink, recorder, meter, speaker

The transport is a seam: `WebRTCTransport` by default, `ScriptedTransport` in fast tests.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

from voiceclient.audio.sinks import ConversationRecorder, WavSink
from voiceclient.audio.sources import AudioSource, SilenceSource
from voiceclient.client.dispatcher import AnyHandler, Dispatcher
from voiceclient.client.history import ConversationHistory
from voiceclient.client.recording import EventLog, TurnMeter
from voiceclient.client.settings import ClientSettings
from voiceclient.client.state import TurnState
from voiceclient.client.switching import PendingConnection, ReconnectPolicy
from voiceclient.client.transport import FrameTap, MessageTap, Transport, WebRTCTransport
from voiceclient.errors import (
    CallError, ConnectionLostError, SessionNotConfirmedError, SessionUpdateError, VoiceClientError,
)
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import SessionConfig
from voiceclient.protocol.validation import deep_merge
from voiceclient.tasks import TaskOwner
from voiceclient.tools.approvals import Approver
from voiceclient.tools.registry import DEFAULT_TIMEOUT, Tool
from voiceclient.tools.runner import ToolResultHook, ToolRunner

log = logging.getLogger(__name__)
E = TypeVar("E")
Playback = Callable[[np.ndarray, int, float], None]
Predicate = Callable[[ev.ReceivedServerEvent], bool]
SESSION_ENDING_ERRORS = frozenset({"session_expired"})  # the server ends the call after sending one of these
QUIET_GAP = 0.3  # seconds without a server event before a recycle may switch connections
RETIRE_AFTER = 1.0  # seconds the previous connection stays up (sending silence, ignored) after a switch
SETTLE_BEFORE_SWITCH = 1.0  # seconds between a new connection being ready and carrying the call
IDLE_STREAMING_FRAMES = 25  # 0.5 s of frames with no response playing: this server sends audio all the time


class EventStream:
    """An async iterator over a call's server events; subscribed when created, so nothing is missed."""

    def __init__(self, subscribers: list[asyncio.Queue[ev.ReceivedServerEvent | None]]) -> None:
        self._queue: asyncio.Queue[ev.ReceivedServerEvent | None] = asyncio.Queue()
        self._subscribers = subscribers
        subscribers.append(self._queue)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ev.ReceivedServerEvent:
        event = await self._queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    async def next_of(self, *types: str, timeout: float = 10.0) -> ev.ReceivedServerEvent:
        """The next event of one of `types` (others are skipped)."""
        async def find() -> ev.ReceivedServerEvent:
            async for event in self:
                if event.type in types:
                    return event
            raise ConnectionLostError(f"the call closed before {' or '.join(types)}")

        return await asyncio.wait_for(find(), timeout)

    def close(self) -> None:
        if self._queue in self._subscribers:
            self._subscribers.remove(self._queue)


class LiveCallHandle:
    """What a tool gets in `ToolContext.call`: a narrow handle on the live call."""

    def __init__(self, call: VoiceCall) -> None:
        self._call = call

    def send_text(self, text: str) -> None:
        self._call.send_text(text)

    def update_session(self, session: SessionConfig) -> None:
        self._call.update_session(session)

    def hangup(self) -> None:
        """Ends the call after the tool returns (closing from inside a tool would cancel the tool itself)."""
        self._call.request_hangup("a tool hung up")


class CallState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"
    CLOSED = "closed"


def without_audio(event: dict[str, Any]) -> dict[str, Any]:
    """The event log keeps events, the recording keeps the audio: a WebSocket's answer audio (base64 in
    `response.output_audio.delta`) is logged as its length, as RTP audio is not logged at all."""
    if event.get("type") == "response.output_audio.delta" and isinstance(event.get("delta"), str):
        return {**event, "delta": f"<{len(event['delta'])} base64 characters>"}
    return event


class VoiceCall:
    """One Realtime conversation.

    `source` is the microphone (a `WavSource`, a device source, any `AudioSource`); it starts playing only after
    the server has confirmed the session (`session.updated`). Files are optional and always finalised. `turns`
    is where the conversation stands (responses, audio, the user, tools); `on(EventClass, handler)` subscribes a
    typed handler to the ordered event consumer.
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        session: SessionConfig | None = None,
        *,
        source: AudioSource | None = None,
        tools: list[Tool] | None = None,
        output_wav: str | Path | None = None,
        record_wav: str | Path | None = None,
        events_jsonl: str | Path | None = None,
        tool_timeout: float = DEFAULT_TIMEOUT,
        on_tool_result: ToolResultHook | None = None,
        approver: Approver | None = None,
        playback: Playback | None = None,
        transport: Transport | None = None,
        transport_factory: Callable[[], Transport] | None = None,
        reconnect: ReconnectPolicy | int = 0,
        recycle_after: float | None = None,
        recycle_margin: float = 60.0,
        media_timeout: float = 2.0,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or ClientSettings.from_env()
        self.tools = list(tools or [])
        base = session or SessionConfig()
        self.session = base.with_tools([t.definition for t in self.tools]) if self.tools else base
        self.source: AudioSource = source or SilenceSource()
        self.state = CallState.NEW
        self.call_id: str | None = None
        self.t0 = time.monotonic()
        self.connect_seconds: float | None = None
        self.effective_session: dict[str, Any] | None = None
        self.meter = TurnMeter()
        self.error: VoiceClientError | None = None
        self.hangup_requested: str | None = None
        self._ended_by_server: str | None = None
        self._paths = (output_wav, record_wav, events_jsonl)
        self._received_taps: list[Playback] = [playback] if playback is not None else []  # e.g. a SpeakerSink
        self._sent_taps: list[Playback] = []
        self._sink: WavSink | None = None
        self._recorder: ConversationRecorder | None = None
        self._log: EventLog | None = None
        self._given_transport = transport
        self._transport_factory = transport_factory
        self._transport: Transport | None = None
        self._pending: PendingConnection | None = None
        self.reconnect = reconnect if isinstance(reconnect, ReconnectPolicy) else ReconnectPolicy(reconnect)
        self.recycle_after = recycle_after  # seconds per connection; else from `expires_at` less the margin
        self.recycle_margin = recycle_margin
        self.media_timeout = media_timeout  # no audio from a server that was streaming for this long: lost
        self.on_status = on_status  # human-readable lines about the connection (reconnecting, recycled)
        self.switches = 0
        self.settle_before_switch = SETTLE_BEFORE_SWITCH
        self.retire_after = RETIRE_AFTER
        self.replayed = 0  # items replayed into the newest connection
        self.reconnecting = False
        self._outbox: list[ev.ClientEvent] = []  # what the conversation sent while it had no connection
        self._lost: weakref.WeakSet[Transport] = weakref.WeakSet()  # transports whose loss has been handled
        self._last_media: float | None = None
        self._idle_frames = 0  # frames received while no response audio was playing (a server that streams on)
        self._expires_at: float | None = None  # the current session's cap (unix time), from session.created
        self._session_length: float | None = None  # seconds from session.created to that cap
        self._connected_at = time.monotonic()  # when the connection now carrying the call was made
        self._tasks = TaskOwner("voice call")
        self._closed = asyncio.Event()
        self._activity = asyncio.Event()
        self._subscribers: list[asyncio.Queue[ev.ReceivedServerEvent | None]] = []
        self._waiters: list[tuple[Predicate, asyncio.Future[ev.ReceivedServerEvent]]] = []
        self.turns = TurnState(self.send)
        self._runner = ToolRunner(self.tools, self.send, self.turns, timeout=tool_timeout, on_result=on_tool_result,
                                  approver=approver, handle=LiveCallHandle(self))
        self._dispatcher = Dispatcher()
        self._dispatcher.on_any(self.turns.received)  # first: everyone after it reads an up-to-date state
        self._dispatcher.on_any(self._notify)
        self._dispatcher.on(ev.Error, self._log_error)
        self._dispatcher.on(ev.SessionCreated, self._on_session_created)
        self._dispatcher.on(ev.SpeechStarted, self._on_speech_started)
        self._runner.subscribe(self._dispatcher)
        self.history = ConversationHistory()  # the conversation as the server reports it
        self.history.subscribe(self._dispatcher)

    # ------------------------------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> VoiceCall:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        if self.state is not CallState.NEW:
            raise CallError(f"connect() on a call that is {self.state.value}")
        self.state = CallState.CONNECTING
        transport = self._transport = self._new_transport()  # a WebRTC one imports aiortc here
        self.t0 = self._connected_at = time.monotonic()
        out_wav, rec_wav, events = self._paths
        if events:
            self._log = EventLog(events, self.t0)
        if out_wav:
            self._sink = WavSink(out_wav, self.t0)
        if rec_wav:
            self._recorder = ConversationRecorder(rec_wav, self.t0)
        self._dispatcher.start()
        timeout = self.settings.connect_timeout
        session_created = self._expect(lambda e: e.type == "session.created")
        await transport.open(self.session, *self._taps(transport))
        self._said_fallback(transport)
        self.call_id = transport.call_id
        self._tasks.spawn(self._watch_connection(transport), "connection watch")
        self._tasks.spawn(self._watch_media(), "media watch")
        await self._wait(session_created, timeout, "session.created")

        update = ev.SessionUpdate(session=self.session)
        updated = self._expect(lambda e: e.type == "session.updated" or (
            isinstance(e, ev.Error) and e.error.event_id == update.event_id))
        self.send(update)
        try:
            reply = await self._wait(updated, self.settings.session_update_timeout, "session.updated")
        except TimeoutError:
            raise SessionNotConfirmedError(
                f"the server did not confirm the session within {self.settings.session_update_timeout:g} s (no "
                "session.updated): the instructions, voice, tools and turn detection asked for may not apply") from None
        if isinstance(reply, ev.Error):
            raise SessionUpdateError(f"the server refused the session: {reply.error.message}"
                                     + (f" (param {reply.error.param})" if reply.error.param else ""))
        if isinstance(reply, ev.SessionUpdated):
            self.effective_session = reply.session
        self.connect_seconds = time.monotonic() - self.t0
        self.state = CallState.CONNECTED
        transport.set_source(self.source)
        if self.recycle_after is not None or self._expires_at is not None:
            self._tasks.spawn(self._recycle_loop(), "recycle")

    def _new_transport(self) -> Transport:
        from voiceclient.client.fallback import AutoTransport  # each imports what it needs when a call is made
        from voiceclient.client.websocket import WebSocketTransport

        if self._transport_factory is not None:
            return self._transport_factory()
        if self._given_transport is not None:
            given, self._given_transport = self._given_transport, None
            return given
        if self._transport is not None and not isinstance(self._transport, (WebRTCTransport, WebSocketTransport,
                                                                            AutoTransport)):
            raise CallError("this call was given one transport and no transport_factory: it cannot reconnect")
        if self.settings.transport == "websocket":
            return WebSocketTransport(self.settings)
        if self.settings.transport == "auto":
            return AutoTransport(self.settings)
        return WebRTCTransport(self.settings)

    def _said_fallback(self, transport: Transport) -> None:
        fallback = getattr(transport, "fallback", None)  # an AutoTransport that gave WebRTC up
        if isinstance(fallback, str):
            self._status(f"WebRTC did not connect ({fallback}); the call goes on over WebSocket")

    def _taps(self, transport: Transport) -> tuple[MessageTap, FrameTap, FrameTap, MessageTap]:
        """The callbacks a transport is opened with: only the current transport reaches the call."""
        def message(text: str | bytes) -> None:
            self._route_message(transport, text)

        def local(text: str | bytes) -> None:  # a transport's own events (the WebSocket's playout)
            if transport is self._transport:
                event = ev.parse_server_event(text)
                if self._log is not None:
                    self._log.write("local", json.loads(text))
                self._dispatcher.put(event)

        def audio(pcm: np.ndarray, pts: int, at: float) -> None:
            if transport is self._transport:
                self._last_media = at
                if not self.turns.audio_playing:
                    self._idle_frames += 1
                self._on_audio(pcm, pts, at)

        def sent(pcm: np.ndarray, pts: int, at: float) -> None:
            if transport is self._transport:
                self._on_sent(pcm, pts, at)

        return message, audio, sent, local

    async def close(self) -> None:
        """Hang up and release everything, in reverse order of setup. Idempotent: a second call waits for the
        first to finish; files are always finalised."""
        if self.state is CallState.CLOSED:
            return
        if self.state is CallState.CLOSING:
            await self._closed.wait()
            return
        self.state = CallState.CLOSING
        end = time.monotonic()
        try:
            await self._dispatcher.drain(0.5)
            await self._runner.close()
            await self._tasks.close()  # the watches, a reconnection or recycle under way
            if self._pending is not None:
                await self._pending.transport.close()
            if self._transport is not None:
                await self._transport.close()
            await self._dispatcher.stop()
        finally:
            for closer in (self._sink, self._recorder):
                if closer is not None:
                    closer.close(end)
            if self._log is not None:
                self._log.write("local", {"type": "conversation.history", "call_id": self.call_id,
                                          "items": self.history.to_json()})
                self._log.close()
            for queue in self._subscribers:
                queue.put_nowait(None)
            for _, fut in self._waiters:
                if not fut.done():
                    fut.cancel()
            self.state = CallState.CLOSED
            self._closed.set()

    def request_hangup(self, reason: str = "hangup requested") -> None:
        """Ask `run_until_idle` to return now (used by tools); the caller's `async with` then closes the call."""
        self.hangup_requested = reason
        self._activity.set()

    async def _watch_connection(self, transport: Transport) -> None:
        try:
            reason = await transport.lost
        except asyncio.CancelledError:  # the transport was closed on purpose (or the call is closing)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return
        if self._ended_by_server is not None:  # it said why before it went: that is the reason
            reason = f"the server ended the session: {self._ended_by_server}"
            self._ended_by_server = None
        self._connection_lost(transport, reason)

    async def _watch_media(self) -> None:
        """A server that was streaming audio and stopped is gone, whatever the connection state says. Servers may
        pause when they have nothing to say: silence counts only from one that kept sending while it had nothing
        to say (the embedded server and aiortc peers do), or while its response audio is playing."""
        while True:
            await asyncio.sleep(min(0.5, self.media_timeout / 2))
            transport, last = self._transport, self._last_media
            if transport is None or last is None or self.state is not CallState.CONNECTED or self.reconnecting:
                continue
            streams_on = self._idle_frames >= IDLE_STREAMING_FRAMES or self.turns.audio_playing
            if streams_on and time.monotonic() - last > self.media_timeout:
                self._connection_lost(transport, f"no audio from the server for {self.media_timeout:g} s")

    def _connection_lost(self, transport: Transport, reason: str) -> None:
        if transport is not self._transport or transport in self._lost:
            return
        self._lost.add(transport)
        attempts = self.reconnect.attempts
        expired = reason.startswith("the server ended the session") and "session_expired" in reason
        if expired and self.recycle_after is not None:
            attempts = max(attempts, 1)  # a call asked to last (it recycles) goes on past a cap it did not beat
        if self.state is not CallState.CONNECTED or attempts <= 0:
            if self.state in (CallState.CONNECTING, CallState.CONNECTED):
                self._fail(ConnectionLostError(reason))
            return
        self.reconnecting = True
        self._activity.set()
        self._tasks.spawn(self._reconnect(transport, reason, attempts), "reconnect")

    def _fail(self, error: VoiceClientError) -> None:
        self.error = error
        log.error("%s", error)
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(error)
        self._activity.set()

    def _status(self, text: str) -> None:
        log.info("call: %s", text)
        if self._log is not None:
            self._log.write("local", {"type": "call.status", "text": text})
        if self.on_status is not None:
            self.on_status(text)

    # ------------------------------------------------------------------------------------------ new connections
    def _on_session_created(self, event: ev.SessionCreated) -> None:
        expires = event.session.get("expires_at")
        self._expires_at = float(expires) if isinstance(expires, (int, float)) else None
        self._session_length = self._expires_at - time.time() if self._expires_at is not None else None

    async def _prepare(self) -> Transport:
        """A new connection with the session confirmed and the history replayed; not yet carrying the call."""
        transport = self._new_transport()
        pending = PendingConnection(transport, self._log_line)
        pending.created = time.monotonic()
        self._pending = pending
        message, audio, sent, local = self._taps(transport)
        timeout = self.settings.connect_timeout
        replay = self.history.replay_items()
        self.replayed = len(replay)
        try:
            await asyncio.wait_for(pending.prepare(self.session, replay, audio, sent, message, timeout, local),
                                   2 * timeout)
        except BaseException:
            self._pending = None
            await transport.close()
            raise
        self._said_fallback(transport)
        return transport

    def _switch(self, transport: Transport, reason: str) -> None:
        """Move the conversation onto `transport`: microphone first, then events and speaker; retire the old one."""
        old = self._transport
        transport.set_source(self.source)
        if old is not None:
            old.set_source(SilenceSource())
        if self._pending is not None:
            self._connected_at = self._pending.created
            if self._pending.expires_at is not None:
                self._expires_at = self._pending.expires_at
                self._session_length = self._pending.expires_at - self._pending.created_wall
        self.history.new_session(self.replayed)
        self._transport, self._pending = transport, None
        self._last_media = None
        self._idle_frames = 0
        self.turns.connection_changed()
        self.switches += 1
        self._log_line("local", {"type": "call.switched", "from": self.call_id, "to": transport.call_id,
                                 "reason": reason})
        self.call_id = transport.call_id
        self._tasks.spawn(self._watch_connection(transport), "connection watch")
        if old is not None:
            self._lost.add(old)  # whatever it does now is not a loss of the call
            self._tasks.spawn(self._retire(old), "hang up the previous connection")
        outbox, self._outbox = self._outbox, []
        for event in outbox:  # what the conversation said while it had no connection (tool outputs)
            self.send(event)

    async def _retire(self, old: Transport) -> None:
        """Hang the previous connection up once the new one has settled: tearing a peer connection down takes the
        event loop for tens of milliseconds, which at the very moment of the switch would be heard as a gap."""
        try:
            await asyncio.sleep(self.retire_after)
        finally:  # also when the call closes meanwhile: the old connection is hung up, not left to the GC
            await old.close()

    async def _reconnect(self, lost: Transport, reason: str, attempts: int) -> None:
        self._status(f"connection lost: {reason}")
        try:
            for attempt in range(attempts):
                await asyncio.sleep(self.reconnect.delay(attempt))
                self._status(f"reconnecting (attempt {attempt + 1} of {attempts})")
                try:
                    transport = await self._prepare()
                except (VoiceClientError, TimeoutError) as exc:
                    log.warning("reconnect attempt %d of %d failed: %s", attempt + 1, attempts, exc)
                    continue
                self._switch(transport, f"lost: {reason}")
                self._status(f"reconnected, conversation restored ({self.replayed} items)")
                return
            self._fail(ConnectionLostError(f"{reason}; {attempts} attempts to reconnect failed"))
        finally:
            self.reconnecting = False
            self._activity.set()
            if not self._tasks.closed:  # (when the call is closing, close() itself ends what is left)
                self._tasks.spawn(lost.close(), "close the lost connection")

    def _quiet(self) -> bool:
        """A moment to change connections: nothing under way and no server event for QUIET_GAP (a turn that just
        ended is answered within milliseconds, so a short gap covers the moment between the two)."""
        if self._transport is None or self._transport.lost.done() or self.reconnecting:
            return False
        under_way = self.turns.busy or self._runner.busy  # (a microphone or WAV still sending is no obstacle)
        return not under_way and time.monotonic() - self.turns.last_activity >= QUIET_GAP

    def _cap_margin(self) -> float:
        """How long before the cap a recycle begins: `recycle_margin`, or for a short session a quarter of it, and
        never less than the new connection needs to be made, settle and find a quiet moment."""
        length = self._session_length if self._session_length is not None else float("inf")
        return min(self.recycle_margin, max(self.settle_before_switch + 2.0, length / 4))

    def _cap(self) -> float | None:
        """The current session's cap as monotonic time, or None."""
        return None if self._expires_at is None else time.monotonic() + self._expires_at - time.time()

    def _recycle_due(self) -> float | None:
        """When the current connection should be replaced (monotonic time), or None: `recycle_after` from when that
        connection was made, and before its cap at the latest."""
        due: list[float] = []
        if self.recycle_after is not None:
            due.append(self._connected_at + self.recycle_after)
        cap = self._cap()
        if cap is not None:
            due.append(cap - self._cap_margin())
        return min(due) if due else None

    def _switch_by(self) -> float | None:
        """The last moment to switch without a quiet one: just before the cap (a word may glitch)."""
        cap = self._cap()
        return None if cap is None else cap - min(1.5, self._cap_margin() / 2)

    async def _recycle_loop(self) -> None:
        """Before each session's cap: prepare the next connection in the background, wait for a quiet moment
        (no response, user not speaking, no tool pending, the assistant's audio finished), then switch."""
        while (due := self._recycle_due()) is not None:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            while self.reconnecting:
                await asyncio.sleep(0.1)
            try:
                transport = await self._prepare()
            except (VoiceClientError, TimeoutError) as exc:
                log.warning("could not prepare the next connection (%s); trying again in 5 s", exc)
                await asyncio.sleep(5)
                continue
            pending = self._pending
            assert pending is not None and pending.transport is transport
            await asyncio.sleep(self.settle_before_switch)  # let the new connection's setup burst pass first
            moment = await self._switch_moment()
            if moment == "lost":  # the loss path makes its own connection
                if pending is self._pending:
                    self._pending = None
                await transport.close()
                continue
            try:  # what was said while it waited: a round trip, while the conversation is quiet
                catch_up = self.history.replay_items()
                await pending.replay(catch_up, self.settings.connect_timeout)
                self.replayed = len(catch_up)
            except (VoiceClientError, TimeoutError) as exc:
                log.warning("could not bring the next connection up to date (%s); trying again", exc)
                self._pending = None
                await transport.close()
                continue
            forced = moment == "forced"
            self._switch(transport, "recycle before the cap" if forced else "recycle")
            self._status(f"session recycled{' before the cap, mid-turn' if forced else ''}, conversation "
                         f"carried over ({self.replayed} items)")

    async def _switch_moment(self) -> str:
        """Wait for a quiet moment to switch ("quiet"), or the last moment before the cap ("forced"), unless the
        current connection is lost meanwhile ("lost")."""
        while not self._quiet():
            if self.reconnecting or (self._transport is not None and self._transport.lost.done()):
                return "lost"
            by = self._switch_by()
            if by is not None and time.monotonic() >= by:
                log.warning("no quiet moment before the session's cap: switching connections now (a word may "
                            "glitch)")
                return "forced"
            self._activity.clear()
            try:
                await asyncio.wait_for(self._activity.wait(), 0.05)
            except TimeoutError:
                pass
        return "quiet"

    # ------------------------------------------------------------------------------------------ events in
    def _log_line(self, direction: str, event: dict[str, Any]) -> None:
        if self._log is not None:
            self._log.write(direction, event)

    def _route_message(self, transport: Transport, message: str | bytes) -> None:
        if transport is self._transport:
            self._on_message(message)
            return
        self._log_incoming(message, ev.parse_server_event(message))
        if self._pending is not None and transport is self._pending.transport:
            self._pending.on_message(message)

    def _log_incoming(self, message: str | bytes, event: ev.ReceivedServerEvent) -> None:
        if self._log is not None:  # the log keeps the event as it came over the wire
            if isinstance(event, ev.MalformedEvent) and event.event_type is None:
                self._log.write("server", {"type": event.type, "reason": event.reason, "raw": event.raw})
            else:
                self._log.write("server", without_audio(json.loads(message)))

    def _on_message(self, message: str | bytes) -> None:
        event = ev.parse_server_event(message)
        self._log_incoming(message, event)
        if isinstance(event, ev.UnknownEvent):
            log.info("unknown server event type %r (kept, ignored)", event.type)
        elif isinstance(event, ev.MalformedEvent):
            log.warning("malformed server event: %s", event.reason)
        self._dispatcher.put(event)

    def _notify(self, event: ev.ReceivedServerEvent) -> None:
        for pred, fut in list(self._waiters):
            if not fut.done() and pred(event):
                fut.set_result(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        self._activity.set()

    def _log_error(self, event: ev.Error) -> None:
        log.warning("server error: %s (%s)", event.error.message, event.error.code)
        if event.error.code in SESSION_ENDING_ERRORS:
            self._ended_by_server = f"{event.error.message} ({event.error.code})"

    @overload
    def on(self, kind: type[E], handler: Callable[[E], object]) -> None: ...

    @overload
    def on(self, kind: str, handler: AnyHandler) -> None: ...

    def on(self, kind: type[Any] | str, handler: Callable[[Any], object]) -> None:
        """Subscribe `handler` to the events of class (or wire type) `kind`, in the call's ordered consumer: it
        runs after the call's own bookkeeping, so `call.turns` already reflects the event."""
        self._dispatcher.on(kind, handler)

    def on_any(self, handler: AnyHandler) -> None:
        self._dispatcher.on_any(handler)

    def _expect(self, predicate: Predicate) -> asyncio.Future[ev.ReceivedServerEvent]:
        fut: asyncio.Future[ev.ReceivedServerEvent] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        return fut

    async def _wait(self, fut: asyncio.Future[ev.ReceivedServerEvent], timeout: float,
                    what: str) -> ev.ReceivedServerEvent:
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            if self.error is not None:
                raise self.error from None
            if what == "session.updated":
                raise
            raise ConnectionLostError(f"no {what} from the server within {timeout:g} s") from None
        finally:
            self._waiters = [(p, f) for p, f in self._waiters if f is not fut]

    async def wait_for(self, predicate: Predicate, timeout: float) -> ev.ReceivedServerEvent:
        """Wait for the first server event matching `predicate` (from now on)."""
        return await self._wait(self._expect(predicate), timeout, "the awaited event")

    async def events_handled(self, timeout: float = 5.0) -> None:
        """Wait until every server event received so far has been through the handlers."""
        await self._dispatcher.drain(timeout)

    def events(self) -> EventStream:
        """Every server event from this call on, in order, until the call closes (subscribed at once)."""
        return EventStream(self._subscribers)

    def __aiter__(self) -> EventStream:
        return self.events()

    # ------------------------------------------------------------------------------------------ events out
    def send(self, event: ev.ClientEvent) -> None:
        if self._transport is None or self.state is CallState.CLOSED:
            raise CallError("the call is not connected")
        if self.reconnecting:  # said again on the new connection, after the history
            self._outbox.append(event)
            return
        wire = event.to_wire()
        self.turns.sent(event)
        if self._log is not None:
            self._log.write("client", wire)
        self._transport.send(json.dumps(wire, separators=(",", ":")))

    def send_text(self, text: str) -> None:
        """A user text message, then a response."""
        self.send(ev.ConversationItemCreate(item=ev.Item.user_text(text)))
        self.turns.request_response(retry=False)

    def interrupt(self) -> None:
        """Stop the assistant: cancel the response in progress, then clear the audio still playing; tools marked
        `cancel_on_interrupt` are cancelled too."""
        self._runner.interrupt()
        if self.turns.active:
            self.send(ev.ResponseCancel())
        if self._transport is not None and self._transport.plays_audio:
            self._cut_playout()
        else:
            self.send(ev.OutputAudioBufferClear())

    def _cut_playout(self) -> None:
        """Where the client plays the answer itself (WebSocket), stop it and tell the server what was heard."""
        cut = self._transport.clear_playout() if self._transport is not None else None
        if cut is not None:
            item_id, heard_ms = cut
            self.send(ev.ConversationItemTruncate(item_id=item_id, audio_end_ms=heard_ms))

    def _on_speech_started(self, event: ev.SpeechStarted) -> None:
        """Barge-in where the client plays the answer: the server has cancelled the response (interrupt_response);
        the speaker stops and the item keeps what was heard."""
        detection = self.session.audio.input.turn_detection if self.session.audio and self.session.audio.input \
            else None
        if self._transport is not None and self._transport.plays_audio and (
                detection is None or detection.interrupt_response is not False):
            self._cut_playout()

    def update_session(self, session: SessionConfig) -> None:
        """Send a `session.update`; the call keeps the merged session for any later connection."""
        merged = deep_merge(self.session.to_wire(), session.to_wire(), replace=("turn_detection", "format"))
        self.session = SessionConfig.model_validate(merged)
        self.send(ev.SessionUpdate(session=session))

    @property
    def transport(self) -> Transport:
        """The connection under the call (for diagnostics and raw sends); set once `connect()` has begun."""
        if self._transport is None:
            raise CallError("the call has no transport yet: connect() first")
        return self._transport

    def set_source(self, source: AudioSource) -> None:
        """Send from `source` from now on (before `connect()`: once the session is confirmed)."""
        self.source = source
        if self._transport is not None and self.state is CallState.CONNECTED:
            self._transport.set_source(source)

    # ------------------------------------------------------------------------------------------ audio taps
    def tap_audio(self, *, received: Playback | None = None, sent: Playback | None = None) -> None:
        """Also hand every received and/or sent frame (48 kHz mono int16, pts, monotonic time) to these."""
        if received is not None:
            self._received_taps.append(received)
        if sent is not None:
            self._sent_taps.append(sent)

    def _on_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        for tap in (*self._received_taps, self._sink, self._recorder.received if self._recorder else None,
                    self.meter.received):
            if tap is not None:
                try:
                    tap(pcm, pts, at)
                except Exception:  # one failing sink must not silence the others
                    log.exception("received-audio tap failed")

    def _on_sent(self, pcm: np.ndarray, pts: int, at: float) -> None:
        for tap in (self._recorder.sent if self._recorder else None, self.meter.sent, *self._sent_taps):
            if tap is not None:
                try:
                    tap(pcm, pts, at)
                except Exception:
                    log.exception("sent-audio tap failed")

    # ------------------------------------------------------------------------------------------ waiting
    @property
    def input_done(self) -> bool:
        return self.source.done

    @property
    def busy(self) -> bool:
        return not self.input_done or self.turns.busy or self._runner.busy or self.reconnecting

    async def run_until_idle(self, idle_seconds: float = 2.0, max_duration: float | None = None) -> str:
        """Return "idle" once the input is done and nothing has happened for `idle_seconds`, "max_duration", or
        "hangup" when a tool asked to end the call."""
        deadline = None if max_duration is None else self.t0 + max_duration
        idle_since = time.monotonic()
        while True:
            if self.error is not None:
                raise self.error
            if self.hangup_requested is not None:
                return "hangup"
            now = time.monotonic()
            if self.busy:
                idle_since = now
            else:
                idle_since = max(idle_since, self.turns.last_activity)
                if now - idle_since >= idle_seconds:
                    # Events may be waiting behind a stalled loop: handle them before deciding.
                    before = self.turns.last_activity
                    await self._dispatcher.drain(0.5)
                    await asyncio.sleep(0)
                    if self.turns.last_activity == before and not self.busy:
                        return "idle"
                    continue
            if deadline is not None and now >= deadline:
                return "max_duration"
            self._activity.clear()
            wake = 0.05 if self.busy else max(0.01, idle_since + idle_seconds - now)
            if deadline is not None:
                wake = min(wake, max(0.0, deadline - now))
            try:
                await asyncio.wait_for(self._activity.wait(), wake)
            except TimeoutError:
                pass

    @property
    def tool_calls(self) -> int:
        return self._runner.calls_run

    @property
    def foreign_tool_calls(self) -> list[tuple[str, str]]:
        """(name, call_id) of the function calls for tools this client did not declare, left unanswered for the
        client that did (a sideband backend)."""
        return list(self._runner.foreign_calls)
