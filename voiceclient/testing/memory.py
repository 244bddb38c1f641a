"""The server's session core without a socket: a memory edge, as `ScriptedTransport` is the client's.

    async with MemorySession() as s:                  # an echo responder, energy VAD, no models
        s.send({"type": "conversation.item.create", "item": user_text("hello")})
        s.send({"type": "response.create"})
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "completed"

`MemorySession` builds the real `ServerSession` (the conversation, turn detection, the response engine, faults,
the cap) on a `MemoryEdge`, which keeps every server event as a dict instead of writing it to a wire. Input audio
goes straight into the core (`speak`); the answer's audio waits in the edge's output until the test plays it
(`play(seconds)`), so what the server believes was heard (barge-in truncation, `output_audio_buffer.*`) is
whatever the test played, not what a clock did. A call runs in milliseconds.

`playout=True` (the default) gives the session a WebRTC-like output (the server plays the audio and announces it);
`playout=False` a WebSocket-like one (`response.output_audio.delta` events, the client plays and truncates).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from voiceclient.audio.format import API_RATE, RTP_RATE
from voiceclient.protocol.events import new_id
from voiceclient.server.deltas import DeltaOutput
from voiceclient.server.dialect import Dialect
from voiceclient.server.edge import SessionPort
from voiceclient.server.faults import FaultSpec
from voiceclient.server.inbox import ClientMessage, ConnectionLost, ConnectionOpened, Inbox
from voiceclient.server.playout import PlayoutQueue
from voiceclient.server.realtime import RealtimeDialect
from voiceclient.server.responders import EchoResponder, Responder
from voiceclient.server.session import ServerSession
from voiceclient.server.speech_port import OfflineSpeech

DEFAULT_WAIT = 5.0  # seconds `next_event` waits before it says what did arrive


class MemoryEdge:
    """An edge whose wire is a list: every server event the session delivers, parsed, in order.

    `open`: whether the client's event path is open (events delivered while closed are dropped, as over a data
    channel that is not open yet). The transport faults are recorded in `faults_applied`; `drop()` and
    `close_channel()` end the session as the real connections would.
    """

    def __init__(self, playout: bool = True) -> None:
        self.transport = "memory"
        self.events: list[dict[str, Any]] = []
        self.open = False
        self.closed = False
        self.media_paused = False
        self.faults_applied: list[str] = []
        self._playout = playout
        self._output: PlayoutQueue | None = None
        self._port: SessionPort | None = None
        self._arrived = asyncio.Event()

    def attach(self, port: SessionPort) -> None:
        """Called once, by the session: the output is built here (a playout queue, or audio delta events)."""
        self._port = port
        if self._playout:
            self._output = PlayoutQueue()
        else:
            self._output = DeltaOutput(port.output_audio, lambda: port.session["audio"]["output"]["format"])

    @property
    def port(self) -> SessionPort:
        """The session this edge carries."""
        if self._port is None:
            raise RuntimeError("the memory edge has no session yet (ServerSession attaches it)")
        return self._port

    @property
    def output(self) -> PlayoutQueue:
        """Where the answer audio waits to be played (`MemorySession.play`), or leaves as delta events."""
        if self._output is None:
            raise RuntimeError("the memory edge has no session yet (ServerSession attaches it)")
        return self._output

    def connect(self) -> None:
        """The client's event path opens: the session greets it (`session.created`)."""
        self.open = True
        self.port.post(ConnectionOpened())

    def deliver(self, text: str, kind: str) -> bool:
        """Keep one server event (parsed); False while the event path is not open."""
        if not self.open or self.closed:
            return False
        self.events.append(json.loads(text))
        self._arrived.set()
        return True

    async def wait(self) -> None:
        """Until the next event arrives."""
        self._arrived.clear()
        await self._arrived.wait()

    def pause_media(self) -> None:
        """The `stop_media` fault: no answer audio leaves (nothing plays; over delta events, none is sent). The
        core stops taking input audio itself."""
        self.faults_applied.append("stop_media")
        self.media_paused = True
        if isinstance(self._output, DeltaOutput):
            self._output.muted = True

    def close_channel(self) -> None:
        """The `close_channel` fault: the event path closes and the session ends."""
        self.faults_applied.append("close_channel")
        self.open = False
        self.port.post(ConnectionLost("the channel was closed by an injected fault"))

    async def drop(self) -> None:
        """The `drop_connection` fault: the connection goes and the session ends."""
        self.faults_applied.append("drop_connection")
        self.open = False
        self.port.post(ConnectionLost("the connection was dropped by an injected fault"))

    async def close(self) -> None:
        """The session closed its connection (idempotent)."""
        self.closed = True
        self._arrived.set()


