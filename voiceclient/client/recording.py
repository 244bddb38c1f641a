"""What a call leaves on disk and in its summary: the JSONL event log and per-turn metrics.

The event log writes one line per event, flushed at once, so it is valid whenever the process stops. Secrets
(`authorization` values and MCP `headers`) are redacted before anything is written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from voiceclient.audio.format import FRAME_MS, RTP_RATE, rms_dbfs
from voiceclient.protocol.session import redact_secrets

LOUD_DBFS = -45.0


class EventLog:
    """`{"t": seconds since start, "dir": "client"|"server", "event": {...}}` per line."""

    def __init__(self, path: str | Path, t0: float | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic() if t0 is None else t0
        self._f: IO[str] | None = open(self.path, "w", encoding="utf-8")
        self.count = 0

    def write(self, direction: str, event: Any) -> None:
        if self._f is None:
            return
        line = {"t": round(time.monotonic() - self.t0, 4), "dir": direction, "event": redact_secrets(event)}
        self._f.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")
        self._f.flush()
        self.count += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


@dataclass
class TurnMeter:
    """Per-turn latency from the end of the user's speech (last loud frame sent) to the first loud frame of
    assistant audio received, and seconds of audio each way."""

    latencies: list[float] = field(default_factory=list)
    sent_seconds: float = 0.0
    received_seconds: float = 0.0
    speech_sent_seconds: float = 0.0
    speech_received_seconds: float = 0.0
    _last_loud_sent: float | None = None
    _waiting: bool = False

    def sent(self, pcm: np.ndarray, pts: int | None, at: float) -> None:
        self.sent_seconds += FRAME_MS / 1000
        if rms_dbfs(pcm) > LOUD_DBFS:
            self.speech_sent_seconds += FRAME_MS / 1000
            self._last_loud_sent = at
            self._waiting = True

    def received(self, pcm: np.ndarray, pts: int | None, at: float) -> None:
        self.received_seconds += pcm.size / RTP_RATE
        if rms_dbfs(pcm) > LOUD_DBFS:
            self.speech_received_seconds += pcm.size / RTP_RATE
            if self._waiting and self._last_loud_sent is not None:
                self.latencies.append(at - self._last_loud_sent)
                self._waiting = False
