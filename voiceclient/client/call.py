"""The orchestrator: `async with VoiceCall(...) as call`, the only module that wires the parts together.

    settings -> CallsAPI (create call) -> Peer (aiortc) -> data channel -> Dispatcher -> tool runner, state, you
    source -> OutboundTrack (paced, 48 kHz)            remote track -> InboundReader -> WAV sink, recorder, meter
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

from voiceclient.audio.sinks import ConversationRecorder, WavSink
from voiceclient.audio.sources import AudioSource, BufferSource, SilenceSource
from voiceclient.audio.tracks import InboundReader, OutboundTrack
from voiceclient.client.calls_api import CallsAPI
from voiceclient.client.settings import ClientSettings
from voiceclient.protocol.session import SessionConfig
from voiceclient.errors import CallError, ConnectionLostError, SessionUpdateError, VoiceClientError
from voiceclient.protocol import events as ev
from voiceclient.client.dispatcher import Dispatcher
from voiceclient.client.recording import EventLog, TurnMeter
from voiceclient.tools.approvals import Approver
from voiceclient.tools.registry import Tool
from voiceclient.tools.runner import ToolRunner

log = logging.getLogger(__name__)


class EventStream:
    """An async iterator over a call's server events; subscribed when created, so nothing is missed."""

    def __init__(self, subscribers: list[asyncio.Queue[Any]]) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscribers = subscribers
        subscribers.append(self._queue)

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Any:
        event = await self._queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    async def next_of(self, *types: str, timeout: float = 10.0) -> Any:
        """The next event of one of `types` (others are skipped)."""
        async def find() -> Any:
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

    def __init__(self, call: "VoiceCall") -> None:
        self._call = call

    def send_text(self, text: str) -> None:
        self._call.send_text(text)

    def update_session(self, session: SessionConfig) -> None:
        self._call.update_session(session)

    def hangup(self) -> None:
        """Ends the call after the tool returns (closing from inside a tool would cancel the tool itself)."""
        self._call.request_hangup()


class CallState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"
    CLOSED = "closed"


