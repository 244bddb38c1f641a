#!/usr/bin/env python3
"""The stock aiortc receiver of `scripts/bench.py network`, in a process of its own.

A plain `aiortc.RTCPeerConnection` makes the Realtime call itself: the `oai-events` data channel before the offer,
the offer POSTed as multipart (`sdp`, `session`) to `{base}/realtime/calls` with httpx, the answer set. It sends the
WAV at real time from an `AudioStreamTrack` subclass and keeps what `track.recv()` decoded, concatenated in order
(what an app would hand a sound card), with the monotonic time each frame was handed over either way.

It imports nothing of voiceclient (checked at the end): voiceclient patches aiortc per instance (`rtc/jitter.py`,
`rtc/inline.py` set attributes on its own receivers and senders), and a process of its own rules out any leak.

    python scripts/bench_aiortc.py BASE_URL IN.wav OUT.npz SECONDS SESSION_JSON
"""

from __future__ import annotations

import asyncio
import fractions
import json
import sys
import time
import wave

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

RATE = 48_000
FRAME = 960  # 20 ms


class WavTrack(MediaStreamTrack):
    """The WAV at real time, then silence."""

    kind = "audio"

    def __init__(self, pcm: np.ndarray) -> None:
        super().__init__()
        self.pcm = pcm
        self.pos = 0
        self.start: float | None = None
        self.times: list[float] = []
        self.sent: list[np.ndarray] = []

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        else:
            wait = self.start + (self.pos + FRAME) / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.pos += FRAME
        chunk = self.pcm[self.pos : self.pos + FRAME]
        if chunk.size < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - chunk.size, np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pos
        frame.time_base = fractions.Fraction(1, RATE)
        self.times.append(time.monotonic())
        self.sent.append(chunk)
        return frame


async def main(base: str, wav_path: str, out: str, seconds: float, session: str) -> None:
    with wave.open(wav_path) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").copy()
    pc = RTCPeerConnection()
    sender = WavTrack(pcm)
    pc.addTrack(sender)
    channel = pc.createDataChannel("oai-events")
    events: list[str] = []
    opened = asyncio.get_running_loop().create_future()
    played: list[np.ndarray] = []
    played_times: list[float] = []

    @channel.on("open")
    def on_open() -> None:
        if not opened.done():
            opened.set_result(None)

    @channel.on("message")
    def on_message(message: str) -> None:
        events.append(json.loads(message)["type"])

    async def read(track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            at = time.monotonic()
            a = frame.to_ndarray()
            channels = len(frame.layout.channels)
            mono = a.reshape(-1, channels)[:, 0] if a.shape[0] == 1 else a[0]
            played.append(mono.astype(np.int16))
            played_times.append(at)

    readers: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        readers.append(asyncio.ensure_future(read(track)))

    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(
            f"{base}/realtime/calls",
            headers={"Authorization": "Bearer sk-bench"},
            files={"sdp": (None, pc.localDescription.sdp), "session": (None, session)},
        )
        assert resp.status_code == 201, resp.text
        location = resp.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(resp.text, "answer"))
        await asyncio.wait_for(opened, 30)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        stats = await pc.getStats()
        inbound = [s for s in stats.values() if s.type == "inbound-rtp"]
        lost = sum(s.packetsLost for s in inbound)
        received = sum(s.packetsReceived for s in inbound)
        await http.post(f"{base.removesuffix('/v1')}{location}/hangup", headers={"Authorization": "Bearer sk-bench"})
    await pc.close()
    for task in readers:
        task.cancel()
    leaked = sorted(m for m in sys.modules if m.split(".")[0] == "voiceclient")
    assert not leaked, f"voiceclient was imported: {leaked}"
    np.savez(
        out,
        sent=np.concatenate(sender.sent) if sender.sent else np.zeros(0, np.int16),
        sent_times=np.array(sender.times),
        sent_sizes=np.array([c.size for c in sender.sent]),
        played=np.concatenate(played) if played else np.zeros(0, np.int16),
        played_times=np.array(played_times),
        played_sizes=np.array([p.size for p in played]),
    )
    print(json.dumps({"events": events, "lost": lost, "received": received, "cpu": cpu, "wall": wall}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]))
