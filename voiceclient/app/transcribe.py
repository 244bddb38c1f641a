"""`voiceclient transcribe`: a transcription session from a WAV or the microphone, its transcript printed as it comes.

    voiceclient transcribe meeting.wav > meeting.txt      one line per turn on stdout; status on stderr
    voiceclient transcribe --mic                          until Ctrl-C

Each committed turn's `completed` transcript is one line on stdout. On a terminal the turn's deltas show as they
arrive, on the line the transcript then replaces. A failed turn and a server error are said on stderr.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from voiceclient.audio.sources import AudioSource
from voiceclient.client.call import VoiceCall
from voiceclient.client.options import Continuity, Recording
from voiceclient.client.settings import ClientSettings
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import TranscriptionSessionConfig

TRANSCRIPT_WAIT = 60.0  # seconds a manual commit at the end of the input waits for its transcript


class TranscriptLines:
    """Prints a transcription session's turns: each `completed` transcript a line on `out`, the deltas live on a
    terminal (`live`), failures and errors on `err`."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, live: bool | None = None) -> None:
        self._out = out
        self._err = err
        self.live = self.out.isatty() if live is None else live
        self.lines: list[str] = []  # the transcripts printed, in order
        self.failures = 0
        self._partial = ""  # the deltas shown of the turn being transcribed (live only)

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    def attach(self, call: VoiceCall) -> None:
        call.on(ev.InputTranscriptionDelta, self.on_delta)
        call.on(ev.InputTranscriptionCompleted, self.on_completed)
        call.on(ev.InputTranscriptionFailed, self.on_failed)
        call.on(ev.Error, self.on_error)

    def status(self, text: str) -> None:
        """A line about the session (connected, hanging up): on `err`, so `out` holds only the transcript."""
        self._clear()
        self.err.write(f"voiceclient: {text}\n")
        self.err.flush()

    def on_delta(self, event: ev.InputTranscriptionDelta) -> None:
        if not self.live or not event.delta:
            return
        self._partial += event.delta
        self.out.write(f"\r\x1b[K{self._partial}")
        self.out.flush()

    def on_completed(self, event: ev.InputTranscriptionCompleted) -> None:
        text = event.transcript.strip()
        self._clear()
        if text:
            self.lines.append(text)
            self.out.write(text + "\n")
            self.out.flush()

    def on_failed(self, event: ev.InputTranscriptionFailed) -> None:
        self.failures += 1
        self.status(f"a turn was not transcribed: {event.error.get('message') or event.error}")

    def on_error(self, event: ev.Error) -> None:
        self.status(f"server error: {event.error.message}" + (f" ({event.error.code})" if event.error.code else ""))

    def _clear(self) -> None:
        if self._partial:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._partial = ""


async def transcribe(
    settings: ClientSettings,
    session: TranscriptionSessionConfig,
    source: AudioSource,
    lines: TranscriptLines,
    *,
    recording: Recording | None = None,
    continuity: Continuity | None = None,
    idle_exit: float = 2.0,
    max_duration: float | None = None,
    until_stopped: bool = False,
) -> str:
    """Run one transcription session from `source` and print its turns; the reason it ended: "idle" (the input
    ended and every turn was transcribed) or "max_duration"; `until_stopped` (a microphone): only by
    `max_duration`, the server ending it, or Ctrl-C.
    Without turn detection, the input is committed by hand when it ends."""
    async with VoiceCall(settings, session, source=source, recording=recording, continuity=continuity) as call:
        lines.attach(call)
        lines.status(f"transcribing; connected in {call.connect_seconds:.2f} s (call {call.call_id})")
        if until_stopped:
            try:
                async with asyncio.timeout(max_duration):  # (None: no limit)
                    error = await call.ended()
            except TimeoutError:
                return "max_duration"
            if error is not None:
                raise error
            return "closed"
        reason = await call.run_until_idle(idle_exit, max_duration)
        if reason == "idle" and manual_turns(call):
            await commit_and_wait(call, max_duration)
        return reason


def manual_turns(call: VoiceCall) -> bool:
    """The session as the server confirmed it has no turn detection: the client commits the input itself."""
    audio_in = ((call.effective_session or {}).get("audio") or {}).get("input") or {}
    return "turn_detection" in audio_in and audio_in["turn_detection"] is None


async def commit_and_wait(call: VoiceCall, max_duration: float | None) -> None:
    """Commit what was sent and wait for its transcript (or the server's refusal of the commit)."""
    commit = ev.InputAudioBufferCommit()
    call.send(commit)
    wait = TRANSCRIPT_WAIT
    if max_duration is not None:
        wait = max(0.1, min(wait, call.t0 + max_duration - time.monotonic()))

    def answered(event: ev.ReceivedServerEvent) -> bool:
        if isinstance(event, ev.Error):
            return event.error.event_id == commit.event_id
        return isinstance(event, ev.InputTranscriptionEnd)

    await call.wait_for(answered, wait)
    await call.events_handled()
