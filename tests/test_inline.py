"""Opus on the event loop (voiceclient.rtc.inline): the same wire as aiortc's own path, and guards that fail when
aiortc moves the internals it replaces."""

from __future__ import annotations

import asyncio
import threading

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs import get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import compute_audio_level_dbov

from voiceclient.audio.format import dominant_frequency, rms_dbfs, tone
from voiceclient.audio.tracks import frame_to_mono
from voiceclient.rtc.inline import (
    InlineDecoderQueue,
    MonoOpusDecoder,
    MonoOpusEncoder,
    audio_level_dbov,
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
    for name in ("track", "encoder", "force_keyframe", "loop"):
        assert hasattr(sender, f"_RTCRtpSender__{name}"), name
    use_inline_encoder(sender)
    assert sender._next_encoded_frame.__func__.__module__ == "voiceclient.rtc.inline"  # type: ignore[attr-defined]
    await pc.close()
