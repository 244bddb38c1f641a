"""The Realtime API over one WebSocket (`GET /v1/realtime?model=M`, or `?intent=transcription` for a transcription
session), under the same `Transport` seam as WebRTC.

What WebRTC does in the media path, this transport does itself, in the protocol's own words:

- the microphone: the outbound track paces the source (20 ms frames, a device's own pace for a microphone), each
  frame goes out as `input_audio_buffer.append` in the session's input format (24 kHz PCM, or G.711);
- the speaker: `response.output_audio.delta` is decoded into a local playout queue, played out in real time in
  20 ms frames into the same taps as RTP audio (speaker, recording, WAV), so everything downstream is the same;
- the playout it announces as WebRTC's server does, but as local events (`output_audio_buffer.started`,
  `stopped`, `cleared`: logged `"dir": "local"`), so turn state, idle detection and barge-in read one set of
  events for both transports;
- barge-in: `clear_playout()` drops the unplayed audio and says how much of the item was really heard, counted from
  the samples the playout consumed (not wall time), as OpenAI's Agents SDKs do; the call sends the
  `conversation.item.truncate` (when the server hears the user start, or on `interrupt()`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import numpy as np

from voiceclient.audio.format import API_RATE, FRAME_MS, RTP_FRAME, RTP_RATE, samples_to_ms
from voiceclient.audio.resample import Resampler
from voiceclient.audio.sources import AudioSource, SilenceSource
from voiceclient.audio.wire import WireDecoder, WireEncoder
from voiceclient.client.family import Family, RealtimeFamily
from voiceclient.client.settings import ClientSettings, base_url_hint
from voiceclient.client.transport import FrameTap, MessageTap, Transport, TransportEvents
from voiceclient.errors import (
    APIConnectionError,
    AuthenticationError,
    ConfigError,
    NotFoundError,
    RateLimitError,
    ServerError,
    VoiceClientError,
)
from voiceclient.protocol.session import AnySession
from voiceclient.tasks import TaskOwner

if TYPE_CHECKING:
    import aiohttp  # imported when a session is opened, not with the package (start-up time)

log = logging.getLogger(__name__)
MAX_MESSAGE = 32 * 1024 * 1024  # an answer's delta can be large when the server sends it in one burst


def _tick(wake: asyncio.Future[bool]) -> None:
    if not wake.done():
        wake.set_result(False)  # the playout's next 20 ms are due


@dataclass
class Part:
    """Answer audio of one response's item, as received, at 48 kHz."""

    response_id: str
    item_id: str
    pcm: np.ndarray
    position: int = 0


