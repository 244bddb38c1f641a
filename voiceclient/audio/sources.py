"""Audio sources: pulled in 48 kHz mono int16 chunks by the outbound track, which paces them.

A source's `read(n)` returns exactly `n` samples (silence where it has nothing) and never raises. A device-paced
source (a microphone) says so with `paced = True` and is awaited block by block with `next_block()` instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import ClassVar

import av
import numpy as np

from voiceclient.audio.format import RTP_RATE
from voiceclient.errors import ConfigError


class AudioSource:
    """What a call sends. Subclass it and implement `read` (or, for a device-paced source, `next_block`)."""

    paced: ClassVar[bool] = False  # True: the outbound track awaits `next_block()` instead of pacing `read()`

    @property
    def done(self) -> bool:
        """Nothing more is planned to be sent: a played-out buffer; a live source always (it never blocks an
        idle call)."""
        return True

    def read(self, n: int) -> np.ndarray:
        """Exactly `n` samples, 48 kHz mono int16, at once."""
        raise NotImplementedError

    async def next_block(self) -> np.ndarray:
        """A paced source's next 20 ms block, when the device has it."""
        raise NotImplementedError(f"{type(self).__name__} is not a paced source")


def load_audio(path: str | Path, rate: int = RTP_RATE) -> np.ndarray:
    """Decode a WAV (or any file ffmpeg reads: any rate, channels, sample format) to mono int16 at `rate`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"audio file not found: {p}")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise ConfigError(f"{p}: has no audio stream")
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not a readable audio file ({exc})") from None
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


class SilenceSource(AudioSource):
    def read(self, n: int) -> np.ndarray:
        return np.zeros(n, np.int16)


class BufferSource(AudioSource):
    """Plays a buffer once, then silence. `done` tells when the last sample has been read."""

    def __init__(self, pcm: np.ndarray) -> None:
        self.pcm = np.asarray(pcm, dtype=np.int16)
        self.position = 0

    @property
    def done(self) -> bool:
        return self.position >= self.pcm.size

    @property
    def duration(self) -> float:
        """Seconds of audio in the buffer."""
        return self.pcm.size / RTP_RATE

    def read(self, n: int) -> np.ndarray:
        chunk = self.pcm[self.position : self.position + n]
        self.position += chunk.size
        if chunk.size < n:
            chunk = np.concatenate([chunk, np.zeros(n - chunk.size, np.int16)])
        return chunk


class WavSource(BufferSource):
    """A WAV (any rate, channels, sample format) as the microphone: 48 kHz mono, then silence after the end."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(load_audio(path))


class PushSource(AudioSource):
    """Audio the application hands over as it has it (the Agents SDK's `send_audio`): queued, sent in real time
    by the outbound track, silence while nothing is queued. `done` while the queue is empty."""

    def __init__(self) -> None:
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0
        self._empty = asyncio.Event()
        self._empty.set()

    @property
    def done(self) -> bool:
        return self._queued == 0

    @property
    def queued_seconds(self) -> float:
        return self._queued / RTP_RATE

    def push(self, pcm: np.ndarray) -> None:
        """Queue 48 kHz mono int16 samples after what is queued already."""
        chunk = np.asarray(pcm, dtype=np.int16).reshape(-1)
        if chunk.size:
            self._queue.append(chunk)
            self._queued += chunk.size
            self._empty.clear()

    def clear(self) -> None:
        self._queue.clear()
        self._queued = 0
        self._empty.set()

    async def drained(self) -> None:
        """Return once everything queued so far has been read by the track."""
        await self._empty.wait()

    def read(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        filled = 0
        while filled < n and self._queue:
            head = self._queue[0]
            take = min(n - filled, head.size)
            out[filled : filled + take] = head[:take]
            filled += take
            if take == head.size:
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
        self._queued -= filled
        if self._queued == 0:
            self._empty.set()
        return out
