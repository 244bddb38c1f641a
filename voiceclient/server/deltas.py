"""The WebSocket edge's output audio: `response.output_audio.delta` events, base64 in the session's output format.

By default a response's audio leaves as fast as it is generated, as the real service sends it (the client buffers
and plays it, and truncates on barge-in); with `pace=True` it leaves in real time, one chunk per chunk of time, so
a client can be tested against audio that is still arriving when the user barges in (the unsent rest is dropped
then). `played(tag)` is what has been sent. Nothing here announces playout: there is no `output_audio_buffer.*`
over a WebSocket. What the server does after the audio (the idle timer) waits until the audio sent would have
played at the client in real time, not merely until it was sent.
"""

from __future__ import annotations

import asyncio
import base64
import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from voiceclient.audio.format import API_RATE
from voiceclient.audio.wire import to_wire
from voiceclient.server.context import Send
from voiceclient.tasks import TaskOwner

BURST_CHUNK_MS = 100  # a delta of 4800 bytes of PCM16 24 kHz, 800 of G.711
PACED_CHUNK_MS = 40


@dataclass
class _Chunk:
    tag: str
    ids: dict[str, Any]
    wire: bytes  # the whole utterance in the wire format
    samples: int  # its length at 24 kHz
    sent: int = 0  # 24 kHz samples of it sent


class DeltaOutput:
    rate = API_RATE
    announces_playout = False

    def __init__(self, send: Send, output_format: Callable[[], dict[str, Any]], pace: bool = False) -> None:
        self.send = send
        self.output_format = output_format
        self.pace = pace
        self.muted = False  # an injected `stop_media`: audio is consumed but nothing is sent
        self.on_start: Callable[[str], None] | None = None
        self.on_drain: Callable[[str, int], None] | None = None
        self._chunks: collections.deque[_Chunk] = collections.deque()
        self._sent: dict[str, int] = {}
        self._queued: dict[str, int] = {}
        self._closed: set[str] = set()
        self._flushed: dict[str, asyncio.Event] = {}
        self._wake = asyncio.Event()
        self._plays_until = 0.0  # loop time at which the audio sent so far has played out in real time
        self._drains: dict[str, asyncio.TimerHandle] = {}  # tag -> its on_drain, due when it has played
        self._chunk_samples = (PACED_CHUNK_MS if pace else BURST_CHUNK_MS) * API_RATE // 1000

    def start(self, tasks: TaskOwner) -> None:
        """Start pacing (a task of the session's owner), when paced."""
        if self.pace:
            tasks.spawn(self._pace(), "paced output audio")

    def put(self, tag: str, pcm: np.ndarray, ids: dict[str, Any] | None = None) -> None:
        if not pcm.size:
            return
        self._chunks.append(_Chunk(tag, dict(ids or {}), to_wire(pcm, self.output_format()), int(pcm.size)))
        self._queued[tag] = self._queued.get(tag, 0) + int(pcm.size)
        self._sent.setdefault(tag, 0)
        self._flushed.setdefault(tag, asyncio.Event()).clear()
        if self.pace:
            self._wake.set()
        else:
            while self._chunks:
                self._send_next()

    def close(self, tag: str) -> None:
        self._closed.add(tag)
        if self._queued.get(tag, 0) == 0:
            self._finish(tag)

    def played(self, tag: str) -> int:
        return self._sent.get(tag, 0)

    def pending(self, tag: str | None = None) -> int:
        return sum(self._queued.values()) if tag is None else self._queued.get(tag, 0)

    def clear(self) -> dict[str, int]:
        """Barge-in: what was not sent yet is dropped (what was sent is the client's to truncate)."""
        tags = {t: self._sent.get(t, 0) for t in self._queued}
        for handle in self._drains.values():
            handle.cancel()
        self._drains.clear()
        self._plays_until = 0.0
        self._chunks.clear()
        for t in tags:
            self._queued.pop(t, None)
            self._sent.pop(t, None)
            self._closed.discard(t)
            self._flushed.pop(t, asyncio.Event()).set()
        return tags

    async def flushed(self, tag: str) -> None:
        event = self._flushed.get(tag)
        if event is not None and self._queued.get(tag, 0):
            await event.wait()

    def _send_next(self) -> None:
        chunk = self._chunks[0]
        take = min(self._chunk_samples, chunk.samples - chunk.sent)
        lo = chunk.sent * len(chunk.wire) // chunk.samples
        hi = (chunk.sent + take) * len(chunk.wire) // chunk.samples
        if self._sent.get(chunk.tag, 0) == 0 and self.on_start is not None:
            self.on_start(chunk.tag)
        if not self.muted and hi > lo:
            self.send({"type": "response.output_audio.delta", **chunk.ids,
                       "delta": base64.b64encode(chunk.wire[lo:hi]).decode()})
        chunk.sent += take
        now = asyncio.get_running_loop().time()
        self._plays_until = max(self._plays_until, now) + take / API_RATE
        self._sent[chunk.tag] = self._sent.get(chunk.tag, 0) + take
        self._queued[chunk.tag] -= take
        if chunk.sent >= chunk.samples:
            self._chunks.popleft()
        if self._queued[chunk.tag] == 0:
            self._flushed[chunk.tag].set()
            if chunk.tag in self._closed:
                self._finish(chunk.tag)

    def _finish(self, tag: str) -> None:
        sent = self._sent.pop(tag, 0)
        self._queued.pop(tag, None)
        self._closed.discard(tag)
        self._flushed.pop(tag, asyncio.Event()).set()
        if self.on_drain is None:
            return
        loop = asyncio.get_running_loop()
        if self._plays_until <= loop.time():
            self.on_drain(tag, sent)
        else:
            self._drains[tag] = loop.call_at(self._plays_until, self._drained, tag, sent)

    def _drained(self, tag: str, sent: int) -> None:
        self._drains.pop(tag, None)
        if self.on_drain is not None:
            self.on_drain(tag, sent)

    async def _pace(self) -> None:
        """Real time: chunk n of a stream leaves at its start + n chunk lengths; a gap restarts the clock."""
        loop = asyncio.get_running_loop()
        due: float | None = None
        while True:
            if not self._chunks:
                due = None
                self._wake.clear()
                await self._wake.wait()
                continue
            now = loop.time()
            if due is None or due < now - 0.2:
                due = now
            if due > now:
                await asyncio.sleep(due - now)
                continue
            self._send_next()
            due += self._chunk_samples / API_RATE
