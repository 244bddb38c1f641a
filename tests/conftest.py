from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any
from collections.abc import AsyncIterator

import numpy as np
import pytest

from voiceclient import ClientSettings
from voiceclient.server import RealtimeServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def read_wav(path: str | Path) -> tuple[np.ndarray, int, int]:
    """(samples as int16 [frames, channels], rate, channels)."""
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, channels)
    return data, rate, channels


def loud_spans(pcm: np.ndarray, rate: int, dbfs: float = -40.0, frame_ms: int = 20) -> list[tuple[float, float]]:
    """Start/end seconds of the stretches whose 20 ms frames are above `dbfs`."""
    n = rate * frame_ms // 1000
    frames = pcm[: pcm.size // n * n].astype(np.float64).reshape(-1, n)
    level = 20 * np.log10(np.sqrt(np.mean(frames ** 2, axis=1)) / 32768 + 1e-12)
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


def read_events(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def assert_wire_valid(path: str | Path) -> list[dict[str, Any]]:
    """Every event of an event log validates against the official openai types (the schema oracle)."""
    from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
    from pydantic import TypeAdapter

    adapters = {"client": TypeAdapter(RealtimeClientEvent), "server": TypeAdapter(RealtimeServerEvent)}
    log = read_events(path)
    for line in log:
        adapters[line["dir"]].validate_python(line["event"])
        if line["dir"] == "server":
            assert line["event"]["event_id"].startswith("event_")
    return log


@pytest.fixture(scope="session")
def pulse() -> Any:
    """A PulseAudio daemon of our own with virtual devices: `vspk` (a null sink, the speaker) and `vmic` (a
    source remapped from the `vmicsink` monitor: what is played into `vmicsink` is heard by the microphone)."""
    import os
    import shutil
    import subprocess
    import tempfile
    import time

    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.skip("PulseAudio is not installed (scripts/test installs pulseaudio and pulseaudio-utils as root)")
    runtime = tempfile.mkdtemp(prefix="vc-pulse-")
    os.chmod(runtime, 0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
    env.pop("PULSE_SERVER", None)
    subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n", "--disallow-exit",
                    "--load=module-native-protocol-unix",
                    "--load=module-null-sink sink_name=vspk rate=48000 channels=2",
                    "--load=module-null-sink sink_name=vmicsink rate=48000 channels=1",
                    "--load=module-remap-source source_name=vmic master=vmicsink.monitor",
                    "--load=module-always-sink"], env=env, check=True, capture_output=True)
    for _ in range(100):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    subprocess.run(["pactl", "set-default-sink", "vspk"], env=env, check=True)
    subprocess.run(["pactl", "set-default-source", "vmic"], env=env, check=True)
    old = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = runtime  # PortAudio's ALSA pulse plugin finds the daemon through it
    yield env
    subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True)
    if old is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = old
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(port=0) as srv:
        yield srv


@pytest.fixture
def settings(server: RealtimeServer) -> ClientSettings:
    return ClientSettings(base_url=server.base_url, api_key="sk-test", connect_timeout=10)
