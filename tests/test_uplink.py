"""An uplink that survives loss: the policy fed the far end's loss reports (voiceclient.rtc.uplink), the encoder
that switches between low-delay and in-band FEC (voiceclient.audio.switching, MonoOpusEncoder), and a real call
whose receiver loses every 10th packet."""

from __future__ import annotations

import asyncio
from typing import Any

import av
import numpy as np
import pytest

from voiceclient.audio import opus, switching
from voiceclient.audio.format import dominant_frequency
from voiceclient.audio.sources import BufferSource, WavSource
from voiceclient.audio.switching import SwitchingEncoder
from voiceclient.audio.tracks import OutboundTrack
from voiceclient.rtc import uplink
from voiceclient.rtc.inline import FEC_BITRATE, OPUS_BITRATE, MonoOpusEncoder
from voiceclient.rtc.peer import Peer
from voiceclient.rtc.uplink import CLEAN, PROTECTED, UplinkPolicy, expected_loss_percent

from .conftest import FIXTURES

pytestmark = pytest.mark.timeout(30)
RATE, FRAME = opus.RATE, opus.FRAME


def two_tones(seconds: float) -> np.ndarray:
    """440 + 610 Hz: it repeats only every 100 ms, so its best alignment with a copy of itself is one lag."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (5000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 610 * t)).astype(np.int16)


def speech(seconds: float) -> np.ndarray:
    """fixtures/hello.wav (48 kHz mono) over and over: SILK codes FEC for voiced frames, not for a steady tone."""
    once = WavSource(FIXTURES / "hello.wav").pcm
    return np.resize(once, int(seconds * RATE))


def run(encoder: SwitchingEncoder, pcm: np.ndarray, protect: list[bool]) -> tuple[list[bytes], list[int]]:
    packets: list[bytes] = []
    stamps = []
    for i, wanted in enumerate(protect):
        sent, stamp = encoder.encode(pcm[i * FRAME : (i + 1) * FRAME], wanted, 10)
        assert len(sent) == 1
        packets += sent
        stamps.append(stamp)
    return packets, stamps


def decode(packets: list[bytes]) -> np.ndarray:
    decoder = opus.OpusDecoder()
    return np.concatenate([decoder.decode(p) for p in packets]).astype(np.float64)


def lag(out: np.ndarray, pcm: np.ndarray, at: int) -> int:
    """How far behind the input the decoded output is over the 20 ms from `at`: the best of 0-600 samples (the
    two tones nearly repeat after 547)."""
    window = out[at : at + FRAME]
    scores = [float(np.dot(window, pcm[at - d : at - d + FRAME].astype(np.float64))) for d in range(600)]
    return int(np.argmax(scores))


# ------------------------------------------------------------------------------------------------------ the policy
def test_loss_makes_the_uplink_protected_at_once_with_twice_the_loss_expected() -> None:
    policy = UplinkPolicy()
    assert policy.report(0.0, 0.0, 0) == CLEAN and policy.loss_percent == 0
    assert policy.report(1.0, 25 / 256, 5) == PROTECTED  # 9.8 % of the last second, none the second before
    assert policy.loss_percent == 10 and policy.switches == 1 and policy.lossy_reports == 1
    assert policy.report(2.0, 40 / 256, 12) == PROTECTED and policy.loss_percent == 17  # 2 x (0 + 9.8 + 15.6) / 3
    policy.report(3.0, 0.5, 40)
    assert policy.loss_percent == 25  # capped
    assert [expected_loss_percent(f) for f in (0.001, 0.02, 0.05, 0.1, 0.5)] == [5, 5, 10, 20, 25]


def test_the_loss_expected_is_the_same_whatever_the_far_ends_report_cadence() -> None:
    """A burst of 10 lost packets in 5 s (250 sent): 20 % of one of aiortc's 1 s reports, 4 % of libwebrtc's 5 s
    one. Both receivers get a stream coded for 8 %: twice the loss over the window, not twice the worst report."""
    every_second = UplinkPolicy()
    for second, fraction in enumerate([0.0, 0.0, 10 / 50, 0.0, 0.0], 1):
        every_second.report(float(second), fraction)
    every_five = UplinkPolicy()
    every_five.report(5.0, 10 / 250)
    assert every_second.mode == every_five.mode == PROTECTED
    assert every_second.loss_percent == every_five.loss_percent == 8


def test_a_rising_cumulative_count_is_loss_even_when_the_fraction_rounds_to_nothing() -> None:
    policy = UplinkPolicy()
    policy.report(0.0, 0.0, 3)
    assert policy.report(1.0, 0.0, 3) == CLEAN
    assert policy.report(2.0, 1 / 256, 4) == PROTECTED and policy.loss_percent == 5


def test_clean_again_only_after_ten_seconds_without_loss_and_no_flapping() -> None:
    policy = UplinkPolicy()
    policy.report(0.0, 0.1, 5)
    modes = []
    now = 0.0
    while now < 8.5:  # reports without loss, each second: still protected
        now += 1.0
        modes.append(policy.report(now, 0.0, 5))
    assert (
        modes == [PROTECTED] * 9 and policy.report(9.9, 0.0, 5) == PROTECTED and policy.loss_percent == 5
    )  # still protected once the lossy report left the window, at the floor of what libopus is told
    assert policy.report(10.0, 0.0, 5) == CLEAN and policy.loss_percent == 0 and policy.switches == 2
    # A path losing a packet every few seconds stays protected: two switches, not one each way per burst.
    policy = UplinkPolicy()
    for second in range(60):
        policy.report(float(second), 0.02 if second % 7 == 0 else 0.0, second // 7)
    assert policy.mode == PROTECTED and policy.switches == 1


# ----------------------------------------------------------------------------------------------------- the encoder
def test_protected_packets_carry_fec_and_clean_ones_none_with_continuous_timestamps() -> None:
    pcm = speech(6.0)
    frames = pcm.size // FRAME
    protect = [100 <= i < 200 for i in range(frames)]
    encoder = SwitchingEncoder(32_000)
    packets, stamps = run(encoder, pcm, protect)
    assert stamps == [i * FRAME for i in range(frames)] and encoder.switches == 2
    has_fec = [opus.packet_has_fec(p) for p in packets]
    voiced = [np.sqrt(np.mean(pcm[i * FRAME : (i + 1) * FRAME].astype(float) ** 2)) > 300 for i in range(frames)]
    protected = [i for i in range(100 + switching.PROTECT_DEADLINE, 200) if voiced[i] and voiced[i - 1]]
    assert len(protected) > 30 and sum(has_fec[i] for i in protected) >= 0.9 * len(protected)
    assert not any(has_fec[:100]) and not any(has_fec[200 + switching.CLEAN_DEADLINE :])


@pytest.mark.parametrize("loss_percent", [uplink.MIN_PERCENT, 10, uplink.MAX_PERCENT])
def test_the_protected_stream_carries_fec_at_every_loss_the_policy_asks_for(loss_percent: int) -> None:
    """libopus codes in-band FEC only when the bitrate covers it: at 32 kbit/s it coded none below 6 % expected
    loss, so a stream protected for 2-3 % loss (the policy's 5 %) carried no FEC at all."""
    pcm = speech(6.0)
    frames = pcm.size // FRAME
    encoder = SwitchingEncoder(OPUS_BITRATE, FEC_BITRATE)
    packets = []
    for i in range(frames):
        packets += encoder.encode(pcm[i * FRAME : (i + 1) * FRAME], True, loss_percent)[0]
    voiced = [np.sqrt(np.mean(pcm[i * FRAME : (i + 1) * FRAME].astype(float) ** 2)) > 300 for i in range(frames)]
    spoken = [i for i in range(1, frames) if voiced[i] and voiced[i - 1]]
    assert len(spoken) > 50 and sum(opus.packet_has_fec(packets[i]) for i in spoken) >= 0.9 * len(spoken)


def test_a_switch_mid_tone_neither_cuts_nor_doubles_and_does_not_click() -> None:
    pcm = two_tones(4.0)
    frames = pcm.size // FRAME
    encoder = SwitchingEncoder(32_000)
    packets, _ = run(encoder, pcm, [i >= 40 for i in range(frames)])
    at = (40 + switching.PROTECT_DEADLINE - 1) * FRAME  # the first packet of the new encoder
    out = decode(packets)
    reference = decode(run(SwitchingEncoder(32_000), pcm, [False] * frames)[0])
    # Before: the output is the input 2.5 ms late (low-delay's look-ahead); after, 2.5 + 6.5 ms: every sample of
    # the input is heard once, the new encoder's own look-ahead of silence coming between.
    assert lag(out, pcm, at - 4 * FRAME) == 120
    assert 120 + 312 == encoder.delay + encoder.lookahead
    assert abs(lag(out, pcm, at + 4 * FRAME) - 432) <= 8  # SILK keeps the waveform less exactly than CELT
    natural = np.abs(np.diff(reference[FRAME:])).max()
    jumps = np.abs(np.diff(out[at - FRAME : at + 2 * FRAME]))
    assert jumps.max() < 5 * natural < 4000  # a cut tone would jump by up to 16000

    def levels(pcm: np.ndarray) -> np.ndarray:  # of 10 ms blocks, around the switch
        return np.sqrt(np.mean(pcm[at - 4 * FRAME : at + 4 * FRAME].reshape(-1, 480) ** 2, axis=1))

    assert (levels(out) / levels(reference)).min() > 10 ** (-4 / 20)  # one 10 ms block dips, by less than 4 dB
    for start in range(at - 2 * FRAME, at + 4 * FRAME, FRAME // 2):
        assert dominant_frequency(out[start : start + 2 * FRAME], RATE) == pytest.approx(440, abs=15)


def test_back_to_low_delay_mid_tone_is_smooth_and_the_delay_goes_at_the_next_pause() -> None:
    tones = two_tones(7.0)
    pcm = np.concatenate((tones, np.zeros(RATE // 2, np.int16), tones))
    frames = pcm.size // FRAME
    encoder = SwitchingEncoder(32_000)
    packets, stamps = run(encoder, pcm, [i < 50 for i in range(frames)])
    assert stamps == [i * FRAME for i in range(frames)] and encoder.switches == 2
    back = (50 + switching.CLEAN_DEADLINE - 1) * FRAME
    out = decode(packets)
    reference = decode(run(SwitchingEncoder(32_000), pcm, [False] * frames)[0])
    natural = np.abs(np.diff(reference[FRAME : tones.size])).max()
    assert np.abs(np.diff(out[back - FRAME : back + 2 * FRAME])).max() < 1.5 * natural
    assert abs(lag(out, pcm, back - 4 * FRAME) - 312) <= 8  # VoIP from the first frame: no added delay
    assert lag(out, pcm, back + 4 * FRAME) == 312 + 120  # the VoIP look-ahead read again, then low-delay's
    assert encoder.delay == 0 and encoder.dropped == 312  # dropped in the pause: as fresh as a clean start
    assert lag(out, pcm, tones.size + RATE // 2 + 10 * FRAME) == 120


def test_mono_opus_encoder_follows_its_policy() -> None:
    encoder = MonoOpusEncoder()
    silence = av.AudioFrame.from_ndarray(np.zeros((1, FRAME), np.int16), format="s16", layout="mono")
    silence.sample_rate = RATE
    voice = av.AudioFrame.from_ndarray(two_tones(0.02).reshape(1, -1), format="s16", layout="mono")
    voice.sample_rate = RATE
    assert encoder.encode(voice)[1] == 0 and encoder.mode == CLEAN
    encoder.policy.report(1.0, 0.1, 5)
    assert encoder.encode(silence)[1] == FRAME and encoder.mode == PROTECTED  # a quiet frame: at once
    words = speech(1.0)
    sent = []
    for i in range(10, 40):  # "hello", voiced from about 0.2 s
        frame = av.AudioFrame.from_ndarray(
            words[i * FRAME : (i + 1) * FRAME].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        payloads, timestamp = encoder.encode(frame)
        assert timestamp == (i - 8) * FRAME
        sent += payloads
    assert sum(opus.packet_has_fec(p) for p in sent) > 10 and encoder.switches == 1
    assert encoder.stream.encoder.loss_percent == 20


# ------------------------------------------------------------------------------------------------- a real call
@pytest.mark.webrtc
@pytest.mark.timeout(40)
async def test_a_receiver_losing_every_tenth_packet_gets_fec_within_seconds() -> None:
    client = Peer(OutboundTrack(BufferSource(speech(20.0))))
    server = Peer(OutboundTrack(BufferSource(speech(20.0))), role="answerer")
    try:
        answer = await server.answer(await client.create_offer())
        receiver = next(t.receiver for t in server.pc.getTransceivers() if t.kind == "audio")
        handle = receiver._handle_rtp_packet
        arrived: list[bytes] = []
        got_fec = asyncio.Event()

        async def lossy(packet: Any, arrival_time_ms: int) -> None:
            if packet.sequence_number % 10 == 0:  # lost on the way: the receiver's RTCP counts the gap
                return
            arrived.append(packet.payload)
            if opus.packet_has_fec(packet.payload):
                got_fec.set()
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = lossy  # type: ignore[method-assign]
        await client.accept_answer(answer)
        await client.wait_open(10)
        await asyncio.wait_for(got_fec.wait(), 8)
        assert client.uplink is not None and server.uplink is not None
        assert client.uplink.mode == PROTECTED and client.uplink.switches == 1
        assert client.uplink.policy.lossy_reports >= 1 and 15 <= client.uplink.policy.loss_percent <= 25
        before = [opus.packet_has_fec(p) for p in arrived[:-1]]
        assert sum(before) == 0 and len(before) >= 20  # clean until the first report: low-delay packets
        assert all(p[0] >> 3 >= 16 for p in arrived[:20])  # CELT only (TOC config 16-31)
        # The other way nothing was lost: the server's downlink stays low-delay.
        assert server.uplink.mode == CLEAN and server.uplink.switches == 0
        assert server.uplink.policy.lossy_reports == 0
    finally:
        await client.close()
        await server.close()
