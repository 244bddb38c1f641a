"""`voiceclient report` of a GPT-Live call: the session's start and end, the transcripts grouped into turns, the
user's speech found in the recording (GPT-Live sends no speech events), each turn's latency, the usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceclient.audio.sources import WavSource
from voiceclient.client.call import VoiceCall
from voiceclient.client.options import Recording
from voiceclient.client.settings import ClientSettings
from voiceclient.protocol.session import SessionConfig
from voiceclient.report import Timeline
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES, loud_spans, read_wav

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_the_timeline_of_a_live_call(server: RealtimeServer, transport: str, tmp_path: Path) -> None:
    settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport=transport)  # type: ignore[arg-type]
    session = SessionConfig.model_validate({"type": "realtime", "model": "gpt-live-1"})
    events, recording = tmp_path / "events.jsonl", tmp_path / "conversation.wav"
    record = Recording(events_jsonl=events, record_wav=recording)
    source = WavSource(FIXTURES / "speech" / "sentence_1.wav")
    async with VoiceCall(settings, session, source=source, recording=record) as call:
        assert await call.run_until_idle(idle_seconds=1.5, max_duration=40) == "idle"
    timeline = Timeline.read(events, recording)
    summary = timeline.summary
    assert summary["call_ids"] == [call.call_id] and summary["turns"] == 1 and summary["errors"] == 0
    assert summary["usage"]["seconds"] >= 0 and summary["latency_measured"] == "recording"
    (turn,) = timeline.turns
    assert turn.answer_text.startswith("Echo of") and turn.latency_ms is not None and turn.latency_ms > 0
    stereo, rate, _ = read_wav(recording)
    said, answered = loud_spans(stereo[:, 0], rate), loud_spans(stereo[:, 1], rate)
    assert abs(turn.speech_end - said[-1][1]) < 0.1  # the user's last sound, as the recording has it
    assert turn.first_audio is not None and abs(turn.first_audio - answered[0][0]) < 0.1
    marks = [m.label for m in timeline.marks if m.lane == "connection"]
    assert marks[0] == "session.started" and "session.closed: close_requested" in marks
    playing = [s for s in timeline.spans if s.lane == "assistant audio"]
    assert len(playing) == 1 and playing[0].end is not None and playing[0].end > playing[0].start
