"""Time-scaling of speech by whole pitch periods, as NetEq's accelerate and preemptive expand do.

A jitter buffer that holds too much audio must play some of it faster, and one that holds too little must play some
slower, without a click and without changing the pitch. Voiced speech is nearly periodic, so removing or repeating
exactly one period (found by autocorrelation) with a cross-fade over it leaves a waveform that continues naturally;
silence is simply shortened or padded, and noise-like frames (no clear period) are left alone. Works on one frame
at a time (20 ms at 48 kHz), so the period found is at most half a frame (10 ms: voices above 100 Hz; lower ones
wait for a pause).
"""

from __future__ import annotations

import numpy as np

RATE = 48_000
MIN_LAG = RATE // 400  # 2.5 ms: a 400 Hz voice
MAX_LAG = RATE // 100  # 10 ms: a 100 Hz voice
DECIMATE = 4  # the period is searched at 12 kHz, then refined at full rate
SILENT_PEAK = 200  # int16: below this (-44 dBFS) a frame is a pause
VOICED = 0.7  # normalised correlation above which a frame is periodic enough to stretch


def is_silent(pcm: np.ndarray) -> bool:
    return bool(pcm.size == 0 or int(np.abs(pcm).max()) < SILENT_PEAK)


def pitch_lag(pcm: np.ndarray, max_lag: int = MAX_LAG) -> tuple[int, float]:
    """(the period in samples, its normalised correlation) of a frame; correlation 0 when there is none."""
    max_lag = min(max_lag, pcm.size // 2)
    if max_lag < MIN_LAG:
        return 0, 0.0
    x = pcm[: 2 * max_lag].astype(np.float64)
    coarse = x[::DECIMATE]
    span = max_lag // DECIMATE
    lags = np.arange(MIN_LAG // DECIMATE, span + 1)
    ref = coarse[:span]
    windows = np.lib.stride_tricks.sliding_window_view(coarse, span)[lags]
    dots = windows @ ref
    energy = np.sqrt(np.einsum("ij,ij->i", windows, windows) * float(ref @ ref)) + 1e-9
    best = int(lags[int(np.argmax(dots / energy))]) * DECIMATE
    candidates = range(max(MIN_LAG, best - DECIMATE), min(max_lag, best + DECIMATE) + 1)
    scored = [(_correlation(x, lag), lag) for lag in candidates]
    corr, lag = max(scored)
    return lag, corr


def _correlation(x: np.ndarray, lag: int) -> float:
    a, b = x[:lag], x[lag : 2 * lag]
    denominator = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / denominator if denominator > 0 else 0.0


def _fade(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """From `a` to `b` (equal lengths) with a linear cross-fade."""
    ramp = np.linspace(0.0, 1.0, a.size, endpoint=False)
    return (a.astype(np.float64) * (1 - ramp) + b.astype(np.float64) * ramp).astype(np.int16)


def accelerate(pcm: np.ndarray, most: int) -> np.ndarray:
    """The frame with one pitch period (no more than `most` samples) removed; unchanged if it is not periodic.
    A pause is cut by `most` outright."""
    if is_silent(pcm):
        return pcm[: max(0, pcm.size - most)]
    lag, corr = pitch_lag(pcm, max_lag=min(MAX_LAG, most))
    if corr < VOICED or lag == 0:
        return pcm
    return np.concatenate([_fade(pcm[:lag], pcm[lag : 2 * lag]), pcm[2 * lag :]])


def expand(pcm: np.ndarray, most: int) -> np.ndarray:
    """The frame with whole pitch periods (together no more than `most` samples) repeated; unchanged if it is not
    periodic. A pause is lengthened by `most` of silence."""
    if is_silent(pcm):
        return np.concatenate([pcm, np.zeros(most, np.int16)])
    lag, corr = pitch_lag(pcm, max_lag=min(MAX_LAG, most))
    if corr < VOICED or lag == 0:
        return pcm
    period = _fade(pcm[lag : 2 * lag], pcm[:lag])  # ends where pcm[lag] begins: it can follow itself's start
    repeats = [period] + [_fade(pcm[lag : 2 * lag], pcm[:lag]) for _ in range(most // lag - 1)]
    return np.concatenate([pcm[:lag], *repeats, pcm[lag:]])