class VoiceCall:
    """One Realtime call over WebRTC.

    `source` is the microphone (a `WavSource`, a device source, or anything with `read(n)`); it starts playing
    only after the server has confirmed the session (`session.updated`). Files are optional and always finalised.
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
        tool_timeout: float = 30.0,
        on_tool_result: Callable[[str, str, str, float], None] | None = None,
        approver: Approver | None = None,
        playback: Callable[[Any, int, float], None] | None = None,
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
        self._paths = (output_wav, record_wav, events_jsonl)
        self._playback = playback  # e.g. a SpeakerSink: gets every received 48 kHz mono frame
        self._sink: WavSink | None = None
        self._recorder: ConversationRecorder | None = None
        self._log: EventLog | None = None
        self._api: CallsAPI | None = None
        self._peer: Any = None
        self._reader: InboundReader | None = None
        self._track: OutboundTrack | None = None
        self._dispatcher = Dispatcher()
        self._runner = ToolRunner(self.tools, self.send, timeout=tool_timeout, on_result=on_tool_result,
                                  approver=approver, handle=LiveCallHandle(self))
        self._subscribers: list[asyncio.Queue[Any]] = []
        self._waiters: list[tuple[Callable[[Any], bool], asyncio.Future[Any]]] = []
        self._watch: asyncio.Task[None] | None = None
        self._activity = asyncio.Event()
        self.responses_active: set[str] = set()
        self.responses_requested: set[str] = set()  # event ids of our response.create not yet answered
        self.audio_playing: set[str] = set()
        self.user_speaking = False
        self.last_activity = time.monotonic()
        self.hangup_requested: str | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> "VoiceCall":
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        from voiceclient.rtc.peer import Peer  # aiortc is imported only when a call is made

        if self.state is not CallState.NEW:
            raise CallError(f"connect() on a call that is {self.state.value}")
        self.state = CallState.CONNECTING
        self.t0 = time.monotonic()
        out_wav, rec_wav, events = self._paths
        if events:
            self._log = EventLog(events, self.t0)
        if out_wav:
            self._sink = WavSink(out_wav, self.t0)
        if rec_wav:
            self._recorder = ConversationRecorder(rec_wav, self.t0)
        self._dispatcher.on("*", self._track_state)
        self._dispatcher.on("*", self._runner.on_event)
        self._dispatcher.start()

        self._track = OutboundTrack(SilenceSource(), on_frame=self._on_sent)
        self._peer = Peer(self._track, self.settings.ice_servers)
        self._peer.on_message = self._on_message
        session_created = self._expect(lambda e: e.type == "session.created")
        offer = await self._peer.create_offer()
        self._api = CallsAPI(self.settings)
        answer = await self._api.create_call(offer, self.session)
        self.call_id = answer.call_id
        log.info("call %s: SDP answer received", self.call_id or "?")
        await self._peer.accept_answer(answer.sdp)
        self._watch = asyncio.ensure_future(self._watch_connection())
        await self._peer.wait_open(self.settings.connect_timeout)
        remote = await asyncio.wait_for(asyncio.shield(self._peer.remote_track), self.settings.connect_timeout)
        taps = [t for t in (self._playback, self._sink, self._recorder.received if self._recorder else None,
                            self.meter.received) if t is not None]
        self._reader = InboundReader(remote, taps)
        self._reader.start()
        await self._wait(session_created, self.settings.connect_timeout, "session.created")

        update = ev.SessionUpdate(session=self.session)
        updated = self._expect(lambda e: e.type == "session.updated" or (
            e.type == "error" and e.error.event_id == update.event_id))
        self.send(update)
        try:
            reply = await self._wait(updated, self.settings.session_update_timeout, "session.updated")
        except TimeoutError:
            log.warning("no session.updated within %.1f s; sending audio anyway",
                        self.settings.session_update_timeout)
        else:
            if reply.type == "error":
                raise SessionUpdateError(f"the server refused the session: {reply.error.message}"
                                         + (f" (param {reply.error.param})" if reply.error.param else ""))
            self.effective_session = reply.session
        self.connect_seconds = time.monotonic() - self.t0
        self.state = CallState.CONNECTED
        self._track.source = self.source

    async def close(self) -> None:
        """Hang up and release everything, in reverse order of setup. Idempotent; files are always finalised."""
        if self.state in (CallState.CLOSING, CallState.CLOSED):
            return
        was = self.state
        self.state = CallState.CLOSING
        end = time.monotonic()
        try:
            await self._dispatcher.drain(0.5)
            await self._runner.close()
            if self._api is not None and self.call_id and was in (CallState.CONNECTED, CallState.CONNECTING):
                try:
                    await asyncio.wait_for(self._api.hangup(self.call_id), 5)
                except (TimeoutError, VoiceClientError) as exc:
                    log.info("hangup of %s: %s", self.call_id, exc)
            if self._watch is not None:
                self._watch.cancel()
            if self._reader is not None:
                await self._reader.stop()
            if self._peer is not None:
                await self._peer.close()
            if self._api is not None:
                await self._api.aclose()
            await self._dispatcher.stop()
        finally:
            for closer in (self._sink, self._recorder):
                if closer is not None:
                    closer.close(end)
            if self._log is not None:
                self._log.close()
            for queue in self._subscribers:
                queue.put_nowait(None)
            for _, fut in self._waiters:
                if not fut.done():
                    fut.cancel()
            self.state = CallState.CLOSED

    hangup = close

    def request_hangup(self, reason: str = "hangup requested") -> None:
        """Ask `run_until_idle` to return now (used by tools); the caller's `async with` then closes the call."""
        self.hangup_requested = reason
        self._activity.set()

    async def _watch_connection(self) -> None:
        reason = await self._peer.lost
        if self.state in (CallState.CONNECTING, CallState.CONNECTED):
            self.error = ConnectionLostError(reason)
            log.error("%s", reason)
            for _, fut in self._waiters:
                if not fut.done():
                    fut.set_exception(self.error)
            self._activity.set()

    # ------------------------------------------------------------------------------------------ events in
    def _on_message(self, message: str | bytes) -> None:
        event = ev.parse_server_event(message)
        if self._log is not None:  # the log keeps the event as it came over the wire
            if isinstance(event, ev.MalformedEvent) and event.event_type is None:
                self._log.write("server", {"type": event.type, "reason": event.reason, "raw": event.raw})
            else:
                self._log.write("server", json.loads(message))
        if isinstance(event, ev.UnknownEvent):
            log.info("unknown server event type %r (kept, ignored)", event.type)
        elif isinstance(event, ev.MalformedEvent):
            log.warning("malformed server event: %s", event.reason)
        self._dispatcher.put(event)

    def _track_state(self, event: Any) -> None:
        kind = event.type
        self.last_activity = time.monotonic()
        if kind == "response.created":
            self.responses_active.add(event.response.id)
            if self.responses_requested:
                self.responses_requested.pop()
        elif kind == "response.done":
            self.responses_active.discard(event.response.id)
        elif kind == "output_audio_buffer.started":
            self.audio_playing.add(event.response_id)
        elif kind in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"):
            self.audio_playing.discard(event.response_id)
        elif kind == "input_audio_buffer.speech_started":
            self.user_speaking = True
        elif kind in ("input_audio_buffer.speech_stopped", "input_audio_buffer.cleared"):
            self.user_speaking = False
        elif kind == "error":
            log.warning("server error: %s (%s)", event.error.message, event.error.code)
            self.responses_requested.discard(event.error.event_id or "")
        for pred, fut in list(self._waiters):
            if not fut.done() and pred(event):
                fut.set_result(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        self._activity.set()

    def _expect(self, predicate: Callable[[Any], bool]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        return fut

    async def _wait(self, fut: asyncio.Future[Any], timeout: float, what: str) -> Any:
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

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> Any:
        """Wait for the first server event matching `predicate` (from now on)."""
        return await self._wait(self._expect(predicate), timeout, "the awaited event")

    def events(self) -> "EventStream":
        """Every server event from this call on, in order, until the call closes (subscribed at once)."""
        return EventStream(self._subscribers)

    def __aiter__(self) -> "EventStream":
        return self.events()

    # ------------------------------------------------------------------------------------------ events out
    def send(self, event: ev.ClientEvent) -> None:
        if self._peer is None or self.state in (CallState.CLOSED,):
            raise CallError("the call is not connected")
        wire = event.to_wire()
        if wire["type"] == "response.create" and wire.get("event_id"):
            self.responses_requested.add(wire["event_id"])
            self.last_activity = time.monotonic()
        if self._log is not None:
            self._log.write("client", wire)
        self._peer.send(event.to_json())

    def send_text(self, text: str) -> None:
        """A user text message, then a response."""
        self.send(ev.ConversationItemCreate(item=ev.Item.user_text(text)))
        self.send(ev.ResponseCreate())

    def interrupt(self) -> None:
        """Stop the assistant: cancel the response in progress, then clear the audio still playing; tools marked
        `cancel_on_interrupt` are cancelled too."""
        self._runner.interrupt()
        if self.responses_active:
            self.send(ev.ResponseCancel())
        self.send(ev.OutputAudioBufferClear())

    def update_session(self, session: SessionConfig) -> None:
        self.send(ev.SessionUpdate(session=session))

    def _on_sent(self, pcm: Any, pts: int, at: float) -> None:
        if self._recorder is not None:
            self._recorder.sent(pcm, pts, at)
        self.meter.sent(pcm, pts, at)

    # ------------------------------------------------------------------------------------------ waiting
    @property
    def input_done(self) -> bool:
        source = self.source
        return not isinstance(source, BufferSource) or source.done

    @property
    def busy(self) -> bool:
        return (not self.input_done or self.user_speaking or bool(self.responses_active)
                or bool(self.responses_requested) or bool(self.audio_playing) or self._runner.busy)

    async def run_until_idle(self, idle_seconds: float = 2.0, max_duration: float | None = None) -> str:
        """Return "idle" once the input is done and nothing has happened for `idle_seconds`, or "max_duration"."""
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
                idle_since = max(idle_since, self.last_activity)
                if now - idle_since >= idle_seconds:
                    # Events may be waiting behind a stalled loop: handle them before deciding.
                    before = self.last_activity
                    await self._dispatcher.drain(0.5)
                    await asyncio.sleep(0)
                    if self.last_activity == before and not self.busy:
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
