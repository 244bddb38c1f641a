"""Whether a GPT-Live call still owes the user an answer, from the call's own audio.

GPT-Live sends nothing between the user's words and the model's answer: no speech events, no "response created"
(the Realtime API has both, and `TurnTracker` reads them). A model that takes a moment to answer looks like a call
with nothing left to do, and `run_until_idle` would hang up before the answer. So the call watches what it sends
and what it hears: once the user has spoken (a frame above `LOUD`) since the model was last heard, an answer is
awaited, and the call is busy until answer audio comes, or until `ANSWER_WAIT` seconds after the user's last loud
frame (a turn the model chose not to answer).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from voiceclient.client.call_events import AudioReceived, AudioSent
from voiceclient.client.dispatcher import Dispatcher

ANSWER_WAIT = 8.0  # seconds after the user's last loud frame that an answer is waited for
LOUD = 300.0  # RMS of a 20 ms int16 frame that counts as sound (speech is thousands; digital silence is 0)


def loud(pcm: np.ndarray) -> bool:
    if not pcm.size:
        return False
    samples = pcm.astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) > LOUD


class AnswerAwaited:
    def __init__(self, wait: float = ANSWER_WAIT, clock: Callable[[], float] = time.monotonic) -> None:
        self.wait = wait
        self._clock = clock
        self.spoke_at: float | None = None  # the user's last loud frame sent
        self.heard_at: float | None = None  # the model's last loud frame received

    def subscribe(self, dispatcher: Dispatcher) -> None:
        dispatcher.on(AudioSent, self.on_sent)
        dispatcher.on(AudioReceived, self.on_received)

    def on_sent(self, event: AudioSent) -> None:
        if loud(event.pcm):
            self.spoke_at = event.at

    def on_received(self, event: AudioReceived) -> None:
        if loud(event.pcm):
            self.heard_at = event.at

    @property
    def busy(self) -> bool:
        """The user spoke after the model was last heard, less than `wait` seconds ago."""
        spoke = self.spoke_at
        if spoke is None or (self.heard_at is not None and self.heard_at >= spoke):
            return False
        return self._clock() - spoke < self.wait
