"""Echo cancellation for laptop speakers: WebRTC's AEC3 through livekit's `AudioProcessingModule` (the optional
`aec` extra), so the assistant does not hear itself.

The far end is exactly what is handed to the speaker (`reference`, 10 ms blocks, from the output callback's
thread); the near end is each microphone block (`process`, on the event loop). The delay between the two comes
from the streams' reported latencies. Without the extra, `EchoCanceller.available()` is False and `talk` says so.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from livekit.rtc import AudioFrame

from voiceclient.audio.format import RTP_RATE

log = logging.getLogger(__name__)
BLOCK = RTP_RATE // 100  # the module works on 10 ms frames only


class EchoCanceller:
    def __init__(self, delay_ms: int = 0, noise_suppression: bool = False) -> None:
        from livekit import rtc

        self._rtc = rtc
        self.noise_suppression = noise_suppression
        self.apm = rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=noise_suppression, high_pass_filter=True, auto_gain_control=False
        )
        self.delay_ms = delay_ms
        self.apm.set_stream_delay_ms(delay_ms)
        self._lock = threading.Lock()
        self._pending_ref = np.zeros(0, np.int16)

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("livekit") is not None and importlib.util.find_spec("livekit.rtc") is not None

    def restart(self, delay_ms: int) -> None:
        """The streams were reopened (a new device, a sound server back): the echo path is a new one, so the
        canceller starts again from the new delay instead of adapting from the old path."""
        with self._lock:
            self.apm = self._rtc.AudioProcessingModule(
                echo_cancellation=True,
                noise_suppression=self.noise_suppression,
                high_pass_filter=True,
                auto_gain_control=False,
            )
            self.delay_ms = delay_ms
            self.apm.set_stream_delay_ms(delay_ms)
            self._pending_ref = np.zeros(0, np.int16)

    def set_delay(self, delay_ms: int) -> None:
        with self._lock:
            self.delay_ms = delay_ms
            self.apm.set_stream_delay_ms(delay_ms)

    def _frame(self, pcm: np.ndarray) -> AudioFrame:
        return self._rtc.AudioFrame(pcm.astype(np.int16).tobytes(), RTP_RATE, 1, pcm.size)

    def reference(self, block: np.ndarray) -> None:
        """Far end: the samples the speaker is about to play (any length; fed on in 10 ms frames)."""
        data = np.concatenate([self._pending_ref, block]) if self._pending_ref.size else block
        whole = data.size // BLOCK * BLOCK
        with self._lock:
            for i in range(0, whole, BLOCK):
                self.apm.process_reverse_stream(self._frame(data[i : i + BLOCK]))
        self._pending_ref = data[whole:].copy()

    def process(self, block: np.ndarray) -> np.ndarray:
        """Near end: a microphone block (a multiple of 10 ms) with the echo removed."""
        out = np.empty_like(block)
        with self._lock:
            for i in range(0, block.size - block.size % BLOCK, BLOCK):
                frame = self._frame(block[i : i + BLOCK])
                self.apm.process_stream(frame)
                out[i : i + BLOCK] = np.frombuffer(bytes(frame.data), np.int16)
        rest = block.size % BLOCK
        if rest:
            out[-rest:] = block[-rest:]
        return out
