"""The microphone as the call's audio source: 48 kHz mono s16 in 20 ms blocks, paced by the device's clock.

The PortAudio callback copies each block and hands it to the event loop with `call_soon_threadsafe` into a
bounded deque that drops the oldest block (it never grows). The outbound track awaits the next block, so the
device's clock paces the RTP stream and nothing can drift. If the device cannot run at 48 kHz the stream runs at
its own rate and each block is resampled once, here.

While the device sends nothing (a stream that stopped, being reopened by `StreamGuard`), `next_block` gives
silence in real time, so the call's audio and its recording keep their timeline.

What went wrong is counted for people (`talk`'s `/s`): `gaps` (and `gap_seconds`), the times a stream that had been
delivering went quiet for longer than `next_block`'s timeout, so what was said then was lost (a stream that has
not delivered since it opened is starting, and through a sound server that takes up to 2 s: not a gap); `dropped`,
the blocks thrown away because the call did not take them in time (not counted before it first asks for one: the
microphone opens before the call connects).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from voiceclient.audio.devices import close_stream, find_device, find_or_default, sounddevice, stream_failure
from voiceclient.audio.format import RTP_FRAME, RTP_RATE, rms_dbfs
from voiceclient.audio.resample import Resampler
from voiceclient.audio.sources import AudioSource
from voiceclient.errors import DeviceError

log = logging.getLogger(__name__)
BlockTap = Callable[[np.ndarray], np.ndarray]


class MicSource(AudioSource):
    """A device-paced source: `await next_block()` returns the next 20 ms (silence when muted)."""

    paced = True
    what = "microphone"

    def __init__(self, device: str | int | None = None, max_blocks: int = 10, process: BlockTap | None = None) -> None:
        self.spec = device  # what the user asked for (None: the default), looked up again on each reopen
        self.device = find_device(device, "input")
        self.max_blocks = max_blocks
        self.process = process  # e.g. echo cancellation, on the event loop, 20 ms at a time
        self.muted = False
        self.level_dbfs = float("-inf")
        self.blocks = 0
        self.dropped = 0
        self.gaps = 0
        self.gap_seconds = 0.0
        self.latency_s = 0.0
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self._rate = RTP_RATE
        self._resampler: Resampler | None = None
        self._pending = np.zeros(0, np.int16)
        self._stalled = False
        self._gap_since: float | None = None  # when the gap being counted began
        self._reading = False  # the call has asked for a block
        self._finished = False
        self.opened_at = 0.0
        self.last_callback = 0.0  # monotonic time of the device's last callback (written by PortAudio's thread)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._open()

    def _open(self) -> None:
        sd = sounddevice()
        self._rate, self._resampler, self._pending = RTP_RATE, None, np.zeros(0, np.int16)
        try:
            sd.check_input_settings(device=self.device.index, channels=1, dtype="int16", samplerate=RTP_RATE)
        except Exception:
            self._rate = int(self.device.default_rate)
            self._resampler = Resampler(self._rate, RTP_RATE)
            log.info("microphone %s runs at %d Hz; resampling to 48 kHz", self.device.name, self._rate)
        try:
            self._finished = False
            self.opened_at = time.monotonic()
            self._stream = sd.InputStream(
                device=self.device.index,
                channels=1,
                dtype="int16",
                samplerate=self._rate,
                blocksize=self._rate // 50,
                latency="low",
                callback=self._callback,
                finished_callback=self._on_finished,
            )
            self._stream.start()
            self.latency_s = float(self._stream.latency)
        except Exception as exc:
            raise DeviceError(f"cannot open microphone {self.device.name!r}: {exc}") from None

    def reopen(self) -> None:
        """Close the stream (if open), find the device again (the one asked for, else the default) and open it."""
        self.close()
        self.device = find_or_default(self.spec, "input")
        self._open()

    def failure(self, stall: float, startup: float) -> str | None:
        """Why the stream is not running, or None (also when it is closed on purpose)."""
        return stream_failure(self._stream, self._finished, self.opened_at, self.last_callback, stall, startup)

    def _on_finished(self) -> None:
        self._finished = True

    def _callback(self, indata: np.ndarray, frames: int, at: Any, status: Any) -> None:
        self.last_callback = time.monotonic()
        block = indata[:, 0].copy()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._push, block)

    def _push(self, block: np.ndarray) -> None:
        if self._resampler is not None:
            block = np.concatenate([self._pending, self._resampler.process(block)])
            whole = block.size // RTP_FRAME * RTP_FRAME
            self._pending = block[whole:]
            chunks = [block[i : i + RTP_FRAME] for i in range(0, whole, RTP_FRAME)]
        else:
            chunks = [block]
        for chunk in chunks:
            if chunk.size != RTP_FRAME:
                continue
            if len(self._queue) >= self.max_blocks:
                self._queue.popleft()
                if self._reading:
                    self.dropped += 1
            self._queue.append(chunk)
        self._ready.set()

    async def next_block(self, timeout: float = 0.1) -> np.ndarray:
        """The next 20 ms block (a silent one if the device is late by `timeout`; then one every 20 ms while it
        stays silent: a gap, if the stream had been delivering)."""
        self._reading = True
        while not self._queue:
            self._ready.clear()
            try:  # (asyncio.timeout, not wait_for: 3.11's wait_for can drop a cancel that comes as the wait ends)
                async with asyncio.timeout(0.02 if self._stalled else timeout):
                    await self._ready.wait()
            except TimeoutError:
                if not self._stalled and self.last_callback >= self.opened_at:  # it had been delivering
                    self.gaps += 1
                    self._gap_since = time.monotonic() - timeout
                self._stalled = True
                return np.zeros(RTP_FRAME, np.int16)
        if self._gap_since is not None:
            self.gap_seconds += time.monotonic() - self._gap_since
            self._gap_since = None
        self._stalled = False
        block = self._queue.popleft()
        self.blocks += 1
        self.level_dbfs = rms_dbfs(block)
        if self.process is not None:
            block = self.process(block)
        return np.zeros(RTP_FRAME, np.int16) if self.muted else block

    def read(self, n: int) -> np.ndarray:
        """The synchronous source interface (used only if a track does not await): whatever is queued."""
        return self._queue.popleft() if self._queue else np.zeros(n, np.int16)

    def close(self) -> None:
        if self._stream is not None:
            close_stream(self._stream, "microphone")
            self._stream = None
