"""Opus on the event loop (voiceclient.rtc.inline): the same wire as aiortc's own path, and guards that fail when
aiortc moves the internals it replaces."""

from __future__ import annotations

import asyncio
import threading

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, clock
from aiortc.codecs import get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, compute_audio_level_dbov

from voiceclient.audio.format import dominant_frequency, rms_dbfs, tone
from voiceclient.audio.tracks import frame_to_mono
from voiceclient.rtc.inline import (
    InlineDecoderQueue,
    MonoOpusDecoder,
    MonoOpusEncoder,
    RtpWriter,
    audio_level_dbov,
    ntp_now,
    use_inline_decoder,
    use_inline_encoder,
)

pytestmark = pytest.mark.timeout(20)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def stereo_frame(mono: np.ndarray, pts: int = 0) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.repeat(mono.astype(np.int16), 2).reshape(1, -1), format="s16", layout="stereo"
    )
    frame.sample_rate = 48000
    frame.pts = pts
    return frame


@pytest.mark.parametrize("level", [-90.0, -60.0, -40.0, -20.5, -6.0, -0.1])
def test_audio_level_is_the_value_aiortc_computes(level: float) -> None:
    rng = np.random.default_rng(int(-level * 10))
    for _ in range(5):
        noise = rng.normal(0, 32767 * 10 ** (level / 20), 960).clip(-32768, 32767).astype(np.int16)
        mono = av.AudioFrame.from_ndarray(noise.reshape(1, -1), format="s16", layout="mono")
        for frame in (stereo_frame(noise), mono):
            assert audio_level_dbov(frame) == compute_audio_level_dbov(frame)
        if -70 < level < -3:  # beyond: quantisation and clipping
            assert abs(audio_level_dbov(mono) - level) <= 1
    silent = stereo_frame(np.zeros(960, np.int16))
    assert audio_level_dbov(silent) == compute_audio_level_dbov(silent) == -127


def test_frame_to_mono_averages_the_two_channels() -> None:
    left, right = np.full(960, 1001, np.int16), np.full(960, -3001, np.int16)
    frame = av.AudioFrame.from_ndarray(np.stack((left, right), axis=1).reshape(1, -1), format="s16", layout="stereo")
    assert frame_to_mono(frame).tolist() == [-1000] * 960


