"""The speaker: a ring buffer written by the receive task and read by the PortAudio output callback.

48 kHz mono s16 in 10 ms blocks, one stream opened for the whole call, with 100 ms of device buffer (`LATENCY`).
Each talk spurt is primed with ~40 ms before it starts (so jitter does not click); silent frames are skipped while
that much is buffered, and a cap (120 ms) trims delay that bursts build up, so the speaker stays near the prebuffer.
`flush()` silences the speaker within one block (barge-in); `drop_until(...)` discards audio still in flight for an
interrupted response.
Every block handed to the device can be passed to `reference` (the echo canceller's far end).

What went wrong is counted for people (`talk`'s `/s`): `gaps`, the times the speaker ran out of audio in the middle
of sound and the sound went on after it (a frame arrived late: a cut you may have heard; running out as an answer
ends, or in the silence between answers, is not one); `trimmed`, answer audio skipped because it piled up past the
cap (a burst after a hold-up); `device_stalls`, the times the device's callback came more than 30 ms late (the
machine was busy: the callbacks that catch up then take the buffer faster than audio arrives).

A sound server takes audio in bursts: PulseAudio's ALSA plugin runs the callback three times at once every 30 ms
(measured on the null sink here), so just before a burst the ring holds 20 ms less than it would with one block per
callback, and a frame 10 ms late was a cut. The speaker measures the largest burst the device takes (`burst_ms`)
and holds that much more than the prebuffer (`target_ms`), so the margin against a late frame is the prebuffer's
whatever the device's rhythm.

The prebuffer adapts as a jitter buffer does: each gap raises it by 20 ms (up to 100 ms), so a machine whose sound
server takes audio in bursts, or whose event loop runs late, is not cut again and again; after 30 s without a gap it
comes back down by 10 ms at a time. (The jitter of the network is the receive path's job, `voiceclient.rtc.jitter`:
what reaches the speaker comes at a steady pace.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from voiceclient.audio.devices import close_stream, find_device, find_or_default, sounddevice, stream_failure
from voiceclient.audio.format import RTP_RATE
from voiceclient.errors import DeviceError

log = logging.getLogger(__name__)
BLOCK = RTP_RATE // 100  # 10 ms
SILENT = 8  # a sample at most this far from zero is silence
RESUMED = 0.5  # seconds: sound coming back within this after the speaker ran out mid-sound makes it a gap
# The device's own buffer, in seconds. PortAudio's "low" is 20 ms through PulseAudio's ALSA plugin: a busy machine
# that runs the callback 20 ms late underruns it, and the sound server restarts the stream, which can stay silent
# for up to 2 s (measured beside 3 busy processes on 2 cores: 1.8-1.96 s silences, 3 or 4 per 8 s tone; none at
# 0.1 s). The ring buffer above it stays short (prebuffer, cap): only this adds delay.
LATENCY = 0.1
RAISE_MS = 20  # the prebuffer after a gap
MAX_PREBUFFER_MS = 100
CALM_S = 30.0  # seconds without a gap before the prebuffer comes down
LOWER_MS = 10
STALLED = 0.03  # a callback this much later than its block's length is a stall of the device's thread
TOGETHER = 0.002  # callbacks this close together are one burst of the device's
MAX_BURST = RTP_RATE * 60 // 1000  # a burst counted at most this long (a catch-up after a stall is not the rhythm)


class SpeakerSink:
    what = "speaker"

    def __init__(
        self,
        device: str | int | None = None,
        prebuffer_ms: int = 40,
        cap_ms: int = 120,
        reference: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        self.spec = device  # what the user asked for (None: the default), looked up again on each reopen
        self.device = find_device(device, "output")
        self.prebuffer = RTP_RATE * prebuffer_ms // 1000
        self.base_prebuffer = self.prebuffer
        self.device_stalls = 0
        self._last_gap = 0.0
        self.cap = RTP_RATE * cap_ms // 1000
        self.reference = reference
        self.gaps = 0
        self.trimmed = 0
        self.dropped = 0
        self.skipped_silence = 0
        self.played_blocks = 0
        self.dropping = False
        self.latency_s = 0.0
        self._buf = np.zeros(0, np.int16)
        self._priming = True
        self._sounding = False  # the last block played had sound in it
        self._ran_out_at: float | None = None  # when the speaker ran out in the middle of sound
        self._lock = threading.Lock()
        self._stream: Any = None
        self._finished = False
        self.opened_at = 0.0
        self.last_callback = 0.0  # monotonic time of the device's last callback (written by PortAudio's thread)
        self.burst = BLOCK  # the most the device has taken at once, in samples (one block: it has not been seen)
        self._taking: int | None = None  # what the device has taken in its current burst (None: not counted)

    def start(self) -> None:
        sd = sounddevice()
        try:
            self._finished = False
            self.opened_at = time.monotonic()
            self.burst, self._taking, self.last_callback = BLOCK, None, 0.0  # (another device: its own rhythm)
            self._stream = sd.OutputStream(
                device=self.device.index,
                channels=1,
                dtype="int16",
                samplerate=RTP_RATE,
                blocksize=BLOCK,
                latency=LATENCY,
                callback=self._callback,
                finished_callback=self._on_finished,
            )
            self._stream.start()
            self.latency_s = float(self._stream.latency)
        except Exception as exc:
            raise DeviceError(f"cannot open speaker {self.device.name!r}: {exc}") from None

    def reopen(self) -> None:
        """Close the stream (if open), find the device again (the one asked for, else the default) and open it;
        what was buffered is dropped (it is late now)."""
        self.close()
        self.device = find_or_default(self.spec, "output")
        self.flush()
        self.start()

    def failure(self, stall: float, startup: float) -> str | None:
        """Why the stream is not running, or None (also when it is closed on purpose)."""
        return stream_failure(self._stream, self._finished, self.opened_at, self.last_callback, stall, startup)

    def _on_finished(self) -> None:
        self._finished = True

    # The receive task's side ------------------------------------------------------------------------------
    def __call__(self, pcm: np.ndarray, pts: int | None = None, arrival: float | None = None) -> None:
        """A decoded 48 kHz mono frame (an InboundReader tap)."""
        if self.dropping:
            self.dropped += pcm.size
            return
        with self._lock:
            now = time.monotonic()
            if self._ran_out_at is not None:  # sound right after running out mid-sound: a cut, not an ending
                if now - self._ran_out_at < RESUMED and np.any(np.abs(pcm) > SILENT):
                    self.gaps += 1
                    self._last_gap = now
                    self.prebuffer = min(self.prebuffer + RTP_RATE * RAISE_MS // 1000, self._max_prebuffer)
                self._ran_out_at = None
            elif self.prebuffer > self.base_prebuffer and now - self._last_gap > CALM_S:
                self.prebuffer = max(self.base_prebuffer, self.prebuffer - RTP_RATE * LOWER_MS // 1000)
                self._last_gap = now  # (the next step down after as long again)
            target = self._target
            if self._buf.size >= target and not np.any(np.abs(pcm) > SILENT):
                # A silent frame while enough is buffered: skip it, so delay built up by jitter drains away
                # in the pauses instead of staying for the rest of the call (the server sends silence too).
                self.skipped_silence += pcm.size
                return
            self._buf = np.concatenate([self._buf, pcm]) if self._buf.size else pcm.copy()
            if self._buf.size > self.cap + target - self.prebuffer:  # (the cap is beyond the burst too)
                excess = self._buf.size - target
                self._buf = self._buf[excess:]
                self.trimmed += excess

    def flush(self) -> None:
        """Silence now: whatever is buffered is dropped (the device plays at most the block it holds)."""
        with self._lock:
            self._buf = np.zeros(0, np.int16)
            self._priming = True
            self._ran_out_at = None  # (silenced on purpose: not a gap)

    @property
    def _max_prebuffer(self) -> int:
        return min(RTP_RATE * MAX_PREBUFFER_MS // 1000, self.cap - RTP_RATE // 50)

    @property
    def _target(self) -> int:
        """What a talk spurt is primed with: the prebuffer, beyond what the device takes in one burst."""
        return self.prebuffer + self.burst - BLOCK

    @property
    def prebuffer_ms(self) -> float:
        return self.prebuffer * 1000 / RTP_RATE

    @property
    def burst_ms(self) -> float:
        """The most the device has taken at once (10 ms: one block per callback)."""
        return self.burst * 1000 / RTP_RATE

    @property
    def target_ms(self) -> float:
        return self._target * 1000 / RTP_RATE

    @property
    def buffered_ms(self) -> float:
        return self._buf.size * 1000 / RTP_RATE

    @property
    def trimmed_ms(self) -> float:
        """Answer audio skipped because it piled up past the cap."""
        return self.trimmed * 1000 / RTP_RATE

    # The device's side ------------------------------------------------------------------------------------
    def _callback(self, outdata: np.ndarray, frames: int, at: Any, status: Any) -> None:
        now = time.monotonic()
        since = now - self.last_callback if self.last_callback else None
        if since is None or since > frames / RTP_RATE + STALLED:
            if since is not None:
                self.device_stalls += 1
            self._taking = None  # (the device filling its buffer, at the start or after a stall: not its rhythm)
        elif since >= TOGETHER:
            self._taking = frames
        elif self._taking is not None:
            self._taking += frames
            self.burst = max(self.burst, min(self._taking, MAX_BURST))
        self.last_callback = now
        with self._lock:
            if self._priming and self._buf.size >= self._target:
                self._priming = False
            if not self._priming and self._buf.size < frames:  # ran out: prime again before playing on
                if self._sounding:
                    self._ran_out_at = self.last_callback
                self._priming = True
                block = np.concatenate([self._buf, np.zeros(frames - self._buf.size, np.int16)])
                self._buf = np.zeros(0, np.int16)
            elif self._priming:
                block = np.zeros(frames, np.int16)
            else:
                block = self._buf[:frames].copy()
                self._buf = self._buf[frames:]
            self._sounding = bool(np.any(np.abs(block) > SILENT))
        outdata[:, 0] = block
        self.played_blocks += 1
        if self.reference is not None:
            try:
                self.reference(block)
            except Exception:
                log.exception("echo reference failed")

    def close(self) -> None:
        if self._stream is not None:
            close_stream(self._stream, "speaker")
            self._stream = None
