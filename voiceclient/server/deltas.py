"""The WebSocket edge's output audio: `response.output_audio.delta` events, base64 in the session's output format.

A `PlayoutQueue` whose samples leave as delta events instead of RTP. By default a response's audio leaves as fast
as it is made, as the real service sends it (the client buffers and plays it, and truncates on barge-in); with
`pace=True` it leaves in real time, one chunk per chunk of time, so a client can be tested against audio that is
still arriving when the user barges in (the unsent rest is dropped then). `played(tag)` is what has been sent. The
queue holds audio at the output format's own rate (24 kHz PCM, or 8 kHz for G.711: the response engine resamples
each part once). Nothing here announces playout: there is no `output_audio_buffer.*` over a WebSocket. What the
server does after the audio (the idle timer) waits until the audio sent would have played at the client in real
time, not merely until it was sent.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import numpy as np

from voiceclient.audio.wire import wire_format
from voiceclient.server.playout import PlayoutQueue
from voiceclient.tasks import TaskOwner

BURST_CHUNK_MS = 100  # a delta of 4800 bytes of PCM16 24 kHz, 800 of G.711
PACED_CHUNK_MS = 40


class DeltaOutput(PlayoutQueue):
    announces_playout = False

    def __init__(
        self,
        send: Callable[[dict[str, Any], str], None],
        output_format: Callable[[], dict[str, Any]],
        pace: bool = False,
    ) -> None:
        """`send(ids, audio)`: one chunk, base64, as the session's event (`SessionPort.output_audio`: the session's
        dialect builds it)."""
        super().__init__()
        self.send = send
        self.output_format = output_format
        self.pace = pace
        self.muted = False  # an injected `stop_media`: audio is consumed but nothing is sent
        self._wake = asyncio.Event()  # audio was queued (the pacer waits for it)
        self._progress = asyncio.Event()  # audio left, or was dropped (`flushed` waits for it)
        self._plays_until = 0.0  # loop time at which the audio sent so far has played out in real time
        self._drains: dict[str, asyncio.TimerHandle] = {}  # tag -> its on_drain, due when it has played

    @property
    def rate(self) -> int:
        return wire_format(self.output_format()).rate

    def start(self, tasks: TaskOwner) -> None:
        """Start pacing (a task of the session's owner), when paced."""
        if self.pace:
            tasks.spawn(self._pace(), "paced output audio")

    def put(self, tag: str, pcm: np.ndarray, ids: dict[str, Any] | None = None) -> None:
        super().put(tag, pcm, ids)
        if self.pace:
            self._wake.set()
        else:
            while self.pending():
                self._send_chunk()

    def clear(self) -> dict[str, int]:
        """Barge-in: what was not sent yet is dropped (what was sent is the client's to truncate)."""
        for handle in self._drains.values():
            handle.cancel()
        self._drains.clear()
        self._plays_until = 0.0
        self._progress.set()
        return super().clear()

    async def flushed(self, tag: str) -> None:
        while self.pending(tag):
            self._progress.clear()
            await self._progress.wait()

    def _send_chunk(self) -> None:
        ms = PACED_CHUNK_MS if self.pace else BURST_CHUNK_MS
        fmt = wire_format(self.output_format())
        rate = fmt.rate
        n = min(rate * ms // 1000, self.pending())
        # Before taking: a tag that drains in this take waits until this chunk, too, has played.
        self._plays_until = max(self._plays_until, asyncio.get_running_loop().time()) + n / rate
        for _, pcm, ids in self.take(n):
            if not self.muted:
                delta = base64.b64encode(fmt.pack(pcm)).decode()
                self.send(ids, delta)
        self._progress.set()

    def drained(self, tag: str, played: int) -> None:
        loop = asyncio.get_running_loop()
        if self._plays_until <= loop.time():
            super().drained(tag, played)
        else:
            self._drains[tag] = loop.call_at(self._plays_until, self._drained_late, tag, played)

    def _drained_late(self, tag: str, played: int) -> None:
        self._drains.pop(tag, None)
        super().drained(tag, played)

    async def _pace(self) -> None:
        """Real time: chunk n of a stream leaves at its start + n chunk lengths; a gap restarts the clock."""
        loop = asyncio.get_running_loop()
        due: float | None = None
        while True:
            if not self.pending():
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
            self._send_chunk()
            due += PACED_CHUNK_MS / 1000
