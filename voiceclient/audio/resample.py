"""Streaming resampling of int16 mono PCM (libswresample through PyAV: ~1 ms of delay, no chunk-edge clicks)."""

from __future__ import annotations

import av
import numpy as np


class Resampler:
    """Stateful: feed consecutive chunks of one stream; `flush()` returns the held-back tail."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._r = av.AudioResampler(format="s16", layout="mono", rate=out_rate) if in_rate != out_rate else None

    def process(self, pcm: np.ndarray) -> np.ndarray:
        if self._r is None or pcm.size == 0:
            return pcm.astype(np.int16, copy=False)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.in_rate
        return self._collect(self._r.resample(frame))

    def flush(self) -> np.ndarray:
        if self._r is None:
            return np.zeros(0, np.int16)
        out = self._collect(self._r.resample(None))
        self._r = av.AudioResampler(format="s16", layout="mono", rate=self.out_rate)
        return out

    @staticmethod
    def _collect(frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros(0, np.int16)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16, copy=False)


def resample(pcm: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole buffer at once."""
    r = Resampler(in_rate, out_rate)
    return np.concatenate([r.process(pcm), r.flush()])
