"""Opus on the event loop (voiceclient.rtc.inline): the same wire as aiortc's own path, and guards that fail when
aiortc moves the internals it replaces."""

from __future__ import annotations

import asyncio
import threading

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import compute_audio_level_dbov

from voiceclient.audio.format import dominant_frequency, tone
from voiceclient.audio.tracks import frame_to_mono
from voiceclient.rtc.inline import InlineDecoderQueue, audio_level_dbov, use_inline_decoder, use_inline_encoder

pytestmark = pytest.mark.timeout(20)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def stereo_frame(mono: np.ndarray, pts: int = 0) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.repeat(mono.astype(np.int16), 2).reshape(1, -1), format="s16",
                                       layout="stereo")
    frame.sample_rate = 48000
    frame.pts = pts
    return frame


@pytest.mark.parametrize("level", [-90.0, -60.0, -40.0, -20.5, -6.0, -0.1])
def test_audio_level_is_the_value_aiortc_computes(level: float) -> None:
    rng = np.random.default_rng(int(-level * 10))
    for _ in range(5):
        noise = rng.normal(0, 32767 * 10 ** (level / 20), 960).clip(-32768, 32767).astype(np.int16)
        frame = stereo_frame(noise)
        assert audio_level_dbov(frame) == compute_audio_level_dbov(frame)
    silent = stereo_frame(np.zeros(960, np.int16))
    assert audio_level_dbov(silent) == compute_audio_level_dbov(silent) == -127


def test_frame_to_mono_averages_the_two_channels() -> None:
    left, right = np.full(960, 1001, np.int16), np.full(960, -3001, np.int16)
    frame = av.AudioFrame.from_ndarray(np.stack((left, right), axis=1).reshape(1, -1), format="s16",
                                       layout="stereo")
    assert frame_to_mono(frame).tolist() == [-1000] * 960


async def test_packets_are_decoded_on_the_loop_and_the_thread_still_ends_the_track() -> None:
    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("audio")
    transceiver.receiver._track = RemoteStreamTrack(kind="audio")  # as setRemoteDescription makes it
    inline = use_inline_decoder(transceiver.receiver)
    assert transceiver.receiver._RTCRtpReceiver__decoder_queue is inline  # type: ignore[attr-defined]
    # What aiortc's decoder thread does with its queue: wait on get(), end the track on None.
    thread = threading.Thread(target=lambda: inline.get() is None and asyncio.run_coroutine_threadsafe(
        transceiver.receiver._track._queue.put(None), loop), daemon=True)
    loop = asyncio.get_running_loop()
    thread.start()
    encoder = get_encoder(OPUS)
    sine = tone(440, 0.2, 48000, -12.0)
    for i in range(10):
        payloads, timestamp = encoder.encode(stereo_frame(sine[i * 960:(i + 1) * 960], i * 960))
        for payload in payloads:
            inline.put((OPUS, JitterFrame(data=payload, timestamp=timestamp)))
    inline.put((OPUS, JitterFrame(data=b"\xff\xff\xff", timestamp=99999)))  # garbage: counted, decoder kept
    track = transceiver.receiver._track
    decoded = [frame_to_mono(await asyncio.wait_for(track.recv(), 2)) for _ in range(10)]
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
