"""Transcription sessions from voiceclient's own client: `VoiceCall` with a `TranscriptionSessionConfig` (over
WebRTC and the WebSocket) and `voiceclient transcribe`. The rules in memory (the scripted transport), then against
a real `serve` on loopback: a stand-in speech-to-text for the protocol, the offline models for the words."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceclient import (
    BufferSource,
    CallError,
    ClientSettings,
    ConfigError,
    TranscriptionSessionConfig,
    VoiceCall,
    WavSource,
    build_transcription_session,
    tool,
)
from voiceclient.app.cli import TRANSCRIBE_MODEL, build_parser, main, transcription_session
from voiceclient.app.transcribe import TranscriptLines, transcribe
from voiceclient.audio.format import RTP_RATE, tone
from voiceclient.client.family import websocket_url
from voiceclient.client.options import Continuity, ReconnectPolicy, Recording
from voiceclient.client.scripted import ScriptedTransport
from voiceclient.client.settings import TransportName
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import SessionConfig
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES, NEEDS_AGENT, ctrl_c_as_in_a_terminal, read_events
from .speech_double import StandInSpeech

pytestmark = pytest.mark.timeout(10)
SETTINGS = ClientSettings(base_url="http://scripted.invalid/v1", api_key="sk-test", session_update_timeout=0.3)
WHISPER = {"audio": {"input": {"transcription": {"model": "whisper-1", "language": "en"}}}}
HEARD = "the quick brown fox"  # what the stand-in speech-to-text hears in any audio
SENTENCE = FIXTURES / "speech" / "sentence_1.wav"  # "The quick brown fox jumps over the lazy dog."


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


# ------------------------------------------------------------------------------------------ the rules, in memory
async def test_a_transcription_call_sends_its_session_and_nothing_about_responses() -> None:
    transport = ScriptedTransport()
    session = TranscriptionSessionConfig.model_validate({"type": "transcription", **WHISPER})
    async with VoiceCall(SETTINGS, session, transport=transport) as call:
        update = transport.sent_of("session.update")[0]["session"]
        assert update == {"type": "transcription", **WHISPER} and call.transcription
        for refused in (
            lambda: call.send_text("hello"),
            lambda: call.send(ev.ResponseCreate()),
            lambda: call.send(ev.ConversationItemCreate(item=ev.Item.user_text("hi"))),
            lambda: call.send(ev.OutputAudioBufferClear()),
            lambda: call.update_session(SessionConfig(instructions="answer")),
        ):
            with pytest.raises(CallError, match="transcription session"):
                refused()
        call.interrupt()  # nothing to stop, nothing sent
        call.update_session(TranscriptionSessionConfig.model_validate({"audio": {"input": {"turn_detection": None}}}))
        await call.events_handled()
        assert transport.sent_types() == []
        sent = transport.sent_of("session.update")[1]["session"]
        assert sent == {"type": "transcription", "audio": {"input": {"turn_detection": None}}}
        assert call.session.to_wire()["audio"]["input"] == {**WHISPER["audio"]["input"], "turn_detection": None}


async def test_a_committed_turn_keeps_the_call_busy_until_its_transcript_comes_either_way() -> None:
    transport = ScriptedTransport()
    ends: list[ev.InputTranscriptionEnd] = []
    session = TranscriptionSessionConfig.model_validate(WHISPER)  # (the scripted server says what it was sent)
    async with VoiceCall(SETTINGS, session, transport=transport) as call:
        call.on(ev.InputTranscriptionEnd, ends.append)  # completed and failed, one subscription
        for item, last in (("item_1", {"transcript": "hello there"}), ("item_2", {"error": {"message": "no"}})):
            transport.emit({"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": None})
            await call.events_handled()
            assert call.turns.busy and call.turns.transcribing == {item}
            kind = "completed" if "transcript" in last else "failed"
            event = {"type": f"conversation.item.input_audio_transcription.{kind}", "item_id": item, **last}
            transport.emit({**event, "content_index": 0})
            await call.events_handled()
            assert not call.turns.busy
    assert [type(e) for e in ends] == [ev.InputTranscriptionCompleted, ev.InputTranscriptionFailed]
    assert isinstance(ends[0], ev.InputTranscriptionCompleted) and ends[0].transcript == "hello there"


async def test_a_session_with_transcription_off_owes_no_transcripts() -> None:
    transport = ScriptedTransport()
    session = TranscriptionSessionConfig.model_validate({"audio": {"input": {"transcription": None}}})
    async with VoiceCall(SETTINGS, session, transport=transport) as call:
        transport.emit({"type": "input_audio_buffer.committed", "item_id": "item_1", "previous_item_id": None})
        await call.events_handled()
        assert not call.turns.busy


async def test_a_reconnected_transcription_session_is_given_no_conversation() -> None:
    made: list[ScriptedTransport] = []

    def factory() -> ScriptedTransport:
        made.append(ScriptedTransport(echo_items=True, call_id=f"rtc_{len(made)}"))
        return made[-1]

    continuity = Continuity(reconnect=ReconnectPolicy(1, (0.01,)))
    async with VoiceCall(
        SETTINGS, TranscriptionSessionConfig(), transport_factory=factory, continuity=continuity
    ) as call:
        made[0].emit({"type": "input_audio_buffer.committed", "item_id": "item_1", "previous_item_id": None})
        user = {"id": "item_1", "type": "message", "role": "user", "content": [{"type": "input_audio"}]}
        made[0].emit({"type": "conversation.item.done", "previous_item_id": None, "item": user})
        await call.events_handled()
        made[0].lose("cable pulled")
        async with asyncio.timeout(5):
            while call.switches < 1:
                await asyncio.sleep(0.01)
        assert [e["type"] for e in made[1].sent] == ["session.update"] and call.replayed == 0
        assert made[1].sent[0]["session"] == {"type": "transcription"}


def test_tools_need_a_realtime_session() -> None:
    @tool
    def lights(on: bool) -> str:
        """Turn the lights on or off."""
        return "ok"

    with pytest.raises(ConfigError, match="tools need a realtime session"):
        VoiceCall(SETTINGS, TranscriptionSessionConfig(), tools=[lights])


def test_the_websocket_asks_for_a_transcription_session_by_intent() -> None:
    base = "http://127.0.0.1:8000/v1"
    assert websocket_url(base, TranscriptionSessionConfig()) == "ws://127.0.0.1:8000/v1/realtime?intent=transcription"
    assert websocket_url(base, SessionConfig(model="gpt-x")) == "ws://127.0.0.1:8000/v1/realtime?model=gpt-x"


LANGUAGE: dict[str, Any] = {"audio.input.transcription.language": "en"}
VOICE: dict[str, Any] = {"audio.output.voice": "marin"}


def test_a_transcription_session_is_built_from_a_file_keywords_and_assignments(tmp_path: Path) -> None:
    file = tmp_path / "session.toml"
    file.write_text('[session.audio.input.transcription]\nmodel = "gpt-4o-transcribe"\nprompt = "fox"\n')
    session = build_transcription_session(
        file,
        assignments=["audio.input.turn_detection=null", 'include=["item.input_audio_transcription.logprobs"]'],
        **LANGUAGE,
    )
    assert session.to_wire() == {
        "type": "transcription",
        "audio": {
            "input": {
                "transcription": {"model": "gpt-4o-transcribe", "prompt": "fox", "language": "en"},
                "turn_detection": None,
            }
        },
        "include": ["item.input_audio_transcription.logprobs"],
    }
    with pytest.raises(ConfigError, match=r"session\.model: unknown field"):
        build_transcription_session(model="gpt-realtime")
    with pytest.raises(ConfigError, match=r"session\.audio\.output: unknown field"):
        build_transcription_session(**VOICE)
    with pytest.raises(ConfigError, match=r'session\.type: "realtime" is not allowed here'):
        build_transcription_session(type="realtime")


def test_the_transcribe_commands_session_from_its_flags(tmp_path: Path) -> None:
    def session(*flags: str) -> dict[str, Any]:
        return transcription_session(build_parser().parse_args(["transcribe", "in.wav", *flags])).to_wire()

    assert session() == {"type": "transcription", "audio": {"input": {"transcription": {"model": TRANSCRIBE_MODEL}}}}
    flags = (
        "--model",
        "whisper-1",
        "--language",
        "en",
        "--prompt",
        "Boston",
        "--set",
        "audio.input.turn_detection=null",
    )
    assert session(*flags)["audio"]["input"] == {
        "transcription": {"model": "whisper-1", "language": "en", "prompt": "Boston"},
        "turn_detection": None,
    }
    file = tmp_path / "s.json"
    file.write_text('{"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}')
    assert session("--session", str(file))["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
    assert session("--set", "audio.input.transcription=null")["audio"]["input"]["transcription"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give IN.wav or --mic"),
        (["in.wav", "--mic"], "give IN.wav or --mic"),
        (["in.wav", "--input-device", "1"], "--input-device: only with --mic"),
        (["in.wav", "--set", "instructions=hi"], "session.instructions: unknown field"),
        (["in.wav", "--idle-exit", "0"], "--idle-exit: 0 is not allowed"),
    ],
)
def test_the_transcribe_commands_mistakes_are_one_line_before_anything_is_sent(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["transcribe", *args, "--api-key", "sk-test", "--base-url", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("voiceclient: error: ") and message in err and err.count("\n") == 1


def test_transcript_lines_show_deltas_live_and_keep_each_completed_turn() -> None:
    out, err = io.StringIO(), io.StringIO()
    lines = TranscriptLines(out, err, live=True)
    for delta in ("the ", "quick"):
        lines.on_delta(ev.InputTranscriptionDelta(item_id="item_1", delta=delta))
    lines.on_completed(ev.InputTranscriptionCompleted(item_id="item_1", content_index=0, transcript=" the quick "))
    lines.on_failed(ev.InputTranscriptionFailed(item_id="item_2", content_index=0, error={"message": "no model"}))
    assert out.getvalue() == "\r\x1b[Kthe \r\x1b[Kthe quick\r\x1b[Kthe quick\n"
    assert err.getvalue() == "voiceclient: a turn was not transcribed: no model\n"
    assert lines.lines == ["the quick"] and lines.failures == 1
    plain = io.StringIO()
    quiet = TranscriptLines(plain, io.StringIO(), live=False)
    quiet.on_delta(ev.InputTranscriptionDelta(item_id="item_1", delta="the "))
    quiet.on_completed(ev.InputTranscriptionCompleted(item_id="item_1", content_index=0, transcript="the quick"))
    assert plain.getvalue() == "the quick\n"


# ------------------------------------------------------------------------------------------ against serve
def spoken_turn() -> BufferSource:
    """A tone the energy VAD takes for a turn (`StandInSpeech` hears `HEARD` in it), at 48 kHz."""
    return BufferSource(np.concatenate([np.zeros(RTP_RATE // 2, np.int16), tone(440, 0.8, RTP_RATE, -12)]))


@pytest.mark.webrtc
@pytest.mark.timeout(40)
@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_a_transcription_call_against_serve_transcribes_each_turn_and_nothing_answers(
    transport: TransportName, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, speech=StandInSpeech(HEARD), vad="energy") as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport=transport)
        out = io.StringIO()
        session = TranscriptionSessionConfig.model_validate(WHISPER)
        reason = await transcribe(
            settings,
            session,
            spoken_turn(),
            TranscriptLines(out, io.StringIO()),
            recording=Recording(events_jsonl=events),
        )
    assert reason == "idle" and out.getvalue() == HEARD + "\n"
    logged = [(line["dir"], line["event"]) for line in read_events(events)]
    received = [e for d, e in logged if d == "server"]
    assert [e["type"] for e in received[:2]] == ["session.created", "session.updated"]
    assert received[0]["session"]["type"] == "transcription"
    assert received[1]["session"]["audio"]["input"]["transcription"]["model"] == "whisper-1"
    sent = [e["type"] for d, e in logged if d == "client" and e["type"] != "input_audio_buffer.append"]
    assert sent == ["session.update"]
    assert not [e for e in received if e["type"].startswith(("response.", "output_audio_buffer."))]


@pytest.mark.webrtc
@pytest.mark.timeout(40)
async def test_without_turn_detection_the_input_is_committed_when_it_ends() -> None:
    async with RealtimeServer(port=0, speech=StandInSpeech(HEARD), vad="energy") as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport="websocket")
        session = build_transcription_session(assignments=["audio.input.turn_detection=null"])
        out = io.StringIO()
        reason = await transcribe(settings, session, spoken_turn(), TranscriptLines(out, io.StringIO()), idle_exit=0.5)
    assert reason == "idle" and out.getvalue() == HEARD + "\n"


@pytest.mark.agent
@pytest.mark.webrtc
@pytest.mark.timeout(120)
@NEEDS_AGENT
@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_a_spoken_sentence_is_transcribed_over_either_transport(transport: TransportName) -> None:
    """A recorded sentence from a WAV, through `voiceclient transcribe`'s own loop, against serve with the offline
    models: its words come back as one line."""
    from voiceclient.testing import speech_backends

    async with RealtimeServer(port=0, speech=speech_backends()) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport=transport)
        session = TranscriptionSessionConfig.model_validate(WHISPER)
        lines = TranscriptLines(io.StringIO(), io.StringIO())
        async with asyncio.timeout(90):
            assert await transcribe(settings, session, WavSource(SENTENCE), lines) == "idle"
    assert len(lines.lines) == 1 and lines.failures == 0
    assert {"quick", "brown", "fox", "lazy", "dog"} <= words(lines.lines[0]), lines.lines


# ------------------------------------------------------------------------------------------ the command
async def run_transcribe(*args: str, stop_after: str | None = None) -> tuple[int, str, str]:
    """`voiceclient transcribe ARGS` as a process; with `stop_after`, Ctrl-C once stderr says it."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "voiceclient", "transcribe", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""},
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    assert proc.stdout is not None and proc.stderr is not None
    err = b""
    try:
        if stop_after is not None:
            while stop_after.encode() not in err:
                line = await asyncio.wait_for(proc.stderr.readline(), 30)
                assert line, err.decode()
                err += line
            proc.send_signal(signal.SIGINT)
        out, rest = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(), (err + rest).decode()