class Playout:
    """The answer audio waiting to be heard, in order, and how much of each item was heard."""

    def __init__(self) -> None:
        self.parts: deque[Part] = deque()
        self.played: dict[str, int] = {}  # item_id -> samples at 48 kHz consumed by the speaker
        self.finished: set[str] = set()  # responses whose audio is all here (`response.output_audio.done`)
        self.playing: str | None = None  # the response whose audio is being heard

    def push(self, response_id: str, item_id: str, pcm: np.ndarray) -> None:
        self.parts.append(Part(response_id, item_id, pcm))

    def read(self, n: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """`n` samples (silence where nothing is queued) and what changed: ("started" | "stopped", response)."""
        out = np.zeros(n, np.int16)
        changes: list[tuple[str, str]] = []
        filled = 0
        while filled < n and self.parts:
            part = self.parts[0]
            if self.playing != part.response_id:
                if self.playing is not None:
                    changes.append(("stopped", self.playing))
                self.playing = part.response_id
                changes.append(("started", part.response_id))
            take = min(n - filled, part.pcm.size - part.position)
            out[filled : filled + take] = part.pcm[part.position : part.position + take]
            part.position += take
            filled += take
            self.played[part.item_id] = self.played.get(part.item_id, 0) + take
            if part.position >= part.pcm.size:
                self.parts.popleft()
        if self.playing is not None and not self.parts and self.playing in self.finished:
            changes.append(("stopped", self.playing))
            self.playing = None
        return out, changes

    def clear(self) -> tuple[str, str, int] | None:
        """Drop what was not heard yet; returns (response, item, ms of the item heard) of what was playing."""
        current = self.parts[0] if self.parts else None
        self.parts.clear()
        if current is None or self.playing is None:
            return None
        self.playing = None
        return current.response_id, current.item_id, samples_to_ms(self.played.get(current.item_id, 0), RTP_RATE)


class WebSocketTransport(Transport):
    """The Realtime API over WebSocket: one session per connection, audio as JSON events both ways."""

    plays_audio = True

    def __init__(self, settings: ClientSettings, liveness: float = 30.0, family: Family | None = None) -> None:
        """`liveness`: a server silent this long, not even answering a ping, is lost (a call passes its
        `media_timeout`: over WebRTC the audio that stops says it, over a WebSocket only the pings can). `family`:
        the voice API (the Realtime API's, or GPT-Live's: `/live/sessions`, `session.start` first)."""
        self.settings = settings
        self.family = family or RealtimeFamily()
        self.liveness = liveness
        self.lost = asyncio.get_running_loop().create_future()
        self._tasks = TaskOwner("websocket transport")
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._source: AudioSource = SilenceSource()
        self._playout = Playout()
        self._wake: asyncio.Future[bool] | None = None  # the playout's wait for its next tick (True: audio came)
        self._cleared: set[str] = set()  # responses whose audio was dropped at a barge-in: late deltas go too
        self._input_format: dict[str, Any] = {"type": "audio/pcm", "rate": API_RATE}
        self._output_format: dict[str, Any] = {"type": "audio/pcm", "rate": API_RATE}
        self._to_api = Resampler(RTP_RATE, API_RATE)
        self._encoder = WireEncoder()
        self._from_api = Resampler(API_RATE, RTP_RATE)
        self._decoder = WireDecoder(lenient=True)
        self._events: TransportEvents | None = None  # (set by `open`)
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._track: Any = None  # the outbound track that paces the source (set by `open`)
        self._closed = False

    async def open(self, session: AnySession, events: TransportEvents) -> None:
        try:
            await self._open(session, events)
        except BaseException:
            await self.close()  # a refused or failed open leaves no socket or HTTP session behind
            raise

    async def _open(self, session: AnySession, events: TransportEvents) -> None:
        import aiohttp

        from voiceclient.audio.tracks import OutboundTrack  # the pacing WebRTC uses; aiortc only when a call is made

        self._events = events
        url = self.family.websocket_url(self.settings.base_url, session)
        headers = self.settings.request_headers()
        self._http = aiohttp.ClientSession()
        deadline = self.settings.connect_timeout
        asked = time.monotonic()
        try:  # a ping after 2/3 of `liveness` without a message, a pong within its half: silent for `liveness`
            async with asyncio.timeout(deadline):
                self._ws = await self._http.ws_connect(
                    url,
                    headers=headers,
                    max_msg_size=MAX_MESSAGE,
                    heartbeat=self.liveness / 1.5,
                    protocols=self.family.websocket_subprotocols,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5),
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise self._refused(url, exc.status, exc.message) from None
        except aiohttp.InvalidURL as exc:  # no retry mends a URL that cannot be asked for
            raise ConfigError(f"GET {url}: not a URL the WebSocket can open ({exc})") from None
        except TimeoutError:
            raise APIConnectionError(f"GET {url}: the server did not answer within {deadline:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise APIConnectionError(f"GET {url}: {type(exc).__name__}: {exc}") from None
        self.create_seconds = time.monotonic() - asked
        log.info("websocket session: connected to %s", url)
        for first in self.family.websocket_start(session):  # (GPT-Live: session.start, before anything else)
            await self._ws.send_str(first)
            events.on_sent_message(first)
        await self._first(events.on_server_message)
        self._track = track = OutboundTrack(self._source, on_frame=events.on_sent_audio)
        self._tasks.spawn(self._write(), "writer")
        self._tasks.spawn(self._receive(events.on_server_message), "receive")
        self._tasks.spawn(self._send_audio(track), "microphone")
        self._tasks.spawn(self._play(events.on_received_audio), "playout")

    async def _first(self, on_message: MessageTap) -> None:
        """The session's first event: `session.created` names the session (its id is this connection's call id);
        a refused key comes as an `error` and close code 3000 right after the upgrade."""
        import aiohttp

        assert self._ws is not None
        try:
            message = await self._ws.receive(timeout=self.settings.connect_timeout)
        except TimeoutError:
            raise APIConnectionError(
                f"no session.created within {self.settings.connect_timeout:g} s of the WebSocket upgrade"
            ) from None
        if message.type != aiohttp.WSMsgType.TEXT:
            raise APIConnectionError(f"the WebSocket closed before session.created (code {self._ws.close_code})")
        event = json.loads(message.data)
        if event.get("type") == "error":
            error = event.get("error") or {}
            text = str(error.get("message") or "the server refused the session")
            if error.get("code") == "invalid_api_key":
                raise AuthenticationError(text, status=401, code="invalid_api_key")
            raise APIConnectionError(text)
        if event.get("type") in ("session.created", "session.started"):
            self.call_id = str((event.get("session") or {}).get("id") or "") or None
        self._take(message.data)
        on_message(message.data)

    def _refused(self, url: str, status: int, message: str) -> VoiceClientError:
        if message in ("", "Invalid response status"):  # aiohttp's words for any refusal: the status's are clearer
            try:
                message = HTTPStatus(status).phrase
            except ValueError:
                message = ""
        text = f"GET {url}: {message}".strip()
        if status in (401, 403):
            return AuthenticationError(text, status=status)
        if status == 404:
            return NotFoundError(text, status=status, hint=base_url_hint(self.settings.base_url))
        if status == 429:
            return RateLimitError(text, status=status)
        if status >= 500:
            return ServerError(text, status=status)
        return APIConnectionError(f"{text} (HTTP {status})")

    # ------------------------------------------------------------------------------------------ receiving
    async def _receive(self, on_message: MessageTap) -> None:
        import aiohttp

        assert self._ws is not None
        async for message in self._ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self._take(message.data)
                on_message(message.data)
            elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                break
        if not self._closed and not self.lost.done():
            code = self._ws.close_code
            if isinstance(self._ws.exception(), aiohttp.ServerTimeoutError):
                reason = f"the server went silent: no answer to a WebSocket ping for {self.liveness:g} s"
            elif code and code != aiohttp.WSCloseCode.ABNORMAL_CLOSURE:
                reason = f"the WebSocket closed (code {code})"
            else:  # 1006: the TCP connection went without a close frame
                reason = "the WebSocket connection dropped (no close frame)"
            self.lost.set_result(reason)

    def _take(self, text: str) -> None:
        """What the transport itself needs from a server event: the formats, the answer audio, the barge-in."""
        try:
            event = json.loads(text)
        except json.JSONDecodeError:
            return
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == self.family.audio_delta:
            response_id = str(event.get("response_id", self.family.name))
            if "response_id" not in event:  # GPT-Live's audio belongs to no response: it is done once heard
                self._playout.finished.add(response_id)
            if response_id not in self._cleared:
                idle = not self._playout.parts
                self._playout.push(response_id, str(event.get("item_id", "")), self._decode(event.get("delta", "")))
                if idle and self._wake is not None and not self._wake.done():
                    self._wake.set_result(True)  # nothing was playing: the speaker starts it now
        elif kind == "response.output_audio.done":
            self._playout.finished.add(str(event.get("response_id", "")))
        elif kind in ("session.created", "session.updated"):
            audio = (event.get("session") or {}).get("audio") or {}
            self._input_format = (audio.get("input") or {}).get("format") or self._input_format
            self._output_format = (audio.get("output") or {}).get("format") or self._output_format
        elif kind == "session.started":  # GPT-Live: one format, both ways
            audio = (event.get("session") or {}).get("audio") or {}
            self._input_format = self._output_format = audio.get("format") or self._input_format

    def _decode(self, delta: str) -> np.ndarray:
        try:
            pcm24 = self._decoder.decode(delta, self._output_format)
        except ValueError:
            log.warning("an audio delta that is not base64 was dropped")
            return np.zeros(0, np.int16)
        return self._from_api.process(pcm24)

    # ------------------------------------------------------------------------------------------ playout
    async def _play(self, on_audio: FrameTap) -> None:
        """The speaker's clock: 20 ms of answer audio (or silence) every 20 ms, into the same taps as RTP. Audio
        that arrives while nothing plays starts at once: the clock starts again from it (otherwise it would wait
        for the next tick, 10 ms on average)."""
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        frames = 0
        while True:
            due = t0 + frames * FRAME_MS / 1000
            now = time.monotonic()
            if due > now:  # a future and a timer, as asyncio.sleep itself: no task per frame
                self._wake = wake = loop.create_future()
                timer = loop.call_later(due - now, _tick, wake)
                try:
                    if await wake:
                        t0 = time.monotonic() - frames * FRAME_MS / 1000  # the first of it plays now
                finally:
                    timer.cancel()
                    self._wake = None
            elif now - due > 0.2:  # the loop stalled: start the clock again rather than burst
                t0 = now - frames * FRAME_MS / 1000
            pcm, changes = self._playout.read(RTP_FRAME)
            for change, response_id in changes:
                self._local({"type": f"output_audio_buffer.{change}", "response_id": response_id})
            on_audio(pcm, frames * RTP_FRAME, time.monotonic())
            frames += 1

    def clear_playout(self) -> tuple[str, int] | None:
        """Drop the answer audio not heard yet (and any still to arrive for that response); (item, ms heard)."""
        cut = self._playout.clear()
        if cut is None:
            return None
        response_id, item_id, heard_ms = cut
        self._cleared.add(response_id)
        self._local({"type": "output_audio_buffer.cleared", "response_id": response_id})
        log.info("playout cleared: %s cut at %d ms heard", item_id, heard_ms)
        return item_id, heard_ms

    def _local(self, event: dict[str, Any]) -> None:
        if self._events is not None:
            self._events.on_local_message(json.dumps({"event_id": f"local_{time.monotonic_ns()}", **event}))

    # ------------------------------------------------------------------------------------------ sending
    async def _send_audio(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:  # the track was stopped: the transport is closing
                return
            pcm48 = np.frombuffer(memoryview(frame.planes[0]), np.int16, count=frame.samples)
            pcm24 = self._to_api.process(pcm48)
            audio = self._encoder.encode_base64(pcm24, self._input_format)
            self.send(json.dumps({"type": self.family.audio_append, "audio": audio}))

    def send(self, text: str) -> None:
        if self._ws is None or self._ws.closed or self._closed:
            raise VoiceClientError("the WebSocket is not open")
        self._outbox.put_nowait(text)

    async def _write(self) -> None:
        """The one writer: client events leave in the order they were sent."""
        import aiohttp

        assert self._ws is not None
        while True:
            text = await self._outbox.get()
            try:
                await self._ws.send_str(text)
            except (ConnectionResetError, aiohttp.ClientError) as exc:
                if not self.lost.done():  # a reset is the same drop the reader reports, whichever sees it first
                    why = "no close frame" if isinstance(exc, ConnectionResetError) else type(exc).__name__
                    self.lost.set_result(f"the WebSocket connection dropped ({why})")
                return

    def set_source(self, source: AudioSource) -> None:
        self._source = source
        if self._track is not None:
            self._track.source = source

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._tasks.close()
        if self._track is not None:
            self._track.stop()
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if not self.lost.done():
            self.lost.cancel()
