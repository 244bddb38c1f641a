"""The adaptive jitter buffer on a fake clock (real Opus packets, arrival times from a network we script), and a guard
that fails when aiortc moves the internal it replaces."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from voiceclient.audio import opus, stretch
from voiceclient.audio.format import dominant_frequency
from voiceclient.rtc import jitter
from voiceclient.rtc.jitter import AdaptiveJitterBuffer, ImmediateJitterBuffer, use_adaptive_jitter_buffer

pytestmark = pytest.mark.timeout(30)
FRAME_S = opus.FRAME / opus.RATE
START_GRACE = jitter.START_GRACE


@pytest.fixture(autouse=True)
def past_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most tests here look at a stream past its first seconds, where a missing packet is waited for `GRACE`; the
    start's longer patience has its own tests (they set `START_GRACE` back)."""
    monkeypatch.setattr(jitter, "START_GRACE", jitter.GRACE)


class FakeLoop:
    """`time()` and `call_at()` of an event loop whose clock moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[list[Any]] = []
        self._count = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        entry = [when, next(self._count), callback, False]
        heapq.heappush(self._timers, entry)

        class Handle:
            def cancel(self) -> None:
                entry[3] = True

        return Handle()

    def run_until(self, when: float) -> None:
        while self._timers and self._timers[0][0] <= when:
            at, _, callback, cancelled = heapq.heappop(self._timers)
            if not cancelled:
                self.now = max(self.now, at)
                callback()
        self.now = max(self.now, when)


def tone(hz: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * opus.RATE)) / opus.RATE
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def encode(pcm: np.ndarray, fec: bool = False) -> list[bytes]:
    encoder = opus.OpusEncoder(32_000, opus.VOIP if fec else opus.LOWDELAY)
    if fec:
        encoder.set_fec(True, 10)
    return [encoder.encode(pcm[i : i + opus.FRAME]) for i in range(0, pcm.size - opus.FRAME + 1, opus.FRAME)]


class Played:
    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.frames: list[tuple[float, int, np.ndarray]] = []  # (when, pts, pcm)

    def __call__(self, pcm: np.ndarray, pts: int) -> None:
        self.frames.append((self.loop.now, pts, pcm))

    @property
    def pcm(self) -> np.ndarray:
        return np.concatenate([f[2] for f in self.frames])

    def pts_continuous(self) -> bool:
        return all(a[1] + a[2].size == b[1] for a, b in itertools.pairwise(self.frames))


def deliver(
    packets: list[bytes], arrival: Callable[[int], float | None], first_seq: int = 0, tail: float = 1.0
) -> tuple[AdaptiveJitterBuffer, Played]:
    """Push packet i at `arrival(i)` (None: lost), in arrival order, and run the clock until `tail` after the last."""
    loop = FakeLoop()
    played = Played(loop)
    buffer = AdaptiveJitterBuffer(played, clock=loop.time, call_at=loop.call_at)
    timed = sorted((at, i) for i in range(len(packets)) if (at := arrival(i)) is not None)
    for at, i in timed:
        loop.run_until(at)
        buffer.push((first_seq + i) & 0xFFFF, (i * opus.FRAME + 12345) & 0xFFFFFFFF, packets[i])
    loop.run_until(timed[-1][0] + tail)
    return buffer, played


def test_on_a_clean_path_each_packet_plays_as_it_arrives_and_nothing_changes() -> None:
    pcm = tone(440, 2.0)
    packets = encode(pcm)
    buffer, played = deliver(packets, lambda i: 0.05 + i * FRAME_S + 0.0002 * (i % 3), first_seq=65500, tail=0.3)
    decoder = opus.OpusDecoder()
    reference = np.concatenate([decoder.decode(p) for p in packets])
    sound = played.frames[: len(packets)]
    assert np.array_equal(np.concatenate([f[2] for f in sound]), reference)  # through the seq wrap, untouched
    waits = [when - (0.05 + i * FRAME_S) for i, (when, _, _) in enumerate(sound)]
    assert max(waits) < 0.0015  # played on arrival, give or take the arrival spread itself
    assert buffer.stats.concealed_share == pytest.approx((len(played.frames) - len(packets)) / len(played.frames))
    assert played.pts_continuous()


def held_up_at(first: int, hold: float) -> Callable[[int], float]:
    """Arrivals on a clean link but for a sender held up `hold` at packet `first`: it and the two behind it come
    together when the sender wakes."""

    def arrival(i: int) -> float:
        sent = 0.05 + i * FRAME_S
        return sent + max(0.0, hold - FRAME_S * (i - first)) if first <= i < first + 3 else sent

    return arrival


def test_a_sender_held_up_in_the_first_seconds_costs_no_speech_and_no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    # A call's first second: the sender's loop is busy (ICE, DTLS, the session's first events, other calls) and
    # holds three packets 50 ms, longer than `GRACE` waits.
    monkeypatch.setattr(jitter, "START_GRACE", START_GRACE)
    packets = encode(tone(440, 1.5))
    buffer, played = deliver(packets, held_up_at(20, 0.05), tail=0.005)
    assert buffer.stats.concealed == 0 and buffer.stats.stretched_ms == 0
    decoder = opus.OpusDecoder()
    assert np.array_equal(played.pcm, np.concatenate([decoder.decode(p) for p in packets]))
    waits = [when - (0.05 + i * FRAME_S) for i, (when, _, _) in enumerate(played.frames)]
    assert max(waits[:20]) < 0.0015 and max(waits[23:]) < 0.0015  # before and after it, each plays on arrival
    assert played.pts_continuous()


def test_past_the_first_seconds_a_sender_held_up_is_concealed_at_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jitter, "START_GRACE", START_GRACE)
    packets = encode(tone(440, 5.0))
    first = int((jitter.START_FOR + 0.5) / FRAME_S)
    buffer, played = deliver(packets, held_up_at(first, 0.05), tail=0.005)
    assert buffer.stats.concealed >= 1  # waited `GRACE`, then concealed (the network is late, not the start)
    assert buffer.stats.late == 0 and played.pts_continuous()


def test_a_lost_packet_is_concealed_in_its_slot_not_a_hole() -> None:
    pcm = tone(440, 2.0)
    packets = encode(pcm)
    buffer, played = deliver(packets, lambda i: None if i == 40 else 0.05 + i * FRAME_S, tail=0.03)
    assert buffer.stats.concealed == 1 and buffer.stats.played == len(packets) - 1
    out = played.pcm
    assert out.size == pcm.size
    slot = out[40 * opus.FRAME : 41 * opus.FRAME]
    assert dominant_frequency(slot, opus.RATE) == pytest.approx(440, abs=20)
    assert np.sqrt(np.mean(slot.astype(float) ** 2)) > 2000  # the tone goes on through the loss
    assert played.pts_continuous()


def test_a_lost_packet_is_rebuilt_from_the_next_packets_fec() -> None:
    pcm = np.concatenate([np.zeros(opus.RATE // 2, np.int16), tone(300, 2.5)])
    packets = encode(pcm, fec=True)
    lost = next(i for i in range(30, len(packets) - 1) if opus.packet_has_fec(packets[i + 1]))
    # A little jitter; in the pause first, the buffer grows to hold the one extra packet it keeps for FEC when the
    # sender uses it.
    buffer, played = deliver(packets, lambda i: None if i == lost else 0.05 + i * FRAME_S + 0.004 * (i % 2))
    assert buffer.stats.recovered == 1
    slot_start = lost * opus.FRAME
    assert dominant_frequency(played.pcm[slot_start : slot_start + opus.FRAME], opus.RATE) == pytest.approx(300, abs=20)


def test_with_expand_a_long_burst_goes_on_at_the_pitch_and_the_stream_decodes_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jitter, "EXPAND", 1)
    t = np.arange(int(2.0 * opus.RATE)) / opus.RATE
    pcm = (6000 * np.sin(2 * np.pi * 180 * t) + 2500 * np.sin(2 * np.pi * 360 * t + 1)).astype(np.int16)
    packets = encode(pcm, fec=True)
    burst = range(40, 50)  # 200 ms lost in the middle of a steady voiced sound
    buffer, played = deliver(packets, lambda i: None if i in burst else 0.05 + i * FRAME_S, tail=0.03)
    assert buffer.stats.concealed == len(burst) and buffer.stats.expanded >= len(burst) - 2
    assert played.pts_continuous()
    out = played.pcm
    start = burst[0] * opus.FRAME
    level = np.sqrt(np.mean(out[start - 3 * opus.FRAME : start].astype(float) ** 2))
    continued = out[start + opus.FRAME : start + 4 * opus.FRAME]
    assert dominant_frequency(continued, opus.RATE) == pytest.approx(180, abs=5)
    assert np.sqrt(np.mean(continued.astype(float) ** 2)) > 0.5 * level
    after = out[(burst[-1] + 3) * opus.FRAME : (burst[-1] + 8) * opus.FRAME]  # the decoder, told of the loss, is fine
    assert dominant_frequency(after, opus.RATE) == pytest.approx(180, abs=5)
    assert np.sqrt(np.mean(after.astype(float) ** 2)) > 0.8 * level


def test_a_late_burst_loses_nothing_and_its_delay_drains_away() -> None:
    # Packets 50-59 are held 150 ms by the network (a Wi-Fi retry storm) and arrive together; then all is clean.
    pcm = np.concatenate([tone(440, 1.5), np.zeros(opus.RATE * 4, np.int16), tone(440, 1.5)])
    packets = encode(pcm)

    def arrival(i: int) -> float:
        sent = 0.05 + i * FRAME_S
        return max(sent, 0.05 + 60 * FRAME_S) if 50 <= i < 60 else sent

    buffer, played = deliver(packets, arrival, tail=0.005)  # (the last packet may still wait for its time)
    assert buffer.stats.late == 0 and buffer.stats.played >= len(packets) - 1  # every packet played
    assert buffer.stats.concealed >= 5  # the wait was covered by concealment, then the packets played
    assert buffer.delay_ms < 30  # in the pause the delay was cut back: the rest of the call is not late
    assert buffer.stats.removed_ms > 100
    assert played.pts_continuous()


def test_a_link_whose_spikes_recur_keeps_its_delay_through_a_calm_spell() -> None:
    # Phrases of 0.6 s and pauses of 0.4 s; in each of the first four phrases the link holds one packet 60 ms (a Wi-Fi
    # retry) and, being in order, the ones behind it too. Then four calm seconds, then the same spike. A buffer that
    # forgot the spikes after its 3 s window cut its delay in the pauses and conceals in the last phrase; this one
    # holds for spikes that recur, so the last one costs nothing.
    phrase = np.concatenate([tone(440, 0.6), np.zeros(int(0.4 * opus.RATE), np.int16)])
    packets = encode(np.tile(phrase, 10))
    spikes = [int((1.2 + k) / FRAME_S) for k in (0, 1, 2, 3, 8)]
    arrivals: list[float] = []
    for i in range(len(packets)):
        sent = 0.05 + i * FRAME_S
        arrivals.append(max(sent + (0.06 if i in spikes else 0.0), arrivals[-1] if arrivals else 0.0))
    loop = FakeLoop()
    played = Played(loop)
    buffer = AdaptiveJitterBuffer(played, clock=loop.time, call_at=loop.call_at)
    concealed_before_last = 0
    for i, at in enumerate(arrivals):
        loop.run_until(at)
        if i == spikes[-1] - 10:
            concealed_before_last = buffer.stats.concealed
        buffer.push(i, i * opus.FRAME, packets[i])
    loop.run_until(arrivals[-1] + 0.005)
    assert 0 < concealed_before_last <= 3  # while the first spikes were learnt
    assert buffer.stats.concealed == concealed_before_last  # the last spike cost nothing
    assert buffer.stats.late == 0 and buffer.stats.played >= len(packets) - 4  # (the last few still held)
    assert buffer.delay_ms < 90  # and the buffer holds no more than the spikes need
    assert played.pts_continuous()


def test_a_hold_up_of_the_receivers_own_loop_is_waited_out_not_concealed() -> None:
    # A busy machine holds this process's loop 150 ms: the timers due meanwhile fire late, and the packets that came
    # are read only after them, one by one. They are all played, untouched, and the delay does not grow.
    pcm = tone(440, 2.0)
    packets = encode(pcm)
    loop = FakeLoop()
    played = Played(loop)
    buffer = AdaptiveJitterBuffer(played, clock=loop.time, call_at=loop.call_at)
    held_from, held_to = 0.05 + 50 * FRAME_S + 0.001, 0.05 + 50 * FRAME_S + 0.15
    for i, packet in enumerate(packets):
        at = 0.05 + i * FRAME_S
        if held_from <= at < held_to:  # sent during the hold-up: read after the loop's late timers, 1 ms apart
            at = held_to + 0.001 * (1 + i - 51)
        if at >= held_to and loop.now < held_to:
            loop.now = held_to  # the loop wakes: what was due meanwhile runs now, late
            loop.run_until(held_to)
        loop.run_until(at)
        buffer.push(i, i * opus.FRAME, packet)
    loop.run_until(loop.now + 0.01)
    assert buffer.stats.concealed == 0 and buffer.stats.late == 0
    decoder = opus.OpusDecoder()
    assert np.array_equal(played.pcm, np.concatenate([decoder.decode(p) for p in packets]))
    assert buffer.delay_ms < 5 and buffer.stats.stretched_ms == 0
    assert played.pts_continuous()


def test_reordered_duplicated_and_late_packets() -> None:
    packets = encode(tone(440, 1.0))

    def nominal(j: int) -> float:
        return 0.05 + j * FRAME_S + 0.03 * (j % 2)  # every other packet 30 ms late: the buffer learns to hold 30 ms

    schedule = [(nominal(j), j) for j in range(len(packets)) if j not in (30, 31)]
    schedule += [(nominal(30) + 0.002, 31), (nominal(30) + 0.012, 30)]  # 31 overtakes 30
    schedule += [(nominal(40) + 0.001, 40), (nominal(49) + 0.5, 3)]  # a duplicate; one long after its time
    loop = FakeLoop()
    played = Played(loop)
    buffer = AdaptiveJitterBuffer(played, clock=loop.time, call_at=loop.call_at)
    learned = 0
    for at, j in sorted(schedule):
        loop.run_until(at)
        buffer.push(j, j * opus.FRAME, packets[j])
        if j == 20:
            learned = buffer.stats.late  # while it learns the jitter, a few packets come too late
    loop.run_until(nominal(49) + 1.0)
    assert learned <= 5
    assert buffer.stats.played == len(packets) - learned  # after that, none: 30 and 31 play in order
    assert buffer.stats.duplicates == 1 and buffer.stats.late == learned + 1
    assert played.pts_continuous()


def test_a_sender_that_stops_is_concealed_briefly_then_the_buffer_goes_idle_and_reanchors() -> None:
    packets = encode(tone(440, 2.0))

    def arrival(i: int) -> float:
        return 0.05 + i * FRAME_S + (5.0 if i >= 50 else 0.0)  # the sender pauses 5 s after 1 s

    buffer, played = deliver(packets, arrival, tail=0.1)
    gap_frames = [f for f in played.frames if 1.1 < f[0] < 6.0]
    assert 0 < len(gap_frames) * FRAME_S <= jitter.IDLE_AFTER + 0.05  # a short fade, then nothing
    assert buffer.stats.resets == 1 and buffer.stats.played == len(packets)


def test_stretching_removes_or_adds_one_period_and_keeps_the_pitch() -> None:
    frame = tone(200, 0.02)  # 240 samples per period at 48 kHz
    faster, slower = stretch.accelerate(frame, 480), stretch.expand(frame, 480)
    assert frame.size - faster.size == 240 and slower.size - frame.size == 480  # expanding repeats whole periods
    for out in (faster, slower):
        assert np.abs(np.diff(out.astype(int))).max() < 1.2 * np.abs(np.diff(frame.astype(int))).max()  # no click
    assert stretch.accelerate(np.zeros(960, np.int16), 300).size == 660  # a pause is simply cut
    noise = np.random.default_rng(1).integers(-8000, 8000, 960).astype(np.int16)
    assert stretch.accelerate(noise, 480).size == 960  # no period: left alone


def test_the_immediate_buffer_plays_every_newer_packet_at_once() -> None:
    jb = ImmediateJitterBuffer()
    out = []
    for seq in [65534, 65535, 0, 2, 1, 2, 3]:
        p = RtpPacket(sequence_number=seq, timestamp=seq * 960)
        p._data = bytes([seq & 0xFF])  # type: ignore[attr-defined]
        _, frame = jb.add(p)
        out.append(None if frame is None else frame.timestamp // 960)
    assert out == [65534, 65535, 0, 2, None, None, 3]


async def test_aiortc_still_has_the_attributes_we_replace() -> None:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("audio")
    stock = transceiver.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert type(stock).__name__ == "JitterBuffer" and stock._prefetch == 4  # the +80 ms we remove
    installed = use_adaptive_jitter_buffer(transceiver.receiver)
    assert transceiver.receiver._RTCRtpReceiver__jitter_buffer.buffer is installed  # type: ignore[attr-defined]
    await pc.close()
