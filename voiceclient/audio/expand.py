"""Concealment of a long burst of loss, as libwebrtc's NetEq does it (its Expand and Merge), in numpy.

    expander = Expander()
    expander.played(pcm)              # every frame the receiver plays, real or concealed
    out = expander.conceal(plc)       # a lost frame: libopus's concealment `plc` for the first of a burst, then ours
    out = expander.join(pcm)          # the first real frame after a loss, joined without a jump in the waveform

libopus's packet loss concealment is good for one or two lost frames (it continues the decoder's own state, and its
first concealed samples finish the last frame's overlap), but fades to silence within a frame or two (on a steady
voiced tone in SILK mode, 10 ms into the first lost frame: `tests/test_expand.py`). NetEq (what
Chromium plays with) does not use the codec's concealment for Opus at all, by default: its Expand continues the
signal itself, and that holds up for a burst of 100-200 ms. What is kept of it here, in the parts that matter:

- **Pitch-period repetition.** The period of the last audio played is found by normalised autocorrelation (2.5 to
  15 ms); the last period is repeated, cross-faded into the one before it so that it follows itself without a jump
  and follows the last sample played as the signal itself would.
- **A noise part.** A frame that is not periodic (a fricative) is continued by noise of its own spectrum (the last
  20 ms's magnitude spectrum with random phases); a partly voiced one by a mix, weighted by the correlation.
- **A mute factor.** Full level for `HOLD_MS`, then a linear fade to nothing over `FADE_MS`, faster when the level
  was already falling before the burst (NetEq mutes at a rate that grows after 30 and 70 ms, and faster for a
  decaying signal, down to its background noise estimate; our senders' pauses are near digital silence, so the
  floor here is silence).
- **Merge.** The real frame after the burst is cross-faded in from the expansion's continuation over `MERGE`.
  NetEq also moves the join by up to a period to meet the expansion's phase; that made no difference here (the
  replay's PESQ), and without it the played timeline never moves.

What stays libopus's: a burst's first `KEEP` frame (a lone lost packet: its concealment is better there, by the
replay's PESQ, and its first samples finish the last real frame's overlap), and any later frame while its
concealment still holds the level (`HANDOVER`). NetEq itself does not ask Opus to conceal (only with
the field trial `WebRTC-Audio-OpusGeneratePlc`), but here the decoder is still told of every lost frame
(`OpusDecoder.conceal()`), so it decodes the next packet from a state that knows of the loss, and FEC is used
exactly as before: this only replaces what is played.

Measured (`scripts/jitter_replay.py --set EXPAND=1`, docs/benchmarks.md): no better than libopus's concealment by
more than the seeds' spread, on bursty Wi-Fi or on long bursts, so `voiceclient.rtc.jitter.EXPAND` is off. PESQ
scores a long burst filled with silence within 0.01 of one filled by libopus or by this; what is lost in 100 ms
of speech cannot be predicted from what came before it.
"""

from __future__ import annotations

import numpy as np

RATE = 48_000
HISTORY = RATE * 50 // 1000  # the audio played last, analysed at a burst's start
MIN_LAG = RATE // 400  # 2.5 ms: a 400 Hz voice
MAX_LAG = RATE * 15 // 1000  # 15 ms: a 67 Hz voice
WINDOW = RATE * 10 // 1000  # the stretch correlated with the one a period before
DECIMATE = 4  # the period is searched at 12 kHz, then refined at full rate
NOISE_BLOCK = 8192  # samples of noise made at once (looped: 170 ms)
KEEP = 1  # the first lost frames of a burst that are libopus's own concealment in any case
HANDOVER = 0.5  # ...and any while the end of libopus's keeps this share of our expansion's level
TAIL = RATE * 5 // 1000  # (the end of a frame, where the levels are compared)
HOLD_MS = 20.0  # full level this long into our expansion
FADE_MS = 100.0  # then faded to nothing over this long
MERGE = RATE * 5 // 1000  # the cross-fade into the real frame after a burst
TREND = RATE * 20 // 1000  # the level's trend: the last 20 ms against the 20 ms before
DECAYING = 0.8  # a level that fell by more than this is a sound ending
VOICED = 0.5  # correlation under which a frame is taken as noise alone
SILENT_PEAK = 64  # int16: a history quieter than this is continued with silence


