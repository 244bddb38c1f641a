"""The server's conversation rules and response engine without WebRTC: tables of cases, milliseconds each."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from voiceclient.audio.format import API_RATE, RTP_RATE
from voiceclient.protocol.errors import ProtocolError
from voiceclient.server.context import SessionContext
from voiceclient.server.conversation import Conversation, ItemAudio
from voiceclient.server.playout import PlayoutQueue
from voiceclient.server.realtime import RealtimeDialect
from voiceclient.server.responders import (
    FunctionCall,
    ResponsePlan,
    ScenarioResponder,
    ScenarioSpec,
    Speech,
    TurnContext,
)
from voiceclient.server.responses import ResponseEngine
from voiceclient.server.session_rules import default_session
from voiceclient.tasks import TaskOwner

pytestmark = pytest.mark.timeout(10)


def item(item_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": item_id}],
        **fields,
    }


# (existing ids, answered_upto, new id, previous_item_id) -> (ids after, answered_upto after, previous reported)
INSERTS = [
    ([], 0, "a", None, ["a"], 0, None),
    (["a"], 1, "b", None, ["a", "b"], 1, "a"),
    (["a", "b"], 2, "c", "a", ["a", "c", "b"], 3, "a"),  # inside the answered part: the mark moves with it
    (["a", "b"], 1, "c", "a", ["a", "c", "b"], 2, "a"),
    (["a", "b"], 1, "c", "b", ["a", "b", "c"], 1, "b"),  # after the last: a plain append
    (["a", "b"], 2, "c", "root", ["c", "a", "b"], 3, None),
    ([], 0, "c", "root", ["c"], 0, None),  # root of an empty conversation is its first item, unanswered
]


@pytest.mark.parametrize(("ids", "answered", "new", "previous", "after", "answered_after", "reported"), INSERTS)
def test_insert(
    ids: list[str],
    answered: int,
    new: str,
    previous: str | None,
    after: list[str],
    answered_after: int,
    reported: str | None,
) -> None:
    conv = Conversation(items=[item(i) for i in ids], answered_upto=answered)
    assert conv.insert(item(new), previous) == reported
    assert [it["id"] for it in conv.items] == after and conv.answered_upto == answered_after


@pytest.mark.parametrize(
    ("ids", "new", "previous", "code", "param"),
    [
        (["a"], "a", None, "item_create_duplicate_item_id", None),  # the real service's code; param null
        (["a"], "b", "zzz", "item_not_found", "previous_item_id"),
        ([], "b", "zzz", "item_not_found", "previous_item_id"),
    ],
)
def test_insert_refusals(ids: list[str], new: str, previous: str | None, code: str, param: str) -> None:
    conv = Conversation(items=[item(i) for i in ids])
    with pytest.raises(ProtocolError) as err:
        conv.insert(item(new), previous)
    assert (err.value.code, err.value.param) == (code, param) and len(conv.items) == len(ids)


@pytest.mark.parametrize(("answered", "delete", "answered_after"), [(2, "a", 1), (1, "b", 1), (3, "c", 2)])
def test_delete_keeps_the_answered_mark_on_the_same_item(answered: int, delete: str, answered_after: int) -> None:
    conv = Conversation(items=[item(i) for i in "abc"], answered_upto=answered)
    conv.audio[delete] = ItemAudio(np.zeros(10, np.int16), API_RATE)
    conv.delete(delete)
    assert conv.answered_upto == answered_after and delete not in conv.audio
    with pytest.raises(
        ProtocolError, match=f"^Error deleting item: the item with id '{delete}' does not exist.$"
    ) as err:
        conv.delete(delete)
    assert (err.value.code, err.value.param) == ("item_delete_invalid_item_id", None)


@pytest.mark.parametrize(
    ("operation", "verb"), [("retrieve", "retrieving"), ("delete", "deleting"), ("truncate", "truncating")]
)
def test_unknown_items_get_the_real_services_codes(operation: str, verb: str) -> None:
    """pipecat stops its session on any code of a retrieve but `item_retrieve_invalid_item_id`; LiveKit Agents and
        pipecat both match on these codes in their
    sources (pipecat's OpenAI Realtime service, LiveKit Agents' openai plugin)."""
    conv = Conversation(items=[item("a")])
    with pytest.raises(ProtocolError) as err:
        if operation == "truncate":
            conv.truncate("zzz", 0)
        else:
            getattr(conv, "delete" if operation == "delete" else "require")("zzz")
    error = err.value.event()["error"]
    assert error["message"] == f"Error {verb} item: the item with id 'zzz' does not exist."
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        f"item_{operation}_invalid_item_id",
        None,
    )


def test_a_response_answers_what_came_since_the_last_one_except_its_own_items() -> None:
    conv = Conversation()
    conv.insert(item("u1"))
    assert [it["id"] for it in conv.take_unanswered()] == ["u1"]
    conv.add_output(item("a1", role="assistant"))
    conv.insert(item("u2"))
    assert [it["id"] for it in conv.take_unanswered()] == ["u2"]
    assert conv.take_unanswered() == []


# Truncating keeps the words whose audio had started, by where the response engine placed each word: "one two
# three four" in one part of 2 s (at 0, 22, 44 and 78 % of the text); "You said: " in 0.7 s, then "hello there."
# in 0.9 s (voiced part by part, so not by the words' share of the whole text).
ONE_PART = ([(0, "one "), (444, "two "), (888, "three "), (1555, "four")], 2.0)
TWO_PARTS = ([(0, "You "), (280, "said: "), (700, "hello "), (1150, "there.")], 1.6)


@pytest.mark.parametrize(
    ("reply", "end_ms", "kept"),
    [
        (ONE_PART, 0, ""),
        (ONE_PART, 400, "one"),
        (ONE_PART, 500, "one two"),
        (ONE_PART, 1500, "one two three"),
        (ONE_PART, 1600, "one two three four"),
        (ONE_PART, 2000, "one two three four"),
        (TWO_PARTS, 0, ""),
        (TWO_PARTS, 250, "You"),
        (TWO_PARTS, 700, "You said:"),
        (TWO_PARTS, 701, "You said: hello"),
        (TWO_PARTS, 1200, "You said: hello there."),
    ],
)
def test_truncate_keeps_the_words_whose_audio_had_started(
    reply: tuple[list[tuple[int, str]], float], end_ms: int, kept: str
) -> None:
    starts, seconds = reply
    conv = Conversation()
    said = {
        "id": "a",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": "".join(w for _, w in starts)}],
    }
    conv.add_output(said)
    conv.word_starts["a"] = starts
    conv.audio["a"] = ItemAudio(np.zeros(int(seconds * RTP_RATE), np.int16), RTP_RATE)
    conv.truncate("a", end_ms)
    assert said["content"][0]["transcript"] == kept  # type: ignore[index]


@pytest.mark.parametrize(
    ("target", "end_ms", "param"),
    [("u", 0, "item_id"), ("a", 2001, "audio_end_ms"), ("nope", 0, None), ("t", 0, "content_index")],
)
def test_truncate_refusals(target: str, end_ms: int, param: str | None) -> None:
    """("t": an assistant answer in text only has no audio part to truncate.)"""
    conv = Conversation()
    conv.insert(item("u"))
    conv.add_output({"id": "a", "type": "message", "role": "assistant", "content": [{"type": "output_audio"}]})
    conv.audio["a"] = ItemAudio(np.zeros(2 * RTP_RATE, np.int16), RTP_RATE)
    conv.add_output({"id": "t", "type": "message", "role": "assistant", "content": [{"type": "output_text"}]})
    with pytest.raises(ProtocolError) as err:
        conv.truncate(target, end_ms)
    assert err.value.param == param and err.value.event()["error"]["param"] == param


def said_by(role: str, item_id: str, text: str, audio: bool = False) -> dict[str, Any]:
    kind = ("input_audio" if audio else "input_text") if role == "user" else "output_text"
    key = "transcript" if audio else "text"
    return {"id": item_id, "type": "message", "role": role, "content": [{"type": kind, key: text}]}


# (items as (role, id, text, produced here), the item asked about) -> (user words before it, turns carried over)
EARLIER = [
    ([("user", "u1", "hi", False)], "u1", [], 0),
    (
        [("user", "u1", "my name is Ada", False), ("assistant", "a1", "ok", False), ("user", "u2", "name?", False)],
        "u2",
        ["my name is Ada"],
        1,
    ),  # replayed: the assistant's answer came with the history
    (
        [("user", "u1", "my name is Ada", False), ("assistant", "a1", "ok", True), ("user", "u2", "name?", False)],
        "u2",
        ["my name is Ada"],
        0,
    ),  # answered here: the session's own counter has it
    (
        [
            ("user", "u1", "one", False),
            ("user", "u2", "two", False),
            ("assistant", "a1", "ok", False),
            ("user", "u3", "three", False),
        ],
        "u3",
        ["one", "two"],
        1,
    ),  # two messages, one answer: one turn
    (
        [
            ("assistant", "a0", "welcome", False),
            ("user", "u1", "", False),
            ("assistant", "a1", "ok", False),
            ("user", "u2", "x", False),
        ],
        "u2",
        [],
        1,
    ),  # an untranscribed audio turn: no words, still a turn
]


@pytest.mark.parametrize(("items", "before", "words", "carried"), EARLIER)
def test_earlier_words_and_turns_carried_from_a_replayed_history(
    items: list[tuple[str, str, str, bool]], before: str, words: list[str], carried: int
) -> None:
    conv = Conversation()
    for role, item_id, text, produced in items:
        entry = said_by(role, item_id, text, audio=role == "user" and not text)
        if produced:
            conv.add_output(entry)
        else:
            conv.insert(entry)
    assert conv.user_words(before) == words and conv.carried_turns(before) == carried


# ----------------------------------------------------------------------------------------------- the engine
class Harness:
    def __init__(self, responder: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        self.tasks = TaskOwner("test session")
        self.ctx = SessionContext(
            "rtc_test",
            default_session(),
            self.sent.extend,
            lambda message: None,
            self.tasks,
            responder,
            dialect=RealtimeDialect(),
        )
        self.ctx.session["output_modalities"] = ["text"]
        self.conversation = Conversation()
        self.engine = ResponseEngine(self.ctx, self.conversation, PlayoutQueue(), self._no_transcript, lambda: 0.0)

    @staticmethod
    async def _no_transcript(item_id: str) -> str | None:
        return None

    async def respond(self) -> dict[str, Any]:
        active = self.engine.start(None)
        assert active.task is not None
        await asyncio.wait_for(active.task, 5)
        return next(e for e in reversed(self.sent) if e["type"] == "response.done")["response"]

    def said(self) -> list[str]:
        return [e["text"] for e in self.sent if e["type"] == "response.output_text.done"]


async def test_tool_outputs_are_answered_in_call_order_whatever_order_they_arrive_in() -> None:
    spec = ScenarioSpec.model_validate(
        {
            "turns": [
                {
                    "text": "Checking.",
                    "calls": [
                        {"name": "get_weather", "arguments": {"city": "Paris"}},
                        {"name": "get_weather", "arguments": {"town": "x"}},
                    ],
                    "after_tools": {"text": "{output[city]} is {output[forecast]}."},
                }
            ]
        }
    )
    h = Harness(ScenarioResponder(spec, base_dir=__import__("pathlib").Path(".")))
    h.conversation.insert(item("u1"))
    first = await h.respond()
    calls = [it["call_id"] for it in first["output"] if it["type"] == "function_call"]
    # The refused call's output arrives first (it is answered at once); the answer still uses the first call's.
    for call_id, output in (
        (calls[1], {"error": "invalid arguments"}),
        (calls[0], {"city": "Paris", "forecast": "sunny"}),
    ):
        h.conversation.insert(
            {"id": "out_" + call_id, "type": "function_call_output", "call_id": call_id, "output": json.dumps(output)}
        )
    second = await h.respond()
    assert second["status"] == "completed" and h.said() == ["Checking.", "Paris is sunny."]


async def test_a_failing_responder_fails_that_response_only() -> None:
    class Flaky:
        calls = 0

        def plan(self, ctx: TurnContext) -> ResponsePlan:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("responder bug")
            return ResponsePlan([Speech("fine", np.zeros(0, np.int16)), FunctionCall("f", "{}")])

    h = Harness(Flaky())
    h.conversation.insert(item("u1"))
    failed = await h.respond()
    assert failed["status"] == "failed" and failed["status_details"]["error"]["code"] == "RuntimeError"
    h.conversation.insert(item("u2"))
    ok = await h.respond()
    assert ok["status"] == "completed" and [it["type"] for it in ok["output"]] == ["message", "function_call"]
    assert h.engine.active is None
    await h.tasks.close()


async def test_a_scenario_carried_into_a_new_session_goes_on_at_its_next_turn() -> None:
    """A recycle or reconnect replays the history into a new session: the scenario answers the next turn (not
    the first again), and can say what the user said before the switch."""
    spec = ScenarioSpec.model_validate(
        {
            "turns": [
                {"text": "What is your name?"},
                {"text": "Hello {user_text}. You first said {earlier[0]}."},
                {"text": "Bye, {previous}."},
            ]
        }
    )
    h = Harness(ScenarioResponder(spec, base_dir=__import__("pathlib").Path(".")))
    for entry in (
        said_by("user", "u1", "hi"),
        said_by("assistant", "a1", "What is your name?"),
        said_by("user", "u2", "Ada"),
    ):  # the client's replay of the old session
        h.conversation.insert(entry)
    await h.respond()
    h.conversation.insert(said_by("user", "u3", "thanks"))
    await h.respond()
    assert h.said() == ["Hello Ada. You first said hi.", "Bye, Ada."]
