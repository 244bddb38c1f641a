"""The WebRTC edge of a server session: one call of `POST /v1/realtime/calls`.

    Peer (rtc, answerer) --RTP audio--> InboundReader --48 kHz--> resampled to 24 kHz --> the session's turns
                         --oai-events--> the session's ordered queue
    ResponseEngine --> PlayoutQueue (48 kHz, played as the track reads it) --> OutboundTrack --> Peer

The server's answer audio is heard in real time, so this edge announces playout (`output_audio_buffer.*`) and the
server truncates on barge-in itself. The rest of the session is `ServerSession`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from voiceclient.audio.format import API_RATE, RTP_RATE
from voiceclient.audio.resample import Resampler
from voiceclient.audio.sinks import ConversationRecorder
from voiceclient.audio.tracks import InboundReader, OutboundTrack
from voiceclient.rtc.peer import AnswerShape, Peer
from voiceclient.server.faults import FaultSpec
from voiceclient.server.network import CallNetwork
from voiceclient.server.playout import PlayoutQueue
from voiceclient.server.responders import Responder
from voiceclient.server.session import ServerSession
from voiceclient.server.speech import SpeechBackends

log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 30  # seconds from the SDP answer to an open data channel


class ServerCall(ServerSession):
    transport = "webrtc"

    def __init__(
        self,
        call_id: str,
        session: dict[str, Any],
        responder: Responder,
        on_closed: Callable[[ServerSession], None] | None = None,
        max_seconds: float = 3600.0,
        speech: SpeechBackends | None = None,
        vad: str = "auto",
        faults: list[FaultSpec] | None = None,
        answer_shape: AnswerShape = "real",
        host: str = "127.0.0.1",
        unreachable: bool = False,
        network: CallNetwork | None = None,
    ) -> None:
        """`answer_shape`: "real" (ICE-lite, the real service's answer, candidates on `host`) or "aiortc";
        `unreachable`: the answer's candidates answer no checks (the `unreachable` fault); `network`: every
        datagram of the call goes through it (`rtc/impair.py`)."""
        self.playout = PlayoutQueue()
        super().__init__(
            call_id, session, responder, self.playout, on_closed, max_seconds, speech, vad, faults, network
        )
        self.track = OutboundTrack(self.playout)
        self.peer = Peer(self.track, role="answerer", answer_shape=answer_shape, host=host, deaf=unreachable)
        self.peer.on_message = self.submit
        self.peer.on_open = self._on_open
        self.reader: InboundReader | None = None
        self.recorder: ConversationRecorder | None = None
        self.recording: Path | None = None
        self._resampler = Resampler(RTP_RATE, API_RATE)
        # A client that got its answer but never connects must not hold the call.
        self._abandoned = asyncio.get_running_loop().call_later(CONNECT_TIMEOUT, self._post, "abandoned", None)
        self._timers.append(self._abandoned)

    @property
    def pc(self) -> Any:
        """aiortc's RTCPeerConnection (diagnostics and benchmarks)."""
        return self.peer.pc

    async def answer(self, offer_sdp: str) -> str:
        """Take the client's offer (raises `InvalidOffer`) and start serving; returns the answer SDP."""
        sdp = await self.peer.answer(offer_sdp)
        if self.network is not None:  # before the client has the answer: from its first datagram
            self.peer.impair(self.network.down, self.network.up)
        self.start()
        self.tasks.spawn(self._start_reader(), "audio reader")
        self.tasks.spawn(self._watch(), "connection watch")
        return sdp

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
        self.on_input_audio(self._resampler.process(pcm48))

    async def _watch(self) -> None:
        reason = await self.peer.lost
        log.info("call %s: %s", self.id, reason)
        self._post("lost", reason)

    def _on_open(self) -> None:
        self._abandoned.cancel()
        self.greet()

    def _on_other(self, kind: str, payload: Any) -> bool:
        if kind == "abandoned" and not self.peer.is_open:
            log.info(
                "call %s: the client never opened oai-events within %d s; ending the call", self.id, CONNECT_TIMEOUT
            )
            return True
        return False

    def _deliver(self, text: str, kind: str) -> bool:
        if not self.peer.is_open:
            log.debug("call %s: channel not open, dropped %s", self.id, kind)
            return False
        self.peer.send(text)
        return True

    async def _transport_fault(self, fault: FaultSpec) -> None:
        if fault.action == "stop_media":
            self.track.paused = True
        elif fault.action == "close_channel":
            if self.peer.channel is not None:
                self.peer.channel.close()
        elif fault.action == "drop_connection":
            await self.peer.pc.close()  # no hangup, no goodbye: the client just loses us

    async def _close_transport(self) -> None:
        if self.reader is not None:
            await self.reader.stop()
        self.track.stop()
        await self.peer.close()
        if self.recorder is not None:
            self.playout.on_read = None
            self.recorder.close(time.monotonic())
            self.recorder = None
