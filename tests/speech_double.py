"""The one stand-in for offline speech in the tests: an `OfflineSpeech` (voiceclient/server/speech_port.py) with no
model loaded, so that the fast lane can ask for transcripts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from voiceclient.server.vad import SpeechProbability


class StandInSpeech:
    """Offline speech whose speech-to-text hears `text` in any audio. It has no VAD of its own (the energy VAD
    decides what is speech) and no voice (the server plays a tone for the answers' text)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.heard: list[int] = []  # the samples of each audio it was asked to transcribe, in order
        self._news: asyncio.Queue[int] = asyncio.Queue()

    async def next_heard(self) -> int:
        """Wait until it is asked to transcribe (again): the samples of that audio."""
        return await self._news.get()

    def start_loading(self) -> None:
        pass

    async def ready(self) -> None:
        pass

    def vad(self) -> SpeechProbability | None:
        return None

    @property
    def can_transcribe(self) -> bool:
        return True

    async def transcribe(self, pcm24k: np.ndarray) -> str | None:
        self.heard.append(pcm24k.size)
        self._news.put_nowait(pcm24k.size)
        return self.text

    @property
    def can_synthesize(self) -> bool:
        return False

    async def synthesize_parts(self, text: str, speed: float = 1.0) -> AsyncIterator[tuple[str, np.ndarray]]:
        return
        yield  # an async generator that yields nothing
