from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest

from voiceclient import ConfigError, WavSource
from voiceclient.audio import stretch
from voiceclient.audio.format import dominant_frequency, rms_dbfs, tone
from voiceclient.audio.resample import Doubler, Resampler, resample
from voiceclient.audio.sinks import ConversationRecorder, WavSink, WavWriter
from voiceclient.audio.sources import AudioSource, BufferSource, load_audio
from voiceclient.audio.tracks import OutboundTrack
from voiceclient.server.playout import PlayoutQueue, UpsampledPlayout

from .conftest import FIXTURES, loud_spans, read_wav, voice_pitch

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize(
    "name, freq, seconds",
    [("tone_440_16k_stereo.wav", 440, 2.0), ("tone_880_44k_float.wav", 880, 1.4), ("long_tone_48k.wav", 523.25, 3.6)],
)
def test_wav_source_converts_any_format_to_48k_mono(name: str, freq: float, seconds: float) -> None:
    src = WavSource(FIXTURES / name)
    assert abs(src.duration - seconds) < 0.01
    spans = loud_spans(src.pcm, 48000)
    a, b = spans[0]
    assert abs(dominant_frequency(src.pcm[int(a * 48000) + 2400 : int(b * 48000) - 2400], 48000) - freq) < 2


def test_wav_source_gives_exact_frames_then_silence() -> None:
    src = BufferSource(np.arange(1500, dtype=np.int16))
    first, second, third = src.read(960), src.read(960), src.read(960)
    assert first.size == second.size == third.size == 960
    assert (second[540:] == 0).all() and not third.any() and src.done


