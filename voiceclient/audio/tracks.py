"""The RTP edge: an outbound track paced by the wall clock, and a reader that always drains the remote track."""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from voiceclient.audio.format import FRAME_MS, RTP_FRAME, RTP_RATE
from voiceclient.audio.sources import AudioSource, SilenceSource
from voiceclient.tasks import cancel_and_wait

log = logging.getLogger(__name__)
TIME_BASE = fractions.Fraction(1, RTP_RATE)
FrameTap = Callable[[np.ndarray, int, float], None]


class OutboundTrack(MediaStreamTrack):
    """48 kHz mono s16 in 20 ms frames with drift-free `pts`, paced against the wall clock. For a sender with
    voiceclient's mono Opus encoder (`voiceclient.rtc.inline`, which `Peer` installs): aiortc's own encoder would
    upmix mono at -3 dB.

    Pulls from `source` (swap it at any time). `recv()` never raises mid-call: a failing source is logged once
    and replaced by silence, because one exception stops aiortc's sender for the rest of the call.
    """

    kind = "audio"

    def __init__(self, source: AudioSource | None = None, on_frame: FrameTap | None = None) -> None:
        super().__init__()
        self.source: AudioSource = source or SilenceSource()
        self.on_frame = on_frame
        self.frames_sent = 0
        self.paused = False  # send nothing at all (an injected fault: the media stops, the connection stays)
        self._t0: float | None = None
        self._failed = False

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        while self.paused and self.readyState == "live":
            await asyncio.sleep(0.1)
            self._t0 = None
        if self.source.paced and not self._failed:  # a device-paced source (a microphone)
            try:
                return self._frame(await self.source.next_block())
            except Exception as exc:
                self._failed = True
                log.error("audio source failed, sending silence from now on: %s", exc)
            self._t0 = None
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self.frames_sent * FRAME_MS / 1000
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 0.2:
            # The loop stalled for more than 10 frames: re-anchor the clock instead of bursting to catch up.
            self._t0 = now - self.frames_sent * FRAME_MS / 1000
        return self._frame(self._pull())

    def _frame(self, pcm: np.ndarray) -> av.AudioFrame:
        if not (isinstance(pcm, np.ndarray) and pcm.dtype == np.int16 and pcm.ndim == 1):
            pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
        if pcm.size != RTP_FRAME:  # never from our sources; a wrong size must not stop the sender
            fixed = np.zeros(RTP_FRAME, np.int16)
            fixed[: min(pcm.size, RTP_FRAME)] = pcm[:RTP_FRAME]
            pcm = fixed
        pts = self.frames_sent * RTP_FRAME
        frame = mono_frame(pcm, pts)
        self.frames_sent += 1
        if self.on_frame is not None:
            try:
                self.on_frame(pcm, pts, time.monotonic())
            except Exception:  # a recorder failing must not stop the audio
                log.exception("outbound frame tap failed")
        return frame

    def _pull(self) -> np.ndarray:
        if not self._failed:
            try:
                pcm = np.asarray(self.source.read(RTP_FRAME), dtype=np.int16).reshape(-1)
                if pcm.size == RTP_FRAME:
                    return pcm
                raise ValueError(f"source returned {pcm.size} samples, not {RTP_FRAME}")
            except Exception as exc:
                self._failed = True
                log.error("audio source failed, sending silence from now on: %s", exc)
        return np.zeros(RTP_FRAME, np.int16)


def mono_frame(pcm: np.ndarray, pts: int, rate: int = RTP_RATE) -> av.AudioFrame:
    """An s16 mono frame holding a copy of `pcm` (1-D int16), stamped `pts` in 1/`rate` units: about 7 us, where
    `AudioFrame.from_ndarray` takes 12-14 with the stamps (a frame each way every 20 ms of a call)."""
    frame = av.AudioFrame(format="s16", layout="mono", samples=pcm.size)
    frame.planes[0].update(np.ascontiguousarray(pcm))  # type: ignore[arg-type]  # (any buffer)
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = TIME_BASE if rate == RTP_RATE else fractions.Fraction(1, rate)
    return frame


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Decoded frames to mono int16: voiceclient's decoder gives mono already (`voiceclient.rtc.inline`); aiortc's
    gives 48 kHz stereo interleaved s16, whose channels are averaged."""
    channels = len(frame.layout.channels)
    if channels == 1 and frame.format.name == "s16":
        return np.frombuffer(memoryview(frame.planes[0]), np.int16, count=frame.samples).copy()
    arr = frame.to_ndarray()
    if channels == 1:
        return arr.reshape(-1).astype(np.int16, copy=False)
    if frame.format.is_planar:
        mixed = arr.astype(np.int32).mean(axis=0)
    else:
        mixed = arr.reshape(-1, channels).astype(np.int32).mean(axis=1)
    out: np.ndarray = mixed.astype(np.int16)
    return out


class InboundReader:
    """Keeps a task reading the remote track (its queue is unbounded) and hands mono frames to taps."""

    def __init__(self, track: MediaStreamTrack, taps: list[FrameTap] | None = None) -> None:
        self.track = track
        self.taps: list[FrameTap] = list(taps or [])
        self.frames = 0
        self.first_frame_at: float | None = None
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                try:
                    frame = await self.track.recv()
                except MediaStreamError:
                    return
                if not isinstance(frame, av.AudioFrame):  # an audio track yields audio frames; kept honest
                    continue
                now = time.monotonic()
                if self.first_frame_at is None:
                    self.first_frame_at = now
                self.frames += 1
                pcm = frame_to_mono(frame)
                if frame.sample_rate != RTP_RATE:  # never seen from aiortc's Opus decoder; kept honest
                    from voiceclient.audio.resample import resample

                    pcm = resample(pcm, frame.sample_rate, RTP_RATE)
                for tap in self.taps:
                    try:
                        tap(pcm, int(frame.pts or 0), now)
                    except Exception:
                        log.exception("inbound frame tap failed")
        finally:
            self.ended.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self.ended.set()
