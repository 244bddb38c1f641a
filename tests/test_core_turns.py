"""The user's side of the server's session core, through the memory edge: server VAD turns, the session's
turn-detection fields, manual commits, barge-in, the idle timeout and input audio in each format."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from voiceclient.audio import g711
from voiceclient.audio.format import API_RATE, tone
from voiceclient.server.faults import FaultSpec
from voiceclient.server.responders import ResponsePlan, Speech, TurnContext
from voiceclient.server.session_rules import default_session
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)

G711_RATE = 8000


def silence(seconds: float, rate: int = API_RATE) -> np.ndarray:
    return np.zeros(int(round(seconds * rate)), np.int16)


def talk(seconds: float, dbfs: float = -12.0, rate: int = API_RATE) -> np.ndarray:
    return tone(440, seconds, rate, dbfs)


def utterance(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts)


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def with_turn_detection(**fields: Any) -> dict[str, Any]:
    """Session fields whose server VAD has `fields` set directly (without `session.update`'s checks)."""
    audio = default_session()["audio"]
    audio["input"]["turn_detection"].update(fields)
    return {"audio": audio}


async def update(s: MemorySession, audio_input: dict[str, Any]) -> dict[str, Any]:
    s.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": audio_input}}})
    updated = await s.next_event("session.updated")
    return updated["session"]


async def marker(s: MemorySession) -> None:
    """A client event handled after everything posted before it (the inbox is one ordered queue)."""
    s.send({"type": "input_audio_buffer.clear", "event_id": "marker"})
    await s.next_event("input_audio_buffer.cleared")


async def retrieved_audio(s: MemorySession, item_id: str) -> np.ndarray:
    s.send({"type": "conversation.item.retrieve", "item_id": item_id})
    item = (await s.next_event("conversation.item.retrieved"))["item"]
    return np.frombuffer(base64.b64decode(item["content"][0]["audio"]), "<i2")


async def assert_no_active_response(s: MemorySession) -> None:
    s.send({"type": "response.cancel", "event_id": "probe"})
    error = await s.next_event("error")
    assert error["error"]["code"] == "response_cancel_not_active"
    assert not s.sent("response.created")


class PacedResponder:
    """Says a second of tone whose words go out as its audio plays: the response runs while it is heard."""

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        return ResponsePlan([Speech("one two three four five", talk(1.0, rate=API_RATE), paced=True)])


class ThinkingResponder:
    """Thinks for a minute before its first answer, then answers at once."""

    def __init__(self) -> None:
        self.plans = 0

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        self.plans += 1
        return ResponsePlan([Speech("done thinking", talk(0.5))], delay_ms=60_000 if self.plans == 1 else 0)


# ------------------------------------------------------------------------------------------ server VAD
async def test_a_spoken_turn_reports_its_start_end_and_one_item_id() -> None:
    async with MemorySession() as s:
        s.speak(utterance(silence(1.0), talk(1.0), silence(0.5)))
        started = await s.next_event("input_audio_buffer.speech_started")
        stopped = await s.next_event("input_audio_buffer.speech_stopped")
        committed = await s.next_event("input_audio_buffer.committed")
        added = await s.next_event("conversation.item.added")
        done = await s.next_event("conversation.item.done")
        # the speech began at 1000 ms: minus the 300 ms prefix padding; it ended at 2000 ms: plus 200 ms of silence
        assert started["audio_start_ms"] == 700 and stopped["audio_end_ms"] == 2200
        item_id = started["item_id"]
        assert item_id.startswith("item_")
        assert stopped["item_id"] == committed["item_id"] == added["item"]["id"] == done["item"]["id"] == item_id
        assert committed["previous_item_id"] is None and added["previous_item_id"] is None
        assert added["item"]["role"] == "user" and added["item"]["content"][0]["type"] == "input_audio"


async def test_the_committed_turn_holds_its_audio_from_start_to_end() -> None:
    async with MemorySession() as s:
        s.speak(utterance(silence(1.0), talk(1.0), silence(0.5)))
        committed = await s.next_event("input_audio_buffer.committed")
        pcm = await retrieved_audio(s, committed["item_id"])
        assert pcm.size == (2200 - 700) * API_RATE // 1000
        # 300 ms of padding, the second of speech, then the 200 ms of silence that ended it
        assert np.abs(pcm[: 290 * API_RATE // 1000]).max() == 0
        assert np.abs(pcm[300 * API_RATE // 1000 : 1300 * API_RATE // 1000]).max() > 5000
        assert np.abs(pcm[1310 * API_RATE // 1000 :]).max() == 0


async def test_a_second_turn_is_placed_after_the_answer_to_the_first() -> None:
    async with MemorySession() as s:
        s.speak(utterance(silence(0.5), talk(0.5), silence(0.5)))
        first = await s.next_event("input_audio_buffer.committed")
        await s.play_through("output_audio_buffer.stopped")
        answer = await s.next_event("response.done")
        assistant_id = answer["response"]["output"][0]["id"]
        s.speak(utterance(talk(0.5), silence(0.5)))
        second = await s.next_event("input_audio_buffer.committed")
        added = await s.next_event("conversation.item.added")
        assert second["item_id"] != first["item_id"] and added["item"]["id"] == second["item_id"]
        assert second["previous_item_id"] == added["previous_item_id"] == assistant_id


async def test_a_pause_shorter_than_the_silence_duration_does_not_end_the_turn() -> None:
    async with MemorySession() as s:
        s.speak(utterance(silence(0.5), talk(0.5), silence(0.1), talk(0.5), silence(0.5)))
        committed = await s.next_event("input_audio_buffer.committed")
        await marker(s)  # every decision on that audio has been handled
        assert [e["audio_end_ms"] for e in s.sent("input_audio_buffer.speech_stopped")] == [1800]
        assert len(s.sent("input_audio_buffer.speech_started")) == 1
        assert committed["item_id"] == s.sent("input_audio_buffer.speech_started")[0]["item_id"]


async def test_a_click_shorter_than_two_frames_starts_no_turn() -> None:
    async with MemorySession() as s:
        s.speak(utterance(silence(0.5), talk(0.02, dbfs=-6.0), silence(0.5)))
        await marker(s)
        assert not s.sent("input_audio_buffer.speech_started")
        s.speak(utterance(talk(0.04, dbfs=-6.0), silence(0.5)))  # two frames do
        started = await s.next_event("input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 1020 - 300


async def test_silence_duration_ms_sets_how_much_silence_ends_a_turn() -> None:
    async with MemorySession() as s:
        session = await update(s, {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}})
        assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
        # a 300 ms pause, which the default 200 ms would have ended the turn on, is inside it now
        s.speak(utterance(silence(0.5), talk(0.5), silence(0.3), talk(0.5), silence(1.0)))
        stopped = await s.next_event("input_audio_buffer.speech_stopped")
        await s.next_event("input_audio_buffer.committed")
        await marker(s)
        assert stopped["audio_end_ms"] == 1800 + 500
        assert len(s.sent("input_audio_buffer.speech_started")) == 1


@pytest.mark.parametrize(("prefix_ms", "start_ms"), [(100, 900), (0, 1000), (1500, 0)])
async def test_prefix_padding_ms_moves_the_start_of_the_turn(prefix_ms: int, start_ms: int) -> None:
    async with MemorySession() as s:
        await update(s, {"turn_detection": {"type": "server_vad", "prefix_padding_ms": prefix_ms}})
        s.speak(utterance(silence(1.0), talk(0.5), silence(0.5)))
        started = await s.next_event("input_audio_buffer.speech_started")
        committed = await s.next_event("input_audio_buffer.committed")
        assert started["audio_start_ms"] == start_ms
        pcm = await retrieved_audio(s, committed["item_id"])
        assert pcm.size == (1700 - start_ms) * API_RATE // 1000


async def test_threshold_decides_what_level_counts_as_speech() -> None:
    quiet = utterance(silence(0.5), talk(0.5, dbfs=-30.0), silence(0.5))  # about -33 dBFS RMS: 0.74 on the scale
    async with MemorySession() as s:
        await update(s, {"turn_detection": {"type": "server_vad", "threshold": 0.9}})
        s.speak(quiet)
        await marker(s)
        assert not s.sent("input_audio_buffer.speech_started")
        await update(s, {"turn_detection": {"type": "server_vad", "threshold": 0.5}})
        s.speak(quiet)
        started = await s.next_event("input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 1500 + 500 - 300


@pytest.mark.parametrize(("eagerness", "pause_ms"), [("high", 300), ("medium", 600), ("low", 1200)])
async def test_semantic_vad_eagerness_sets_the_pause_that_ends_a_turn(eagerness: str, pause_ms: int) -> None:
    async with MemorySession() as s:
        session = await update(s, {"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}})
        assert session["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
        s.speak(utterance(silence(0.5), talk(0.5), silence(1.5)))
        started = await s.next_event("input_audio_buffer.speech_started")
        stopped = await s.next_event("input_audio_buffer.speech_stopped")
        assert started["audio_start_ms"] == 200 and stopped["audio_end_ms"] == 1000 + pause_ms
        await s.next_event("response.created")


async def test_create_response_false_commits_the_turn_without_answering() -> None:
    async with MemorySession() as s:
        await update(s, {"turn_detection": {"type": "server_vad", "create_response": False}})
        s.speak(utterance(silence(0.5), talk(0.5), silence(0.5)))
        committed = await s.next_event("input_audio_buffer.committed")
        added = await s.next_event("conversation.item.added")
        assert added["item"]["id"] == committed["item_id"]
        await assert_no_active_response(s)
        s.send({"type": "response.create", "response": {"output_modalities": ["text"]}})  # when the client chooses
        done = await s.next_event("response.done")
        assert done["response"]["output"][0]["content"][0]["text"] == "Echo of 1.0 seconds of your audio."


# ------------------------------------------------------------------------------------------ manual turns
async def test_without_turn_detection_audio_waits_for_a_manual_commit() -> None:
    async with MemorySession() as s:
        session = await update(s, {"turn_detection": None})
        assert session["audio"]["input"]["turn_detection"] is None
        spoken = utterance(silence(1.0), talk(0.5), silence(1.0))
        s.speak(spoken)
        s.send({"type": "input_audio_buffer.commit"})
        committed = await s.next_event("input_audio_buffer.committed")
        added = await s.next_event("conversation.item.added")
        assert added["item"]["id"] == committed["item_id"] and committed["previous_item_id"] is None
        assert not s.sent("input_audio_buffer.speech_started") and not s.sent("input_audio_buffer.speech_stopped")
        await assert_no_active_response(s)
        pcm = await retrieved_audio(s, committed["item_id"])
        assert pcm.size == spoken.size and np.array_equal(pcm, spoken)  # all of it, silence included


async def test_a_manually_committed_turn_is_answered_on_response_create() -> None:
    async with MemorySession({"output_modalities": ["text"]}) as s:
        await update(s, {"turn_detection": None})
        s.speak(talk(0.5))
        s.send({"type": "input_audio_buffer.commit"})
        committed = await s.next_event("input_audio_buffer.committed")
        s.speak(talk(0.5))  # a second turn chains after the first
        s.send({"type": "input_audio_buffer.commit"})
        second = await s.next_event("input_audio_buffer.committed")
        assert second["previous_item_id"] == committed["item_id"]
        s.send({"type": "response.create"})
        done = await s.next_event("response.done")
        assert done["response"]["output"][0]["content"][0]["text"] == "Echo of 0.5 seconds of your audio."


async def test_committing_an_empty_buffer_is_refused() -> None:
    async with MemorySession() as s:
        await update(s, {"turn_detection": None})
        s.send({"type": "input_audio_buffer.commit", "event_id": "event_commit"})
        error = await s.next_event("error")
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert error["error"]["event_id"] == "event_commit"
        assert "at least 100ms" in error["error"]["message"] and "only has 0ms" in error["error"]["message"]
        assert not s.sent("input_audio_buffer.committed")


async def test_a_commit_needs_at_least_100_ms_of_audio() -> None:
    async with MemorySession() as s:
        await update(s, {"turn_detection": None})
        s.speak(talk(0.08))
        s.send({"type": "input_audio_buffer.commit"})
        error = await s.next_event("error")
        assert (
            error["error"]["code"] == "input_audio_buffer_commit_empty" and "only has 80ms" in error["error"]["message"]
        )
        s.speak(talk(0.02))  # the refused commit kept the buffer: 100 ms now
        s.send({"type": "input_audio_buffer.commit"})
        committed = await s.next_event("input_audio_buffer.committed")
        assert (await retrieved_audio(s, committed["item_id"])).size == API_RATE // 10


async def test_clear_drops_the_buffered_audio() -> None:
    async with MemorySession() as s:
        await update(s, {"turn_detection": None})
        s.speak(talk(0.5))
        s.send({"type": "input_audio_buffer.clear"})
        await s.next_event("input_audio_buffer.cleared")
        s.send({"type": "input_audio_buffer.commit"})
        error = await s.next_event("error")
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert not s.sent("input_audio_buffer.committed")


# ------------------------------------------------------------------------------------------ barge-in
async def test_a_turn_during_the_answer_cancels_it_and_truncates_it_to_what_was_played() -> None:
    async with MemorySession(responder=PacedResponder()) as s:
        s.send({"type": "conversation.item.create", "item": user_text("talk to me")})
        s.send({"type": "response.create"})
        created = await s.next_event("response.created")
        s.play(0.3)
        await s.next_event("output_audio_buffer.started")
        s.speak(talk(0.3))  # still speaking: no new answer yet
        await s.next_event("input_audio_buffer.speech_started")
        done = await s.next_event("response.done")
        assert done["response"]["id"] == created["response"]["id"]
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        item = done["response"]["output"][0]
        assert item["status"] == "incomplete"
        truncated = await s.next_event("conversation.item.truncated")
        assert truncated["item_id"] == item["id"] and truncated["audio_end_ms"] == 300
        cleared = await s.next_event("output_audio_buffer.cleared")
        assert cleared["response_id"] == created["response"]["id"]
        assert not s.sent("output_audio_buffer.stopped")
        assert s.play(0.5).max() == 0  # the rest of the answer is gone from the track
        s.send({"type": "conversation.item.retrieve", "item_id": item["id"]})
        kept = (await s.next_event("conversation.item.retrieved"))["item"]
        assert kept["content"][0]["transcript"] == "one two"  # the words whose audio had started by 300 ms


async def test_a_turn_at_the_moment_the_answer_starts_playing_still_cancels_it() -> None:
    """The barge-in lands while the response waits for its first audio to play: the cancel must not be lost in
    that wait (Python 3.11's `asyncio.wait_for` dropped a cancel that came as its wait finished), and the inbox
    must go on at once, not after the whole answer."""
    async with MemorySession(responder=PacedResponder()) as s:
        s.send({"type": "conversation.item.create", "item": user_text("talk to me")})
        s.send({"type": "response.create"})
        created = await s.next_event("response.created")
        s.play(0.3)  # the first audio plays: the engine's wait for it ends now
        s.speak(talk(0.3))  # and the user speaks in the same moment
        await s.next_event("input_audio_buffer.speech_started")
        done = await s.next_event("response.done")
        assert done["response"]["id"] == created["response"]["id"]
        assert done["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        truncated = await s.next_event("conversation.item.truncated")
        assert truncated["audio_end_ms"] == 300
        await s.next_event("output_audio_buffer.cleared")


async def test_a_turn_while_a_finished_answer_still_plays_cuts_its_audio() -> None:
    async with MemorySession() as s:
        s.send({"type": "conversation.item.create", "item": user_text("tell me about it")})
        s.send({"type": "response.create"})
        await s.next_event("response.created")
        s.play(0.2)
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "completed"  # all of it was generated; 200 ms of it heard
        s.speak(talk(0.3))
        await s.next_event("input_audio_buffer.speech_started")
        truncated = await s.next_event("conversation.item.truncated")
        cleared = await s.next_event("output_audio_buffer.cleared")
        assert truncated["item_id"] == done["response"]["output"][0]["id"] and truncated["audio_end_ms"] == 200
        assert cleared["response_id"] == done["response"]["id"]
        assert len(s.sent("response.done")) == 1 and not s.sent("output_audio_buffer.stopped")
        assert s.play(0.5).max() == 0


async def test_interrupt_response_false_lets_the_answer_play_on() -> None:
    async with MemorySession(responder=PacedResponder()) as s:
        await update(s, {"turn_detection": {"type": "server_vad", "interrupt_response": False}})
        s.send({"type": "conversation.item.create", "item": user_text("talk to me")})
        s.send({"type": "response.create"})
        await s.next_event("response.created")
        s.play(0.3)
        s.speak(talk(0.3))
        await s.next_event("input_audio_buffer.speech_started")
        heard = await s.play_through("output_audio_buffer.stopped")
        done = await s.next_event("response.done")
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["transcript"] == "one two three four five"
        assert np.abs(heard).max() > 5000  # the rest of the answer was played
        assert not s.sent("conversation.item.truncated") and not s.sent("output_audio_buffer.cleared")


class PacedThenEcho:
    """Answers typed text with a second of paced speech (the response runs while it is heard), and a spoken turn
    by how much of it was heard."""

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        if ctx.user_text is None and ctx.user_audio is not None:
            return ResponsePlan([Speech(f"heard {ctx.user_audio.size} samples", talk(0.3))])
        return ResponsePlan([Speech("one two three four five", talk(1.0), paced=True)])


async def test_a_turn_that_ends_while_the_answer_runs_is_kept_and_answered_when_asked() -> None:
    """[SDK] ServerVad.create_response: "If `interrupt_response` is set to `false` this may fail to create a
    response if the model is already responding." `serve` takes the stricter reading, it does fail
    (docs/differences.md): no second response while the first runs, nor after it. The turn is not lost: it is
    committed into the conversation, and the client's next `response.create` answers it."""
    async with MemorySession(responder=PacedThenEcho()) as s:
        await update(s, {"turn_detection": {"type": "server_vad", "interrupt_response": False}})
        s.send({"type": "conversation.item.create", "item": user_text("talk to me")})
        s.send({"type": "response.create"})
        first = (await s.next_event("response.created"))["response"]["id"]
        s.play(0.2)
        s.speak(utterance(talk(0.4), silence(0.7)))
        committed = await s.next_event("input_audio_buffer.committed")
        assert not s.sent("response.done")  # the turn ended while the first answer ran
        await s.play_through("output_audio_buffer.stopped")
        done = await s.next_event("response.done")
        assert (done["response"]["id"], done["response"]["status"]) == (first, "completed")
        await s.next_event("output_audio_buffer.stopped")
        await marker(s)
        assert len(s.sent("response.created")) == 1  # nothing answered the turn on its own
        turn = await retrieved_audio(s, committed["item_id"])
        s.send({"type": "response.create"})
        await s.play_through("output_audio_buffer.stopped")
        answer = await s.next_event("response.done")
        assert answer["response"]["output"][0]["content"][0]["transcript"] == f"heard {turn.size} samples"


async def test_a_turn_while_the_answer_is_being_prepared_cancels_it() -> None:
    responder = ThinkingResponder()
    async with MemorySession(responder=responder, playout=False) as s:
        s.send({"type": "conversation.item.create", "item": user_text("a hard question")})
        s.send({"type": "response.create"})
        await s.next_event("response.created")
        s.speak(utterance(talk(0.5), silence(0.5)))
        await s.next_event("input_audio_buffer.speech_started")
        done = await s.next_event("response.done")
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        assert done["response"]["output"] == []
        # the turn that interrupted is answered in its turn
        committed = await s.next_event("input_audio_buffer.committed")
        created = await s.next_event("response.created")
        assert created["response"]["id"] != done["response"]["id"]
        answer = await s.next_event("response.done")
        assert answer["response"]["id"] == created["response"]["id"] and answer["response"]["status"] == "completed"
        assert answer["response"]["output"][0]["content"][0]["transcript"] == "done thinking"
        assert committed["previous_item_id"] == s.sent("conversation.item.added")[0]["item"]["id"]


# ------------------------------------------------------------------------------------------ idle timeout
async def test_the_idle_timeout_commits_an_empty_turn_and_answers_it() -> None:
    async with MemorySession(with_turn_detection(idle_timeout_ms=100)) as s:
        s.speak(utterance(silence(0.5), talk(0.5), silence(0.5)))
        await s.next_event("response.created")
        await s.play_through("output_audio_buffer.stopped")
        first = await s.next_event("response.done")
        timeout = await s.next_event("input_audio_buffer.timeout_triggered")
        committed = await s.next_event("input_audio_buffer.committed")
        added = await s.next_event("conversation.item.added")
        assert timeout["audio_start_ms"] == timeout["audio_end_ms"] == 1500  # all the input audio so far
        assert committed["item_id"] == added["item"]["id"] == timeout["item_id"]
        assert committed["previous_item_id"] == added["previous_item_id"] == first["response"]["output"][0]["id"]
        await s.next_event("response.created")
        await s.play_through("output_audio_buffer.stopped")
        answer = await s.next_event("response.done")
        assert answer["response"]["output"][0]["content"][0]["transcript"] == "I heard nothing."
        assert (await retrieved_audio(s, timeout["item_id"])).size == 0  # an empty turn


async def test_speech_after_the_answer_stops_the_idle_timer() -> None:
    async with MemorySession(with_turn_detection(idle_timeout_ms=100)) as s:
        s.send({"type": "conversation.item.create", "item": user_text("hello")})
        s.send({"type": "response.create"})
        await s.play_through("output_audio_buffer.stopped")
        s.speak(talk(0.3))  # the user is still speaking when the timeout would be due
        await s.next_event("input_audio_buffer.speech_started")
        with pytest.raises(TimeoutError):
            await s.next_event("input_audio_buffer.timeout_triggered", timeout=0.3)
        assert not s.sent("input_audio_buffer.committed")


async def test_an_idle_timeout_under_5_seconds_is_refused_and_5_seconds_accepted() -> None:
    async with MemorySession() as s:
        for idle_ms in (4999, 5000):
            s.send(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": idle_ms}}},
                    },
                }
            )
        error = await s.next_event("error")
        assert error["error"]["code"] == "invalid_value" and "5000" in error["error"]["message"]
        assert "idle_timeout_ms" in error["error"]["param"]
        updated = await s.next_event("session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 5000
        assert len(s.sent("session.updated")) == 1  # the refused update changed nothing


# ------------------------------------------------------------------------------------------ input audio
async def test_appended_pcm16_goes_through_the_vad() -> None:
    async with MemorySession() as s:
        spoken = utterance(silence(1.0), talk(1.0), silence(0.5))
        for chunk in np.array_split(spoken, 25):
            s.send(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk.astype("<i2").tobytes()).decode()}
            )
        started = await s.next_event("input_audio_buffer.speech_started")
        stopped = await s.next_event("input_audio_buffer.speech_stopped")
        committed = await s.next_event("input_audio_buffer.committed")
        assert (started["audio_start_ms"], stopped["audio_end_ms"]) == (700, 2200)
        pcm = await retrieved_audio(s, committed["item_id"])
        assert np.array_equal(pcm, spoken[700 * API_RATE // 1000 : 2200 * API_RATE // 1000])


@pytest.mark.parametrize(("fmt", "law"), [("audio/pcmu", "ulaw"), ("audio/pcma", "alaw")])
async def test_appended_g711_is_decoded_to_24_khz(fmt: str, law: str) -> None:
    async with MemorySession() as s:
        session = await update(s, {"format": {"type": fmt}, "turn_detection": None})
        assert session["audio"]["input"]["format"]["type"] == fmt
        spoken = talk(0.5, rate=G711_RATE)
        s.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(g711.encode(spoken, law)).decode()})
        s.send({"type": "input_audio_buffer.commit"})
        committed = await s.next_event("input_audio_buffer.committed")
        pcm = s.core.conversation.audio[committed["item_id"]].pcm
        # three times the samples, the resampler's tail included (the commit flushes it: 2 ms were lost)
        assert abs(pcm.size - spoken.size * 3) <= 3, (pcm.size, spoken.size * 3)
        peak = 32767 * 10 ** (-12 / 20)
        assert 0.9 * peak < np.abs(pcm).max() < 1.1 * peak
        # retrieved in the session's input format ([SDK] ConversationItemRetrieved: the item with its audio)
        s.send({"type": "conversation.item.retrieve", "item_id": committed["item_id"]})
        item = (await s.next_event("conversation.item.retrieved"))["item"]
        back = g711.decode(base64.b64decode(item["content"][0]["audio"]), law)
        assert abs(back.size - pcm.size // 3) <= 32
        assert 0.85 * peak < np.abs(back).max() < 1.15 * peak


@pytest.mark.parametrize(
    ("audio", "why"),
    [("not base64 at all!", "not valid base64"), (base64.b64encode(b"\x01\x02\x03").decode(), "2-byte samples")],
)
async def test_append_with_audio_that_does_not_decode_is_refused(audio: str, why: str) -> None:
    async with MemorySession() as s:
        s.send({"type": "input_audio_buffer.append", "audio": audio, "event_id": "event_bad_audio"})
        error = await s.next_event("error")
        assert error["error"]["code"] == "invalid_value" and error["error"]["param"] == "audio"
        assert error["error"]["event_id"] == "event_bad_audio" and why in error["error"]["message"]
        assert s.core.turns.audio_samples == 0


async def test_input_audio_is_ignored_while_media_is_stopped() -> None:
    async with MemorySession(faults=[FaultSpec(action="stop_media", at_seconds=0)]) as s:
        await marker(s)
        assert s.edge.faults_applied == ["stop_media"]
        s.speak(utterance(silence(0.5), talk(1.0), silence(0.5)))
        s.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(talk(0.5).tobytes()).decode()})
        s.send({"type": "input_audio_buffer.commit"})
        error = await s.next_event("error")
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert not s.sent("input_audio_buffer.speech_started") and not s.sent("input_audio_buffer.committed")
