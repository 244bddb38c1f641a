"""Helpers for users' own tests: assert on what was said, virtual audio devices. No pytest needed here; the
fixtures (the embedded server, the offline agent) are in `voiceclient.testing.plugin`:

    pytest_plugins = ["voiceclient.testing.plugin"]      # in your conftest.py

    async def test_weather(agent_server):
        async with VoiceCall(ClientSettings(base_url=agent_server.base_url, api_key="sk-test"),
                             source=WavSource("question.wav"), output_wav="out.wav") as call:
            await call.run_until_idle()
        assert "sunny" in transcribe_wav("out.wav").lower()

`transcribe_wav` uses the same offline speech-to-text as the server (the `agent` extra).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from voiceclient.audio.sources import load_audio
from voiceclient.errors import ConfigError
from voiceclient.server.speech import STT_RATE, SpeechBackends

__all__ = ["speech_backends", "transcribe", "transcribe_wav", "virtual_audio_devices"]

_speech: SpeechBackends | None = None


@contextlib.contextmanager
def virtual_audio_devices() -> Iterator[dict[str, str]]:
    """A PulseAudio daemon of its own with a virtual speaker (`vspk`, a null sink) and microphone (`vmic`, remapped
    from the `vmicsink` monitor: what is played into `vmicsink` is heard by the microphone). Yields the environment
    for `paplay`/`parecord`; this process's PortAudio finds it through XDG_RUNTIME_DIR (set before sounddevice is
    first imported). Needs Debian's pulseaudio, pulseaudio-utils and libasound2-plugins."""
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        raise ConfigError("PulseAudio is not installed: apt-get install pulseaudio pulseaudio-utils libasound2-plugins")
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
    old = os.environ.get("XDG_RUNTIME_DIR")
    try:
        for _ in range(100):
            if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        subprocess.run(["pactl", "set-default-sink", "vspk"], env=env, check=True, capture_output=True)
        subprocess.run(["pactl", "set-default-source", "vmic"], env=env, check=True, capture_output=True)
        os.environ["XDG_RUNTIME_DIR"] = runtime
        yield env
    finally:
        subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True)
        if old is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = old
        shutil.rmtree(runtime, ignore_errors=True)


def speech_backends() -> SpeechBackends:
    """One set of loaded speech models per process (tests share them)."""
    global _speech
    if _speech is None:
        backends = SpeechBackends()
        backends.load()  # synchronously: helpers may run outside an event loop
        _speech = backends
    return _speech


def transcribe(pcm: np.ndarray, rate: int) -> str:
    stt = speech_backends().stt
    if stt is None:
        raise ConfigError("no offline speech-to-text is installed: pip install 'voiceclient[agent]'")
    from voiceclient.audio.resample import resample

    return stt.transcribe(resample(np.asarray(pcm, np.int16), rate, STT_RATE))


def transcribe_wav(path: str | Path, start: float = 0.0, end: float | None = None) -> str:
    """The words in a WAV (any format), e.g. the assistant output of a call; `start`/`end` in seconds."""
    pcm = load_audio(path, STT_RATE)
    pcm = pcm[int(start * STT_RATE):None if end is None else int(end * STT_RATE)]
    return transcribe(pcm, STT_RATE)