class MemorySession:
    """A server session driven in memory: send client events, speak, play the answer, read the server's events.

    `session`: fields over the default session (as `session.update` would set them, without its checks);
    `responder`: what answers (echo by default); `vad`: "energy" (no models) or "auto"; `speech`: offline
    backends (none: transcripts are not made and answers are tones); `faults`, `max_seconds`: as `serve`'s;
    `dialect`: the wire protocol the session speaks (`voiceclient.server.dialect`; the Realtime API's by default,
    `voiceclient.server.live.LiveDialect()` for GPT-Live, whose default session is one started with `gpt-live-1`).
    `session={"type": "transcription", ...}` starts a transcription session (its defaults, then those fields).
    """

    def __init__(
        self,
        session: dict[str, Any] | None = None,
        responder: Responder | None = None,
        *,
        playout: bool = True,
        vad: str = "energy",
        speech: OfflineSpeech | None = None,
        faults: list[FaultSpec] | None = None,
        max_seconds: float = 3600.0,
        connect: bool = True,
        dialect: Dialect | None = None,
    ) -> None:
        self._fields = dict(session or {})
        self._responder = responder or EchoResponder()
        self._kw: dict[str, Any] = {"vad": vad, "speech": speech, "faults": faults, "max_seconds": max_seconds}
        self._connect = connect
        self.dialect: Dialect = dialect or RealtimeDialect()
        self.edge = MemoryEdge(playout)
        self._core: ServerSession | None = None
        self._cursor = 0

    async def __aenter__(self) -> MemorySession:
        transcription = self._fields.get("type") == "transcription"  # a transcription session: no responses
        base = self.dialect.default_transcription_session() if transcription else self.dialect.default_session()
        base.update(self._fields)
        self._core = ServerSession(new_id("sess"), base, self._responder, self.edge, dialect=self.dialect, **self._kw)
        if self._connect:
            self.edge.connect()
            await self.next_event()  # the greeting (`session.created`)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """End the session (idempotent)."""
        if self._core is not None:
            await self._core.close()

    @property
    def core(self) -> ServerSession:
        """The `ServerSession` under test."""
        if self._core is None:
            raise RuntimeError("enter the MemorySession first (async with)")
        return self._core

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every server event delivered so far, in order."""
        return self.edge.events

    # ------------------------------------------------------------------------------------------ the client
    def send(self, event: dict[str, Any]) -> None:
        """A client event (a dict, sent as JSON)."""
        self.core.post(ClientMessage(json.dumps(event)))

    def send_raw(self, text: str | bytes) -> None:
        """A client message as it came off the wire, malformed or not."""
        self.core.post(ClientMessage(text))

    def post(self, message: Inbox) -> None:
        """Any inbox message (a timer's, a fault's), as the edge or the session's own timers would post it."""
        self.core.post(message)

    def speak(self, pcm24: np.ndarray, chunk_ms: int = 20) -> None:
        """Input audio at 24 kHz, as RTP would bring it (in `chunk_ms` pieces)."""
        step = API_RATE * chunk_ms // 1000
        pcm = np.asarray(pcm24, np.int16)
        for start in range(0, pcm.size, step):
            self.core.input_audio(pcm[start : start + step])

    def play(self, seconds: float) -> np.ndarray:
        """Play `seconds` of the answer audio (48 kHz), as the WebRTC track would read it: what is played is what
        the server counts as heard. After a `stop_media` fault nothing is read, as the paused track reads nothing."""
        if self.edge.media_paused:
            return np.zeros(0, np.int16)
        return self.edge.output.read(round(seconds * RTP_RATE))

    async def play_through(
        self, kind: str = "output_audio_buffer.stopped", step: float = 0.1, timeout: float = DEFAULT_WAIT
    ) -> np.ndarray:
        """Play the answer audio `step` seconds at a time until the server sends `kind` (not consumed: read it
        with `next_event`); returns what was played (48 kHz)."""
        played: list[np.ndarray] = []

        async def run() -> None:
            while not any(e.get("type") == kind for e in self.edge.events[self._cursor :]):
                if self.edge.closed:
                    raise TimeoutError(f"the session ended before {kind!r}")
                played.append(self.play(step))
                await asyncio.sleep(0)

        try:
            await asyncio.wait_for(run(), timeout)
        except TimeoutError as exc:
            seen = [e.get("type") for e in self.edge.events]
            raise TimeoutError(f"no {kind!r} in {timeout:g} s of playing; the server sent {seen}") from exc
        return np.concatenate(played) if played else np.zeros(0, np.int16)

    def drop(self) -> None:
        """The connection goes (the peer failed, the socket closed)."""
        self.edge.open = False
        self.core.post(ConnectionLost("the client went away"))

    # ------------------------------------------------------------------------------------------ the server
    async def next_event(
        self, kind: str | Callable[[dict[str, Any]], bool] | None = None, timeout: float = DEFAULT_WAIT
    ) -> dict[str, Any]:
        """The next server event (after the last one returned) of type `kind` (or matching it), skipping others.
        Raises `TimeoutError` naming the events that did arrive."""

        def wanted(event: dict[str, Any]) -> bool:
            return kind is None or (kind(event) if callable(kind) else event.get("type") == kind)

        async def find() -> dict[str, Any]:
            while True:
                while self._cursor < len(self.edge.events):
                    event = self.edge.events[self._cursor]
                    self._cursor += 1
                    if wanted(event):
                        return event
                if self.edge.closed:
                    raise TimeoutError(f"the session ended before {kind!r}")
                await self.edge.wait()

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError as exc:
            seen = [e.get("type") for e in self.edge.events]
            raise TimeoutError(f"no {kind!r} in {timeout:g} s; the server sent {seen}") from exc

    async def until_closed(self, timeout: float = DEFAULT_WAIT) -> None:
        """Until the session has ended."""
        await asyncio.wait_for(self.core.closed.wait(), timeout)

    def sent(self, kind: str) -> list[dict[str, Any]]:
        """Every server event of type `kind` so far."""
        return [e for e in self.edge.events if e.get("type") == kind]
