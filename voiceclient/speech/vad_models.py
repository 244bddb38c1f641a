"""Silero VAD v6 for the server's turn detector: a `SpeechProbability` (voiceclient.server.vad) per stream, all
running one shared ONNX session."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from voiceclient.speech.installed import package_dir


def silero_path() -> Path | None:
    """Silero VAD v6 as faster-whisper ships it (`faster_whisper/assets/silero_vad_v6.onnx`), if installed."""
    package = package_dir("faster_whisper")
    path = package / "assets" / "silero_vad_v6.onnx" if package is not None else None
    return path if path is not None and path.is_file() else None


class SileroModel:
    """The shared ONNX session; each call gets its own `SileroProbability` (the recurrent state is per stream).

    faster-whisper's export of Silero VAD v6: `input` [n, 576] (64 samples of context, then 512 new ones at
    16 kHz), the LSTM's `h` and `c` [1, 1, 128]; out `speech_probs` [n], `hn`, `cn`. faster-whisper runs a whole
    file at once; here it runs a row at a time, carrying h, c and the context (the same probabilities, within
    0.005)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.lock = threading.Lock()


class SileroProbability:
    rate = 16_000
    frame = 512  # 32 ms
    hysteresis = 0.15
    hangover_ms = 100  # see server/vad.py: the silence is counted from the energy end of speech
    CONTEXT = 64

    def __init__(self, model: SileroModel) -> None:
        self.model = model
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros((1, 1, 128), np.float32)
        self.c = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros(self.CONTEXT, np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        x = np.concatenate([self.context, frame.astype(np.float32) / 32768.0])
        self.context = x[-self.CONTEXT :]
        probs, self.h, self.c = self.model.session.run(None, {"input": x[None, :], "h": self.h, "c": self.c})
        return float(np.asarray(probs).reshape(-1)[0])
