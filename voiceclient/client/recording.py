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


class MediaClock:
    """Where a stream's frames are in time: by their `pts`, anchored on the earliest-stamped frame.

    A frame's stamp is when our event loop got to it, so it is late by whatever lag the loop had then (never
    early); its `pts` is where the sender put it. The stamp minus the pts is smallest for the frame the loop
    handled at once, so that frame anchors the stream, and the lag at any one frame does not move it. As the
    recording places frames (`voiceclient.audio.sinks.TimelineLane`). A pts that goes back, or jumps more than
    a minute, is a new stream (a new connection), anchored afresh."""

    MAX_GAP = RTP_RATE * 60

    def __init__(self) -> None:
        self.anchor: float | None = None  # monotonic seconds at pts 0
        self._last: int | None = None

    def end_of(self, samples: int, pts: int | None, at: float) -> float:
        """When the frame of `samples` with `pts`, stamped `at`, ends on the stream's clock."""
        if pts is None:
            return at
        start = at - (pts + samples) / RTP_RATE
        last, self._last = self._last, pts
        if self.anchor is None or last is None or pts < last or pts - last > self.MAX_GAP:
            self.anchor = start
        else:
            self.anchor = min(self.anchor, start)
        return self.anchor + (pts + samples) / RTP_RATE


@dataclass
class TurnMeter:
    """Per-turn latency from the end of the user's speech (the end of the last loud frame sent) to the first
    sound of the answer (the start of the first loud frame received), and seconds of audio each way.

    Both instants are on the streams' own clocks (`MediaClock`), as the recording has them, not when our event
    loop got to the frames: a busy loop stamps a frame late, and that lag is ours, not the call's."""

    latencies: list[float] = field(default_factory=list)
    sent_seconds: float = 0.0
    received_seconds: float = 0.0
    speech_sent_seconds: float = 0.0
    speech_received_seconds: float = 0.0
    _last_loud_sent: float | None = None
    _waiting: bool = False
    _sent_clock: MediaClock = field(default_factory=MediaClock)
    _received_clock: MediaClock = field(default_factory=MediaClock)

    def sent(self, pcm: np.ndarray, pts: int | None, at: float) -> None:
        self.sent_seconds += FRAME_MS / 1000
        end = self._sent_clock.end_of(pcm.size, pts, at)
        if rms_dbfs(pcm) > LOUD_DBFS:
            self.speech_sent_seconds += FRAME_MS / 1000
            self._last_loud_sent = end
            self._waiting = True

    def received(self, pcm: np.ndarray, pts: int | None, at: float) -> None:
        self.received_seconds += pcm.size / RTP_RATE
        start = self._received_clock.end_of(pcm.size, pts, at) - pcm.size / RTP_RATE
        if rms_dbfs(pcm) > LOUD_DBFS:
            self.speech_received_seconds += pcm.size / RTP_RATE
            if self._waiting and self._last_loud_sent is not None:
                self.latencies.append(start - self._last_loud_sent)
                self._waiting = False