@pytest.mark.agent
@pytest.mark.subprocess
@pytest.mark.timeout(120)
@NEEDS_AGENT
async def test_the_transcribe_command_prints_the_words_and_ends_with_the_wav() -> None:
    from voiceclient.testing import speech_backends

    async with RealtimeServer(port=0, speech=speech_backends()) as server:
        code, out, err = await run_transcribe(str(SENTENCE), "--base-url", server.base_url, "--api-key", "sk-test")
    assert code == 0, err
    assert len(out.splitlines()) == 1 and {"quick", "brown", "fox", "lazy", "dog"} <= words(out), out
    assert "voiceclient: transcribing; connected in" in err and "the input ended; 1 turn(s) transcribed" in err


@pytest.mark.subprocess
@pytest.mark.webrtc
@pytest.mark.timeout(60)
async def test_ctrl_c_hangs_the_transcription_up() -> None:
    async with RealtimeServer(port=0, speech=StandInSpeech(HEARD), vad="energy") as server:
        code, out, err = await run_transcribe(
            str(FIXTURES / "long_tone_48k.wav"),
            *("--base-url", server.base_url, "--api-key", "sk-test"),
            stop_after="transcribing; connected",
        )
        async with asyncio.timeout(10):
            while server.calls:  # the call was hung up, not left to time out
                await asyncio.sleep(0.05)
    assert code == 130 and out == "", err
    assert "voiceclient: interrupted; hung up" in err
