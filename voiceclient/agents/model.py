"""`WebRTCModel`: OpenAI's Agents SDK (`RealtimeRunner`) over a voiceclient WebRTC call.

The model implements the SDK's public `RealtimeModel` interface (`connect`, `add_listener` / `remove_listener`,
`send_event`, `send_event_if`, `close`) and nothing else of the SDK: the call is a `VoiceCall`, its server events
become the SDK's model events (`agents.realtime.model_events`) with the meaning the SDK's own WebSocket model
gives them, and the SDK's send events (`agents.realtime.model_inputs`) become client events. The microphone (or
any `AudioSource`) goes out on the RTP track, the model's audio comes back on it (to the speaker, a WAV, and to
the SDK as PCM), and the events travel on the data channel. What differs from the WebSocket:

- audio out: no `response.output_audio.delta` events; the track's frames are decoded to PCM (24 kHz) and handed to
  the SDK as `audio` events while the server says the response's audio plays (`output_audio_buffer.started` to
  `.stopped` / `.cleared`);
- interrupts and barge-in: the server knows what was played and truncates itself, so an interrupt is
  `output_audio_buffer.clear` (when audio plays) and `response.cancel` (when a response runs); no playback tracker
  is used, and no `conversation.item.truncate` is sent on the client's guess;
- audio in: `send_audio` goes into the outbound track (in real time), not into `input_audio_buffer.append`;
- `response.create` waits for the response in progress to end (one at a time, as the SDK's model sequences them);
- reconnect and recycle (voiceclient's `Continuity`) are reported as connection status, with the history
  replayed by voiceclient; the SDK runs the tools, handoffs and guardrails (voiceclient's tool runner is off).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, assert_never
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from agents.exceptions import UserError
from agents.realtime.config import RealtimeSessionModelSettings
from agents.realtime.model import RealtimeModel, RealtimeModelConfig, RealtimeModelListener
from agents.realtime.model_events import (
    RealtimeModelConnectionStatusEvent,
    RealtimeModelEndOfStreamEvent,
    RealtimeModelErrorEvent,
    RealtimeModelEvent,
    RealtimeModelExceptionEvent,
    RealtimeModelItemUpdatedEvent,
    RealtimeModelRawServerEvent,
)
from agents.realtime.model_inputs import (
    RealtimeModelSendAudio,
    RealtimeModelSendEvent,
    RealtimeModelSendInterrupt,
    RealtimeModelSendRawMessage,
    RealtimeModelSendSessionUpdate,
    RealtimeModelSendToolOutput,
    RealtimeModelSendUserInput,
)

from voiceclient.agents.mapping import model_events, tool_call, user_item
from voiceclient.agents.playout import Playout
from voiceclient.agents.responses import ResponseGate
from voiceclient.agents.settings import session_wire, tracing_wire
from voiceclient.audio.format import RTP_RATE
from voiceclient.audio.resample import Resampler
from voiceclient.audio.sources import AudioSource, PushSource
from voiceclient.audio.wire import wire_format
from voiceclient.client.call import VoiceCall
from voiceclient.client.options import Continuity, Recording
from voiceclient.client.settings import ClientSettings
from voiceclient.errors import CallError, ConfigError, VoiceClientError
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import SessionConfig
from voiceclient.protocol.validation import deep_merge

log = logging.getLogger(__name__)
Playback = Callable[[np.ndarray, int, float], None]
# How long after pushed audio has gone out on the track a `commit` waits, so that the server has it (its jitter
# buffer holds a few frames): the commit travels on the data channel, which is faster than the audio.
COMMIT_ALLOWANCE = 0.12


@dataclass(frozen=True, slots=True)
class _Event:
    """A server event, in the call's order."""

    event: ev.ReceivedServerEvent


@dataclass(frozen=True, slots=True)
class _Audio:
    """A frame of the answer's audio as the track played it."""

    pcm: np.ndarray


@dataclass(frozen=True, slots=True)
class _Status:
    """The call's connection state changed."""

    state: str


@dataclass(frozen=True, slots=True)
class _Failed:
    """The call ended with an error (reconnects exhausted, a fatal error): the SDK's stream ends."""

    error: VoiceClientError


