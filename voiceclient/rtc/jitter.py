"""The receive path's jitter buffer: Opus packets in, 20 ms frames out on a steady schedule that follows the network.

What a browser's NetEq does, in the parts that matter for a voice call:
- **An adaptive delay.** Each packet's transit (arrival less its RTP time) is recorded; the buffer plays a packet at
  its RTP time plus an offset that aims at the 99th percentile of the last 3 s of transits, and no lower than the
  second highest of the last 10 s's per-second peaks (a peak that recurs, as NetEq's peak detector keeps one: the
  jitter of Wi-Fi comes in spells, and a calm 3 s would otherwise cut the delay just before the next spell, whose
  late packets are then concealed in speech; a single spike is not held). On loopback or a LAN the spread is under
  a millisecond, so a packet plays as soon as it arrives, as the immediate buffer before this one did; on Wi-Fi the
  offset grows to cover the jitter, and shrinks again when the network calms down.
- **A patient start.** A call's first seconds are when both ends are busiest (ICE, DTLS, the session's first
  events, other calls starting), and a sender's loop held up then sends a few packets late. For a stream's first
  `START_FOR` seconds a missing packet is waited for `START_GRACE` (60 ms) before it is concealed, not `GRACE`:
  a packet that comes meanwhile plays at once, and the ones behind it on time, so the hold-up costs no speech (the
  delay grows for it only at a pause). (NetEq instead holds 80 ms from the start, a cost to every packet until a
  pause lets it go.)
- **Concealment.** A packet that is missing at its time is rebuilt from the next packet's in-band FEC when that has
  arrived and carries it, else concealed by the Opus decoder (pitch-continued, fading out). (`EXPAND` continues a
  long burst as NetEq's Expand does instead, once libopus's concealment has faded: `voiceclient.audio.expand`.
  Off: it did not beat libopus's concealment on the offline replay.) When nothing newer has
  arrived either, the network is late rather than lossy: the frame is concealed and the whole schedule moves 20 ms
  later, so the late packet still plays when it comes (NetEq's expand-then-merge): a delay spike costs delay, not
  speech.
- **The receiver's own hold-ups are not the network's.** A timer that fires late means this process's event loop
  was held up (a busy machine); the packets that came meanwhile are still in the socket, behind the timer. Nothing
  is concealed for that long: the buffer waits for them, plays them at once when they come, and keeps their
  arrival out of the jitter it measures. (A browser receives on its own thread and never meets this.)
- **Growing and shrinking without clicks.** The offset moves toward its target only through the audio: a pause is
  cut or padded, voiced speech loses or gains one pitch period (`voiceclient.audio.stretch`), so there is never a
  jump in the played waveform. A packet later than what was already played is dropped.

Frames go straight to the remote track with `pts` on the played timeline (RTP time plus what stretching added), so
what the speaker, the recording and the latency meter see is what was played, and when. Non-Opus payloads (G.711
offered by some peers) keep the immediate path: each packet decoded at once.

This replaces a private attribute of aiortc's `RTCRtpReceiver` (aiortc's minor version is pinned;
`tests/test_jitter.py` fails if the internal moves).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from voiceclient.audio import expand, opus, stretch
from voiceclient.audio.tracks import mono_frame

log = logging.getLogger(__name__)
_ATTR = "_RTCRtpReceiver__jitter_buffer"
_CODECS = "_RTCRtpReceiver__codecs"
RATE = opus.RATE

WINDOW = 3.0  # seconds of transits the target is read from
QUANTILE = 0.99
# ...and no lower than the PEAK_RANK-th highest of the last PEAKS seconds' peaks (each second's latest transit): the
# jitter of a link comes in spells, and a quiet 3 s under-reads the spell after it, so a late packet is concealed in
# speech. A peak seen in two separate seconds is the link's; a single spike (one retry storm) is not held.
PEAKS = 10
PEAK_RANK = 2
MARGIN = 0.0005  # played this much after the target transit: the loop's own scheduling noise
# The offset grows as soon as it is this far under its target (late packets are concealment), and shrinks only
# once it is this far over (each move is heard, a little, and the network that needed it may come back).
GROW_AT = 0.0005  # while packets come out of order: a packet late past its successor is lost
FIFO_GROW_AT = 0.03  # while they come in order: a late one is concealed and waited for, which grows the delay anyway
GROW_STEP = 0.01
SHRINK_AT = 0.06
PAUSE_FRAMES = 10  # this many silent frames in a row (200 ms) are a pause between phrases
SHRINK_SILENT_AT = 0.002  # in a pause, cutting is free: the delay goes back to its target at the next pause
EARLY = 0.002  # a packet this close to its time plays now rather than on a timer (a timer per packet costs CPU)
GRACE = 0.02  # a missing packet with nothing newer is waited for this long past its time before it is concealed
IDLE_AFTER = 0.5  # seconds of concealment with nothing arriving: the sender has stopped; stop playing
FEC_HOLD = 0.02  # one packet more held while the sender sends FEC
STALL = 0.004  # a timer this late means the loop itself was held up, not the network
MAX_HOLDUP = 0.5  # waited at most this long past a frame's time for packets behind a hold-up of the loop
MAX_DELAY = 1.0  # an offset beyond target + this is cut at once (a burst after a long outage)
# For a stream's first START_FOR seconds, a missing packet with nothing newer is waited for START_GRACE: 32 calls
# starting at once in one process held their senders up 20-40 ms past `GRACE`, and each such packet cost 20 ms of
# concealment inside the first words (`scripts/bench.py scale`).
START_GRACE = 0.06
START_FOR = WINDOW
# 1: a long burst of loss is continued by `voiceclient.audio.expand` (NetEq's Expand) once libopus's concealment has
# faded. Off: on the offline replay it moved PESQ by less than the seeds' spread (docs/benchmarks.md), and the
# long-burst profile not at all; `scripts/jitter_replay.py --set EXPAND=1` measures it.
EXPAND = 0


@dataclass
class JitterStats:
    received: int = 0
    played: int = 0  # frames decoded from their own packet
    recovered: int = 0  # frames rebuilt from the next packet's FEC
    concealed: int = 0  # frames concealed (the decoder's PLC, or the expander's continuation of a long burst)
    expanded: int = 0  # of those, continued by the expander (`voiceclient.audio.expand`) rather than libopus
    late: int = 0  # packets that came after their frame was played (or concealed past)
    duplicates: int = 0
    stretched_ms: float = 0.0  # added by expanding (positive) less removed by accelerating
    removed_ms: float = 0.0
    added_ms: float = 0.0
    resets: int = 0  # re-anchored after the sender stopped

    @property
    def concealed_share(self) -> float:
        total = self.played + self.recovered + self.concealed
        return (self.recovered + self.concealed) / total if total else 0.0


class _Unwrapper:
    """RTP's 16-bit sequence numbers (or 32-bit timestamps) as ever-growing integers."""

    def __init__(self, bits: int) -> None:
        self.modulo = 1 << bits
        self.half = self.modulo >> 1
        self.last: int | None = None

    def __call__(self, value: int) -> int:
        if self.last is None:
            self.last = value
            return value
        delta = (value - self.last) % self.modulo
        if delta >= self.half:
            delta -= self.modulo
        out = self.last + delta
        self.last = max(self.last, out)
        return out


