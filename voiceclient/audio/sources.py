"""Audio sources: pulled in 48 kHz mono int16 chunks by the outbound track, which paces them.

A source's `read(n)` returns exactly `n` samples (silence where it has nothing) and never raises. A device-paced
source (a microphone) says so with `paced = True` and is awaited block by block with `next_block()` instead.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import ClassVar
from collections.abc import Callable

import av
import numpy as np

from voiceclient.errors import ConfigError
from voiceclient.audio.format import RTP_RATE


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
        return self.pcm.size / RTP_RATE

    def read(self, n: int) -> np.ndarray:
        chunk = self.pcm[self.position:self.position + n]
        self.position += chunk.size
        if chunk.size < n:
            chunk = np.concatenate([chunk, np.zeros(n - chunk.size, np.int16)])
        return chunk


class WavSource(BufferSource):
    """A WAV (any rate, channels, sample format) as the microphone: 48 kHz mono, then silence after the end."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(load_audio(path))


class PlayoutQueue(AudioSource):
    """Queued PCM, each chunk tagged (e.g. with a response id), played out as it is read.

    `on_start(tag)` fires when the first sample of a tag is read, `on_drain(tag, samples)` when the last sample
    of a tag that was `close`d has been read. `clear()` drops everything queued (barge-in) and returns, per tag,
    how many samples had actually been played.
    """

    def __init__(
        self,
        on_start: Callable[[str], None] | None = None,
        on_drain: Callable[[str, int], None] | None = None,
    ) -> None:
        self._chunks: collections.deque[tuple[str, np.ndarray]] = collections.deque()
        self._played: dict[str, int] = {}
        self._queued: dict[str, int] = {}
        self._closed: set[str] = set()
        self.on_start = on_start
        self.on_drain = on_drain

    def put(self, tag: str, pcm: np.ndarray) -> None:
        if pcm.size:
            self._chunks.append((tag, np.asarray(pcm, dtype=np.int16)))
            self._queued[tag] = self._queued.get(tag, 0) + pcm.size
            self._played.setdefault(tag, 0)

    def close(self, tag: str) -> None:
        """No more audio for `tag`; `on_drain` fires once what is queued has played (at once if nothing is)."""
        self._closed.add(tag)
        if self._queued.get(tag, 0) == 0:
            self._finish(tag)

    def played(self, tag: str) -> int:
        return self._played.get(tag, 0)

    def pending(self, tag: str | None = None) -> int:
        return sum(self._queued.values()) if tag is None else self._queued.get(tag, 0)

    def clear(self) -> dict[str, int]:
        tags = {t: self._played.get(t, 0) for t in self._queued}
        self._chunks.clear()
        self._queued.clear()
        self._closed.clear()
        for t in tags:
            self._played.pop(t, None)
        return tags

    def read(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        filled = 0
        while filled < n and self._chunks:
            tag, chunk = self._chunks[0]
            take = min(n - filled, chunk.size)
            if self._played.get(tag, 0) == 0 and self.on_start:
                self.on_start(tag)
            out[filled:filled + take] = chunk[:take]
            filled += take
            self._played[tag] = self._played.get(tag, 0) + take
            self._queued[tag] -= take
            if take == chunk.size:
                self._chunks.popleft()
            else:
                self._chunks[0] = (tag, chunk[take:])
            if self._queued[tag] == 0 and tag in self._closed:
                self._finish(tag)
        return out

    def _finish(self, tag: str) -> None:
        played = self._played.pop(tag, 0)
        self._queued.pop(tag, None)
        self._closed.discard(tag)
        if self.on_drain:
            self.on_drain(tag, played)
