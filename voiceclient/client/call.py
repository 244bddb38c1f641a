"""The conversation: `async with VoiceCall(...) as call`, the only module that wires the client's parts together.

    settings -> ConnectionManager -> Connection (transport + handshake) -> server messages -> decode -> Dispatcher
        -> TurnState (first) -> waiters and event streams -> ToolRunner -> your handlers (`call.on(...)`)
    source -> transport (paced 20 ms frames)        received frames -> WAV sink, recorder, meter, speaker

The call knows turns, tools, files and waiting; which connection carries it, and how a new one replaces it (a
recycle, a reconnect), is the `ConnectionManager`'s job. The transport is a seam: `AutoTransport` by default,
`ScriptedTransport` in fast tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

import numpy as np

from voiceclient.audio.sinks import ConversationRecorder, WavSink
from voiceclient.audio.sources import AudioSource, SilenceSource
from voiceclient.client.connections import ConnectionManager
from voiceclient.client.dispatcher import AnyHandler, Dispatcher
from voiceclient.client.history import ConversationHistory
from voiceclient.client.options import Continuity, Recording
from voiceclient.client.recording import EventLog, TurnMeter
from voiceclient.client.settings import ClientSettings
from voiceclient.client.state import TurnState
from voiceclient.client.transport import Transport
from voiceclient.errors import CallError, ConnectionLostError, VoiceClientError
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import SessionConfig
from voiceclient.protocol.validation import deep_merge
from voiceclient.tools.approvals import Approver
from voiceclient.tools.registry import DEFAULT_TIMEOUT, Tool
from voiceclient.tools.runner import ToolResultHook, ToolRunner

log = logging.getLogger(__name__)
E = TypeVar("E")
Playback = Callable[[np.ndarray, int, float], None]
Predicate = Callable[[ev.ReceivedServerEvent], bool]
# The server ends the call after sending one of these (`server_shutting_down`: the embedded server stopping).
SESSION_ENDING_ERRORS = frozenset({"session_expired", "server_shutting_down"})
HANGUP_SETTLE_SECONDS = 2.0  # how long a hangup waits for the tools still running to send their outputs


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
        """Stop receiving events: nothing more is queued (what already is can still be read)."""
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
    """Where a call is in its life: `NEW` -> `CONNECTING` -> `CONNECTED` -> `CLOSING` -> `CLOSED` (`call.state`)."""

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


class _Side:
    """The call as its connection manager sees it (`connections.Conversation`): these are not the call's API."""

    def __init__(self, call: VoiceCall) -> None:
        self._call = call

    @property
    def session(self) -> SessionConfig:
        return self._call.session

    @property
    def source(self) -> AudioSource:
        return self._call.source

    @property
    def history(self) -> ConversationHistory:
        return self._call.history

    def quiet_since(self) -> float | None:
        return self._call._quiet_since()

    def answer_playing(self) -> bool:
        return self._call._answer_playing()

    def on_server_message(self, message: str | bytes, current: bool) -> None:
        self._call._on_server_message(message, current)

    def on_local_message(self, message: str | bytes) -> None:
        self._call._on_local_message(message)

    def on_received_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        self._call._on_audio(pcm, pts, at)

    def on_sent_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        self._call._on_sent(pcm, pts, at)

    def log_line(self, direction: str, event: dict[str, Any]) -> None:
        self._call.log_line(direction, event)

    def status(self, text: str) -> None:
        self._call._status(text)

    def fail(self, error: VoiceClientError) -> None:
        self._call._fail(error)

    def wake(self) -> None:
        self._call._wake()

    def connection_changed(self, replayed: int) -> None:
        self._call._connection_changed(replayed)

    def connection_lost(self, reason: str) -> None:
        self._call._connection_state("connecting")


