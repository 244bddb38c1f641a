"""What the server asks of offline speech (VAD, speech-to-text, text-to-speech): the one seam between the protocol
server and the models. The server never imports the models' package; whoever builds a server with them (the
command line, the pytest plugin, a test) passes one in: `voiceclient.speech.backends.SpeechBackends`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np

from voiceclient.server.vad import SpeechProbability


class OfflineSpeech(Protocol):
    """Offline speech as a server uses it. Loading may take seconds: the server starts it when it starts, and
    waits for it before its first call or session."""

    def start_loading(self) -> None:
        """Begin loading the models in the background (called again: nothing more)."""
        ...

    async def ready(self) -> None:
        """Wait until the models are loaded."""
        ...

    def vad(self) -> SpeechProbability | None:
        """A new speech probability for one stream's turn detector, or None: the energy VAD."""
        ...

    @property
    def can_transcribe(self) -> bool:
        """`transcribe` gives words (else the server makes no transcripts)."""
        ...

    async def transcribe(self, pcm24k: np.ndarray) -> str | None:
        """The words in 24 kHz mono int16 audio; None when nothing can transcribe."""
        ...

    @property
    def can_synthesize(self) -> bool:
        """`synthesize_parts` gives a voice (else the server plays a tone for text without audio)."""
        ...

    def synthesize_parts(self, text: str, speed: float = 1.0) -> AsyncIterator[tuple[str, np.ndarray]]:
        """`text` voiced part by part: each part's text and its 24 kHz mono int16 audio (the first ready soonest,
        the rest synthesized while it plays), spoken at `speed` (the session's `audio.output.speed`: 0.25-1.5
        times the voice's own pace, its pitch kept); nothing without a voice."""
        ...
