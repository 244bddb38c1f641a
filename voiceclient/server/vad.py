"""Server VAD on the received audio: energy based, honouring the session's `turn_detection` fields.

`threshold` (0..1) maps linearly to a frame level of -70 dBFS (0.0) .. -20 dBFS (1.0); the default 0.5 is
-45 dBFS. Speech starts after 2 consecutive frames above it (40 ms, so a click does not start a turn) and stops
after `silence_duration_ms` below it. `semantic_vad` is approximated by a pause length from its eagerness
(high 300 ms, auto/medium 600 ms, low 1200 ms); the real one uses a turn-end model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio.format import API_FRAME, API_RATE, rms_dbfs

EAGERNESS_PAUSE_MS = {"high": 300, "auto": 600, "medium": 600, "low": 1200}
START_FRAMES = 2


@dataclass
class VadEvent:
    kind: str  # "started" | "stopped"
    ms: int  # audio_start_ms (with prefix padding) or audio_end_ms, from the start of the session's audio


class EnergyVad:
    def __init__(self, turn_detection: dict[str, Any] | None) -> None:
        self.configure(turn_detection)
        self.speaking = False
        self._above = 0
        self._below_ms = 0
        self._first_above_ms = 0
        self._pending = np.zeros(0, np.int16)
        self.position_ms = 0

    def configure(self, td: dict[str, Any] | None) -> None:
        self.enabled = td is not None
        td = td or {}
        if td.get("type") == "semantic_vad":
            self.threshold_db = -45.0
            self.prefix_ms = 300
            self.silence_ms = EAGERNESS_PAUSE_MS.get(td.get("eagerness") or "auto", 600)
        else:
            threshold = td.get("threshold", 0.5)
            self.threshold_db = -70.0 + 50.0 * float(0.5 if threshold is None else threshold)
            prefix, silence = td.get("prefix_padding_ms"), td.get("silence_duration_ms")
            self.prefix_ms = 300 if prefix is None else int(prefix)
            self.silence_ms = 200 if silence is None else int(silence)

    def reset(self) -> None:
        self.speaking = False
        self._above = 0
        self._below_ms = 0

    def feed(self, pcm: np.ndarray) -> list[VadEvent]:
        """Feed 24 kHz mono audio; returns the start/stop events it completes (in order)."""
        events: list[VadEvent] = []
        data = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        frame_ms = API_FRAME * 1000 // API_RATE
        n = data.size // API_FRAME
        for i in range(n):
            frame = data[i * API_FRAME:(i + 1) * API_FRAME]
            loud = rms_dbfs(frame) > self.threshold_db
            if self.enabled:
                if not self.speaking:
                    if loud:
                        if self._above == 0:
                            self._first_above_ms = self.position_ms
                        self._above += 1
                        if self._above >= START_FRAMES:
                            self.speaking = True
                            self._below_ms = 0
                            events.append(VadEvent("started", max(0, self._first_above_ms - self.prefix_ms)))
                    else:
                        self._above = 0
                else:
                    self._below_ms = 0 if loud else self._below_ms + frame_ms
                    if self._below_ms >= max(self.silence_ms, frame_ms):
                        self.speaking = False
                        self._above = 0
                        events.append(VadEvent("stopped", self.position_ms + frame_ms))
            self.position_ms += frame_ms
        self._pending = data[n * API_FRAME:].copy()
        return events
