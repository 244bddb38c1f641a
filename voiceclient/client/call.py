"""The conversation: `async with VoiceCall(...) as call`, the only module that wires the client's parts together.

    settings -> ConnectionManager -> Connection (transport + handshake) -> TransportEvents -> the call's inbound
        -> decode -> Dispatcher -> TurnState (first) -> ToolRunner, history -> your subscriptions (`call.subscribe`)
    source -> transport (paced 20 ms frames)        received frames -> speaker, meter, WAV sink, recorder

The call knows turns, tools, files and waiting; which connection carries it, and how a new one replaces it (a
recycle, a reconnect), is the `ConnectionManager`'s job: it reads the call through its `Conversation` protocol
and says what happens to the connection as the call's own events. Everything that observes the call is one kind of
subscription (`subscribe(handler, *kinds)`, ended by the function it returns): server events in order, the call's
own events (status, connection, failure, close, audio frames) where they happen; handlers, streams, waiters and
taps are all made of it. The transport is a seam: `AutoTransport` by default, `ScriptedTransport` in fast tests.
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
from voiceclient.client.call_events import (
    AudioReceived,
    AudioSent,
    CallClosed,
    CallFailed,
    CallStatus,
    ConnectionChanged,
)
from voiceclient.client.connections import ConnectionManager
from voiceclient.client.dispatcher import AnyHandler, Dispatcher, Unsubscribe
from voiceclient.client.family import AnyClientEvent, Family, LiveFamily, family_for
from voiceclient.client.history import ConversationHistory
from voiceclient.client.live_answer import AnswerAwaited
from voiceclient.client.live_tools import DelegatedTools
from voiceclient.client.options import Continuity, Recording
from voiceclient.client.recording import EventLog, TurnMeter
from voiceclient.client.settings import ClientSettings
from voiceclient.client.state import TurnState
from voiceclient.client.transport import Transport
from voiceclient.errors import CallError, ConfigError, ConnectionLostError, VoiceClientError
from voiceclient.protocol import events as ev
from voiceclient.protocol import live_events as live
from voiceclient.protocol.session import AnySession, SessionConfig, TranscriptionSessionConfig
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
# What a transcription session refuses (it has no conversation to add to and makes no responses): never sent in one.
NOT_IN_TRANSCRIPTION = (
    ev.ResponseCreate,
    ev.ResponseCancel,
    ev.ConversationItemCreate,
    ev.ConversationItemTruncate,
    ev.OutputAudioBufferClear,
)


AUDIO_DELTAS = ("response.output_audio.delta", "session.output_audio.delta")  # (the Realtime API's, GPT-Live's)


class EventStream:
    """An async iterator over a call's server events; subscribed when created, so nothing is missed."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._queue: asyncio.Queue[ev.ReceivedServerEvent | None] = asyncio.Queue()
        self._ends = [dispatcher.on_any(self._queue.put_nowait), dispatcher.on(CallClosed, self._call_closed)]

    def _call_closed(self, event: CallClosed) -> None:
        self._queue.put_nowait(None)

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
        ends, self._ends = self._ends, []
        for end in ends:
            end()


class LiveCallHandle:
    """What a tool gets in `ToolContext.call`: a narrow handle on the live call."""

    def __init__(self, call: VoiceCall) -> None:
        self._call = call

    def send_text(self, text: str) -> None:
        self._call.send_text(text)

    def update_session(self, session: AnySession) -> None:
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
    if event.get("type") in AUDIO_DELTAS and isinstance(event.get("delta"), str):
        return {**event, "delta": f"<{len(event['delta'])} base64 characters>"}
    return event


