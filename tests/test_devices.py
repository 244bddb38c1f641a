"""Real sound devices, no sound card: a PulseAudio daemon with a virtual microphone and speaker."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from voiceclient.audio.format import RTP_RATE, dominant_frequency, tone

from .conftest import FIXTURES, loud_spans

pytestmark = pytest.mark.timeout(60)


def test_devices_are_listed_and_found(pulse) -> None:
    from voiceclient.audio.devices import find_device, format_devices, list_devices
    from voiceclient.errors import DeviceError

    devices = list_devices()
    table = format_devices(devices)
    assert any(d.inputs > 0 for d in devices) and any(d.outputs > 0 for d in devices)
    assert "< default input, > default output" in table
    mic = find_device(None, "input")
    assert mic.inputs >= 1 and find_device(str(mic.index), "input") == mic
    assert find_device(mic.name[:4].upper(), "input").inputs >= 1
    with pytest.raises(DeviceError, match="no input device 'nothing-like-this'; input devices are"):
        find_device("nothing-like-this", "input")


async def test_the_microphone_hears_what_is_played_into_it(pulse, tmp_path: Path) -> None:
    from voiceclient.audio.mic import MicSource

    mic = MicSource()
    mic.start()
    try:
        for _ in range(100):  # warm up: PulseAudio streams stall for a moment after they start
            await mic.next_block()
        player = subprocess.Popen(["paplay", "--device=vmicsink", str(FIXTURES / "tone_440_16k_stereo.wav")], env=pulse)
        blocks = [await mic.next_block(timeout=0.5) for _ in range(150)]  # 3 s
        player.wait(10)
    finally:
        mic.close()
    pcm = np.concatenate(blocks)
    spans = loud_spans(pcm, RTP_RATE)
    assert spans, "nothing reached the microphone"
    start, end = spans[0]
    assert 0.8 < end - start < 1.2
    assert abs(dominant_frequency(pcm[int(start * RTP_RATE) + 2400 : int(end * RTP_RATE) - 2400], RTP_RATE) - 440) < 3
    assert all(b.size == 960 for b in blocks)


async def test_the_speaker_plays_what_it_receives(pulse, tmp_path: Path) -> None:
    from voiceclient.audio.speaker import SpeakerSink

    out = tmp_path / "speaker.wav"
    speaker = SpeakerSink()
    speaker.start()
    recorder = subprocess.Popen(
        [
            "parecord",
            "--device=vspk.monitor",
            "--channels=1",
            "--rate=48000",
            "--format=s16le",
            "--file-format=wav",
            str(out),
        ],
        env=pulse,
    )
    try:
        await asyncio.sleep(2.0)  # warm up: the output callback stalls for a while after start
        speaker.device_stalls = 0
        pcm = tone(880, 1.0, RTP_RATE)
        loop = asyncio.get_running_loop()
        start = loop.time()
        stalls, behind = 0, False  # how often this loop itself fell behind by more than the speaker's prebuffer
        for n, i in enumerate(range(0, pcm.size, 960)):  # as frames arrive: 20 ms apart on the sender's clock
            await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))  # (drift-free, like RTP)
            late = loop.time() - (start + n * 0.02) > 0.035
            stalls += late and not behind
            behind = late
            speaker(pcm[i : i + 960])
        await asyncio.sleep(0.5)
        stats = (speaker.gaps, speaker.trimmed, speaker.device_stalls)
    finally:
        recorder.terminate()
        recorder.wait(10)
        speaker.close()
    with wave.open(str(out)) as w:
        heard = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    # Nothing trimmed: paced input never exceeds the cap. A busy machine can hold up this loop or the device's
    # callback thread (which then catches up faster than audio arrives) past what the speaker holds (40 ms, half
    # of it at the low point of a frame's cycle): audio that came late is a cut, which the speaker must count.
    # Each counted cut may split the tone, by a short hole; nothing else may.
    spans = loud_spans(heard, 48000)
    said = f"spans {spans}, speaker (gaps, trimmed, device stalls) {stats}, this loop's stalls {stalls}"
    assert stats[1] == 0, said
    assert spans and len(spans) - 1 <= stats[0] + stats[2], said
    assert all(b[0] - a[1] < 0.1 for a, b in itertools.pairwise(spans)), said
    start, end = spans[0][0], spans[-1][1]
    assert 0.9 < end - start < 1.15, said
    assert abs(dominant_frequency(heard[int(start * 48000) + 2400 : int(end * 48000) - 2400], 48000) - 880) < 3