class Expander:
    """One stream's concealment of bursts: fed what is played, asked for what to play in place of a lost frame."""

    def __init__(self) -> None:
        self._history = np.zeros(HISTORY, np.float64)
        self._lost = 0  # lost frames in a row (the current burst)
        self._expanding = False  # the last frame played came from here (a join is due)
        self._cycle: np.ndarray | None = None  # one period, made to follow itself
        self._noise: np.ndarray | None = None
        self._voice = 0.0  # the periodic part's weight
        self._trend = 1.0  # the level's change per `WINDOW` just before the burst (under 1: a sound ending)
        self._position = 0  # samples of expansion made in this burst
        self.expanded = 0  # frames this expander concealed itself (not libopus)

    @property
    def lag(self) -> int:
        """The period being repeated (samples; 0 when none)."""
        return 0 if self._cycle is None else self._cycle.size

    def played(self, pcm: np.ndarray) -> None:
        """A frame that was played (decoded, stretched: whatever went out). What is played inside a burst is not
        taken: the expansion continues the real audio before it."""
        n = min(pcm.size, HISTORY)
        if n and not self._lost:
            self._history = np.concatenate([self._history[n:], pcm[-n:].astype(np.float64)])

    def conceal(self, plc: np.ndarray) -> np.ndarray:
        """What to play for a lost frame, `plc` being libopus's concealment of it (its length is the frame's):
        libopus's while it holds the level (its first samples finish the last real frame), ours once it fades."""
        self._lost += 1
        if self._lost == 1:
            self._analyse()
        own = self._generate(plc.size)
        if not self._expanding:
            tail = min(TAIL, plc.size)
            if self._lost <= KEEP or _rms(plc[-tail:]) >= HANDOVER * _rms(own[-tail:]):
                return plc
            self._expanding = True  # from libopus's concealment into ours (both continue the same audio)
            fade = min(MERGE, plc.size)
            ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
            own[:fade] = np.round(plc[:fade] * (1 - ramp) + own[:fade] * ramp).astype(np.int16)
        self.expanded += 1
        return own

    def join(self, pcm: np.ndarray) -> np.ndarray:
        """A real frame (decoded, or rebuilt from FEC): after our expansion, cross-faded from its continuation into
        the frame (the decoder, told of the loss, starts from its own faded concealment); else as it is. The
        frame keeps its length: the played timeline does not move."""
        lost, self._lost = self._lost, 0
        expanding, self._expanding = self._expanding, False
        if not expanding or not lost:
            return pcm
        fade = min(MERGE, pcm.size)
        ahead = self._generate(fade).astype(np.float64)
        self._cycle = self._noise = None
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
        out = pcm.copy()
        out[:fade] = np.clip(np.round(ahead * (1 - ramp) + pcm[:fade] * ramp), -32768, 32767).astype(np.int16)
        return out

    def reset(self) -> None:
        self._lost = 0
        self._expanding = False
        self._cycle = self._noise = None
        self._history[:] = 0.0

    # -- the expansion --------------------------------------------------------------------------------------------
    def _analyse(self) -> None:
        x = self._history
        self._position = 0
        self._noise = None
        if float(np.abs(x[-WINDOW:]).max()) < SILENT_PEAK:
            self._cycle, self._voice = None, 0.0
            return
        lag, corr = pitch(x)
        # A sound that was clearly dying away goes on dying away at its rate (NetEq mutes a decaying signal faster).
        trend = _rms(x[-TREND:]) / max(_rms(x[-2 * TREND : -TREND]), 1.0)
        self._trend = trend if trend < DECAYING else 1.0
        self._voice = float(np.clip((corr - VOICED) / (1 - VOICED), 0.0, 1.0)) if lag else 0.0
        if lag:
            last, before = x[-lag:], x[-2 * lag : -lag]
            # From the last period at its start to the one before it at its end: it follows the last sample played
            # (x[-lag] comes after x[-1] in a periodic signal) and its own end (x[-lag - 1] precedes x[-lag]).
            ramp = np.linspace(1.0, 0.0, lag, endpoint=False)
            self._cycle = last * ramp + before * (1 - ramp)
        else:
            self._cycle = None
        if self._voice < 1.0:
            self._noise = shaped_noise(x[-2 * WINDOW :], NOISE_BLOCK)

    def _generate(self, n: int) -> np.ndarray:
        start = self._position
        self._position += n
        idx = np.arange(start, start + n)
        out = np.zeros(n, np.float64)
        if self._cycle is not None and self._voice > 0:
            out += self._voice * self._cycle[idx % self._cycle.size]
        if self._noise is not None:
            out += np.sqrt(1.0 - self._voice**2) * self._noise[idx % self._noise.size]
        out *= gain(idx) * self._trend ** (idx / TREND)
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0


def gain(samples: np.ndarray) -> np.ndarray:
    """The mute factor at each sample of an expansion: 1 for `HOLD_MS`, then down to 0 over `FADE_MS`."""
    t = samples * (1000.0 / RATE)
    return np.clip(1.0 - (t - HOLD_MS) / FADE_MS, 0.0, 1.0)


def pitch(x: np.ndarray) -> tuple[int, float]:
    """(period in samples, normalised correlation) of the end of `x`: the last `WINDOW` samples against those
    one period before, searched coarsely at 12 kHz then at full rate; (0, 0.0) when `x` is too short."""
    if x.size < WINDOW + MAX_LAG + DECIMATE:
        return 0, 0.0
    coarse = x[-(WINDOW + MAX_LAG) :].reshape(-1, DECIMATE).mean(axis=1)
    w = WINDOW // DECIMATE
    ref = coarse[-w:]
    lags = np.arange(MIN_LAG // DECIMATE, MAX_LAG // DECIMATE + 1)
    windows = np.stack([coarse[-w - lag : coarse.size - lag] for lag in lags])
    scores = (windows @ ref) / (np.sqrt(np.einsum("ij,ij->i", windows, windows) * float(ref @ ref)) + 1e-9)
    best = int(lags[int(np.argmax(scores))]) * DECIMATE
    end = x[-WINDOW:]
    scored = []
    for lag in range(max(MIN_LAG, best - DECIMATE), min(MAX_LAG, best + DECIMATE) + 1):
        before = x[-WINDOW - lag : x.size - lag]
        denominator = float(np.sqrt((before @ before) * (end @ end)))
        scored.append((float(before @ end) / denominator if denominator > 0 else 0.0, lag))
    corr, lag = max(scored)
    return lag, corr


def shaped_noise(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` samples of noise with the magnitude spectrum and the level of `x` (random phases; loops seamlessly)."""
    window = np.hanning(x.size)
    spectrum = np.abs(np.fft.rfft(x * window))
    bins = np.fft.rfftfreq(n)
    magnitude = np.interp(bins, np.fft.rfftfreq(x.size), spectrum)
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, magnitude.size)
    noise = np.fft.irfft(magnitude * np.exp(1j * phases), n)
    rms = float(np.sqrt(np.mean(noise**2)))
    target = float(np.sqrt(np.mean(x**2)))
    return noise * (target / rms) if rms > 0 else noise
