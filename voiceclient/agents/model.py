"""`WebRTCModel`: OpenAI's Agents SDK (`RealtimeRunner`) over a voiceclient WebRTC call.

The SDK's own realtime model speaks one WebSocket. This one is that model with its transport replaced: the SDK's
mapping of server events to its model events, its session config built from the agent, its response sequencing
and its input conversions all run as they do over the WebSocket (a subclass of `OpenAIRealtimeWebSocketModel`,
nothing of it copied), while the call is a `VoiceCall`: the microphone (or any `AudioSource`) goes out on the
RTP track, the model's audio comes back on it (to the speaker, a WAV, and to the SDK as PCM), and the events travel
on the data channel. What differs over WebRTC, and is done here:

- audio out: no `response.output_audio.delta` events; the track's frames are decoded to PCM (24 kHz) and handed to
  the SDK as `audio` events while the server says the response's audio plays (`output_audio_buffer.started` to
  `.stopped` / `.cleared`);
- interrupts and barge-in: the server knows what was played and truncates itself, so an interrupt is
  `output_audio_buffer.clear` (when audio plays) and `response.cancel` (when a response runs); the SDK's playback
  tracker is not used, and no `conversation.item.truncate` is sent on the client's guess;
- audio in: `send_audio` goes into the outbound track (in real time), not into `input_audio_buffer.append`;
- reconnect and recycle (voiceclient's `Continuity`) are reported as connection status, with the history
  replayed by voiceclient; the SDK runs the tools, handoffs and guardrails (voiceclient's tool runner is off).

Pinned to the SDK versions tried (the `agents` extra): the subclass uses the SDK model's internal hooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, assert_never
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from agents.exceptions import UserError
from agents.realtime.config import RealtimeSessionModelSettings
from agents.realtime.model import RealtimeModelConfig
from agents.realtime.model_events import (
    RealtimeModelAudioEvent,
    RealtimeModelAudioInterruptedEvent,
    RealtimeModelConnectionStatusEvent,
    RealtimeModelEndOfStreamEvent,
    RealtimeModelExceptionEvent,
)
from agents.realtime.model_inputs import RealtimeModelSendAudio, RealtimeModelSendInterrupt
from agents.realtime.openai_realtime import OpenAIRealtimeWebSocketModel, _ConversionHelper, get_api_key
from openai.types.realtime.realtime_client_event import RealtimeClientEvent as OpenAIRealtimeClientEvent

from voiceclient.audio.format import API_RATE, RTP_RATE
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


@dataclass
class _Playing:
    response_id: str
    item_id: str
    content_index: int


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


class WebRTCModel(OpenAIRealtimeWebSocketModel):
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
        super().__init__()
        self._source = source
        self._playback = playback
        base = recording or Recording()
        self._recording = Recording(output_wav or base.output_wav, base.record_wav, base.events_jsonl)
        self._continuity = continuity
        self._settings = settings
        self._base_session = session
        self._on_call = on_call
        self._on_status = on_status
        self._call: VoiceCall | None = None
        self._owned: list[Any] = []  # the microphone and speaker this model opened
        self._pushed: PushSource | None = None
        self._push_resampler: Resampler | None = None
        self._inbox: asyncio.Queue[_Inbox] = asyncio.Queue()
        self._events_queued = 0  # server events in the inbox not yet consumed (they may start a playout)
        self._consumer: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._audio_parts: dict[str, tuple[str, int]] = {}  # response id -> (item id, content index) of its audio
        self._playing: _Playing | None = None
        self._interrupted: set[str] = set()  # responses whose audio the client stopped
        self._resampler = Resampler(RTP_RATE, API_RATE)
        self._connected = asyncio.Event()

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def call(self) -> VoiceCall:
        """The voiceclient call under the model (once `connect` has begun)."""
        if self._call is None:
            raise CallError("WebRTCModel: not connected")
        return self._call

    async def connect(self, options: RealtimeModelConfig) -> None:
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
        self._playback_tracker = None
        if model_settings.get("model_name"):
            self.model = model_settings["model_name"]
        self._tracing_config = model_settings["tracing"] if "tracing" in model_settings else "auto"
        self._close_requested = False
        call = self._new_call(await self._settings_for(options), self._session_for(model_settings))
        self._call = call
        if self._on_call is not None:
            self._on_call(call)
        self._consumer = asyncio.get_running_loop().create_task(self._consume(), name="WebRTCModel events")
        await self._emit_event(RealtimeModelConnectionStatusEvent(status="connecting"))
        try:
            self._start_owned()
            await call.connect()
        except BaseException:
            await self._teardown()
            raise
        self._connected.set()
        self._watch = asyncio.get_running_loop().create_task(self._watch_call(call), name="WebRTCModel watch")
        await self._emit_event(RealtimeModelConnectionStatusEvent(status="connected"))

    async def _settings_for(self, options: RealtimeModelConfig) -> ClientSettings:
        base = self._settings or ClientSettings.from_env()
        values: dict[str, Any] = {"transport": "webrtc"}
        if options.get("url"):
            values["base_url"] = base_url_from(options["url"])
        headers = options.get("headers")
        if headers is not None:  # as the SDK's model: the headers carry the credential, no Authorization is added
            values.update(headers=dict(headers), api_key=None)
        else:
            given = options.get("api_key")  # the SDK's option, else these settings' key, else $OPENAI_API_KEY
            api_key = (
                (await get_api_key(given) if given is not None else None) or base.api_key or await get_api_key(None)
            )
            if not api_key:
                raise UserError("API key is required but was not provided.")
            values["api_key"] = api_key
        try:
            return ClientSettings.model_validate({**base.model_dump(), **values})
        except ValueError as exc:
            raise UserError(f"WebRTCModel: {exc}") from None

    def _session_for(self, model_settings: RealtimeSessionModelSettings) -> SessionConfig:
        """The SDK's session object for these settings (the agent's instructions, tools, handoffs, audio), with
        its tracing (the SDK sends that apart after `session.created`) and the `session` fields given here."""
        data = self._get_session_config(model_settings).model_dump(mode="json", exclude_unset=True)
        tracing = _ConversionHelper.convert_tracing_config(self._tracing_config)
        if tracing is not None:
            data["tracing"] = (
                tracing if isinstance(tracing, str) else tracing.model_dump(mode="json", exclude_unset=True)
            )
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
        self._close_requested = True
        try:
            await self._cancel_response_create_tasks()
        finally:
            await self._teardown()
            self._reset_connection_state()

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
            self._audio_parts.clear()
            self._playing = None
            self._interrupted.clear()
            self._pushed = self._push_resampler = None
            await self._release_response_waiters()

    # ------------------------------------------------------------------------------------------ events in
    def _received(self, event: ev.ReceivedServerEvent) -> None:
        """The call's ordered consumer: every server event, queued with the audio for one consumer."""
        self._events_queued += 1
        self._inbox.put_nowait(_Event(event))

    def _heard(self, pcm: np.ndarray, pts: int, at: float) -> None:
        # Whose audio it is, the consumer knows in order. A frame with nothing playing once every queued event is
        # consumed (the track's silence between answers) is dropped here rather than queued to be dropped there.
        if self._playing is None and self._events_queued == 0:
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
                        await self._on_audio(pcm)
                    case _Status(state):
                        connected = state == "connected"
                        await self._emit_event(
                            RealtimeModelConnectionStatusEvent(status="connected" if connected else "connecting")
                        )
                    case _Failed(error):
                        await self._emit_event(
                            RealtimeModelExceptionEvent(exception=error, context=f"the WebRTC call failed: {error}")
                        )
                        await self._emit_event(RealtimeModelConnectionStatusEvent(status="disconnected"))
                        await self._emit_event(RealtimeModelEndOfStreamEvent())
                        return
                    case _:
                        assert_never(message)
            except Exception as exc:  # as the SDK's model: one bad event is reported, the stream goes on
                await self._emit_event(RealtimeModelExceptionEvent(exception=exc, context="Error handling event"))

    async def _on_server_event(self, event: ev.ReceivedServerEvent) -> None:
        if isinstance(event, ev.MalformedEvent):
            try:
                data = json.loads(event.raw)
            except json.JSONDecodeError:
                await self._emit_event(
                    RealtimeModelExceptionEvent(
                        exception=ValueError(event.reason), context="Failed to parse data-channel message as JSON"
                    )
                )
                return
        else:
            data = event.model_dump(mode="json", exclude_unset=True, by_alias=True)
        kind = data.get("type")
        if kind == "response.content_part.added" and (data.get("part") or {}).get("type") in ("audio", "output_audio"):
            self._audio_parts[data["response_id"]] = (data["item_id"], data.get("content_index", 0))
            while len(self._audio_parts) > 8:  # responses whose audio never played (cancelled before playout)
                del self._audio_parts[next(iter(self._audio_parts))]
        elif kind == "output_audio_buffer.started":
            item = self._audio_parts.get(data.get("response_id", ""))
            if item is not None:
                self._playing = _Playing(data["response_id"], *item)
                self._resampler = Resampler(RTP_RATE, API_RATE)
                if data["response_id"] in self._interrupted:  # interrupted before it played: not heard at all
                    self.call.send(ev.OutputAudioBufferClear())
        elif kind in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"):
            playing, self._playing = self._playing, None
            if playing is not None and playing.response_id == data.get("response_id"):
                self._audio_parts.pop(playing.response_id, None)
                if kind == "output_audio_buffer.cleared" and playing.response_id not in self._interrupted:
                    # a barge-in (the server's VAD) or an interrupt from elsewhere: the app stops its playback
                    await self._emit_event(
                        RealtimeModelAudioInterruptedEvent(item_id=playing.item_id, content_index=playing.content_index)
                    )
        elif kind == "response.done":
            self._interrupted.discard((data.get("response") or {}).get("id", ""))
        await self._handle_ws_event(data)

    async def _on_audio(self, pcm: np.ndarray) -> None:
        playing = self._playing
        if playing is None or playing.response_id in self._interrupted:
            return
        out = self._resampler.process(pcm)
        if out.size:
            self._current_item_id = playing.item_id  # what `conversation.item.retrieve` refreshes after a truncation
            await self._emit_event(
                RealtimeModelAudioEvent(
                    data=out.tobytes(),
                    response_id=playing.response_id,
                    item_id=playing.item_id,
                    content_index=playing.content_index,
                )
            )

    async def _send_tracing_config(self, tracing_config: Any) -> None:
        """Nothing: the tracing config is part of the session the call sends (and sends again on a new
        connection)."""

    # ------------------------------------------------------------------------------------------ events out
    async def _ready(self) -> VoiceCall:
        call = self.call
        if not self._connected.is_set():
            await asyncio.wait_for(self._connected.wait(), call.settings.session_update_timeout + 30)
        return call

    async def _send_raw_message(self, event: OpenAIRealtimeClientEvent) -> None:
        self._send_wire(await self._ready(), event.model_dump(mode="json", exclude_unset=True))

    async def _send_raw_message_if(self, event: OpenAIRealtimeClientEvent, send_if: Callable[[], bool]) -> bool:
        call = await self._ready()
        if not send_if():
            return False
        self._send_wire(call, event.model_dump(mode="json", exclude_unset=True))
        return True

    def _send_wire(self, call: VoiceCall, wire: dict[str, Any]) -> None:
        if wire.get("type") == "session.update":
            # through the call, which keeps the merged session for any later connection
            call.update_session(self._merged(dict(wire.get("session") or {})))
            return
        parsed = ev.parse_client_event(json.dumps(wire))
        if isinstance(parsed, (ev.UnknownEvent, ev.MalformedEvent)):
            reason = parsed.reason if isinstance(parsed, ev.MalformedEvent) else "not a client event type"
            raise UserError(f"WebRTCModel cannot send {wire.get('type')!r}: {reason}")
        try:
            call.send(parsed)
        except VoiceClientError as exc:
            raise UserError(f"WebRTCModel: {exc}") from exc

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
            call.send(ev.InputAudioBufferCommit())

    def _decode_input(self, data: bytes) -> tuple[np.ndarray, int]:
        """The app's bytes as int16 samples and their rate, per the session's input format."""
        fmt = None
        session = self._created_session
        if session is not None and session.audio is not None and session.audio.input is not None:
            fmt = self._read_format_type(session.audio.input.format)
        wire = wire_format(fmt)
        try:
            return wire.unpack(data), wire.rate
        except ValueError as exc:
            raise ConfigError(f"send_audio: {exc}") from None

    async def _send_interrupt(self, event: RealtimeModelSendInterrupt) -> None:
        """Over WebRTC the server truncates at what was played: stop the audio (`output_audio_buffer.clear`) and
        cancel the response (`response.cancel`), scoped to `response_id` when given."""
        if event.playback_only and (event.cancel_response_only or event.force_response_cancel):
            raise ValueError("playback_only cannot be combined with explicit cancellation modes")
        if event.cancel_response_only:
            await super()._send_interrupt(event)
            return
        call = await self._ready()
        playing = self._playing
        if playing is not None and event.response_id in (None, playing.response_id):
            self._interrupted.add(playing.response_id)
            await self._emit_event(
                RealtimeModelAudioInterruptedEvent(item_id=playing.item_id, content_index=playing.content_index)
            )
            call.send(ev.OutputAudioBufferClear())
        else:  # its audio has not started playing (a guardrail on the first words): stopped when it starts
            response_id = event.response_id or self._response_create_sequencer.ongoing_response_id
            if response_id is not None:
                self._interrupted.add(response_id)
        if not event.playback_only and self._ongoing_response:
            await self._cancel_response(response_id=event.response_id)
