"""GPT-Live says nothing between the user's words and the model's answer, so a call judges from its own audio
whether an answer is still due (`client/live_answer.py`): `run_until_idle` must not hang up on a model that takes a
few seconds to answer. Unit tests on a clock of our own, then the real thing against `serve` over both transports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voiceclient.audio.format import dominant_frequency, tone
from voiceclient.audio.sources import WavSource
from voiceclient.client.call import VoiceCall
from voiceclient.client.call_events import AudioReceived, AudioSent
from voiceclient.client.live_answer import AnswerAwaited
from voiceclient.client.options import Recording
from voiceclient.client.settings import ClientSettings
from voiceclient.protocol.session import SessionConfig
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder

from .conftest import FIXTURES, loud_spans, read_wav

pytestmark = pytest.mark.timeout(90)
SPEECH = FIXTURES / "speech" / "sentence_1.wav"
LOUD = tone(440, 0.02, 48_000)
QUIET = np.zeros(960, np.int16)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_due_once_the_user_speaks_until_the_model_is_heard() -> None:
    clock = Clock()
    due = AnswerAwaited(wait=8.0, clock=clock)
    assert not due.busy  # nothing said yet
    due.on_sent(AudioSent(QUIET, 0, 100.0))
    assert not due.busy  # silence is not a turn
    due.on_sent(AudioSent(LOUD, 960, 100.5))
    clock.now = 103.0
    assert due.busy  # 2.5 s after the user's words, no answer heard
    due.on_received(AudioReceived(QUIET, 0, 103.5))
    assert due.busy  # the model's silence is not an answer
    due.on_received(AudioReceived(LOUD, 960, 104.0))
    assert not due.busy  # answered


def test_a_turn_left_unanswered_is_given_up_after_the_wait() -> None:
    clock = Clock()
    due = AnswerAwaited(wait=8.0, clock=clock)
    due.on_received(AudioReceived(LOUD, 0, 99.0))  # an earlier answer
    due.on_sent(AudioSent(LOUD, 0, 100.0))  # the user speaks again
    clock.now = 107.9
    assert due.busy
    clock.now = 108.1
    assert not due.busy


SLOW = """
after_turns = "silence"

[[turns]]
delay_ms = 2500
text = "Here is the answer."
tone = { frequency = 660, seconds = 1.0 }
"""


@pytest.mark.webrtc
@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_a_slow_live_answer_is_waited_for_not_hung_up_on(tmp_path: Path, transport: str) -> None:
    scenario = tmp_path / "slow.toml"
    scenario.write_text(SLOW)
    out = tmp_path / "answer.wav"
    async with RealtimeServer(port=0, responder=ScenarioResponder.from_file(scenario)) as server:
        settings = ClientSettings.model_validate(
            {"base_url": server.base_url, "api_key": "sk-test", "transport": transport}
        )
        session = SessionConfig.model_validate({"type": "realtime", "model": "gpt-live-1"})
        async with VoiceCall(settings, session, source=WavSource(SPEECH), recording=Recording(output_wav=out)) as call:
            # 1 s of quiet is less than the model takes to answer: without the answer being due, this hangs up
            assert await call.run_until_idle(idle_seconds=1.0, max_duration=40) == "idle"
    frames, rate, _ = read_wav(out)
    pcm = frames[:, 0]
    spans = loud_spans(pcm, rate)
    assert spans, "no answer was heard: the call hung up before it"
    start, end = spans[-1]
    assert end - start > 0.8
    assert abs(dominant_frequency(pcm[int(start * rate) : int(end * rate)], rate) - 660) < 10