_Inbox = _Event | _Audio | _Status | _Failed


def base_url_from(url: str) -> str:
    """The API base URL from the SDK's `url` option: an http(s) base URL as it is, or the WebSocket URL the SDK's
    own model takes (`wss://api.openai.com/v1/realtime?model=...` -> `https://api.openai.com/v1`)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https"):
        raise UserError(f"WebRTCModel: url {url!r} is neither an http(s) base URL nor a ws(s) Realtime URL")
    path = parts.path.rstrip("/")
    if parts.scheme in ("ws", "wss") and path.endswith("/realtime"):
        path = path[: -len("/realtime")]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


async def _api_key(given: Any) -> str | None:
    """The SDK's `api_key` option: a string, or a function (sync or async) returning one."""
    if callable(given):
        given = given()
        if inspect.isawaitable(given):
            given = await given
    return given if isinstance(given, str) and given else None


class WebRTCModel(RealtimeModel):
    """An Agents SDK `RealtimeModel` whose connection is a voiceclient WebRTC call.

    `RealtimeRunner(agent, model=WebRTCModel(source=WavSource("question.wav"), output_wav="answer.wav"))`.

    - `source`: what is sent as the microphone: any `AudioSource` (default: the system's microphone, opened and
      closed by the model). Audio the application gives the session (`session.send_audio`) is sent instead from
      then on.
    - `playback`: who plays the model's audio: a callable taking 48 kHz frames (a `SpeakerSink`), `False` for
      nobody, or None (default): the system's speaker, unless `output_wav` is given.
    - `output_wav`, `recording`: the files voiceclient keeps (the answer audio; a stereo recording and the event
      log); `continuity`: reconnect and recycle; `settings`: where and how to connect (default: from the
      environment, `OPENAI_BASE_URL` and `OPENAI_API_KEY`; the SDK's `url`, `api_key` and `headers` win);
      `session`: session fields applied over the SDK's (the agent's) in every `session.update`.
    - `on_call`: called with the `VoiceCall` before it connects (to subscribe to its events, as `talk` does).
    """

    def __init__(
        self,
        *,
        source: AudioSource | None = None,
        playback: Playback | Literal[False] | None = None,
        output_wav: str | None = None,
        recording: Recording | None = None,
        continuity: Continuity | None = None,
        settings: ClientSettings | None = None,
        session: SessionConfig | None = None,
        on_call: Callable[[VoiceCall], None] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.model: str | None = None  # the SDK's `model_name` once connected (None: the server's default)
        self._source = source
        self._playback = playback
        base = recording or Recording()
        self._recording = Recording(output_wav or base.output_wav, base.record_wav, base.events_jsonl)
        self._continuity = continuity
        self._settings = settings
        self._base_session = session
        self._on_call = on_call
        self._on_status = on_status
        self._listeners: list[RealtimeModelListener] = []
        self._call: VoiceCall | None = None
        self._tracing: Any = "auto"
        self._close_requested = False
        self._owned: list[Any] = []  # the microphone and speaker this model opened
        self._pushed: PushSource | None = None
        self._push_resampler: Resampler | None = None
        self._inbox: asyncio.Queue[_Inbox] = asyncio.Queue()
        self._events_queued = 0  # server events in the inbox not yet consumed (they may start a playout)
        self._consumer: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._responses = ResponseGate()
        self._create_tasks: set[asyncio.Task[None]] = set()
        self._user_input_lock = asyncio.Lock()
        self._server_session: dict[str, Any] = {}  # as `session.created` / `.updated` last said it
        self._playout = Playout(clear=lambda: self.call.send(ev.OutputAudioBufferClear()))
        self._connected = asyncio.Event()

    # ------------------------------------------------------------------------------------------ listeners
    def add_listener(self, listener: RealtimeModelListener) -> None:
        """Tell `listener` every model event from now on (once, however often added)."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: RealtimeModelListener) -> None:
        """Stop telling `listener`."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def _emit(self, event: RealtimeModelEvent) -> None:
        for listener in list(self._listeners):  # a listener may remove itself
            await listener.on_event(event)

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def call(self) -> VoiceCall:
        """The voiceclient call under the model (once `connect` has begun)."""
        if self._call is None:
            raise CallError("WebRTCModel: not connected")
        return self._call

    async def connect(self, options: RealtimeModelConfig) -> None:
        """Make the call (its session: the SDK's initial settings, then `session`) and follow its events."""
        if self._call is not None:
            raise AssertionError("Already connected")
        if options.get("call_id"):
            raise UserError(
                "WebRTCModel makes its own call; to join a call by call_id (the sideband), use the "
                "SDK's OpenAIRealtimeWebSocketModel"
            )
        model_settings: RealtimeSessionModelSettings = options.get("initial_model_settings", {})
        if options.get("playback_tracker") is not None:
            log.info("WebRTCModel: the playback tracker is not used (over WebRTC the server measures playout)")
        if model_settings.get("model_name"):
            self.model = model_settings["model_name"]
        self._tracing = model_settings["tracing"] if "tracing" in model_settings else "auto"
        self._close_requested = False
        call = self._new_call(await self._settings_for(options), self._session_for(model_settings, initial=True))
        self._call = call
        if self._on_call is not None:
            self._on_call(call)
        self._consumer = asyncio.get_running_loop().create_task(self._consume(), name="WebRTCModel events")
        await self._emit(RealtimeModelConnectionStatusEvent(status="connecting"))
        try:
            self._start_owned()
            await call.connect()
        except BaseException:
            await self._teardown()
            raise
        self._connected.set()
        self._watch = asyncio.get_running_loop().create_task(self._watch_call(call), name="WebRTCModel watch")
        await self._emit(RealtimeModelConnectionStatusEvent(status="connected"))

    async def _settings_for(self, options: RealtimeModelConfig) -> ClientSettings:
        base = self._settings or ClientSettings.from_env()
        values: dict[str, Any] = {"transport": "webrtc"}
        if options.get("url"):
            values["base_url"] = base_url_from(options["url"])
        headers = options.get("headers")
        if headers is not None:  # as the SDK's model: the headers carry the credential, no Authorization is added
            values.update(headers=dict(headers), api_key=None)
        else:
            # the SDK's option, else these settings' key, else $OPENAI_API_KEY
            api_key = await _api_key(options.get("api_key")) or base.api_key or os.getenv("OPENAI_API_KEY")
            if not api_key:
                raise UserError("API key is required but was not provided.")
            values["api_key"] = api_key
        try:
            return ClientSettings.model_validate({**base.model_dump(), **values})
        except ValueError as exc:
            raise UserError(f"WebRTCModel: {exc}") from None

    def _session_for(self, model_settings: RealtimeSessionModelSettings, *, initial: bool = False) -> SessionConfig:
        """The session for the SDK's settings (the agent's instructions, tools, handoffs, audio) and the `session`
        fields given here; the first one with the tracing config (the SDK's model sends that once, apart, after
        `session.created`; the call keeps it for any later connection)."""
        data = session_wire(model_settings, self.model)
        tracing = tracing_wire(self._tracing) if initial else None
        if tracing is not None:
            data["tracing"] = tracing
        return self._merged(data)

    def _merged(self, data: dict[str, Any]) -> SessionConfig:
        if self._base_session is not None:
            data = deep_merge(data, self._base_session.to_wire(), replace=("turn_detection", "format"))
        try:
            return SessionConfig.model_validate(data)
        except ValueError as exc:
            raise UserError(f"WebRTCModel: the session is not valid: {exc}") from None

    def _new_call(self, settings: ClientSettings, session: SessionConfig) -> VoiceCall:
        source = self._source
        if source is None:
            from voiceclient.audio.mic import MicSource

            source = MicSource()
            self._owned.append(source)
        playback: Playback | None = None
        if self._playback is None and self._recording.output_wav is None:
            from voiceclient.audio.speaker import SpeakerSink

            speaker = SpeakerSink()
            self._owned.append(speaker)
            playback = speaker
        elif self._playback:
            playback = self._playback
        call = VoiceCall(
            settings,
            session,
            source=source,
            recording=self._recording,
            continuity=self._continuity,
            playback=playback,
            on_status=self._on_status,
        )
        call.on_any(self._received)
        call.tap_audio(received=self._heard)
        call.on_connection(self._connection)
        return call

    def _start_owned(self) -> None:
        for stream in self._owned:
            stream.start()

    async def _watch_call(self, call: VoiceCall) -> None:
        """A call that fails (reconnects exhausted, a fatal error) ends the SDK's stream, as a closed socket does."""
        error = await call.ended()
        if error is None or self._close_requested:
            return
        await self._inbox.put(_Failed(error))

    async def close(self) -> None:
        """Hang up and release everything (idempotent; the model can connect again afterwards)."""
        self._close_requested = True
        await self._cancel_create_tasks()
        await self._teardown()

    async def _cancel_create_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in self._create_tasks if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _teardown(self) -> None:
        call, self._call = self._call, None
        self._connected.clear()
        current = asyncio.current_task()
        for task in (self._watch, self._consumer):
            if task is not None and task is not current:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._watch = self._consumer = None
        try:
            if call is not None:
                await call.close()
        finally:
            for stream in self._owned:
                stream.close()
            self._owned.clear()
            self._inbox = asyncio.Queue()
            self._events_queued = 0
            self._playout.reset()
            self._server_session = {}
            self._pushed = self._push_resampler = None
            await self._responses.reset()

    # ------------------------------------------------------------------------------------------ events in
    def _received(self, event: ev.ReceivedServerEvent) -> None:
        """The call's ordered consumer: every server event, queued with the audio for one consumer."""
        self._events_queued += 1
        self._inbox.put_nowait(_Event(event))

    def _heard(self, pcm: np.ndarray, pts: int, at: float) -> None:
        # Whose audio it is, the consumer knows in order. A frame with nothing playing once every queued event is
        # consumed (the track's silence between answers) is dropped here rather than queued to be dropped there.
        if self._playout.playing is None and self._events_queued == 0:
            return
        self._inbox.put_nowait(_Audio(pcm))

    def _connection(self, state: str) -> None:
        self._inbox.put_nowait(_Status(state))

    async def _consume(self) -> None:
        while True:
            message = await self._inbox.get()
            try:
                match message:
                    case _Event(event):
                        self._events_queued -= 1
                        await self._on_server_event(event)
                    case _Audio(pcm):
                        heard = self._playout.heard(pcm)
                        if heard is not None:
                            await self._emit(heard)
                    case _Status(state):
                        connected = state == "connected"
                        if connected:  # what was under way on the old connection ended with it
                            await self._responses.connection_changed()
                        await self._emit(
                            RealtimeModelConnectionStatusEvent(status="connected" if connected else "connecting")
                        )
                    case _Failed(error):
                        await self._emit(
                            RealtimeModelExceptionEvent(exception=error, context=f"the WebRTC call failed: {error}")
                        )
                        await self._emit(RealtimeModelConnectionStatusEvent(status="disconnected"))
                        await self._emit(RealtimeModelEndOfStreamEvent())
                        return
                    case _:
                        assert_never(message)
            except Exception as exc:  # as the SDK's model: one bad event is reported, the stream goes on
                await self._emit(RealtimeModelExceptionEvent(exception=exc, context="Error handling event"))

    async def _on_server_event(self, event: ev.ReceivedServerEvent) -> None:
        if isinstance(event, ev.MalformedEvent):
            try:
                data = json.loads(event.raw)
            except json.JSONDecodeError:
                await self._emit(
                    RealtimeModelExceptionEvent(
                        exception=ValueError(event.reason), context="Failed to parse data-channel message as JSON"
                    )
                )
                return
            await self._emit(RealtimeModelRawServerEvent(data=data))
            await self._emit(RealtimeModelErrorEvent(error=ValueError(f"{event.event_type}: {event.reason}")))
            return
        data = event.model_dump(mode="json", exclude_unset=True, by_alias=True)
        interrupted = self._playout.track(event)
        if interrupted is not None:
            await self._emit(interrupted)
        await self._emit(RealtimeModelRawServerEvent(data=data))
        if not isinstance(event, ev.UnknownEvent):
            await self._map(event, data)

    async def _map(self, event: ev.KnownServerEvent, data: dict[str, Any]) -> None:
        """What the model keeps of a server event, then the event as the SDK's model events (`model_events`)."""
        if isinstance(event, ev.ResponseCreated):
            await self._responses.created(event.response.id)
        elif isinstance(event, ev.ResponseDone):
            await self._responses.done(event.response.id)
        elif isinstance(event, (ev.SessionCreated, ev.SessionUpdated)):
            self._server_session = dict(event.session)
        elif isinstance(event, ev.Error):
            await self._responses.refused(event.error.event_id, _names_response_create(event.error))
        elif isinstance(event, (ev.InputTranscriptionCompleted, ev.ConversationItemTruncated)):
            if self._playout.current_item_id:  # the answer's item again, with what the truncation or transcript changed
                self.call.send(ev.ConversationItemRetrieve(item_id=self._playout.current_item_id))
        for out in model_events(event, data):
            await self._emit(out)

    async def send_event(self, event: RealtimeModelSendEvent) -> None:
        """Send what the SDK's session asks for (a `UserError` for what cannot be sent)."""
        if isinstance(event, RealtimeModelSendRawMessage):
            await self._send_raw(event)
        elif isinstance(event, RealtimeModelSendUserInput):
            await self._send_user_input(event)
        elif isinstance(event, RealtimeModelSendAudio):
            await self._send_audio(event)
        elif isinstance(event, RealtimeModelSendToolOutput):
            await self._send_tool_output(event)
        elif isinstance(event, RealtimeModelSendInterrupt):
            await self._send_interrupt(event)
        elif isinstance(event, RealtimeModelSendSessionUpdate):
            call = await self._ready()
            call.update_session(self._session_for(event.session_settings))
        else:
            assert_never(event)

    async def send_event_if(self, event: RealtimeModelSendEvent, send_if: Callable[[], bool]) -> bool:
        """User input, sent only if `send_if()` still holds as it goes out (and no response is waiting to be
        asked for); other events are not sent conditionally (False), as the SDK's model does."""
        if isinstance(event, RealtimeModelSendUserInput):
            return await self._send_user_input(event, send_if=send_if)
        return False

    async def _ready(self) -> VoiceCall:
        call = self.call
        if not self._connected.is_set():
            await asyncio.wait_for(self._connected.wait(), call.settings.session_update_timeout + 30)
        return call

    def _send(self, call: VoiceCall, event: ev.ClientEvent) -> None:
        try:
            call.send(event)
        except VoiceClientError as exc:
            raise UserError(f"WebRTCModel: {exc}") from exc

    async def _send_raw(self, event: RealtimeModelSendRawMessage) -> None:
        wire: dict[str, Any] = {"type": event.message["type"], **(event.message.get("other_data") or {})}
        call = await self._ready()
        if wire["type"] == "session.update":
            # through the call, which keeps the merged session for any later connection
            call.update_session(self._merged(dict(wire.get("session") or {})))
            return
        parsed = ev.parse_client_event(json.dumps(wire))
        if isinstance(parsed, (ev.UnknownEvent, ev.MalformedEvent)):
            reason = parsed.reason if isinstance(parsed, ev.MalformedEvent) else "not a client event type"
            raise UserError(f"WebRTCModel cannot send {wire['type']!r}: {reason}")
        if isinstance(parsed, ev.ResponseCreate):  # one at a time, after the response in progress, as the SDK's
            self._create_response(await self._responses.reserve(manual=True), parsed)
            return
        self._send(call, parsed)

    async def _send_user_input(
        self, event: RealtimeModelSendUserInput, send_if: Callable[[], bool] | None = None
    ) -> bool:
        async with self._user_input_lock:
            call = await self._ready()
            if send_if is not None and (not send_if() or self._responses.pending):
                return False
            self._send(call, ev.ConversationItemCreate(item=user_item(event.user_input)))
            self._create_response(await self._responses.reserve())
            return True

    async def _send_tool_output(self, event: RealtimeModelSendToolOutput) -> None:
        call = await self._ready()
        self._send(
            call, ev.ConversationItemCreate(item=ev.Item.function_call_output(event.tool_call.call_id, event.output))
        )
        done = tool_call(
            ev.Item(
                type="function_call",
                id=event.tool_call.id,
                call_id=event.tool_call.call_id,
                name=event.tool_call.name,
                arguments=event.tool_call.arguments,
            )
        ).model_copy(
            update={"previous_item_id": event.tool_call.previous_item_id, "status": "completed", "output": event.output}
        )
        await self._emit(RealtimeModelItemUpdatedEvent(item=done))
        if event.start_response:
            self._create_response(await self._responses.reserve())

    def _create_response(self, version: int, event: ev.ResponseCreate | None = None) -> None:
        """`response.create` (this one, or a plain one) once no response runs or is asked for, in the background."""
        task = asyncio.get_running_loop().create_task(self._send_create(version, event), name="WebRTCModel create")
        self._create_tasks.add(task)
        task.add_done_callback(self._create_tasks.discard)

    async def _send_create(self, version: int, event: ev.ResponseCreate | None) -> None:
        try:
            event_id = await self._responses.turn(version, event.event_id if event is not None else None)
            if event_id is None:  # a create already sent covered it
                return
            try:
                self._send(self.call, (event or ev.ResponseCreate()).model_copy(update={"event_id": event_id}))
            except BaseException:
                await self._responses.failed(version)
                raise
            await self._responses.sent(version, manual=event is not None)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            if not self._close_requested:
                await self._emit(RealtimeModelExceptionEvent(exception=exc, context="Error sending response.create"))

    async def _send_audio(self, event: RealtimeModelSendAudio) -> None:
        """Into the outbound track, in real time (the session's input format decoded to 48 kHz, one resampler for
        the whole stream); `commit` once it has gone out."""
        call = await self._ready()
        if self._pushed is None:
            self._pushed = PushSource()
            call.set_source(self._pushed)
        pcm, rate = self._decode_input(event.audio)
        if self._push_resampler is None or self._push_resampler.in_rate != rate:
            self._push_resampler = Resampler(rate, RTP_RATE)
        self._pushed.push(self._push_resampler.process(pcm))
        if event.commit:
            self._pushed.push(self._push_resampler.flush())
            await self._pushed.drained()
            await asyncio.sleep(COMMIT_ALLOWANCE)
            self._send(call, ev.InputAudioBufferCommit())

    def _decode_input(self, data: bytes) -> tuple[np.ndarray, int]:
        """The app's bytes as int16 samples and their rate, per the session's input format."""
        audio = self._server_session.get("audio") or {}
        fmt = (audio.get("input") or {}).get("format") if isinstance(audio, dict) else None
        wire = wire_format(fmt if isinstance(fmt, (str, dict)) else None)
        try:
            return wire.unpack(data), wire.rate
        except ValueError as exc:
            raise ConfigError(f"send_audio: {exc}") from None

    async def _send_interrupt(self, event: RealtimeModelSendInterrupt) -> None:
        """Over WebRTC the server truncates at what was played: stop the audio (`output_audio_buffer.clear`) and
        cancel the response (`response.cancel`), scoped to `response_id` when given."""
        if event.playback_only and (event.cancel_response_only or event.force_response_cancel):
            raise ValueError("playback_only cannot be combined with explicit cancellation modes")
        call = await self._ready()
        if event.cancel_response_only:
            if event.response_id is None:
                raise ValueError("cancel_response_only requires response_id")
            await self._cancel_response(call, event.response_id)
            return
        interrupted = self._playout.interrupt(event.response_id, self._responses.ongoing_id)
        if interrupted is not None:  # its audio plays: the app stops it, the server stops sending it
            await self._emit(interrupted)
            self._send(call, ev.OutputAudioBufferClear())
        if not event.playback_only:
            await self._cancel_response(call, event.response_id)

    async def _cancel_response(self, call: VoiceCall, response_id: str | None) -> None:
        """`response.cancel` for the response in progress (`response_id`: only if it is that one)."""
        if not await self._responses.begin_cancel(response_id):
            return
        try:
            self._send(call, ev.ResponseCancel() if response_id is None else ev.ResponseCancel(response_id=response_id))
        except BaseException:
            await self._responses.end_cancel()
            raise


def _names_response_create(error: ev.ErrorDetail) -> bool:
    """Whether an error without an event id is about a `response.create` (as the SDK's model tells)."""
    return error.code == "bad_response_create" or "response.create" in (error.message or "").lower()
