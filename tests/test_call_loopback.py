"""Whole calls over real WebRTC on loopback: a real aiortc client against the embedded server."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import numpy as np
import pytest

from voiceclient import ClientSettings, SessionConfig, VoiceCall, WavSource, tool
from voiceclient.audio.format import dominant_frequency, rms_dbfs, tone
from voiceclient.audio.sources import BufferSource
from voiceclient.client.options import Continuity, Recording
from voiceclient.protocol import events as ev
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder

from .conftest import FIXTURES, assert_wire_valid, loud_spans, read_events, read_wav, until_switched

pytestmark = pytest.mark.timeout(60)


async def test_echo_call_from_wav_fixture(settings: ClientSettings, tmp_path) -> None:
    out, rec, events = tmp_path / "out.wav", tmp_path / "rec.wav", tmp_path / "events.jsonl"
    async with VoiceCall(
        settings,
        source=WavSource(FIXTURES / "tone_440_16k_stereo.wav"),
        recording=Recording(output_wav=out, record_wav=rec, events_jsonl=events),
    ) as call:
        assert await call.run_until_idle(1.0, 30) == "idle"
    # The assistant WAV: 24 kHz mono, one loud span of about the tone's length, at 440 Hz.
    pcm, rate, channels = read_wav(out)
    assert (rate, channels) == (24000, 1)
    spans = loud_spans(pcm[:, 0], rate)
    assert len(spans) == 1, spans
    start, end = spans[0]
    assert 0.9 <= end - start <= 1.1
    echoed = pcm[int(start * rate) + 1200 : int(end * rate) - 1200, 0]
    assert abs(dominant_frequency(echoed, rate) - 440) < 3
    assert -17 < rms_dbfs(echoed) < -13  # the fixture's -12 dBFS peak sine (-15 dBFS RMS), through Opus twice
    # The echo starts after the user's tone ended (turn taking), within the VAD silence plus a margin.
    sent_spans = loud_spans(read_wav(rec)[0][:, 0], 24000)
    assert len(sent_spans) == 1 and sent_spans[0][1] < start
    # The recording: stereo, left what was sent (440 Hz), right what was received, same length as the WAV out.
    stereo, rate, channels = read_wav(rec)
    assert (rate, channels) == (24000, 2)
    assert abs(stereo.shape[0] - pcm.shape[0]) <= 480
    right_spans = loud_spans(stereo[:, 1], rate)
    assert len(right_spans) == 1 and abs(right_spans[0][0] - start) < 0.05
    # The event sequence of one voice turn (docs/protocol.md, "Server events").
    server_types = [e["event"]["type"] for e in read_events(events) if e["dir"] == "server"]
    expected = [
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "output_audio_buffer.started",
    ]
    assert server_types[: len(expected)] == expected
    tail = [t for t in server_types if t != "response.output_audio_transcript.delta"][len(expected) :]
    assert tail == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "output_audio_buffer.stopped",
    ]


async def test_every_event_validates_against_the_official_types(settings: ClientSettings, tmp_path) -> None:
    events = tmp_path / "events.jsonl"
    async with VoiceCall(
        settings, source=WavSource(FIXTURES / "two_turns_24k.wav"), recording=Recording(events_jsonl=events)
    ) as call:
        await call.run_until_idle(1.0, 30)
        call.send_text("hello there")
        await call.wait_for(lambda e: e.type == "output_audio_buffer.stopped", 15)
    seen = {line["event"]["type"] for line in assert_wire_valid(events)}
    assert {
        "session.created",
        "response.done",
        "output_audio_buffer.stopped",
        "conversation.item.create",
        "response.create",
        "session.update",
    } <= seen


async def test_text_message_gets_a_spoken_reply_with_transcript(settings: ClientSettings) -> None:
    async with VoiceCall(settings) as call:
        stream = call.events()
        call.send_text("the quick brown fox")
        event = await stream.next_of("response.output_audio_transcript.done")
        assert event.transcript == "You said: the quick brown fox"
        stopped = await stream.next_of("output_audio_buffer.stopped")
        assert stopped.response_id == event.response_id
        assert call.meter.speech_received_seconds > 0.5


@tool
def get_weather(city: str, unit: str = "celsius") -> dict:
    """Weather for a city."""
    return {"city": city, "forecast": "sunny", "temperature": 22, "unit": unit}


async def test_tool_round_trip_sends_one_output_and_one_response_create(tmp_path) -> None:
    scenario = ScenarioResponder.from_file(FIXTURES / "scenarios" / "tools.toml")
    events = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=scenario) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        one_turn = SessionConfig.model_validate(  # "Hello, can you hear me?" has a comma pause
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}},
            }
        )
        async with VoiceCall(
            settings,
            one_turn,
            source=WavSource(FIXTURES / "hello.wav"),
            tools=[get_weather],
            recording=Recording(events_jsonl=events),
        ) as call:
            await call.run_until_idle(1.0, 30)
            assert call.tool_calls == 3
        # The history as the server reported it: the turn, what was said, the calls and their outputs, in order.
        kinds = [(it.type, it.role, it.text) for it in call.history]
        assert kinds[0] == ("message", "user", None)  # spoken; this server transcribes nothing
        assert kinds[1] == ("message", "assistant", "Checking two cities.")
        assert [k[0] for k in kinds[2:8]] == ["function_call"] * 3 + ["function_call_output"] * 3
        assert kinds[8] == ("message", "assistant", "Paris is sunny, 22 degrees.") and len(kinds) == 9
    log = assert_wire_valid(events)
    assert read_events(events)[-1]["event"] == {
        "type": "conversation.history",
        "call_id": call.call_id,
        "items": call.history.to_json(),
    }
    client = [e["event"] for e in log if e["dir"] == "client"]
    outputs = [e for e in client if e["type"] == "conversation.item.create"]
    by_call = {json.loads(o["item"]["output"]).get("city", "error"): o for o in outputs}
    assert set(by_call) == {"Paris", "Tokyo", "error"}
    assert "invalid arguments" in json.loads(by_call["error"]["item"]["output"])["error"]
    creates = [i for i, e in enumerate(client) if e["type"] == "response.create"]
    assert len(creates) == 1, "exactly one response.create for the three calls of one response"
    assert creates[0] > max(client.index(o) for o in outputs)
    transcripts = [
        e["event"]["transcript"] for e in log if e["event"]["type"] == "response.output_audio_transcript.done"
    ]
    assert transcripts[-1] == "Paris is sunny, 22 degrees."


async def test_barge_in_cancels_and_clears(tmp_path) -> None:
    # The reply is a 3 s tone; the user speaks again 1 s into it.
    scenario = ScenarioResponder.from_file(FIXTURES / "scenarios" / "long_reply.toml")
    first = tone(440, 0.6, 48000)
    pcm = np.concatenate(
        [
            np.zeros(9600, np.int16),
            first,
            np.zeros(48000 * 1, np.int16),
            tone(660, 0.6, 48000),
            np.zeros(48000, np.int16),
        ]
    )
    out = tmp_path / "out.wav"
    events = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=scenario) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(
            settings, source=BufferSource(pcm), recording=Recording(output_wav=out, events_jsonl=events)
        ) as call:
            await call.run_until_idle(1.0, 30)
    types = [(e["event"]["type"], e["event"]) for e in assert_wire_valid(events) if e["dir"] == "server"]
    names = [t for t, _ in types]
    second_start = [i for i, t in enumerate(names) if t == "input_audio_buffer.speech_started"][1]
    after = names[second_start:]
    assert "output_audio_buffer.cleared" in after
    truncated = next(e for t, e in types[second_start:] if t == "conversation.item.truncated")
    assert 500 <= truncated["audio_end_ms"] <= 2000
    assert after.index("output_audio_buffer.cleared") < after.index("input_audio_buffer.speech_stopped")
    # The 3 s reply was cut: the first loud span of the output is well under 3 s.
    spans = loud_spans(read_wav(out)[0][:, 0], 24000)
    assert spans and spans[0][1] - spans[0][0] < 2.0


async def test_bad_client_events_get_errors_and_the_call_goes_on(settings: ClientSettings, tmp_path) -> None:
    async with VoiceCall(settings, recording=Recording(events_jsonl=tmp_path / "events.jsonl")) as call:
        transport = call.transport
        stream = call.events()
        for raw in [
            "{not json",
            '{"type": "no.such.event", "event_id": "e1"}',
            '{"type": "conversation.item.truncate", "event_id": "e2"}',
            "[1,2]",
            '{"type": "response.cancel", "event_id": "e3"}',
            '{"type": "session.update", "event_id": "e4", "session": {"type": "realtime", '
            '"audio": {"output": {"speed": 9}}}}',
        ]:
            transport.send(raw)
        errors = [await stream.next_of("error", timeout=5) for _ in range(6)]
        codes = [(e.error.code, e.error.event_id) for e in errors]
        assert codes[0][0] == "invalid_json"
        assert codes[1] == ("invalid_value", "e1") and errors[1].error.param == "type"
        assert codes[2] == ("missing_required_parameter", "e2")
        assert codes[4] == ("response_cancel_not_active", "e3")
        assert codes[5] == ("invalid_value", "e4") and errors[5].error.param == "session.audio.output.speed"
        # Still serving: a valid event is answered.
        call.send_text("still there?")
        done = await stream.next_of("response.done", timeout=5)
        assert done.response.status == "completed"
    errors_logged = [e for e in assert_wire_valid(tmp_path / "events.jsonl") if e["event"]["type"] == "error"]
    assert len(errors_logged) == 6


async def test_session_update_is_merged_and_refused_updates_change_nothing(settings: ClientSettings) -> None:
    session = SessionConfig.model_validate(
        {"type": "realtime", "instructions": "Be brief.", "audio": {"output": {"voice": "marin"}}}
    )
    async with VoiceCall(settings, session) as call:
        assert call.effective_session["instructions"] == "Be brief."
        assert call.effective_session["audio"]["output"]["voice"] == "marin"
        assert call.effective_session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        call.update_session(
            SessionConfig.model_validate({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        )
        updated = await call.wait_for(lambda e: e.type == "session.updated", 5)
        assert updated.session["audio"]["input"]["turn_detection"] is None
        assert updated.session["audio"]["output"]["voice"] == "marin"  # untouched by the partial update
        # The model is fixed at creation: an update naming another keeps it and applies the rest.
        call.update_session(
            SessionConfig.model_validate({"type": "realtime", "model": "gpt-other", "instructions": "Be briefer."})
        )
        updated = await call.wait_for(
            lambda e: e.type == "session.updated" and e.session["instructions"] == "Be briefer.", 5
        )
        assert updated.session["model"] == "gpt-realtime"


async def test_manual_turns_commit_and_respond(settings: ClientSettings) -> None:
    session = SessionConfig.model_validate({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    source = BufferSource(np.concatenate([tone(880, 0.8, 48000), np.zeros(4800, np.int16)]))
    async with VoiceCall(settings, session, source=source) as call:
        while not source.done:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        call.send(ev.InputAudioBufferCommit())
        committed = await call.wait_for(lambda e: e.type == "input_audio_buffer.committed", 5)
        call.send(ev.ResponseCreate())
        done = await call.wait_for(lambda e: e.type == "response.done", 5)
        assert done.response.output[0].content[0].transcript.startswith("Echo of")
        stream = call.events()
        call.send(ev.ConversationItemRetrieve(item_id=committed.item_id))
        item = (await stream.next_of("conversation.item.retrieved")).item
        import base64

        audio = np.frombuffer(base64.b64decode(item.content[0].audio), "<i2")
        assert abs(dominant_frequency(audio[2400:-2400], 24000) - 880) < 5
        # The client sends silence all along: clear, then commit at once (the two reach the server together), so
        # the buffer holds far less than 100 ms however busy the machine is.
        call.send(ev.InputAudioBufferClear())
        call.send(ev.InputAudioBufferCommit())
        empty = await call.wait_for(lambda e: e.type == "error", 5)
        assert empty.error.code == "input_audio_buffer_commit_empty"


async def test_connection_loss_ends_the_call_with_a_clear_error(settings: ClientSettings, server) -> None:
    from voiceclient import ConnectionLostError

    source = BufferSource(np.zeros(48000 * 20, np.int16))
    async with VoiceCall(settings, source=source) as call:
        await asyncio.gather(*(c.edge.pc.close() for c in server.calls.values()))
        with pytest.raises(ConnectionLostError):
            await call.run_until_idle(1.0, 20)


async def test_the_session_cap_ends_the_call_with_session_expired(tmp_path) -> None:
    from voiceclient import ConnectionLostError

    events = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, max_call_seconds=2) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        started = time.time()
        async with VoiceCall(
            settings, source=BufferSource(np.zeros(48000 * 20, np.int16)), recording=Recording(events_jsonl=events)
        ) as call:
            with pytest.raises(ConnectionLostError) as lost:
                await call.run_until_idle(1.0, 20)
        for _ in range(100):
            if not server.calls:
                break
            await asyncio.sleep(0.05)
        assert not server.calls
    assert str(lost.value) == (
        "the server ended the session: Your session hit the maximum duration of 2 seconds. (session_expired)"
    )
    log = assert_wire_valid(events)
    created = next(e["event"] for e in log if e["event"]["type"] == "session.created")
    assert started + 1 <= created["session"]["expires_at"] <= started + 3
    error = next(e for e in log if e["event"]["type"] == "error")
    assert error["event"]["error"] == {
        "type": "invalid_request_error",
        "code": "session_expired",
        "param": None,
        "event_id": None,
        "message": "Your session hit the maximum duration of 2 seconds.",
    }
    assert 1.8 <= error["t"] <= 10  # at the cap (measured from the client's start, which is before the call's)


async def test_response_create_while_active_is_refused(settings: ClientSettings) -> None:
    scenario_server = settings  # echo server: responses are short, so use a delayed scenario instead
    del scenario_server
    responder = ScenarioResponder.from_file(FIXTURES / "scenarios" / "long_reply.toml")
    async with RealtimeServer(port=0, responder=responder) as server:
        s = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(s) as call:
            call.send(ev.ResponseCreate())
            await call.wait_for(lambda e: e.type == "response.created", 5)
            call.send(ev.ResponseCreate())
            err = await call.wait_for(lambda e: e.type == "error", 5)
            assert err.error.code == "conversation_already_has_active_response"
            call.interrupt()
            done = await call.wait_for(lambda e: e.type == "response.done", 5)
            assert done.response.status == "cancelled"
            assert done.response.status_details["reason"] == "client_cancelled"


@pytest.mark.parametrize("create_response, interrupt_response", [(False, False), (True, False)])
async def test_vad_flags_are_honoured(create_response: bool, interrupt_response: bool, tmp_path) -> None:
    responder = ScenarioResponder.from_file(FIXTURES / "scenarios" / "long_reply.toml")
    session = SessionConfig.model_validate(
        {
            "type": "realtime",
            "audio": {
                "input": {
                    "turn_detection": {
                        "type": "server_vad",
                        "create_response": create_response,
                        "interrupt_response": interrupt_response,
                    }
                }
            },
        }
    )
    events = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, responder=responder) as server:
        s = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(
            s, session, source=WavSource(FIXTURES / "two_turns_24k.wav"), recording=Recording(events_jsonl=events)
        ) as call:
            await call.run_until_idle(1.0, 30)
    names = [e["event"]["type"] for e in assert_wire_valid(events) if e["dir"] == "server"]
    assert names.count("input_audio_buffer.committed") == 2
    if not create_response:
        assert "response.created" not in names
    else:
        # The second turn starts while the 3 s reply plays: with interrupt_response false nothing is cut.
        assert "output_audio_buffer.cleared" not in names and "conversation.item.truncated" not in names
        assert names.count("output_audio_buffer.stopped") >= 1


async def test_a_recycle_mid_conversation_carries_the_history_to_a_new_call(tmp_path) -> None:
    events, record = tmp_path / "events.jsonl", tmp_path / "conversation.wav"
    statuses: list[str] = []
    async with RealtimeServer(port=0) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        one_turn = SessionConfig.model_validate(  # "Hello, can you hear me?" has a comma pause
            {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}},
            }
        )
        async with VoiceCall(
            settings,
            one_turn,
            source=WavSource(FIXTURES / "hello.wav"),
            on_status=statuses.append,
            recording=Recording(record_wav=record, events_jsonl=events),
            continuity=Continuity(recycle_after=1.0),
        ) as call:
            first = call.call_id
            stream = call.events()
            said = await stream.next_of("response.output_audio_transcript.done", timeout=15)
            while call.switches == 0:  # the switch waits until the echo has been heard
                await call.wait_for(lambda e: True, 10) if call.busy else await asyncio.sleep(0.05)
            assert call.call_id != first and len(server.history) >= 2  # (the next may be preparing)
            call.send_text("still there?")
            done = await call.wait_for(lambda e: e.type == "response.done", 10)
            assert done.response.status == "completed"
            await call.run_until_idle(0.5, 20)
        second = server.history[1]
        assert second.conversation.items[0]["content"] == [{"type": "output_text", "text": said.transcript}]
        assert [it["role"] for it in second.conversation.items] == ["assistant", "user", "assistant"]
        ids = [it.id for it in call.history]
        assert [it["id"] for it in second.conversation.items] == ids[1:4]  # the same items, in the same order
    # The user's turn was audio the echo server does not transcribe: only the assistant's words carry over.
    assert statuses[0] == "session recycled, conversation carried over (1 items)"
    log = assert_wire_valid(events)
    switched = [e for e in read_events(events) if e["event"]["type"] == "call.switched"]
    assert switched[0]["event"]["from"] == first and switched[0]["event"]["reason"] == "recycle"
    assert len(server.history) >= len(switched) + 1  # every second after that prepares (and may switch) again
    data, rate, channels = read_wav(record)  # one recording across both connections, on one clock
    assert channels == 2 and abs(data.shape[0] / rate - (read_events(events)[-1]["t"])) < 1.0
    assert log[-1]["event"]["type"] != "session.created"


async def test_a_dropped_connection_is_reconnected_and_the_conversation_goes_on(
    settings: ClientSettings, server
) -> None:
    statuses: list[str] = []
    async with VoiceCall(
        settings,
        source=BufferSource(np.zeros(48000, np.int16)),
        on_status=statuses.append,
        continuity=Continuity(reconnect=3),
    ) as call:
        call.send_text("remember the word apple")
        await call.wait_for(lambda e: e.type == "response.done", 10)
        await asyncio.gather(*(c.edge.pc.close() for c in list(server.calls.values())))  # no hangup, no goodbye
        await until_switched(call)
        call.send_text("and now?")
        done = await call.wait_for(lambda e: e.type == "response.done", 10)
        assert done.response.status == "completed"
        user_texts = [it for it in server.history[-1].conversation.items if it.get("role") == "user"]
        assert [it["content"][0]["text"] for it in user_texts] == ["remember the word apple", "and now?"]
    assert statuses[1:] == ["reconnecting (attempt 1 of 3)", "reconnected, conversation restored (2 items)"]
    assert statuses[0].startswith("connection lost: ")


async def test_a_call_is_recycled_before_the_servers_cap_and_never_lost(tmp_path) -> None:
    """The client recycles `recycle_margin` s before the `expires_at` of each session: the server's
    session_expired never comes, every connection is left at a quiet moment, and the words carry over."""
    statuses: list[str] = []
    async with RealtimeServer(port=0, max_call_seconds=4) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(
            settings,
            on_status=statuses.append,
            recording=Recording(events_jsonl=tmp_path / "events.jsonl"),
            continuity=Continuity(recycle_margin=2.5),
        ) as call:
            call.send_text("my name is Ada")
            await call.wait_for(lambda e: e.type == "response.done", 10)
            await until_switched(call, 2)  # each new session has its own cap, and is recycled before it too
            call.send_text("what is my name?")
            done = await call.wait_for(lambda e: e.type == "response.done", 10)
            assert done.response.status == "completed"
            current = next(c for c in server.history if c.id == call.call_id)  # a newer one may be settling
            texts = [
                it["content"][0].get("text") or it["content"][0].get("transcript") for it in current.conversation.items
            ]
            assert texts == [
                "my name is Ada",
                "You said: my name is Ada",
                "what is my name?",
                "You said: what is my name?",
            ]
    assert statuses[:2] == ["session recycled, conversation carried over (2 items)"] * 2
    assert not [s for s in statuses if s.startswith("connection lost")]
    assert not [
        e for e in read_events(tmp_path / "events.jsonl") if e["event"]["type"] == "error"
    ]  # no session_expired reached any connection
    switched = [e["event"] for e in read_events(tmp_path / "events.jsonl") if e["event"]["type"] == "call.switched"]
    assert [s["reason"] for s in switched[:2]] == ["recycle", "recycle"]


async def test_a_cap_too_short_for_a_quiet_recycle_is_beaten_by_a_switch_before_it(tmp_path) -> None:
    """A 2.5 s cap leaves no time for a quiet moment: each connection is switched before its cap (mid-turn if it
    must), the conversation goes on with its words, and no session_expired ends it. (Reconnecting after a
    `session_expired` the server sends anyway is tests/test_faults.py's `expire_session`.) The cap was 1.5 s: on a
    loaded machine (two workers, Chromium beside them) preparing the next connection could take longer than the
    moment left before it."""
    statuses: list[str] = []
    async with RealtimeServer(port=0, max_call_seconds=2.5) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport="webrtc")
        async with VoiceCall(
            settings,
            on_status=statuses.append,
            recording=Recording(events_jsonl=tmp_path / "events.jsonl"),
            continuity=Continuity(reconnect=2),
        ) as call:
            call.send_text("my name is Ada")
            await call.wait_for(lambda e: e.type == "response.done", 10)
            await until_switched(call)
            call.send_text("what is my name?")
            done = await call.wait_for(lambda e: e.type == "response.done", 10)
            assert done.response.status == "completed"
            current = next(c for c in server.history if c.id == call.call_id)  # a newer one may be settling
            texts = [it["content"][0].get("text") for it in current.conversation.items]
            assert texts[:3] == ["my name is Ada", "You said: my name is Ada", "what is my name?"]
    assert statuses and all(s.startswith("session recycled") for s in statuses)
    log = assert_wire_valid(tmp_path / "events.jsonl")
    assert not [e for e in log if e["event"]["type"] == "error"]


@pytest.mark.timeout(90)
async def test_recycles_beat_a_short_cap_while_the_user_keeps_talking(tmp_path) -> None:
    """A 12 s cap, a recycle every 6 s, a turn every 6 s for 40 s: each connection's timer runs from when it was
    made, a switch comes before every cap (at a quiet moment, or forced just before the cap), and no
    `session_expired` reaches the call. Every turn is answered, into one recording."""
    turns = 7
    pcm = np.zeros(48000 * 42, np.int16)
    for i in range(turns):
        at = 48000 * (1 + 6 * i)
        pcm[at : at + 38400] = tone(440 + 60 * i, 0.8, 48000)
    statuses: list[str] = []
    rec, events = tmp_path / "rec.wav", tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, max_call_seconds=12) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport="webrtc")
        async with VoiceCall(
            settings,
            source=BufferSource(pcm),
            on_status=statuses.append,
            recording=Recording(record_wav=rec, events_jsonl=events),
            continuity=Continuity(recycle_after=6),
        ) as call:
            ended = await call.run_until_idle(1.5, 60)
            assert call.error is None
        assert ended == "idle"
        for _ in range(100):  # every call it made is hung up with it, one still retiring too
            if not server.calls:
                break
            await asyncio.sleep(0.05)
        assert not server.calls
    log = read_events(events)
    assert not [e for e in log if e["event"]["type"] == "error"]  # no session_expired, on any connection
    switched = [e for e in log if e["event"]["type"] == "call.switched"]
    assert len(switched) >= 5 and all(s["event"]["reason"].startswith("recycle") for s in switched)
    assert not [s for s in statuses if s.startswith("connection lost")]
    # Each connection carried the call for less than the cap.
    times = [0.0] + [s["t"] for s in switched]
    assert max(b - a for a, b in itertools.pairwise(times)) < 12
    # One recording: every turn said, every turn answered by its own echo, in order.
    stereo, rate, _ = read_wav(rec)
    said, heard = loud_spans(stereo[:, 0], rate), loud_spans(stereo[:, 1], rate)
    # (Turns are 6 s apart: pieces of one echo, split by a hole on a busy machine, are one answer. Whether an echo
    # is whole is the quality tests' question; this one asks that every turn is answered, in order.)
    heard = [
        (start, end)
        for start, end in heard
        if not any(0 < start - e < 0.5 for _, e in heard)  # a piece right after another: joined below
    ]
    pieces = loud_spans(stereo[:, 1], rate)
    heard = [(start, max(e for s, e in pieces if start <= s < start + 1.5)) for start, _ in heard]
    assert len(said) == turns and len(heard) == turns, (said, heard, pieces)
    for i, ((_, s1), (h0, h1)) in enumerate(zip(said, heard)):
        assert s1 < h0 < s1 + 1.5
        echo = stereo[int(h0 * rate) + 1200 : int(h1 * rate) - 1200, 1]
        assert abs(dominant_frequency(echo, rate) - (440 + 60 * i)) < 5


async def test_with_no_quiet_moment_the_switch_comes_anyway_before_the_cap(tmp_path) -> None:
    """The user never stops (a tone for 9 s): no quiet moment comes, so the recycle switches just before the 6 s
    cap rather than let `session_expired` end the call."""
    statuses: list[str] = []
    events = tmp_path / "events.jsonl"
    async with RealtimeServer(port=0, max_call_seconds=6) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport="webrtc")
        async with VoiceCall(
            settings,
            source=BufferSource(tone(440, 9.0, 48000)),
            on_status=statuses.append,
            recording=Recording(events_jsonl=events),
        ) as call:
            await until_switched(call, 1, timeout=20)
        log = read_events(events)
    assert not [e for e in log if e["event"]["type"] == "error"]
    [switched] = [e for e in log if e["event"]["type"] == "call.switched"][:1]
    assert switched["event"]["reason"] == "recycle before the cap" and 3.5 < switched["t"] < 6
    assert statuses[0].startswith("session recycled before the cap, mid-turn")