def test_mono_opus_keeps_the_level_and_timestamps_and_stock_decoders_hear_both_channels() -> None:
    encoder = MonoOpusEncoder()
    sine = tone(440, 1.0, 48000, -12.0)  # -15 dBFS RMS
    packets = []
    for i in range(50):
        frame = av.AudioFrame.from_ndarray(sine[i * 960 : (i + 1) * 960].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        payloads, timestamp = encoder.encode(frame)
        packets += [JitterFrame(data=p, timestamp=timestamp) for p in payloads]
    assert [p.timestamp for p in packets[:4]] == [0, 960, 1920, 2880]
    assert sum(len(p.data) for p in packets) * 8 < 75_000  # about 64 kbit/s for the second, not aiortc's 96 stereo
    ours = np.concatenate([frame_to_mono(f) for f in _decode_all(MonoOpusDecoder(), packets)])
    stock = _decode_all(get_decoder(OPUS), packets)
    assert len(stock[10].layout.channels) == 2
    both = np.concatenate([f.to_ndarray().reshape(-1, 2) for f in stock[5:]])
    assert (both[:, 0] == both[:, 1]).all()  # a mono packet is two full-level channels, not -3 dB each
    for pcm in (ours[48000 // 10 :], both[:, 0]):
        assert -15.8 < rms_dbfs(pcm) < -14.2
        assert abs(dominant_frequency(pcm, 48000) - 440) < 2


def _decode_all(decoder, packets):
    return [f for p in packets for f in decoder.decode(p)]


async def test_packets_are_decoded_on_the_loop_and_the_thread_still_ends_the_track() -> None:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("audio")
    transceiver.receiver._track = RemoteStreamTrack(kind="audio")  # as setRemoteDescription makes it
    inline = use_inline_decoder(transceiver.receiver)
    assert transceiver.receiver._RTCRtpReceiver__decoder_queue is inline  # type: ignore[attr-defined]
    # What aiortc's decoder thread does with its queue: wait on get(), end the track on None.
    thread = threading.Thread(
        target=lambda: (
            inline.get() is None
            and asyncio.run_coroutine_threadsafe(transceiver.receiver._track._queue.put(None), loop)
        ),
        daemon=True,
    )
    loop = asyncio.get_running_loop()
    thread.start()
    encoder = get_encoder(OPUS)
    sine = tone(440, 0.2, 48000, -12.0)
    for i in range(10):
        payloads, timestamp = encoder.encode(stereo_frame(sine[i * 960 : (i + 1) * 960], i * 960))
        for payload in payloads:
            inline.put((OPUS, JitterFrame(data=payload, timestamp=timestamp)))
    inline.put((OPUS, JitterFrame(data=b"\xff\xff\xff", timestamp=99999)))  # garbage: counted, decoder kept
    track = transceiver.receiver._track
    decoded = [frame_to_mono(await asyncio.wait_for(track.recv(), 2)) for _ in range(10)]  # type: ignore[arg-type]
    assert abs(dominant_frequency(np.concatenate(decoded[3:]), 48000) - 440) < 3
    assert inline.errors == 1
    inline.put(None)  # the receiver stopping
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(track.recv(), 2)
    thread.join(2)
    await pc.close()


async def test_aiortc_still_has_the_internals_we_replace() -> None:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("audio")
    stock = transceiver.receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
    assert type(stock).__name__ == "Queue"
    assert isinstance(use_inline_decoder(transceiver.receiver), InlineDecoderQueue)
    sender = transceiver.sender
    for name in ("track", "encoder", "force_keyframe", "loop", "rtp_started", "rtp_exited", "ntp_timestamp"):
        assert hasattr(sender, f"_RTCRtpSender__{name}"), name
    use_inline_encoder(sender)
    assert sender._next_encoded_frame.__func__.__module__ == "voiceclient.rtc.inline"  # type: ignore[attr-defined]
    assert sender._run_rtp.__func__.__module__ == "voiceclient.rtc.inline"  # type: ignore[attr-defined]
    ids = sender._RTCRtpSender__rtp_header_extensions_map._HeaderExtensionsMap__ids  # type: ignore[attr-defined]
    assert {"mid", "abs_send_time", "audio_level"} <= set(vars(ids))
    await pc.close()


MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


@pytest.mark.parametrize(
    ("mid", "ids"),
    [("0", (1, 2, 3)), ("audio", (4, 0, 10)), ("0", (0, 0, 0)), ("1", (0, 14, 0)), ("0123456789abcdef", (9, 5, 7))],
)
def test_rtp_writer_writes_the_bytes_aiortc_serializes(mid: str, ids: tuple[int, int, int]) -> None:
    extensions = [
        RTCRtpHeaderExtensionParameters(id=i, uri=uri) for i, uri in zip(ids, (MID, ABS_SEND_TIME, AUDIO_LEVEL)) if i
    ]
    mapping = HeaderExtensionsMap()
    mapping.configure(RTCRtpParameters(headerExtensions=extensions))
    writer = RtpWriter(111, 0x1234ABCD, mid, *ids)
    assert writer.usable
    rng = np.random.default_rng(sum(ids))
    for n in range(50):
        payload = rng.bytes(int(rng.integers(1, 300)))
        seq, ts, ntp = int(rng.integers(0, 65536)), int(rng.integers(0, 2**32)), int(rng.integers(0, 2**63)) * 2 + n % 2
        level = None if n % 7 == 0 else int(rng.integers(0, 128))
        packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=ts, ssrc=0x1234ABCD, payload=payload)
        packet.marker = n % 2
        packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        packet.extensions.mid = mid
        if level is not None:
            packet.extensions.audio_level = (False, level)
        ours = writer.packet(seq, ts, bool(n % 2), payload, ntp, None if level is None else -level)
        assert ours == packet.serialize(mapping)
        parsed = RtpPacket.parse(ours, mapping)
        assert (parsed.sequence_number, parsed.timestamp, parsed.payload) == (seq, ts, payload)


def test_rtp_writer_leaves_to_aiortc_what_one_byte_extensions_cannot_carry() -> None:
    assert not RtpWriter(111, 1, "0", 15, 2, 3).usable
    assert not RtpWriter(111, 1, "x" * 17, 1, 2, 3).usable


def test_ntp_now_is_aiortcs_ntp_clock() -> None:
    micro = (1 << 32) // 1_000_000 + 1  # both read the clock to the microsecond, rounded their own ways
    before, ours, after = clock.current_ntp_time(), ntp_now(), clock.current_ntp_time()
    assert before - micro <= ours <= after + micro
