"""Sinks that keep the call's timeline: silence where nothing arrived, files valid at every moment.

Frames are placed by their `pts` relative to the first one (anchored on its wall-clock arrival), so jitter does
not stretch the recording and a pause of the sender becomes silence of the same length.
"""

from __future__ import annotations

import itertools
import struct
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np

from voiceclient.audio.format import API_RATE, RTP_RATE
from voiceclient.audio.resample import Resampler

_FLUSH_BYTES = 16_384


class WavWriter:
    """16-bit PCM WAV whose header is rewritten after every flush, so the file is valid even if the process dies."""

    def __init__(self, path: str | Path, rate: int, channels: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rate = rate
        self.channels = channels
        self.frames = 0
        self._buf = bytearray()
        self._f: BinaryIO | None = open(self.path, "wb")
        self._write_header()

    def _write_header(self) -> None:
        assert self._f is not None
        data = self.frames * 2 * self.channels
        self._f.seek(0)
        self._f.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE")
        self._f.write(
            b"fmt "
            + struct.pack(
                "<IHHIIHH", 16, 1, self.channels, self.rate, self.rate * 2 * self.channels, 2 * self.channels, 16
            )
        )
        self._f.write(b"data" + struct.pack("<I", data))
        self._f.seek(0, 2)

    def write(self, interleaved: np.ndarray) -> None:
        if self._f is None:
            return
        self._buf += np.ascontiguousarray(interleaved, dtype="<i2").tobytes()
        if len(self._buf) >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._f is None or not self._buf:
            return
        self._f.seek(0, 2)
        self._f.write(self._buf)
        self.frames += len(self._buf) // (2 * self.channels)
        self._buf.clear()
        self._write_header()
        self._f.flush()

    @property
    def seconds(self) -> float:
        return (self.frames + len(self._buf) // (2 * self.channels)) / self.rate

    def close(self) -> None:
        if self._f is not None:
            self.flush()
            self._f.close()
            self._f = None


class TimelineLane:
    """Turns (pcm at 48 kHz, pts, arrival) into one contiguous 24 kHz stream starting at `t0`.

    The stream is anchored on the earliest-stamped of its first `HOLD` seconds of frames, which are held until
    then: a frame is stamped when our event loop gets to it, late by the loop's lag (most at the start of a call,
    while the connection is set up), and a late anchor would move the whole lane, and every latency read from
    it, by that lag. The call's meter anchors its clocks the same way (`voiceclient.client.recording`)."""

    MAX_GAP = RTP_RATE * 60  # a pts jump beyond a minute is a new stream, re-anchored on arrival
    HOLD = 0.5

    def __init__(self, t0: float, out_rate: int = API_RATE) -> None:
        self.t0 = t0
        self.end = 0  # samples at 48 kHz placed so far
        self._offset: int | None = None
        self._held: list[tuple[np.ndarray, int, float]] | None = []  # None once the first stream is anchored
        self._resampler = Resampler(RTP_RATE, out_rate)

    def push(self, pcm: np.ndarray, pts: int | None, arrival: float) -> np.ndarray:
        if self._held is None:
            return self._place(pcm, pts, arrival)
        if pts is not None:
            self._held.append((pcm, pts, arrival))
            if arrival - self._held[0][2] < self.HOLD:
                return np.zeros(0, np.int16)
            return self._release()
        return _joined([self._release(), self._place(pcm, pts, arrival)])

    def _release(self) -> np.ndarray:
        """Anchor the held frames on the earliest-stamped one (before any pts jump), and place them."""
        held, self._held = self._held or [], None
        if not held:
            return np.zeros(0, np.int16)
        first = [held[0]]
        for prev, frame in itertools.pairwise(held):
            if frame[1] < prev[1] or frame[1] - prev[1] > self.MAX_GAP:
                break
            first.append(frame)
        by_clock = min(int(round((at - self.t0) * RTP_RATE)) - pcm.size - pts for pcm, pts, at in first)
        self._offset = max(by_clock + held[0][1], self.end) - held[0][1]
        return _joined([self._place(pcm, pts, at) for pcm, pts, at in held])

    def _place(self, pcm: np.ndarray, pts: int | None, arrival: float) -> np.ndarray:
        by_clock = int(round((arrival - self.t0) * RTP_RATE)) - pcm.size
        if pts is None or self._offset is None:
            pos = max(self.end, by_clock)
        else:
            pos = self._offset + pts
            if pos < self.end - pcm.size or pos - self.end > self.MAX_GAP:
                pos = max(self.end, by_clock)
        if pts is not None and (self._offset is None or pos != self._offset + pts):
            self._offset = pos - pts
        parts = []
        if pos > self.end:
            parts.append(np.zeros(pos - self.end, np.int16))
        elif pos < self.end:
            pcm = pcm[self.end - pos :]
        parts.append(pcm)
        block = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.end += block.size
        return self._resampler.process(block)

    def pad_until(self, when: float) -> np.ndarray:
        released = np.zeros(0, np.int16)
        if self._held:
            pts0 = self._held[0][1]
            start = min(at - (pcm.size + pts - pts0) / RTP_RATE for pcm, pts, at in self._held)
            if when > start:
                released = self._release()  # padding must not run over the frames still held
        target = int(round((when - self.t0) * RTP_RATE))
        if target <= self.end:
            return released
        block = np.zeros(target - self.end, np.int16)
        self.end = target
        return _joined([released, self._resampler.process(block)])

    def flush(self) -> np.ndarray:
        return _joined([self._release(), self._resampler.flush()])


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if p.size]
    return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, np.int16)