class AdaptiveJitterBuffer:
    """Opus packets in (`push`), frames out (`emit(pcm, pts)`) when each is due. `clock` and `call_at` are the
    event loop's (injectable so the schedule can be tested on a fake clock)."""

    capacity = 1  # (aiortc's buffers have one; nothing reads it)

    def __init__(
        self,
        emit: Callable[[np.ndarray, int], None],
        clock: Callable[[], float] = time.monotonic,
        call_at: Callable[[float, Callable[[], None]], Any] | None = None,
    ) -> None:
        self._emit = emit
        self._clock = clock
        self._call_at = call_at
        self.stats = JitterStats()
        self._seq = _Unwrapper(16)
        self._ts = _Unwrapper(32)
        self._packets: dict[int, tuple[int, bytes]] = {}
        self._newest: int | None = None
        self._next_seq: int | None = None  # None: idle (nothing received yet, or the sender stopped)
        self._next_ts = 0
        self._offset = 0.0  # a packet of RTP time `ts` plays at `offset + ts / RATE`
        self._shift = 0  # samples the played timeline is ahead of RTP time (stretching, concealing late)
        self._silent_since: float | None = None  # concealing with nothing arriving since
        self._fec_until = 0.0  # packets with FEC were seen lately (until this time)
        self._reordered_until = 0.0  # a packet came after a newer one lately (until this time)
        self._quiet = 0  # silent frames played in a row
        self._covered = 0  # frames concealed while waiting for the next packet, not yet matched to a lost one
        self._transits: collections.deque[tuple[float, float]] = collections.deque()
        self._sorted: list[float] = []
        self._peaks: collections.deque[list[float]] = collections.deque()  # [second, its latest transit]
        self._target = 0.0
        self._decoder = opus.OpusDecoder()
        self._expander = expand.Expander()
        self._timer: Any = None
        self._timer_at = 0.0
        self._held_until = 0.0  # the loop was held up: packets that came meanwhile are awaited until then
        self._young_until: float | None = None  # the stream's start: a late packet is waited for longer until then
        self._closed = False

    # -- in ---------------------------------------------------------------------------------------------------
    def push(self, seq: int, ts: int, payload: bytes, now: float | None = None) -> None:
        if self._closed:
            return
        now = self._clock() if now is None else now
        seq, ts = self._seq(seq), self._ts(ts)
        self.stats.received += 1
        if opus.packet_has_fec(payload):
            self._fec_until = now + WINDOW
        if now >= self._held_until:  # (a packet read late after a hold-up of this loop says nothing of the network)
            self._record_transit(now, now - ts / RATE)
        if self._young_until is None:
            self._young_until = now + START_FOR
        if self._next_seq is None:  # the first packet, or the first after the sender stopped: anchor on it
            self._anchor(seq, ts, now)
        elif seq < self._next_seq:
            self.stats.late += 1
            self._reordered_until = now + WINDOW
            return
        if self._newest is not None and seq < self._newest:
            self._reordered_until = now + WINDOW
        if seq in self._packets:
            self.stats.duplicates += 1
            return
        self._packets[seq] = (ts, payload)
        self._newest = seq if self._newest is None else max(self._newest, seq)
        self._service(now)

    def _anchor(self, seq: int, ts: int, now: float) -> None:
        if self.stats.played or self.stats.concealed:
            self.stats.resets += 1
        self._packets.clear()
        self._newest = None
        self._next_seq, self._next_ts = seq, ts
        self._target = self._target_offset()
        self._offset = max(now - ts / RATE, self._target)
        self._silent_since = None

    def _record_transit(self, now: float, transit: float) -> None:
        self._transits.append((now, transit))
        bisect.insort(self._sorted, transit)
        while self._transits and self._transits[0][0] < now - WINDOW:
            _, old = self._transits.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        second = float(int(now))
        if self._peaks and self._peaks[-1][0] == second:
            self._peaks[-1][1] = max(self._peaks[-1][1], transit)
        else:
            self._peaks.append([second, transit])
            while self._peaks[0][0] <= second - PEAKS:
                self._peaks.popleft()
        self._target = self._target_offset()

    def _target_offset(self) -> float:
        if not self._sorted:
            return 0.0
        quantile = self._sorted[min(len(self._sorted) - 1, int(QUANTILE * len(self._sorted)))]
        if PEAK_RANK and len(self._peaks) >= PEAK_RANK:
            quantile = max(quantile, sorted(peak for _, peak in self._peaks)[-PEAK_RANK])
        # A sender that protects its packets with FEC has seen loss: hold one packet more, so that a lost packet's
        # successor (which carries its copy) is usually here in time to rebuild it.
        fec = FEC_HOLD if self._fec_until > (self._transits[-1][0] if self._transits else 0.0) else 0.0
        return quantile + MARGIN + fec

    # -- out --------------------------------------------------------------------------------------------------
    def _due(self, ts: int) -> float:
        return self._offset + ts / RATE

    def _service(self, now: float | None = None) -> None:
        """Play every frame that is due (several after a hold-up of the loop), then wait for the next one."""
        while self._next_seq is not None and not self._closed:
            now = self._clock() if now is None else now
            packet = self._packets.get(self._next_seq)
            if packet is not None:
                due = self._due(packet[0])
                if now < due - EARLY:
                    return self._wait(due)
                del self._packets[self._next_seq]
                self._play_packet(packet[0], packet[1])
            elif self._newest is not None and self._newest > self._next_seq and self._covered:
                self._cover_lost()
            elif self._newest is not None and self._newest > self._next_seq:
                due = self._due(self._next_ts)
                if now < due - EARLY:
                    return self._wait(due)
                self._play_lost()
            else:
                due = self._due(self._next_ts)
                grace = START_GRACE if self._young(due) else GRACE
                wait = max(due + grace, min(self._held_until, due + MAX_HOLDUP))
                if now < wait:
                    return self._wait(wait)
                if self._silent_since is None:
                    self._silent_since = due
                if due - self._silent_since >= IDLE_AFTER:
                    self._go_idle()
                    return None
                self._play_late()
            now = None
        return None

    def _young(self, when: float) -> bool:
        """`when` is within the stream's first START_FOR seconds (where a late packet is waited for longer)."""
        return self._young_until is not None and when < self._young_until

    def _wait(self, when: float) -> None:
        if self._call_at is None:
            return
        if self._timer is not None:
            if abs(self._timer_at - when) < 1e-4:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._clock()
        lag = now - self._timer_at
        if lag > STALL:  # the loop was held up: what arrived meanwhile is read after this timer, so wait for it
            self._held_until = max(self._held_until, now + max(lag, GRACE))
        try:
            self._service()
        except Exception:  # a callback on the loop: never let one bad frame stop the schedule
            log.exception("jitter buffer failed")

    def _play_packet(self, ts: int, payload: bytes) -> None:
        self._silent_since = None
        self._covered = 0  # what was concealed while waiting stays: the delay it added is undone by stretching
        try:
            pcm = self._expander.join(self._decoder.decode(payload))
            self.stats.played += 1
        except opus.OpusError:
            pcm = self._conceal()
        self._next_ts = ts + pcm.size
        self._next_seq = (self._next_seq or 0) + 1
        self._out(self._adapt(pcm, ts), ts)

    def _play_lost(self) -> None:
        """The next packet is missing and a newer one is here: it is lost. Rebuild it from the FEC the packet after
        it carries, else conceal it; the schedule goes on."""
        assert self._next_seq is not None
        following = self._packets.get(self._next_seq + 1)
        if following is not None and opus.packet_has_fec(following[1]):
            gap = following[0] - self._next_ts  # the lost packet's length, as the timestamps say
            pcm = self._decoder.recover(following[1], samples=gap if 0 < gap <= opus.MAX_FRAME else None)
            pcm = self._expander.join(pcm)
            self.stats.recovered += 1
        else:
            pcm = self._conceal()
        ts = self._next_ts
        self._next_ts = ts + pcm.size
        self._next_seq += 1
        self._out(pcm, ts)

    def _conceal(self) -> np.ndarray:
        """A lost frame: the decoder is told of it (its state follows the loss), and what plays is its concealment
        (with `EXPAND`: for the first of a burst; the expander's continuation once that fades)."""
        pcm = self._decoder.conceal()
        self.stats.concealed += 1
        if EXPAND:
            expanded = self._expander.expanded
            pcm = self._expander.conceal(pcm)
            self.stats.expanded += self._expander.expanded - expanded
        return pcm

    def _cover_lost(self) -> None:
        """A newer packet came after frames were concealed waiting for this one: this one is lost, and a frame
        already concealed stands for it, so the schedule takes back the 20 ms it had given."""
        assert self._next_seq is not None
        self._covered -= 1
        self._next_seq += 1
        size = self._decoder.last_samples
        self._next_ts += size
        self._shift -= size
        self._offset -= size / RATE

    def _play_late(self) -> None:
        """Nothing newer has arrived: the network is late. Conceal one frame and move the schedule that much
        later, so the packet still plays when it comes."""
        pcm = self._conceal()
        self._covered += 1
        self._offset += pcm.size / RATE
        self._shift += pcm.size
        if EXPAND:
            self._expander.played(pcm)
        self._emit(pcm, self._next_ts + self._shift - pcm.size)

    def _adapt(self, pcm: np.ndarray, ts: int) -> np.ndarray:
        """Move the offset toward its target through this frame's audio."""
        excess = self._offset - self._target
        if excess > MAX_DELAY:  # hopelessly behind (a long outage delivered at once): skip to the target
            self._offset = self._target
            return pcm
        silent = stretch.is_silent(pcm)
        self._quiet = self._quiet + 1 if silent else 0
        # In a pause between phrases, growing and cutting are free and unheard, so the delay follows its target
        # closely there. Inside a phrase, each change is heard a little and moves the rhythm: grow there only when
        # packets come out of order (a late one is then lost) or lateness nears what is waited for anyway; shrink
        # only when well over.
        pause = self._quiet >= PAUSE_FRAMES
        now = self._clock()
        # (in a stream's first seconds lateness up to START_GRACE is waited for, not concealed: no need to grow)
        in_order = START_GRACE if self._young(now) else FIFO_GROW_AT
        grow_at = GROW_AT if pause or self._reordered_until > now else in_order
        if -grow_at < excess < (SHRINK_SILENT_AT if pause else SHRINK_AT):
            return pcm
        if excess > 0:
            out = stretch.accelerate(pcm, int(min(excess, 0.02) * RATE))
        else:  # grown by whole pitch periods, at least GROW_STEP's worth: a little over the target is no harm
            out = stretch.expand(pcm, int(min(max(-excess, GROW_STEP), 0.02) * RATE))
        moved = (out.size - pcm.size) / RATE
        if moved and log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %+.1f ms in %s (held %.1f ms, target %.1f ms)",
                "expanded" if moved > 0 else "accelerated",
                moved * 1000,
                "a pause" if pause else "speech",
                self.delay_ms,
                self.target_ms,
            )
        if moved:
            self._offset += moved
            self.stats.added_ms += max(moved, 0) * 1000
            self.stats.removed_ms += max(-moved, 0) * 1000
            self.stats.stretched_ms += moved * 1000
        return out

    def _out(self, pcm: np.ndarray, ts: int) -> None:
        pts = ts + self._shift
        self._shift += pcm.size - (self._next_ts - ts)
        if pcm.size:
            if EXPAND:
                self._expander.played(pcm)
            self._emit(pcm, pts)

    def _go_idle(self) -> None:
        self._next_seq = None
        self._packets.clear()
        self._newest = None
        self._silent_since = None
        self._decoder.close()
        self._decoder = opus.OpusDecoder()
        self._expander.reset()

    # -- state ------------------------------------------------------------------------------------------------
    @property
    def delay_ms(self) -> float:
        """How long the buffer holds audio now, beyond the fastest packet of the window."""
        if not self._sorted:
            return 0.0
        return max(0.0, self._offset - self._sorted[0]) * 1000

    @property
    def target_ms(self) -> float:
        return max(0.0, self._target - self._sorted[0]) * 1000 if self._sorted else 0.0

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._packets.clear()
        self._decoder.close()


