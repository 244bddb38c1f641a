"""Which response's audio the WebRTC track is carrying, for the Agents SDK model (`model.py`).

Over WebRTC the answer's audio comes on the RTP track, not in events: the server says when a response's audio
starts and stops playing (`output_audio_buffer.started` / `.stopped` / `.cleared`), and the content part it
belongs to was announced before (`response.content_part.added`). `Playout` follows that, turns the track's frames
into the SDK's `audio` events for the response playing, and remembers the responses the app interrupted (their
audio is not handed on, and one interrupted before it started is stopped as it starts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from agents.realtime.model_events import RealtimeModelAudioEvent, RealtimeModelAudioInterruptedEvent

from voiceclient.audio.format import API_RATE, RTP_RATE
from voiceclient.audio.resample import Resampler
from voiceclient.protocol import events as ev

KEPT_PARTS = 8  # audio parts remembered for responses whose audio never played (cancelled before playout)


@dataclass(frozen=True)
class Playing:
    response_id: str
    item_id: str
    content_index: int


class Playout:
    """`clear`: stops the track's audio at the server (`output_audio_buffer.clear`)."""

    def __init__(self, clear: Callable[[], None]) -> None:
        self._clear = clear
        self.parts: dict[str, tuple[str, int]] = {}  # response id -> (item id, content index) of its audio
        self.playing: Playing | None = None
        self.current_item_id: str | None = None  # the audio item last heard (a truncation or transcript refreshes it)
        self.interrupted: set[str] = set()  # responses whose audio the app stopped
        self._resampler = Resampler(RTP_RATE, API_RATE)

    def reset(self) -> None:
        """A new connection: nothing of the old one's playout goes on."""
        self.parts.clear()
        self.playing = None
        self.current_item_id = None
        self.interrupted.clear()

    def track(self, event: ev.ReceivedServerEvent) -> RealtimeModelAudioInterruptedEvent | None:
        """Follow one server event; the SDK's `audio_interrupted` when the server stopped audio the app did not."""
        if isinstance(event, ev.ResponseContentPartAdded):
            if event.part.type in ("audio", "output_audio"):
                self.parts[event.response_id] = (event.item_id, event.content_index)
                while len(self.parts) > KEPT_PARTS:
                    del self.parts[next(iter(self.parts))]
        elif isinstance(event, ev.OutputAudioBufferStarted):
            part = self.parts.get(event.response_id)
            if part is not None:
                self.playing = Playing(event.response_id, *part)
                self._resampler = Resampler(RTP_RATE, API_RATE)
                if event.response_id in self.interrupted:  # interrupted before it played: not heard at all
                    self._clear()
        elif isinstance(event, (ev.OutputAudioBufferStopped, ev.OutputAudioBufferCleared)):
            playing, self.playing = self.playing, None
            if playing is not None and playing.response_id == event.response_id:
                self.parts.pop(playing.response_id, None)
                if isinstance(event, ev.OutputAudioBufferCleared) and playing.response_id not in self.interrupted:
                    # a barge-in (the server's VAD) or an interrupt from elsewhere: the app stops its playback
                    return RealtimeModelAudioInterruptedEvent(
                        item_id=playing.item_id, content_index=playing.content_index
                    )
        elif isinstance(event, ev.ResponseDone) and event.response.id is not None:
            self.interrupted.discard(event.response.id)
        return None

    def heard(self, pcm: np.ndarray) -> RealtimeModelAudioEvent | None:
        """A frame of the track (48 kHz) as the SDK's `audio` event (24 kHz), if a response's audio is playing."""
        playing = self.playing
        if playing is None or playing.response_id in self.interrupted:
            return None
        out = self._resampler.process(pcm)
        if not out.size:
            return None
        self.current_item_id = playing.item_id
        return RealtimeModelAudioEvent(
            data=out.tobytes(),
            response_id=playing.response_id,
            item_id=playing.item_id,
            content_index=playing.content_index,
        )

    def interrupt(self, response_id: str | None, ongoing_id: str | None) -> RealtimeModelAudioInterruptedEvent | None:
        """The app stops `response_id`'s audio (None: whatever plays). Playing: the SDK's `audio_interrupted`, and
        the caller clears the server's buffer; not yet playing: it is stopped when it starts."""
        playing = self.playing
        if playing is not None and response_id in (None, playing.response_id):
            self.interrupted.add(playing.response_id)
            return RealtimeModelAudioInterruptedEvent(item_id=playing.item_id, content_index=playing.content_index)
        response_id = response_id or ongoing_id
        if response_id is not None:
            self.interrupted.add(response_id)
        return None
