"""Real sound devices, no sound card: a PulseAudio daemon with a virtual microphone and speaker."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import types
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient.audio.format import RTP_RATE, dominant_frequency, tone

from .conftest import FIXTURES, SPEAKER_MARGIN, loud_spans

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
            late = loop.time() - (start + n * 0.02) > SPEAKER_MARGIN
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
    # callback thread (which then catches up faster than audio arrives) past what the speaker holds at the low point
    # of a frame's cycle (SPEAKER_MARGIN): audio that came late is a cut, which the speaker must count.
    # Each counted cut may split the tone, by a short hole; nothing else may.
    spans = loud_spans(heard, 48000)
    said = f"spans {spans}, speaker (gaps, trimmed, device stalls) {stats}, this loop's stalls {stalls}"
    assert stats[1] == 0, said
    assert spans and len(spans) - 1 <= stats[0] + stats[2], said
    assert all(b[0] - a[1] < 0.1 for a, b in itertools.pairwise(spans)), said
    start, end = spans[0][0], spans[-1][1]
    assert 0.9 < end - start < 1.15, said
    assert abs(dominant_frequency(heard[int(start * 48000) + 2400 : int(end * 48000) - 2400], 48000) - 880) < 3


def play_on_a_rhythm(
    monkeypatch: pytest.MonkeyPatch, speaker: Any, together: int, phase: float, held: float
) -> np.ndarray:
    """Drive the speaker on a clock of this test's: its device takes `together` 10 ms blocks at once every
    `together` x 10 ms, `phase` seconds into each 20 ms frame (after filling its own buffer with 12 at the start),
    while a 1 s tone comes in 20 ms frames from 0.2 s, held up `held` seconds 0.4 s in (a jitter buffer waiting
    for a late packet: the frames due meanwhile come at its end). What the device played."""
    import voiceclient.audio.speaker as module

    now = [0.0]
    monkeypatch.setattr(module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    pcm = tone(440, 1.0, RTP_RATE)
    chunks = [pcm[i : i + 960] for i in range(0, pcm.size, 960)]
    due = [0.2 + n * 0.02 for n in range(50)]  # (the device has found its rhythm by then, as before an answer)
    events = [(0.6 + held if 0.6 <= t < 0.6 + held else t, 1, n) for n, t in enumerate(due)]
    events += [(phase + k * together * 0.01, 0, 0) for k in range(int(1.7 / (together * 0.01)))] + [(0.0, 0, -1)]
    played = []
    out = np.zeros((480, 1), np.int16)
    for t, is_frame, n in sorted(events):
        now[0] = t
        if is_frame:
            speaker(chunks[n])
            continue
        for b in range(12 if n < 0 else together):  # (n < 0: the device filling its own buffer at the start)
            now[0] = t + b * 0.0001
            speaker._callback(out, 480, None, None)
            played.append(out[:, 0].copy())
    return np.concatenate(played)


def test_the_speaker_holds_what_its_device_takes_at_once(pulse: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """PulseAudio's ALSA plugin takes three blocks at once every 30 ms: the speaker primes that much more than its
    prebuffer, so a frame held up 19 ms (a little under what the jitter buffer waits for a late packet) is no cut,
    at any phase of the device's rhythm (at 40 ms, five phases of fifteen were); a device that takes one block at
    a time keeps the bare prebuffer. The start, where the device fills its own buffer, is not its rhythm."""
    from voiceclient.audio.speaker import SpeakerSink

    for together, target in ((3, 60.0), (1, 40.0)):
        for phase in np.arange(0.001, together * 0.01, 0.002):
            speaker = SpeakerSink()
            played = play_on_a_rhythm(monkeypatch, speaker, together, phase, held=0.019)
            said = f"{together} blocks at once, {phase * 1000:.0f} ms into a frame"
            assert (speaker.burst_ms, speaker.target_ms, speaker.gaps) == (10.0 * together, target, 0), said
            spans = loud_spans(played, RTP_RATE)
            assert len(spans) == 1 and 0.99 < spans[0][1] - spans[0][0] < 1.01, (said, spans)