class _ReceiverBuffer:
    """What aiortc's receiver calls (`add(packet) -> (pli, frame)`): Opus packets go to the adaptive buffer, which
    puts frames on the remote track itself; anything else is handed back at once for aiortc's decoder path."""

    capacity = 1

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        loop = asyncio.get_running_loop()
        self.buffer = AdaptiveJitterBuffer(self._to_track, clock=loop.time, call_at=loop.call_at)
        self._others = ImmediateJitterBuffer()

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        codec = getattr(self._receiver, _CODECS, {}).get(packet.payload_type)
        if codec is not None and codec.name.lower() == "opus":
            if packet._data:
                self.buffer.push(packet.sequence_number, packet.timestamp, packet._data)
            return False, None
        return self._others.add(packet)

    def _to_track(self, pcm: np.ndarray, pts: int) -> None:
        track = self._receiver._track
        if track is None or track.readyState != "live":
            return
        track._queue.put_nowait(mono_frame(pcm, pts, RATE))


def use_adaptive_jitter_buffer(receiver: RTCRtpReceiver) -> AdaptiveJitterBuffer:
    """Install the adaptive buffer on an audio receiver (on the event loop, before media flows)."""
    if not hasattr(receiver, _ATTR) or not isinstance(getattr(receiver, _CODECS, None), dict):
        raise RuntimeError(
            "aiortc's RTCRtpReceiver no longer has the jitter buffer or codec attributes; "
            "voiceclient.rtc.jitter needs updating for this aiortc version"
        )
    installed = _ReceiverBuffer(receiver)
    setattr(receiver, _ATTR, installed)
    original_stop = receiver.stop

    async def stop() -> None:
        buffer = installed.buffer
        if buffer.stats.received:
            s = buffer.stats
            log.info(
                "received audio: %d packets, %d concealed, %d rebuilt from FEC, %d late, %+.0f ms stretched; "
                "holding %.0f ms at the end",
                s.received,
                s.concealed,
                s.recovered,
                s.late,
                s.stretched_ms,
                buffer.delay_ms,
            )
        buffer.close()
        await original_stop()

    receiver.stop = stop  # type: ignore[method-assign]
    return installed.buffer


class ImmediateJitterBuffer:
    """The buffer before the adaptive one, kept for the benchmarks' before/after: every packet newer than the last
    is a frame at once; duplicates and late ones are dropped; nothing is held or concealed."""

    capacity = 1

    def __init__(self) -> None:
        self._last: int | None = None
        self.dropped = 0

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last is not None:
            ahead = (seq - self._last) & 0xFFFF
            if ahead == 0 or ahead >= 0x8000:  # duplicate, or older than what was already played
                self.dropped += 1
                return False, None
        self._last = seq
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)


def use_immediate_jitter_buffer(receiver: RTCRtpReceiver) -> ImmediateJitterBuffer:
    """Install the immediate buffer on an audio receiver (before media flows)."""
    if not hasattr(receiver, _ATTR):
        raise RuntimeError(
            "aiortc's RTCRtpReceiver no longer has a jitter buffer attribute; "
            "voiceclient.rtc.jitter needs updating for this aiortc version"
        )
    buffer = ImmediateJitterBuffer()
    setattr(receiver, _ATTR, buffer)
    return buffer
