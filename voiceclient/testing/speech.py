"""What was said in a recording: the same offline speech-to-text as the embedded server (the `agent` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voiceclient.audio.sources import load_audio
from voiceclient.errors import ConfigError
from voiceclient.speech.backends import SpeechBackends
from voiceclient.speech.stt import STT_RATE

_backends: SpeechBackends | None = None


def speech_backends() -> SpeechBackends:
    """One set of loaded speech models per process (tests share them)."""
    global _backends
    if _backends is None:
        backends = SpeechBackends()
        backends.load()  # synchronously: helpers may run outside an event loop
        _backends = backends
    return _backends


def transcribe(pcm: np.ndarray, rate: int) -> str:
    """The words in `pcm`, by the standard (30 s window) pass: a test's ear is not in a hurry, and its hearing
    should not change with the server's latency shortcuts."""
    stt = speech_backends().stt
    if stt is None:
        raise ConfigError("no offline speech-to-text is installed: pip install 'voiceclient[agent]'")
    from voiceclient.audio.resample import resample

    return stt.transcribe(resample(np.asarray(pcm, np.int16), rate, STT_RATE), quick=False)


def transcribe_wav(path: str | Path, start: float = 0.0, end: float | None = None) -> str:
    """The words in a WAV (any format), e.g. the assistant output of a call; `start`/`end` in seconds."""
    pcm = load_audio(path, STT_RATE)
    pcm = pcm[int(start * STT_RATE) : None if end is None else int(end * STT_RATE)]
    return transcribe(pcm, STT_RATE)
