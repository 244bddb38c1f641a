"""The PCM shapes voiceclient uses, and frame arithmetic.

- RTP side: 48 kHz, 20 ms frames (960 samples). aiortc's Opus encoder adds ~20 ms for any other rate.
- API side: 24 kHz mono s16, the Realtime API's own PCM format: recordings, WAV outputs, the public PCM API.
"""

from __future__ import annotations

import math

import numpy as np

RTP_RATE = 48_000
API_RATE = 24_000
FRAME_MS = 20
RTP_FRAME = RTP_RATE * FRAME_MS // 1000  # 960 samples
API_FRAME = API_RATE * FRAME_MS // 1000  # 480 samples


def ms_to_samples(ms: float, rate: int) -> int:
    return int(round(ms * rate / 1000))


def samples_to_ms(n: int, rate: int) -> int:
    return int(n * 1000 // rate)


def rms_dbfs(pcm: np.ndarray) -> float:
    """RMS level of int16 PCM in dB relative to full scale (-inf for digital silence)."""
    if pcm.size == 0:
        return float("-inf")
    x = pcm.reshape(-1).astype(np.float64)
    energy = float(np.dot(x, x)) / x.size  # a dot product: a fifth of the time of mean(square(x)) per frame
    return 10 * math.log10(energy / 32768.0**2) if energy > 0 else float("-inf")


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    """The frequency (Hz) of the strongest spectral peak, for checking tones by content."""
    if pcm.size < 16:
        return 0.0
    x = pcm.astype(np.float64) * np.hanning(pcm.size)
    spectrum = np.abs(np.fft.rfft(x))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    k = float(peak)
    if 0 < peak < spectrum.size - 1:  # parabolic interpolation between bins
        a, b, c = (float(spectrum[i]) for i in (peak - 1, peak, peak + 1))
        denom = a - 2 * b + c
        k += 0.5 * (a - c) / denom if denom else 0.0
    return k * rate / pcm.size


def tone(frequency: float, seconds: float, rate: int, level_dbfs: float = -12.0) -> np.ndarray:
    """A sine tone with 10 ms raised-cosine edges (no clicks), int16 mono."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    amp = 32767 * 10 ** (level_dbfs / 20)
    y = amp * np.sin(2 * np.pi * frequency * t)
    edge = min(n // 2, int(0.01 * rate))
    if edge:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
        y[:edge] *= ramp
        y[n - edge :] *= ramp[::-1]
    return y.astype(np.int16)
