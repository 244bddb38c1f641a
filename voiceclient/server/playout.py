"""The server's output audio. `AudioOutput` is what the response engine writes to; the WebRTC edge's is the
`PlayoutQueue` here (queued PCM tagged by response, played out as the outbound track reads it), the WebSocket
edge's is `server/deltas.py` (`response.output_audio.delta` events).

Over WebRTC, what `output_audio_buffer.started/stopped/cleared` and truncation are measured against: a response's
audio has been heard up to the samples the track has read.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from voiceclient.audio.format import API_RATE, RTP_RATE
from voiceclient.audio.resample import Doubler
from voiceclient.audio.sources import AudioSource


class AudioOutput(Protocol):
    """Where a session's answer audio goes, tagged by response id, at `rate`.

    `announces_playout`: the server knows what was heard (it plays the audio out itself), so it sends
    `output_audio_buffer.*` and truncates on barge-in; otherwise the client plays it and truncates.
    `played(tag)`: samples heard (or sent); `clear()` drops what is queued and returns, per tag, what was played.
    `flushed(tag)` waits until every sample queued for `tag` has left.
    """

    @property
    def rate(self) -> int: ...

    announces_playout: bool
    on_start: Callable[[str], None] | None
    on_drain: Callable[[str, int], None] | None

    def put(self, tag: str, pcm: np.ndarray, ids: dict[str, Any] | None = None) -> None: ...

    def close(self, tag: str) -> None: ...

    def played(self, tag: str) -> int: ...

    def pending(self, tag: str | None = None) -> int: ...

    def clear(self) -> dict[str, int]: ...

    async def flushed(self, tag: str) -> None: ...


class PlayoutQueue(AudioSource):
    """Queued PCM, each chunk tagged (e.g. with a response id), played out as it is read.

    `on_start(tag)` fires when the first sample of a tag is read, `on_drain(tag, samples)` when the last sample
    of a tag that was `close`d has been read. `clear()` drops everything queued (barge-in) and returns, per tag,
    how many samples had actually been played.
    """

    announces_playout = True

    def __init__(
        self,
        on_start: Callable[[str], None] | None = None,
        on_drain: Callable[[str, int], None] | None = None,
    ) -> None:
        self._chunks: collections.deque[tuple[str, np.ndarray, dict[str, Any]]] = collections.deque()
        self._played: dict[str, int] = {}
        self._queued: dict[str, int] = {}
        self._closed: set[str] = set()
        self.on_start = on_start
        self.on_drain = on_drain
        self.on_read: Callable[[np.ndarray], None] | None = None  # every block the track reads (a recording)
        self.on_spurt: Callable[[], None] | None = None  # as `on_start`, for the emulated network's loss draws

    @property
    def rate(self) -> int:
        return RTP_RATE

    def put(self, tag: str, pcm: np.ndarray, ids: dict[str, Any] | None = None) -> None:
        """Queue `pcm` (at `rate`) for `tag`; `ids` travel with it to `take` (the event fields of its deltas)."""
        if pcm.size:
            self._chunks.append((tag, np.asarray(pcm, dtype=np.int16), ids or {}))
            self._queued[tag] = self._queued.get(tag, 0) + pcm.size
            self._played.setdefault(tag, 0)

    def close(self, tag: str) -> None:
        """No more audio for `tag`; `on_drain` fires once what is queued has played (at once if nothing is)."""
        self._closed.add(tag)
        if self._queued.get(tag, 0) == 0:
            self._finish(tag)

    async def flushed(self, tag: str) -> None:
        """Nothing to wait for: the track reads the audio in real time, and the response's events need not."""

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
        """The next `n` samples as the track plays them (silence where nothing is queued)."""
        out = self._fill(n)
        if self.on_read is not None:
            self.on_read(out)
        return out

    def _fill(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        filled = 0
        for _, piece, _ in self.take(n):
            out[filled : filled + piece.size] = piece
            filled += piece.size
        return out

    def take(self, n: int) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
        """Up to `n` queued samples, as (tag, pcm, ids) pieces in order, counted as played."""
        pieces = []
        while n > 0 and self._chunks:
            tag, chunk, ids = self._chunks[0]
            size = min(n, chunk.size)
            if self._played.get(tag, 0) == 0:
                if self.on_start:
                    self.on_start(tag)
                if self.on_spurt:
                    self.on_spurt()
            pieces.append((tag, chunk[:size], ids))
            n -= size
            self._played[tag] = self._played.get(tag, 0) + size
            self._queued[tag] -= size
            if size == chunk.size:
                self._chunks.popleft()
            else:
                self._chunks[0] = (tag, chunk[size:], ids)
            if self._queued[tag] == 0 and tag in self._closed:
                self._finish(tag)
        return pieces

    def _finish(self, tag: str) -> None:
        played = self._played.pop(tag, 0)
        self._queued.pop(tag, None)
        self._closed.discard(tag)
        self.drained(tag, played)

    def drained(self, tag: str, played: int) -> None:
        """Every sample of a closed `tag` has been played: `on_drain`."""
        if self.on_drain:
            self.on_drain(tag, played)


class UpsampledPlayout(PlayoutQueue):
    """The WebRTC edge's playout: audio is queued at the API's 24 kHz (what responders make: no resampling when a
    response starts) and read by the 48 kHz track, each frame interpolated as it is read (`Doubler`). What is
    played, cleared and truncated is counted at 24 kHz; `on_read` sees the 48 kHz frames the track sends."""

    def __init__(
        self,
        on_start: Callable[[str], None] | None = None,
        on_drain: Callable[[str, int], None] | None = None,
    ) -> None:
        super().__init__(on_start, on_drain)
        self._doubler = Doubler()

    @property
    def rate(self) -> int:
        return API_RATE

    def _fill(self, n: int) -> np.ndarray:
        """`n` samples at 48 kHz (`n` even: the track reads 20 ms frames) from `n // 2` queued at 24 kHz."""
        return self._doubler.process(super()._fill(n // 2))