class _Inbound:
    """What the connection carrying the call delivers (`connections.Inbound`): server messages are logged as they
    came and decoded into the call's ordered consumer; audio frames become the call's own events."""

    def __init__(self, dispatcher: Dispatcher, family: Family) -> None:
        self.log: EventLog | None = None  # (the call's event log, once it connects)
        self._dispatcher = dispatcher
        self._family = family

    def on_server_message(self, message: str | bytes) -> None:
        event = self._logged(message)
        if isinstance(event, ev.UnknownEvent):
            log.info("unknown server event type %r (kept, ignored)", event.type)
        elif isinstance(event, ev.MalformedEvent):
            log.warning("malformed server event: %s", event.reason)
        self._dispatcher.put(event)

    def overheard(self, message: str | bytes) -> None:
        self._logged(message)

    def _logged(self, message: str | bytes) -> ev.ReceivedServerEvent:
        event = self._family.decode(message)
        if self.log is not None:  # the log keeps the event as it came over the wire
            if isinstance(event, ev.MalformedEvent) and event.event_type is None:
                self.log.write("server", {"type": event.type, "reason": event.reason, "raw": event.raw})
            else:
                self.log.write("server", without_audio(json.loads(message)))
        return event

    def on_local_message(self, message: str | bytes) -> None:
        if self.log is not None:
            self.log.write("local", json.loads(message))
        self._dispatcher.put(ev.parse_server_event(message))

    def on_sent_message(self, message: str) -> None:
        if self.log is not None:
            self.log.write("client", json.loads(message))

    def on_received_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        self._dispatcher.publish(AudioReceived(pcm, pts, at))

    def on_sent_audio(self, pcm: np.ndarray, pts: int, at: float) -> None:
        self._dispatcher.publish(AudioSent(pcm, pts, at))


