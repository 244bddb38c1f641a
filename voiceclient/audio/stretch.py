"""Time-scaling of speech without changing its pitch: by whole pitch periods, as NetEq's accelerate and preemptive
expand do, for the jitter buffer; by WSOLA for a whole answer.

A jitter buffer that holds too much audio must play some of it faster, and one that holds too little must play some
slower, without a click and without changing the pitch. Voiced speech is nearly periodic, so removing or repeating
exactly one period (found by autocorrelation) with a cross-fade over it leaves a waveform that continues naturally;
silence is simply shortened or padded, and noise-like frames (no clear period) are left alone. Works on one frame
at a time (20 ms at 48 kHz), so the period found is at most half a frame (10 ms: voices above 100 Hz; lower ones
wait for a pause).

A whole answer played at another speed (the session's `audio.output.speed`) is `time_scale`: WSOLA, the same idea
spread over every piece of the answer instead of one period now and then.
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


# ------------------------------------------------------------------------------------------ a whole answer
WSOLA_FRAME_MS = 30  # each piece is two 15 ms halves (two periods of a 133 Hz voice)
WSOLA_SEEK_MS = 8  # how far a piece may move to line up with the last one (one period of a 125 Hz voice)


def time_scale(pcm: np.ndarray, speed: float, rate: int) -> np.ndarray:
    """`pcm` played `speed` times as fast (shorter above 1, longer below) at the same pitch: WSOLA.

    The output is built of overlapping Hann-windowed pieces, one every half piece. Each is taken from where the
    input is at that point of the output (`speed` times as far in), moved by up to `WSOLA_SEEK_MS` to where it
    best matches the input that followed the previous piece (by cross-correlation), so the overlap adds in phase:
    no clicks, the waveform's periods unchanged. Silence and noise go through it the same way. Speed 1
    returns `pcm` itself; the result has round(n / speed) samples."""
    if speed == 1.0 or pcm.size == 0:
        return pcm
    half = rate * WSOLA_FRAME_MS // 2000
    frame, seek = 2 * half, rate * WSOLA_SEEK_MS // 1000
    length = round(pcm.size / speed)
    pieces = -(-length // half) + 2
    lead = half + seek  # zeros before the input: the first piece starts half a piece before it
    tail = int(pieces * half * speed) + frame + 2 * seek - pcm.size
    x = np.concatenate([np.zeros(lead), pcm.astype(np.float64), np.zeros(max(0, tail) + frame)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)  # periodic Hann: halves add up to 1
    y = np.zeros((pieces + 1) * half)
    previous = lead - half
    for k in range(pieces):
        nominal = lead - half + int(round(k * half * speed))  # the piece centred on output k*half
        if k == 0:
            start = nominal
        else:
            follows = x[previous + half : previous + half + frame]  # what came after the previous piece
            region = x[nominal - seek : nominal + seek + frame]
            start = nominal - seek + int(np.argmax(np.correlate(region, follows, "valid")))
        y[k * half : k * half + frame] += x[start : start + frame] * window
        previous = start
    out = y[half : half + length]
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)
