"""Server VAD on the received audio, honouring the session's `turn_detection` fields.

The turn logic (`TurnDetector`) is separate from where the speech probability comes from:
- `EnergyProbability` (always available): a 20 ms frame's level mapped linearly from -70 dBFS (0.0) to -20 dBFS
  (1.0), so the default `threshold` 0.5 means -45 dBFS.
- `SileroProbability` (voiceclient.speech, the `agent` extra, through `OfflineSpeech.vad()`): Silero VAD v6 run by
  onnxruntime on 32 ms frames at 16 kHz.

Speech starts after 2 frames at or above `threshold`; it stops after `silence_duration_ms` below the release
level (`threshold`, or `threshold - 0.15` for a model). `audio_start_ms` includes `prefix_padding_ms`;
`audio_end_ms` includes the silence, as in the API.

With a model, the silence is counted from the end of the last frame that was both speech to the model and loud
(above the noise floor by `LOUD_ABOVE_FLOOR_DB`): Silero's probability lags the end of speech by 50-150 ms, and
counting from it would put that lag, varying from turn to turn, into every answer's delay. A turn then ends
`hangover_ms` (100 ms) after `silence_duration_ms`, so a pause inside a sentence (a comma's 150-250 ms, at the
default 200 ms) does not end it: a turn ends 300 ms after the last voiced sound, every time, instead of 250-360.

`semantic_vad` ([SDK] SemanticVad: "`low` will wait longer for the user to continue speaking, `high` will respond
more quickly ... `low`, `medium`, and `high` have max timeouts of 8s, 4s, and 2s"): no turn-end model, but when the
server can transcribe (`judging`), the turn handler transcribes the speech at each pause and says whether it sounds
finished (`turns.sounds_finished`). A finished-sounding pause ends the turn after the eagerness' short pause (high
300 ms, medium/auto 600 ms, low 1200 ms); until the verdict, and when it sounds unfinished, the turn ends only after
the eagerness' maximum (2, 4, 8 s) of silence. Without speech-to-text the short pause alone ends it (threshold 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from voiceclient.audio.format import API_RATE, rms_dbfs
from voiceclient.audio.resample import Resampler

EAGERNESS_PAUSE_MS = {"high": 300, "auto": 600, "medium": 600, "low": 1200}  # a finished-sounding pause
EAGERNESS_MAX_MS = {"high": 2000, "auto": 4000, "medium": 4000, "low": 8000}  # [SDK] SemanticVad.eagerness
START_FRAMES = 2
LOUD_ABOVE_FLOOR_DB = 12.0  # a frame is loud this far above the noise floor (and above -55 dBFS)


class SpeechProbability(Protocol):
    rate: int  # sample rate the model wants
    frame: int  # samples per frame at that rate
    hysteresis: float  # how far below the threshold speech must fall to count as silence
    hangover_ms: int  # added to `silence_duration_ms` before a turn ends (0: the silence alone)

    def __call__(self, frame: np.ndarray) -> float: ...
    def reset(self) -> None: ...


class EnergyProbability:
    rate = API_RATE
    frame = API_RATE // 50  # 20 ms
    hysteresis = 0.0
    hangover_ms = 0

    def __call__(self, frame: np.ndarray) -> float:
        return min(1.0, max(0.0, (rms_dbfs(frame) + 70.0) / 50.0))  # np.clip on a scalar cost 5x more

    def reset(self) -> None:
        pass


@dataclass
class VadEvent:
    kind: str  # "started" | "stopped"; "paused" / "resumed" for a pause inside speech (a turn may be ending)
    ms: int  # audio_start_ms (with prefix padding) or audio_end_ms, from the start of the session's audio


class TurnDetector:
    def __init__(self, turn_detection: dict[str, Any] | None, probability: SpeechProbability | None = None) -> None:
        self.prob: SpeechProbability = probability or EnergyProbability()
        self._resampler = Resampler(API_RATE, self.prob.rate) if self.prob.rate != API_RATE else None
        self.frame_ms = self.prob.frame * 1000 / self.prob.rate
        self.configure(turn_detection)
        self.speaking = False
        self._above = 0
        self._below_ms = 0.0
        self._first_above_ms = 0.0
        self._pending = np.zeros(0, np.int16)
        self.position_ms = 0.0
        self.last_probability = 0.0
        self.model = not isinstance(self.prob, EnergyProbability)  # a model's silence is aligned by energy
        self.noise_floor_db = -70.0
        self._speech_end_ms = 0.0  # end of the last frame that was speech and loud

    # ------------------------------------------------------------------------------------------ semantic_vad
    judging = False  # semantic_vad with a transcript to judge each pause by (set by the turn handler)
    finished: bool | None = None  # the verdict on the current pause: None until it comes

    @property
    def stop_ms(self) -> float:
        """The silence that ends a turn now: with semantic_vad and a judge, the short pause once the user sounds
        finished, else the eagerness' maximum."""
        if self.semantic and self.judging and not self.finished:
            return self.max_ms + self.prob.hangover_ms
        return self.silence_ms + self.prob.hangover_ms

    def configure(self, td: dict[str, Any] | None) -> None:
        self.enabled = td is not None
        td = td or {}
        self.semantic = td.get("type") == "semantic_vad"
        self.max_ms = 0
        if self.semantic:
            eagerness = td.get("eagerness") or "auto"
            self.threshold = 0.5
            self.prefix_ms = 300
            self.silence_ms = EAGERNESS_PAUSE_MS.get(eagerness, 600)
            self.max_ms = EAGERNESS_MAX_MS.get(eagerness, 4000)
        else:
            threshold, prefix, silence = td.get("threshold"), td.get("prefix_padding_ms"), td.get("silence_duration_ms")
            self.threshold = 0.5 if threshold is None else float(threshold)
            self.prefix_ms = 300 if prefix is None else int(prefix)
            self.silence_ms = 200 if silence is None else int(silence)
        self.release = max(0.0, self.threshold - self.prob.hysteresis)
        # A pause this long may end the turn: the server starts transcribing then, while it waits for the rest
        # of `silence_duration_ms`, and keeps the result if the user does not resume.
        self.pause_ms = min(150.0, self.silence_ms / 2)

    def reset(self) -> None:
        self.finished = None
        self.speaking = False
        self._above = 0
        self._below_ms = 0.0

    def feed(self, pcm: np.ndarray) -> list[VadEvent]:
        """Feed 24 kHz mono audio; returns the start/stop events it completes, in order."""
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        data = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        n = data.size // self.prob.frame
        events: list[VadEvent] = []
        for i in range(n):
            frame = data[i * self.prob.frame : (i + 1) * self.prob.frame]
            p = self.prob(frame)
            self.last_probability = p
            loud = True
            if self.model:
                level = rms_dbfs(frame)
                loud = level > max(-55.0, self.noise_floor_db + LOUD_ABOVE_FLOOR_DB)
                if p < 0.2:  # the floor follows what the model hears as no speech
                    self.noise_floor_db += 0.05 * (max(level, -90.0) - self.noise_floor_db)
            if self.enabled:
                self._step(p, loud, events)
            self.position_ms += self.frame_ms
        self._pending = data[n * self.prob.frame :].copy()
        return events

    def _step(self, p: float, loud: bool, events: list[VadEvent]) -> None:
        if not self.speaking:
            if p >= self.threshold:
                if self._above == 0:
                    self._first_above_ms = self.position_ms
                self._above += 1
                if self._above >= START_FRAMES:
                    self.speaking = True
                    self.finished = None
                    self._below_ms = 0.0
                    self._speech_end_ms = self.position_ms + self.frame_ms
                    events.append(VadEvent("started", int(max(0.0, self._first_above_ms - self.prefix_ms))))
            else:
                self._above = 0
        else:
            was_paused = self._below_ms >= self.pause_ms
            end = self.position_ms + self.frame_ms
            if p >= self.release and loud:
                self._speech_end_ms = end
            self._below_ms = end - self._speech_end_ms
            if was_paused and self._below_ms == 0.0:
                self.finished = None
                events.append(VadEvent("resumed", int(self.position_ms)))
            elif not was_paused and self._below_ms >= self.pause_ms and self._below_ms < self.stop_ms:
                events.append(VadEvent("paused", int(self.position_ms + self.frame_ms - self._below_ms)))
            if self._below_ms >= max(self.stop_ms, self.frame_ms):
                self.speaking = False
                self._above = 0
                self.finished = None
                events.append(VadEvent("stopped", int(self.position_ms + self.frame_ms)))