class WavSink:
    """Received (or sent) audio to a mono 24 kHz s16 WAV on the call's timeline."""

    def __init__(self, path: str | Path, t0: float | None = None) -> None:
        self.lane = TimelineLane(time.monotonic() if t0 is None else t0)
        self.writer = WavWriter(path, API_RATE, 1)

    def __call__(self, pcm: np.ndarray, pts: int | None, arrival: float) -> None:
        self.writer.write(self.lane.push(pcm, pts, arrival))

    def close(self, until: float | None = None) -> None:
        if until is not None:
            self.writer.write(self.lane.pad_until(until))
        self.writer.write(self.lane.flush())
        self.writer.close()


class ConversationRecorder:
    """Stereo 24 kHz s16 WAV: left is what was sent, right is what was received, on one timeline."""

    SLACK = 1.0  # seconds a lane may lag before it is padded with silence so memory stays bounded

    def __init__(self, path: str | Path, t0: float | None = None) -> None:
        t0 = time.monotonic() if t0 is None else t0
        self.lanes = (TimelineLane(t0), TimelineLane(t0))
        self.pending: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self.writer = WavWriter(path, API_RATE, 2)

    def sent(self, pcm: np.ndarray, pts: int | None, arrival: float) -> None:
        self._push(0, pcm, pts, arrival)

    def received(self, pcm: np.ndarray, pts: int | None, arrival: float) -> None:
        self._push(1, pcm, pts, arrival)

    def _push(self, lane: int, pcm: np.ndarray, pts: int | None, arrival: float) -> None:
        self.pending[lane].append(self.lanes[lane].push(pcm, pts, arrival))
        other = 1 - lane
        self.pending[other].append(self.lanes[other].pad_until(arrival - self.SLACK))
        self._write_common()

    def _write_common(self, pad: bool = False) -> None:
        left, right = (np.concatenate(p) if p else np.zeros(0, np.int16) for p in self.pending)
        n = max(left.size, right.size) if pad else min(left.size, right.size)
        if pad:
            left = np.concatenate([left, np.zeros(n - left.size, np.int16)])
            right = np.concatenate([right, np.zeros(n - right.size, np.int16)])
        if n:
            stereo = np.empty(2 * n, np.int16)
            stereo[0::2] = left[:n]
            stereo[1::2] = right[:n]
            self.writer.write(stereo)
        self.pending[0][:] = [left[n:]]
        self.pending[1][:] = [right[n:]]

    def close(self, until: float | None = None) -> None:
        for lane, pending in zip(self.lanes, self.pending):
            if until is not None:
                pending.append(lane.pad_until(until))
            pending.append(lane.flush())
        self._write_common(pad=True)
        self.writer.close()