def test_bad_audio_files_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        WavSource(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....WAVEjunk" * 10)
    with pytest.raises(ConfigError, match=r"junk\.wav"):
        WavSource(junk)


async def test_outbound_track_is_paced_by_the_wall_clock_with_drift_free_pts() -> None:
    track = OutboundTrack(BufferSource(tone(1000, 1.0, 48000)))
    start = time.monotonic()
    frames = [await track.recv() for _ in range(25)]
    elapsed = time.monotonic() - start
    assert [f.pts for f in frames] == [i * 960 for i in range(25)]
    assert all(f.samples == 960 and f.sample_rate == 48000 and f.format.name == "s16" for f in frames)
    assert all(f.layout.name == "mono" for f in frames)  # for the mono Opus encoder (voiceclient.rtc.inline)
    assert frames[5].to_ndarray().any()
    assert 0.40 < elapsed < 1.5  # 24 frame periods of 20 ms after the first, not a burst


async def test_outbound_track_never_raises_when_the_source_breaks() -> None:
    class Broken(AudioSource):
        def read(self, n: int) -> np.ndarray:
            raise OSError("device unplugged")

    track = OutboundTrack(Broken())
    frames = [await track.recv() for _ in range(3)]
    assert all(not f.to_ndarray().any() for f in frames)
    track.stop()


def test_resampler_streams_without_clicks() -> None:
    x = tone(440, 1.0, 48000)
    r = Resampler(48000, 24000)
    y = np.concatenate([r.process(x[i : i + 960]) for i in range(0, x.size, 960)] + [r.flush()])
    assert y.size == 24000
    whole = resample(x, 48000, 24000)
    assert np.abs(y.astype(int) - whole.astype(int)).max() <= 1
    assert abs(dominant_frequency(y[1200:-1200], 24000) - 440) < 1


def test_playout_queue_reports_start_drain_and_played_samples() -> None:
    log: list[tuple] = []
    q = PlayoutQueue(on_start=lambda t: log.append(("start", t)), on_drain=lambda t, n: log.append(("drain", t, n)))
    q.put("a", np.ones(1500, np.int16))
    q.close("a")
    q.put("b", np.ones(500, np.int16))
    assert q.read(960).all() and log == [("start", "a")]
    q.read(960)
    assert log == [("start", "a"), ("drain", "a", 1500), ("start", "b")]
    assert q.played("b") == 420
    assert q.clear() == {"b": 420} and not q.read(960).any()


def _image_db(pcm: np.ndarray, rate: int, above: float) -> float:
    """The strongest component above `above` Hz, in dB under the strongest of all."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    return float(20 * np.log10(spectrum[freqs > above].max() / spectrum.max()))


@pytest.mark.parametrize("hz", [440, 4000, 8000])
def test_the_doubler_interpolates_24_to_48_khz_frame_by_frame_as_libswresample_does(hz: int) -> None:
    x = tone(hz, 1.0, 24000)
    doubler = Doubler()
    y = np.concatenate([doubler.process(x[i : i + 480]) for i in range(0, x.size, 480)])  # 20 ms frames
    whole = resample(x, 24000, 48000)
    assert y.size == 2 * x.size
    inner, reference = y[4800:-4800], whole[4800:-4800]
    assert abs(dominant_frequency(inner, 48000) - hz) < 2
    assert abs(rms_dbfs(inner) - rms_dbfs(reference)) < 0.1  # flat where speech is
    assert _image_db(inner, 48000, 12500) < -80  # the image above 12 kHz is filtered out
    # the same samples one frame at a time as all at once, and silence costs nothing once the filter is empty
    assert np.array_equal(y, Doubler().process(x))
    ring = doubler.process(np.zeros(480, np.int16))  # the filter's tail of the tone, then nothing
    assert ring[:48].any() and not ring[48:].any() and not doubler.process(np.zeros(480, np.int16)).any()


def test_the_webrtc_playout_queues_at_24_khz_and_is_read_at_48() -> None:
    log: list[tuple] = []
    q = UpsampledPlayout(on_start=lambda t: log.append(("start", t)), on_drain=lambda t, n: log.append(("drain", t, n)))
    heard: list[np.ndarray] = []
    q.on_read = heard.append
    assert q.rate == 24000
    q.put("a", tone(440, 0.03, 24000))  # 720 samples at 24 kHz
    q.close("a")
    q.put("b", tone(440, 0.5, 24000))
    first = q.read(960)
    assert first.size == 960 and log == [("start", "a")] and q.played("a") == 480
    q.read(960)
    assert log == [("start", "a"), ("drain", "a", 720), ("start", "b")] and q.played("b") == 240
    frames = np.concatenate([q.read(960) for _ in range(10)])
    assert abs(dominant_frequency(frames, 48000) - 440) < 3
    assert [f.size for f in heard] == [960] * 12  # the recording sees what the track sent, at 48 kHz
    assert q.clear() == {"b": 240 + 4800}


def test_wav_writer_is_valid_after_every_flush(tmp_path) -> None:
    path = tmp_path / "w.wav"
    w = WavWriter(path, 24000, 2)
    w.write(np.ones(40000, np.int16))
    w.flush()
    data, rate, ch = read_wav(path)  # read while still open: the header already matches the data
    assert (rate, ch, data.shape[0]) == (24000, 2, 20000)
    raw = path.read_bytes()
    assert struct.unpack("<I", raw[4:8])[0] == len(raw) - 8
    w.close()
    w.close()


def test_sinks_keep_the_timeline_with_silence_for_gaps(tmp_path) -> None:
    t0 = 100.0
    sink = WavSink(tmp_path / "a.wav", t0)
    rec = ConversationRecorder(tmp_path / "c.wav", t0)
    x = tone(440, 2.0, 48000)
    for i in range(100):
        if 40 <= i < 60:  # the sender paused for 400 ms: pts jumps, nothing arrives
            continue
        frame = x[i * 960 : (i + 1) * 960]
        sink(frame, i * 960, t0 + 0.5 + (i + 1) * 0.02)
        rec.received(frame, 7000 + i * 960, t0 + 0.5 + (i + 1) * 0.02 + 0.003 * (i % 3))  # with jitter
        rec.sent(frame // 4, i * 960, t0 + (i + 1) * 0.02)
    sink.close(until=t0 + 3.0)
    rec.close(until=t0 + 3.0)
    mono, rate, _ = read_wav(tmp_path / "a.wav")
    assert mono.shape[0] == 3 * 24000
    spans = loud_spans(mono[:, 0], rate)
    assert [(round(a, 2), round(b, 2)) for a, b in spans] == [(0.5, 1.3), (1.7, 2.5)]
    stereo, rate, ch = read_wav(tmp_path / "c.wav")
    assert ch == 2 and stereo.shape[0] == 3 * 24000
    assert [(round(a, 2), round(b, 2)) for a, b in loud_spans(stereo[:, 1], rate)] == [(0.5, 1.3), (1.7, 2.5)]
    assert rms_dbfs(stereo[:, 0]) < rms_dbfs(stereo[:, 1]) - 6


async def test_recorder_survives_cancellation_mid_write(tmp_path) -> None:
    rec = ConversationRecorder(tmp_path / "c.wav", time.monotonic())

    async def feed() -> None:
        i = 0
        while True:
            rec.sent(np.full(960, 1000, np.int16), i * 960, time.monotonic())
            i += 1
            await asyncio.sleep(0.001)

    task = asyncio.ensure_future(feed())
    await asyncio.sleep(0.1)
    task.cancel()
    rec.close(time.monotonic())
    data, _rate, ch = read_wav(tmp_path / "c.wav")
    assert ch == 2 and data.shape[0] > 0


def test_a_lagging_event_loop_moves_neither_the_recording_nor_the_meter(tmp_path) -> None:
    """Frames are stamped when the loop gets to them: late by its lag, never early. The first frames of a call
    (stamped 80 ms late here) and the answer's first frame (250 ms late) must not move the recording's lanes or
    the meter's turn latency: both place frames by pts on the earliest-stamped frame."""
    from voiceclient.client.recording import TurnMeter

    t0 = 100.0
    rec = ConversationRecorder(tmp_path / "c.wav", t0)
    meter = TurnMeter()
    loud, quiet = np.full(960, 8000, np.int16), np.zeros(960, np.int16)
    for i in range(150):  # 3 s: the user speaks 0.5-1.5 s, the answer starts at 2.0 s
        lag_in = 0.08 if i < 5 else 0.25 if i == 100 else 0.0  # the answer's first frame is stamped late
        sent, received = (loud if 25 <= i < 75 else quiet), (loud if i >= 100 else quiet)
        rec.sent(sent, i * 960, t0 + (i + 1) * 0.02 + (0.08 if i < 5 else 0.0))
        meter.sent(sent, i * 960, t0 + (i + 1) * 0.02 + (0.08 if i < 5 else 0.0))
        rec.received(received, 5000 + i * 960, t0 + (i + 1) * 0.02 + lag_in)
        meter.received(received, 5000 + i * 960, t0 + (i + 1) * 0.02 + lag_in)
    rec.close(until=t0 + 3.0)
    stereo, rate, _ = read_wav(tmp_path / "c.wav")
    assert [(round(a, 2), round(b, 2)) for a, b in loud_spans(stereo[:, 0], rate)] == [(0.5, 1.5)]
    assert [(round(a, 2), round(b, 2)) for a, b in loud_spans(stereo[:, 1], rate)] == [(2.0, 3.0)]
    assert meter.latencies == [pytest.approx(0.5)]


def sidebands_db(pcm: np.ndarray, rate: int) -> float:
    """The strongest spectral component more than 30 Hz from the peak, in dB below the peak: a tone cut or joined
    with clicks, or wobbling in phase, spreads energy beside its line."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    peak = freqs[int(np.argmax(spectrum))]
    return float(20 * np.log10(spectrum[np.abs(freqs - peak) > 30].max() / spectrum.max()))


@pytest.mark.parametrize("speed", [0.25, 0.8, 1.5])
@pytest.mark.parametrize("frequency", [110.0, 440.0, 2500.0])
def test_time_scaling_a_tone_changes_its_length_not_its_frequency_and_adds_no_clicks(
    speed: float, frequency: float
) -> None:
    pcm = tone(frequency, 2.0, 24_000)
    out = stretch.time_scale(pcm, speed, 24_000)
    assert out.size == round(pcm.size / speed)
    inner = out[2400:-2400]  # without the tone's own 10 ms fades
    assert dominant_frequency(inner, 24_000) == pytest.approx(frequency, abs=1.0)
    assert sidebands_db(inner, 24_000) < -45  # a click every 15 ms piece would stand at about -30 dB
    assert rms_dbfs(inner) == pytest.approx(rms_dbfs(pcm[2400:-2400]), abs=0.5)  # the pieces add up to 1


def test_time_scaling_a_voice_keeps_its_pitch() -> None:
    voice = load_audio(FIXTURES / "speech" / "sentence_1.wav", 24_000)

    for speed in (0.5, 1.5):
        out = stretch.time_scale(voice, speed, 24_000)
        assert out.size == round(voice.size / speed)
        assert voice_pitch(out) == pytest.approx(voice_pitch(voice), rel=0.03)


def test_time_scaling_at_speed_one_is_the_audio_itself() -> None:
    pcm = tone(440, 0.5, 24_000)
    assert stretch.time_scale(pcm, 1.0, 24_000) is pcm
    assert stretch.time_scale(np.zeros(0, np.int16), 1.5, 24_000).size == 0
    assert stretch.time_scale(pcm[:10], 1.5, 24_000).size == 7  # shorter than a piece: still its share