class VoiceCall:
    """One Realtime conversation.

    `source` is the microphone (a `WavSource`, a device source, any `AudioSource`); it starts playing only after
    the server has confirmed the session (`session.updated`). `recording` says which files to keep (each always
    finalised), `continuity` how the call outlives its connections (reconnect, recycle). `turns` is where the
    conversation stands (responses, audio, the user, tools); `subscribe(handler, *kinds)` (or `on(kind, handler)`)
    observes it.

    With a `TranscriptionSessionConfig` the call is a transcription session: the source's turns are committed and
    transcribed (`ev.InputTranscriptionDelta`, `ev.InputTranscriptionCompleted`, `ev.InputTranscriptionFailed`),
    nothing answers, and nothing about responses or the conversation is sent (`send` refuses it: a `CallError`).
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        session: SessionConfig | TranscriptionSessionConfig | None = None,
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
        base: AnySession = session or SessionConfig()
        if isinstance(base, SessionConfig) and self.tools:
            base = base.with_tools([t.definition for t in self.tools])
        elif self.tools:
            raise ConfigError("tools need a realtime session: a transcription session has no model to call them")
        self.session: AnySession = base
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
        self._sink: WavSink | None = None
        self._recorder: ConversationRecorder | None = None
        self._log: EventLog | None = None
        self._dispatcher = Dispatcher()  # every subscription, the call's own first
        # The voice API this call speaks (the Realtime API, GPT-Live): what differs between them is in it
        self.family: Family = family_for(self.settings, self.session)
        self._inbound = _Inbound(self._dispatcher, self.family)
        self._connections = ConnectionManager(
            self,
            self._inbound,
            self._dispatcher.publish,
            self.settings,
            self.continuity,
            transport=transport,
            transport_factory=transport_factory,
        )
        self._outbox: list[AnyClientEvent] = []  # what the conversation sent while it had no connection
        self._closed = asyncio.Event()
        self._ended = asyncio.Event()  # closed, or failed
        self._activity = asyncio.Event()
        self.turns = TurnState(self.send)
        # GPT-Live: the tools answer the calls a Responses backend delegates (`response.event`), in its words
        self._delegated = DelegatedTools(self.send, self.tools) if isinstance(self.family, LiveFamily) else None
        # GPT-Live says nothing between the user's words and the answer: the call's own audio tells it one is due
        self._answer_due = AnswerAwaited() if isinstance(self.family, LiveFamily) else None
        self._runner = ToolRunner(
            self.tools,
            self.send if self._delegated is None else self._delegated.send,
            self.turns if self._delegated is None else self._delegated,
            timeout=tool_timeout,
            on_result=on_tool_result,
            approver=approver,
            handle=LiveCallHandle(self),
        )
        self._dispatcher.on_any(self.turns.received)  # first: everyone after it reads an up-to-date state
        self._dispatcher.on_any(self._moved)
        self._errors_followed = False  # someone subscribed to error events: they say them, the log need not
        self._dispatcher.on(ev.Error, self._log_error)
        self._dispatcher.on(ev.SpeechStarted, self._on_speech_started)
        self._dispatcher.on(ev.SessionCreated, self._on_session)
        self._dispatcher.on(ev.SessionUpdated, self._on_session)
        self._runner.subscribe(self._dispatcher)
        self.history = ConversationHistory()  # the conversation as the server reports it
        self.history.subscribe(self._dispatcher)
        if self._delegated is not None:
            self._delegated.subscribe(self._dispatcher, self._runner, self.history)
        if self._answer_due is not None:
            self._answer_due.subscribe(self._dispatcher)
        self.family.attach(self._dispatcher, self.history, self._dispatcher.publish)
        self._dispatcher.on(CallStatus, self._said)
        self._dispatcher.on(ConnectionChanged, self._connection_changed)
        self._dispatcher.on(CallFailed, self._failed)
        self.tap_audio(received=playback)  # (e.g. a SpeakerSink: first, where it is heard soonest)
        self.tap_audio(received=self.meter.received, sent=self.meter.sent)

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
            self._log = self._inbound.log = EventLog(files.events_jsonl, self.t0)
        if files.output_wav:
            self._sink = WavSink(files.output_wav, self.t0)
            self.tap_audio(received=self._sink)
        if files.record_wav:
            self._recorder = ConversationRecorder(files.record_wav, self.t0)
            self.tap_audio(received=self._recorder.received, sent=self._recorder.sent)
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
            if self.connect_seconds is not None and self.error is None:  # it was connected: end its session
                self._connections.ending()
                await self.family.goodbye(self)
            await self._dispatcher.drain(0.5)
            self.family.flush()
            if self._delegated is not None:
                self._delegated.close()
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
            self._dispatcher.publish(CallClosed())  # event streams end, waiters still waiting are cancelled
            self.state = CallState.CLOSED
            self._closed.set()
            self._ended.set()

    def request_hangup(self, reason: str = "hangup requested") -> None:
        """Ask `run_until_idle` to return now (used by tools); the caller's `async with` then closes the call."""
        self.hangup_requested = reason
        self._activity.set()

    @property
    def transcription(self) -> bool:
        """Whether the call is a transcription session (its session a `TranscriptionSessionConfig`)."""
        return isinstance(self.session, TranscriptionSessionConfig)

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

    def quiet_since(self) -> float | None:
        """None while something is under way (a response, the user speaking, a tool), else when the conversation
        last moved (monotonic time): a moment to change connections comes after it (`connections.Conversation`)."""
        if self.turns.busy or self._runner.busy:
            return None
        return self.turns.last_activity

    def log_line(self, direction: str, event: dict[str, Any]) -> None:
        """Write a line of your own into the call's event log (`direction` "local" for what was never sent)."""
        if self._log is not None:
            self._log.write(direction, event)

    # The call's own bookkeeping of what happens to its connection (the manager's events), before anyone else's.
    def _said(self, event: CallStatus) -> None:
        log.info("call: %s", event.text)
        self.log_line("local", {"type": "call.status", "text": event.text})
        if self.on_status is not None:
            self.on_status(event.text)

    def _failed(self, event: CallFailed) -> None:
        self.error = event.error
        log.info("call failed: %s", event.error)  # raised to whoever runs the call, which says it once
        self._ended.set()
        self._activity.set()

    def _connection_changed(self, event: ConnectionChanged) -> None:
        if event.state == "connected":
            self.history.new_session(event.replayed)
            self.turns.connection_changed()
            outbox, self._outbox = self._outbox, []
            for sent in outbox:  # what the conversation said while it had no connection (tool outputs)
                self.send(sent)
        self._activity.set()

    def on_connection(self, handler: Callable[[str], None]) -> Unsubscribe:
        """`handler("connecting")` when the connection carrying the call is lost and new ones are tried,
        `handler("connected")` when a new one carries it (after a reconnect or a recycle). A call that gives up
        fails instead: `await call.ended()`. The same as `subscribe` to `ConnectionChanged`."""
        return self._dispatcher.on(ConnectionChanged, lambda event: handler(event.state))

    async def ended(self) -> VoiceClientError | None:
        """Wait until the call has closed or failed; the failure, if it failed."""
        await self._ended.wait()
        return self.error

    # ------------------------------------------------------------------------------------------ subscriptions
    def _moved(self, event: ev.ReceivedServerEvent) -> None:
        self._activity.set()

    def _log_error(self, event: ev.Error) -> None:
        # A warning, unless the application follows errors itself (the CLI prints them): said once, not twice.
        level = logging.DEBUG if self._errors_followed else logging.WARNING
        log.log(level, "server error: %s (%s)", event.error.message, event.error.code)
        if event.error.code in SESSION_ENDING_ERRORS:
            self._connections.server_ending(f"{event.error.message} ({event.error.code})")

    def subscribe(self, handler: Callable[[Any], object], *kinds: type[Any] | str) -> Unsubscribe:
        """The one way to observe the call: `handler` gets every event of one of `kinds`, and the function returned
        ends the subscription. A kind is a server event class (a base class such as `ev.ServerEvent` matches its
        subclasses), a wire type ("response.done"), or one of the call's own events
        (`voiceclient.client.call_events`: `CallStatus`, `ConnectionChanged`, `CallFailed`, `CallClosed`,
        `AudioReceived`, `AudioSent`); no kinds: every server event. Server events come in order on the call's one
        consumer, after the call's own bookkeeping (`call.turns` already reflects the event); the call's own
        events come at once, where they happen (a frame handler must be quick)."""
        if any(kind in (ev.Error, "error") for kind in kinds):
            self._errors_followed = True
        ends = [self._dispatcher.subscribe(kind, handler) for kind in kinds] or [self._dispatcher.on_any(handler)]

        def unsubscribe() -> None:
            for end in ends:
                end()

        return unsubscribe

    @overload
    def on(self, kind: type[E], handler: Callable[[E], object]) -> Unsubscribe: ...

    @overload
    def on(self, kind: str, handler: AnyHandler) -> Unsubscribe: ...

    def on(self, kind: type[Any] | str, handler: Callable[[Any], object]) -> Unsubscribe:
        """`subscribe(handler, kind)`, typed for one event class: the handler takes that class."""
        return self.subscribe(handler, kind)

    def on_any(self, handler: AnyHandler) -> Unsubscribe:
        """`subscribe(handler)`: every server event, in order, on the call's one consumer."""
        return self.subscribe(handler)

    async def wait_for(self, predicate: Predicate, timeout: float) -> ev.ReceivedServerEvent:
        """Wait for the first server event matching `predicate` (from now on); the call's failure if it fails
        meanwhile."""
        fut: asyncio.Future[ev.ReceivedServerEvent] = asyncio.get_running_loop().create_future()

        def match(event: ev.ReceivedServerEvent) -> None:
            if not fut.done() and predicate(event):
                fut.set_result(event)

        def failed(event: CallFailed) -> None:
            if not fut.done():
                fut.set_exception(event.error)

        def closed(event: CallClosed) -> None:
            if not fut.done():
                fut.cancel()

        ends = [self._dispatcher.on_any(match), self._dispatcher.on(CallFailed, failed)]
        ends.append(self._dispatcher.on(CallClosed, closed))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            if self.error is not None:
                raise self.error from None
            raise ConnectionLostError(f"no the awaited event from the server within {timeout:g} s") from None
        finally:
            for end in ends:
                end()

    async def events_handled(self, timeout: float = 5.0) -> None:
        """Wait until every server event received so far has been through the handlers."""
        await self._dispatcher.drain(timeout)

    def events(self) -> EventStream:
        """Every server event from this call on, in order, until the call closes (subscribed at once)."""
        return EventStream(self._dispatcher)

    def __aiter__(self) -> EventStream:
        return self.events()

    # ------------------------------------------------------------------------------------------ events out
    def send(self, event: AnyClientEvent) -> None:
        """Send a client event (a model from `voiceclient.protocol.events`, or in a GPT-Live session from
        `voiceclient.protocol.live_events`); while reconnecting, it goes out on the new connection. A `CallError`
        when the call is not connected, when a transcription session has no such event (a response, a conversation
        item: `NOT_IN_TRANSCRIPTION`), or when the call's API has no such event (the Realtime API's turn control in a
        GPT-Live session).
        """
        if self.transcription and isinstance(event, NOT_IN_TRANSCRIPTION):
            raise CallError(f"{event.type} is not sent in a transcription session: it transcribes, nothing answers")
        wire = self.family.wire(event)  # (refuses what the API does not have)
        if self._connections.transport is None or self.state is CallState.CLOSED:
            raise CallError("the call is not connected")
        if self.reconnecting:  # said again on the new connection, after the history
            self._outbox.append(event)
            return
        if isinstance(event, ev.ClientEvent):
            self.turns.sent(event)
        if self._log is not None:
            self._log.write("client", wire)
        self._connections.send(json.dumps(wire, separators=(",", ":")))

    def send_text(self, text: str) -> None:
        """A user text message, then a response."""
        self.send(ev.ConversationItemCreate(item=ev.Item.user_text(text)))
        self.turns.request_response(retry=False)

    def mute(self) -> None:
        """GPT-Live: stop the model hearing the microphone (`session.input_audio.mute`; `session.input_audio.muted`
        confirms it). A Realtime call has no such event: `set_source(SilenceSource())` there."""
        self._live_only("mute")
        self.send(live.InputAudioMute(type="session.input_audio.mute"))

    def unmute(self) -> None:
        """GPT-Live: the model hears the microphone again (`session.input_audio.unmute`)."""
        self._live_only("unmute")
        self.send(live.InputAudioUnmute(type="session.input_audio.unmute"))

    def append_instructions(self, text: str) -> None:
        """GPT-Live: add to the instructions (`session.instructions.append`; `.appended` confirms it). A Realtime
        call changes its instructions with `update_session`."""
        self._live_only("append_instructions")
        self.send(live.InstructionsAppend(type="session.instructions.append", content=text, delegation_id=None))

    def append_commentary(self, text: str, delegation_id: str | None = None) -> None:
        """GPT-Live: context for the model to say (`session.commentary.append`), e.g. the answer to a task it
        delegated to the application (`DelegationRequested.delegation_id`)."""
        self._live_only("append_commentary")
        self.send(live.CommentaryAppend(type="session.commentary.append", content=text, delegation_id=delegation_id))

    def append_thinking(self, text: str, delegation_id: str | None = None) -> None:
        """GPT-Live: silent context for the model (`session.thinking.append`)."""
        self._live_only("append_thinking")
        self.send(live.ThinkingAppend(type="session.thinking.append", content=text, delegation_id=delegation_id))

    @property
    def session_closed(self) -> live.SessionClosed | None:
        """GPT-Live: how the session ended (`reason`, `usage`), once `session.closed` came."""
        return self.family.closed if isinstance(self.family, LiveFamily) else None

    def _live_only(self, what: str) -> None:
        if not isinstance(self.family, LiveFamily):
            raise CallError(f"{what}() is GPT-Live's: a Realtime call has no such event")

    def interrupt(self) -> None:
        """Stop the assistant: cancel the response in progress, then clear the audio still playing; tools marked
        `cancel_on_interrupt` are cancelled too. With nothing playing, no clear is sent: the service refuses one
        (`output_audio_buffer_empty`). Nothing to stop in a transcription session,
        nor in a GPT-Live one (the model takes its own turns)."""
        if self.transcription or isinstance(self.family, LiveFamily):
            return
        self._runner.interrupt()
        if self.turns.active:
            self.send(ev.ResponseCancel())
        if self._connections.transport is not None and self._connections.transport.plays_audio:
            self._cut_playout()
        elif self.turns.audio_playing:
            self.send(ev.OutputAudioBufferClear())

    def _cut_playout(self) -> None:
        """Where the client plays the answer itself (WebSocket), stop it and tell the server what was heard."""
        transport = self._connections.transport
        cut = transport.clear_playout() if transport is not None else None
        if cut is not None:
            item_id, heard_ms = cut
            self.send(ev.ConversationItemTruncate(item_id=item_id, audio_end_ms=heard_ms))

    def _on_session(self, event: ev.SessionCreated | ev.SessionUpdated) -> None:
        """A transcription session with transcription on owes each committed turn a transcript (`turns.busy` until
        it comes), as the server's session says."""
        audio_in = (event.session.get("audio") or {}).get("input") or {}
        self.turns.transcribes = event.session.get("type") == "transcription" and bool(audio_in.get("transcription"))

    def _on_speech_started(self, event: ev.SpeechStarted) -> None:
        """Barge-in where the client plays the answer: the server has cancelled the response (interrupt_response);
        the speaker stops and the item keeps what was heard."""
        detection = self.session.audio.input.turn_detection if self.session.audio and self.session.audio.input else None
        transport = self._connections.transport
        if (
            transport is not None
            and not self.transcription
            and transport.plays_audio
            and (detection is None or detection.interrupt_response is not False)
        ):
            self._cut_playout()

    def update_session(self, session: AnySession) -> None:
        """Send a `session.update`; the call keeps the merged session for any later connection. A session keeps its
        type: a `CallError` for an update of the other kind."""
        if isinstance(self.family, LiveFamily):
            raise CallError(
                "a GPT-Live session's instructions and voice are fixed when it starts: append_instructions(), or "
                "send live_events.SessionUpdate for its delegation and triggers"
            )
        if session.type != self.session.type:
            raise CallError(f"this is a {self.session.type} session: a {session.type} session needs a call of its own")
        merged = deep_merge(self.session.to_wire(), session.to_wire(), replace=("turn_detection", "format"))
        self.session = type(self.session).model_validate(merged)
        self.send(ev.SessionUpdate(session=session))

    def set_source(self, source: AudioSource) -> None:
        """Send from `source` from now on (before `connect()`: once the session is confirmed)."""
        self.source = source
        self._connections.set_source(source)

    # ------------------------------------------------------------------------------------------ audio taps
    def tap_audio(self, *, received: Playback | None = None, sent: Playback | None = None) -> Unsubscribe:
        """Also hand every received and/or sent frame (48 kHz mono int16, pts, monotonic time) to these: `subscribe`
        to `AudioReceived` / `AudioSent`, each frame as its three values."""
        ends: list[Unsubscribe] = []
        if received is not None:
            tap = received
            ends.append(self._dispatcher.on(AudioReceived, lambda frame: tap(frame.pcm, frame.pts, frame.at)))
        if sent is not None:
            out = sent
            ends.append(self._dispatcher.on(AudioSent, lambda frame: out(frame.pcm, frame.pts, frame.at)))

        def unsubscribe() -> None:
            for end in ends:
                end()

        return unsubscribe

    # ------------------------------------------------------------------------------------------ waiting
    @property
    def input_done(self) -> bool:
        """Whether the source (the WAV, the buffer) has nothing more to send."""
        return self.source.done

    @property
    def busy(self) -> bool:
        """Whether anything is under way: input still sending, a response or a tool running, the user speaking, a
        reconnect, GPT-Live's delegated work (an answer to come, a task waiting for the user's words), GPT-Live's
        answer to the user's last words (`client/live_answer.py`).
        """
        delegated = self._delegated is not None and self._delegated.busy  # (GPT-Live: an answer to come)
        due = self._answer_due is not None and self._answer_due.busy
        return not self.input_done or self.turns.busy or self._runner.busy or delegated or due or self.reconnecting

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
