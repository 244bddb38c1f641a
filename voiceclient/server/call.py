"""The WebRTC edge of a server session: one call of `POST /v1/realtime/calls`.

    Peer (rtc, answerer) --RTP audio--> InboundReader --48 kHz--> resampled to 24 kHz --> port.input_audio
                         --oai-events--> port.post(ClientMessage)
    ResponseEngine --> UpsampledPlayout (24 kHz in, 48 kHz out as the track reads it) --> OutboundTrack --> Peer

The server's answer audio is heard in real time, so this edge's output announces playout (`output_audio_buffer.*`)
and the server truncates on barge-in itself. The session is `ServerSession`'s; this edge owns the peer, the reader,
the playout and the call's recording.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from voiceclient.audio.resample import Halver
from voiceclient.audio.sinks import ConversationRecorder
from voiceclient.audio.tracks import InboundReader, OutboundTrack
from voiceclient.rtc.peer import AnswerShape, Peer, close_peer_connection
from voiceclient.server.edge import SessionPort
from voiceclient.server.inbox import ClientMessage, ConnectionLost, ConnectionOpened, ConnectTimeout
from voiceclient.server.network import CallNetwork
from voiceclient.server.playout import UpsampledPlayout

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 30  # seconds from the SDP answer to an open data channel


class CallEdge:
    """A WebRTC peer carrying one session: `edge.answer(offer_sdp)` once the session is built on it."""

    transport = "webrtc"

    def __init__(
        self,
        answer_shape: AnswerShape = "real",
        host: str = "127.0.0.1",
        unreachable: bool = False,
        network: CallNetwork | None = None,
    ) -> None:
        """`answer_shape`: "real" (ICE-lite, the real service's answer, candidates on `host`) or "aiortc";
        `unreachable`: the answer's candidates answer no checks (the `unreachable` fault); `network`: every
        datagram of the call goes through it (`rtc/impair.py`)."""
        self.playout = UpsampledPlayout()
        self.track = OutboundTrack(self.playout)
        self.peer = Peer(self.track, role="answerer", answer_shape=answer_shape, host=host, deaf=unreachable)
        self.network = network
        self.reader: InboundReader | None = None
        self.recorder: ConversationRecorder | None = None
        self.recording: Path | None = None
        self._resampler = Halver()  # 48 kHz RTP audio to the API's 24 kHz
        self._port: SessionPort | None = None
        self._closed = False

    def attach(self, port: SessionPort) -> None:
        self._port = port
        self.peer.on_message = lambda text: port.post(ClientMessage(text))
        self.peer.on_open = lambda: port.post(ConnectionOpened())
        # A client that got its answer but never connects must not hold the call.
        port.later(CONNECT_TIMEOUT, ConnectTimeout())

    @property
    def output(self) -> UpsampledPlayout:
        return self.playout

    @property
    def pc(self) -> Any:
        """aiortc's RTCPeerConnection (diagnostics and benchmarks)."""
        return self.peer.pc

    async def answer(self, offer_sdp: str) -> str:
        """Take the client's offer (raises `InvalidOffer`) and start serving; returns the answer SDP."""
        port = self._attached()
        sdp = await self.peer.answer(offer_sdp)
        if self.network is not None:  # before the client has the answer: from its first datagram
            self.peer.impair(self.network.down, self.network.up)
            self.playout.on_spurt = self.network.down.spurt  # each answer's audio meets its own losses
        port.tasks.spawn(self._start_reader(), "audio reader")
        port.tasks.spawn(self._watch(), "connection watch")
        return sdp

    def _attached(self) -> SessionPort:
        if self._port is None:
            raise RuntimeError("the call's edge has no session yet (ServerSession attaches it)")
        return self._port

    async def _start_reader(self) -> None:
        track = await self.peer.remote_track
        self.reader = InboundReader(track, [self._on_rtp_audio])
        self.reader.start()

    def record(self, path: Path, t0: float) -> None:
        """Keep a stereo recording of the call (left what the user sent, right what the server played), on the
        clock that starts at `t0` (the console's event log's)."""
        recorder = ConversationRecorder(path, t0)
        self.recorder, self.recording = recorder, path
        played = 0  # the track's own sample clock: what it reads is one contiguous stream, however late a read

        def on_read(pcm: np.ndarray) -> None:
            nonlocal played
            recorder.received(pcm, played, time.monotonic())
            played += pcm.size

        self.playout.on_read = on_read

    def _on_rtp_audio(self, pcm48: np.ndarray, pts: int, arrival: float) -> None:
        if self.recorder is not None:
            self.recorder.sent(pcm48, pts, arrival)
        self._attached().input_audio(self._resampler.process(pcm48))

    async def _watch(self) -> None:
        reason = await self.peer.lost
        self._attached().post(ConnectionLost(reason))

    def deliver(self, text: str, kind: str) -> bool:
        if not self.peer.is_open:
            log.debug("call %s: channel not open, dropped %s", self._attached().id, kind)
            return False
        self.peer.send(text)
        return True

    def pause_media(self) -> None:
        self.track.paused = True

    def close_channel(self) -> None:
        if self.peer.channel is not None:
            self.peer.channel.close()

    async def drop(self) -> None:
        await close_peer_connection(self.peer.pc)  # no hangup, no goodbye: the client just loses us

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.reader is not None:
            await self.reader.stop()
        self.track.stop()
        await self.peer.close()
        if self.recorder is not None:
            self.playout.on_read = None
            self.recorder.close(time.monotonic())
            self.recorder = None