class VoiceCall:
    """One Realtime conversation.

    `source` is the microphone (a `WavSource`, a device source, any `AudioSource`); it starts playing only after
    the server has confirmed the session (`session.updated`). `recording` says which files to keep (each always
    finalised), `continuity` how the call outlives its connections (reconnect, recycle). `turns` is where the
    conversation stands (responses, audio, the user, tools); `on(EventClass, handler)` subscribes a typed handler
    to the ordered event consumer.
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        session: SessionConfig | None = None,
        *,
        source: AudioSource | None = None,
        tools: list[Tool] | None = None,
        recording: Recording | None = None,
        continuity: Continuity | None = None,
        tool_timeout: float = DEFAULT_TIMEOUT,
        on_tool_result: ToolResultHook | None = None,
        approver: Approver | None = None,
        playback: Playback | None = None,
        on_status: Callable[[str], None] | None = None,
        transport: Transport | None = None,
        transport_factory: Callable[[], Transport] | None = None,
    ) -> None:
        self.settings = settings or ClientSettings.from_env()
        self.tools = list(tools or [])
        base = session or SessionConfig()
        self.session = base.with_tools([t.definition for t in self.tools]) if self.tools else base
        self.source: AudioSource = source or SilenceSource()
        self.recording = recording or Recording()
        self.continuity = continuity or Continuity()
        self.on_status = on_status  # human-readable lines about the connection (reconnecting, recycled)
        self.state = CallState.NEW
        self.t0 = time.monotonic()
        self.connect_seconds: float | None = None
        self.effective_session: dict[str, Any] | None = None
        self.meter = TurnMeter()
        self.error: VoiceClientError | None = None
        self.hangup_requested: str | None = None
        self._received_taps: list[Playback] = [playback] if playback is not None else []  # e.g. a SpeakerSink
        self._sent_taps: list[Playback] = []
        self._sink: WavSink | None = None
        self._recorder: ConversationRecorder | None = None
        self._log: EventLog | None = None
        self._connections = ConnectionManager(
            _Side(self), self.settings, self.continuity, transport=transport, transport_factory=transport_factory
        )
        self._outbox: list[ev.ClientEvent] = []  # what the conversation sent while it had no connection
        self._closed = asyncio.Event()
        self._ended = asyncio.Event()  # closed, or failed
        self._connection_handlers: list[Callable[[str], None]] = []
        self._activity = asyncio.Event()
        self._subscribers: list[asyncio.Queue[ev.ReceivedServerEvent | None]] = []
        self._waiters: list[tuple[Predicate, asyncio.Future[ev.ReceivedServerEvent]]] = []
        self.turns = TurnState(self.send)
        self._runner = ToolRunner(
            self.tools,
            self.send,
            self.turns,
            timeout=tool_timeout,
            on_result=on_tool_result,
            approver=approver,
            handle=LiveCallHandle(self),
        )
        self._dispatcher = Dispatcher()
        self._dispatcher.on_any(self.turns.received)  # first: everyone after it reads an up-to-date state
        self._dispatcher.on_any(self._notify)
        self._errors_followed = False  # someone subscribed to error events: they say them, the log need not
        self._dispatcher.on(ev.Error, self._log_error)
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
        """Create the call, connect and confirm the session (`async with` calls it). A `CallError` if the call is not
        new.
        """
        if self.state is not CallState.NEW:
            raise CallError(f"connect() on a call that is {self.state.value}")
        self.state = CallState.CONNECTING
        self.t0 = time.monotonic()
        files = self.recording
        if files.events_jsonl:
            self._log = EventLog(files.events_jsonl, self.t0)
        if files.output_wav:
            self._sink = WavSink(files.output_wav, self.t0)
        if files.record_wav:
            self._recorder = ConversationRecorder(files.record_wav, self.t0)
        self._dispatcher.start()
        first = await self._connections.open()  # a WebRTC transport imports aiortc here
        await self._dispatcher.drain(self.settings.session_update_timeout)  # its session events are handled
        self.effective_session = first.effective_session
        self.connect_seconds = time.monotonic() - self.t0
        self.state = CallState.CONNECTED
        self._connections.start()

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
            await self._connections.close()  # the watches, a reconnection or recycle under way, every connection
            await self._dispatcher.stop()
        finally:
            for closer in (self._sink, self._recorder):
                if closer is not None:
                    closer.close(end)
            if self._log is not None:
                self._log.write(
                    "local", {"type": "conversation.history", "call_id": self.call_id, "items": self.history.to_json()}
                )
                self._log.close()
            for queue in self._subscribers:
                queue.put_nowait(None)
            for _, fut in self._waiters:
                if not fut.done():
                    fut.cancel()
            self.state = CallState.CLOSED
            self._closed.set()
            self._ended.set()

    def request_hangup(self, reason: str = "hangup requested") -> None:
        """Ask `run_until_idle` to return now (used by tools); the caller's `async with` then closes the call."""
        self.hangup_requested = reason
        self._activity.set()

    # ------------------------------------------------------------------------------------------ connections
    @property
    def transport(self) -> Transport:
        """The connection under the call (for diagnostics and raw sends); set once `connect()` has begun."""
        transport = self._connections.transport
        if transport is None:
            raise CallError("the call has no transport yet: connect() first")
        return transport

    @property
    def call_id(self) -> str | None:
        """The id of the connection carrying the call (each reconnect or recycle makes a new one)."""
        return self._connections.call_id

    @property
    def switches(self) -> int:
        """How many times the call moved onto a new connection (recycles and reconnects)."""
        return self._connections.switches

    @property
    def replayed(self) -> int:
        """Items of the history replayed into the newest connection."""
        return self._connections.replayed

    @property
    def reconnecting(self) -> bool:
        """Whether the call's connection was lost and a new one is being made (what is sent meanwhile waits for it)."""
        return self._connections.reconnecting

    # What the connection manager sees of the conversation, through `_Side` (`connections.Conversation`).
    def _quiet_since(self) -> float | None:
        if self.turns.busy or self._runner.busy:
            return None
        return self.turns.last_activity

    def _answer_playing(self) -> bool:
        return self.turns.audio_playing

    def _on_server_message(self, message: str | bytes, current: bool) -> None:
        event = ev.parse_server_event(message)
        self._log_incoming(message, event)
        if not current:  # a connection being prepared, or one retiring: logged, not handled
            return
        if isinstance(event, ev.UnknownEvent):
            log.info("unknown server event type %r (kept, ignored)", event.type)
        elif isinstance(event, ev.MalformedEvent):
            log.warning("malformed server event: %s", event.reason)
        self._dispatcher.put(event)

    def _on_local_message(self, message: str | bytes) -> None:
        if self._log is not None:
            self._log.write("local", json.loads(message))
        self._dispatcher.put(ev.parse_server_event(message))

    def log_line(self, direction: str, event: dict[str, Any]) -> None:
        """Write a line of your own into the call's event log (`direction` "local" for what was never sent)."""
        if self._log is not None:
            self._log.write(direction, event)

    def _status(self, text: str) -> None:
        log.info("call: %s", text)
        self.log_line("local", {"type": "call.status", "text": text})
        if self.on_status is not None:
            self.on_status(text)

    def _fail(self, error: VoiceClientError) -> None:
        self.error = error
        log.info("call failed: %s", error)  # raised to whoever runs the call, which says it once
        self._ended.set()
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(error)
        self._activity.set()

    def _wake(self) -> None:
        self._activity.set()

    def _connection_changed(self, replayed: int) -> None:
        self.history.new_session(replayed)
        self.turns.connection_changed()
        outbox, self._outbox = self._outbox, []
        for event in outbox:  # what the conversation said while it had no connection (tool outputs)
            self.send(event)
        self._activity.set()
        self._connection_state("connected")

    def _connection_state(self, state: str) -> None:
        for handler in list(self._connection_handlers):
            try:
                handler(state)
            except Exception:
                log.exception("connection handler failed")

    def on_connection(self, handler: Callable[[str], None]) -> None:
        """`handler("connecting")` when the connection carrying the call is lost and new ones are tried,
        `handler("connected")` when a new one carries it (after a reconnect or a recycle). A call that gives up
        fails instead: `await call.ended()`."""
        self._connection_handlers.append(handler)

    async def ended(self) -> VoiceClientError | None:
        """Wait until the call has closed or failed; the failure, if it failed."""
        await self._ended.wait()
        return self.error

    # ------------------------------------------------------------------------------------------ events in
    def _log_incoming(self, message: str | bytes, event: ev.ReceivedServerEvent) -> None:
        if self._log is not None:  # the log keeps the event as it came over the wire
            if isinstance(event, ev.MalformedEvent) and event.event_type is None:
                self._log.write("server", {"type": event.type, "reason": event.reason, "raw": event.raw})
            else:
                self._log.write("server", without_audio(json.loads(message)))

    def _notify(self, event: ev.ReceivedServerEvent) -> None:
        for pred, fut in list(self._waiters):
            if not fut.done() and pred(event):
                fut.set_result(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        self._activity.set()

    def _log_error(self, event: ev.Error) -> None:
        # A warning, unless the application follows errors itself (the CLI prints them): said once, not twice.
        level = logging.DEBUG if self._errors_followed else logging.WARNING
        log.log(level, "server error: %s (%s)", event.error.message, event.error.code)
        if event.error.code in SESSION_ENDING_ERRORS:
            self._connections.server_ending(f"{event.error.message} ({event.error.code})")

    @overload
    def on(self, kind: type[E], handler: Callable[[E], object]) -> None: ...

    @overload
    def on(self, kind: str, handler: AnyHandler) -> None: ...

    def on(self, kind: type[Any] | str, handler: Callable[[Any], object]) -> None:
        """Subscribe `handler` to the events of class (or wire type) `kind`, in the call's ordered consumer: it
        runs after the call's own bookkeeping, so `call.turns` already reflects the event."""
        if kind in (ev.Error, "error"):
            self._errors_followed = True
        self._dispatcher.on(kind, handler)

    def on_any(self, handler: AnyHandler) -> None:
        """Call `handler` with every server event, in order, on the call's one consumer."""
        self._dispatcher.on_any(handler)

    def _expect(self, predicate: Predicate) -> asyncio.Future[ev.ReceivedServerEvent]:
        fut: asyncio.Future[ev.ReceivedServerEvent] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        return fut

    async def _wait(
        self, fut: asyncio.Future[ev.ReceivedServerEvent], timeout: float, what: str
    ) -> ev.ReceivedServerEvent:
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
        """Send a client event (a model from `voiceclient.protocol.events`); while reconnecting, it goes out on the new
        connection. A `CallError` when the call is not connected.
        """
        if self._connections.transport is None or self.state is CallState.CLOSED:
            raise CallError("the call is not connected")
        if self.reconnecting:  # said again on the new connection, after the history
            self._outbox.append(event)
            return
        wire = event.to_wire()
        self.turns.sent(event)
        if self._log is not None:
            self._log.write("client", wire)
        self._connections.send(json.dumps(wire, separators=(",", ":")))

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
        if self._connections.transport is not None and self._connections.transport.plays_audio:
            self._cut_playout()
        else:
            self.send(ev.OutputAudioBufferClear())

    def _cut_playout(self) -> None:
        """Where the client plays the answer itself (WebSocket), stop it and tell the server what was heard."""
        transport = self._connections.transport
        cut = transport.clear_playout() if transport is not None else None
        if cut is not None:
            item_id, heard_ms = cut
            self.send(ev.ConversationItemTruncate(item_id=item_id, audio_end_ms=heard_ms))

    def _on_speech_started(self, event: ev.SpeechStarted) -> None:
        """Barge-in where the client plays the answer: the server has cancelled the response (interrupt_response);
        the speaker stops and the item keeps what was heard."""
        detection = self.session.audio.input.turn_detection if self.session.audio and self.session.audio.input else None
        transport = self._connections.transport
        if (
            transport is not None
            and transport.plays_audio
            and (detection is None or detection.interrupt_response is not False)
        ):
            self._cut_playout()

    def update_session(self, session: SessionConfig) -> None:
        """Send a `session.update`; the call keeps the merged session for any later connection."""
        merged = deep_merge(self.session.to_wire(), session.to_wire(), replace=("turn_detection", "format"))
        self.session = SessionConfig.model_validate(merged)
        self.send(ev.SessionUpdate(session=session))

    def set_source(self, source: AudioSource) -> None:
        """Send from `source` from now on (before `connect()`: once the session is confirmed)."""
        self.source = source
        self._connections.set_source(source)

    # ------------------------------------------------------------------------------------------ audio taps
    def tap_audio(self, *, received: Playback | None = None, sent: Playback | None = None) -> None:
        """Also hand every received and/or sent frame (48 kHz mono int16, pts, monotonic time) to these."""
        if received is not None:
            self._received_taps.append(received)
        if sent is not None:
            self._sent_taps.append(sent)

    def _on_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        for tap in (
            *self._received_taps,
            self._sink,
            self._recorder.received if self._recorder else None,
            self.meter.received,
        ):
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
        """Whether the source (the WAV, the buffer) has nothing more to send."""
        return self.source.done

    @property
    def busy(self) -> bool:
        """Whether anything is under way: input still sending, a response or a tool running, the user speaking, a
        reconnect.
        """
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
                await self._runner.settle(HANGUP_SETTLE_SECONDS)  # the tool that hung up sends its output
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
            with contextlib.suppress(TimeoutError):  # (not wait_for: 3.11's can drop a cancel as the wait ends)
                async with asyncio.timeout(wake):
                    await self._activity.wait()

    @property
    def tool_calls(self) -> int:
        """How many tool calls the call has run."""
        return self._runner.calls_run

    @property
    def foreign_tool_calls(self) -> list[tuple[str, str]]:
        """(name, call_id) of the function calls for tools this client did not declare, left unanswered for the
        client that did (a sideband backend)."""
        return list(self._runner.foreign_calls)
