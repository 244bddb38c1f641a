"""What the real service holds a response to, through the memory edge (`voiceclient.testing.MemorySession`):
out-of-band responses (`conversation: "none"`), `max_output_tokens`, and what steers the model (`tool_choice`,
a response's own instructions, tools and voice). Each test names its source: [SDK] the `openai` package's types
and docstrings (3.63.0), [docs] OpenAI's realtime guides; where no source settles it, the stricter choice
(docs/differences.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from voiceclient.audio.format import API_RATE, tone
from voiceclient.server.responders import (
    NO_TOOLS_TEXT,
    Responder,
    ResponsePlan,
    ScenarioResponder,
    ScenarioSpec,
    Speech,
    TurnContext,
)
from voiceclient.testing import MemorySession

pytestmark = pytest.mark.timeout(10)

TEXT_ONLY = {"output_modalities": ["text"]}
WEATHER_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
LOOKUP_TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def scenario(spec: dict[str, Any]) -> ScenarioResponder:
    return ScenarioResponder(ScenarioSpec.model_validate(spec), Path("."))


async def add_user(s: MemorySession, text: str) -> str:
    """A typed user message (no response); returns its id."""
    s.send({"type": "conversation.item.create", "item": user_text(text)})
    return str((await s.next_event("conversation.item.done"))["item"]["id"])


async def done_of(s: MemorySession, response_id: str) -> dict[str, Any]:
    """That response's `response.done` (others may come first)."""
    event = await s.next_event(lambda e: e["type"] == "response.done" and e["response"]["id"] == response_id)
    return cast(dict[str, Any], event["response"])


def said(response: dict[str, Any]) -> str:
    """What a finished response's message said (its text, or its audio's transcript)."""
    part = next(it for it in response["output"] if it["type"] == "message")["content"][0]
    return str(part.get("text", part.get("transcript")))


class HeldDefault:
    """Echoes the user's text; a default-conversation response waits for `gate` first (it stays active for as
    long as the test wants), an out-of-band one answers at once. Keeps what each response was told."""

    def __init__(self, hold_out_of_band: bool = False) -> None:
        self.gate = asyncio.Event()
        self.hold_out_of_band = hold_out_of_band  # out-of-band responses wait too

    async def plan(self, ctx: TurnContext) -> ResponsePlan:
        if not ctx.out_of_band or self.hold_out_of_band:
            await self.gate.wait()
        text = f"You said: {ctx.user_text}" if ctx.user_text is not None else "I heard nothing."
        return ResponsePlan([Speech(text, tone(440, 0.2, API_RATE))])


# ------------------------------------------------------------------------------------------ out of band
async def test_out_of_band_responses_run_beside_the_default_one_and_each_other() -> None:
    """[SDK] `RealtimeResponseCreateParams.conversation` ("none": out of band), [docs] realtime-conversations:
    only two default-conversation responses conflict; out-of-band ones run while it is active."""
    held = HeldDefault()
    async with MemorySession(TEXT_ONLY, cast(Responder, held)) as s:
        await add_user(s, "hello")
        s.send({"type": "response.create"})
        default = (await s.next_event("response.created"))["response"]
        for word in ("red", "blue"):
            s.send(
                {
                    "type": "response.create",
                    "response": {"conversation": "none", "input": [user_text(word)], "metadata": {"w": word}},
                }
            )
        first = (await s.next_event("response.created"))["response"]
        second = (await s.next_event("response.created"))["response"]
        assert first["conversation_id"] is None and second["conversation_id"] is None
        assert (first["metadata"], second["metadata"]) == ({"w": "red"}, {"w": "blue"})
        one, two = await done_of(s, first["id"]), await done_of(s, second["id"])
        assert (said(one), said(two)) == ("You said: red", "You said: blue")
        assert one["conversation_id"] is None and one["metadata"] == {"w": "red"} and one["status"] == "completed"
        assert s.core.responses.active is not None and s.core.responses.active.id == default["id"]
        # a second default-conversation response still conflicts
        s.send({"type": "response.create"})
        error = (await s.next_event("error"))["error"]
        assert error["code"] == "conversation_already_has_active_response"
        held.gate.set()
        assert said(await done_of(s, default["id"])) == "You said: hello"


async def test_out_of_band_output_is_never_in_the_conversation() -> None:
    """[SDK] `conversation: "none"` "will not add items to default conversation": no `conversation.item.added`
    or `.done` for its items, which are not retrievable; its events carry its own response_id."""
    async with MemorySession(TEXT_ONLY) as s:
        await add_user(s, "hello")
        s.send({"type": "response.create", "response": {"conversation": "none"}})
        resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
        item_id = resp["output"][0]["id"]
        assert not [e for e in s.events if e["type"].startswith("conversation.item.") and e["item"]["id"] == item_id]
        deltas = s.sent("response.output_text.delta")
        assert deltas and {d["response_id"] for d in deltas} == {resp["id"]}
        assert item_id not in [it["id"] for it in s.core.conversation.items]
        s.send({"type": "conversation.item.retrieve", "item_id": item_id})
        assert (await s.next_event("error"))["error"]["code"] == "item_retrieve_invalid_item_id"


async def test_out_of_band_input_is_its_whole_context_and_answers_nothing_pending() -> None:
    """[SDK] `RealtimeResponseCreateParams.input`: "a new context for this Response instead of using the default
    conversation"; items or references to items by id; `[]` clears the context. The pending user message stays
    for the next default response."""
    async with MemorySession(TEXT_ONLY) as s:
        hello = await add_user(s, "hello")
        await add_user(s, "how are you")
        cases: list[tuple[list[dict[str, Any]] | None, str]] = [
            ([user_text("classify this")], "You said: classify this"),
            ([{"type": "item_reference", "id": hello}], "You said: hello"),
            ([], "I heard nothing."),
            (None, "You said: how are you"),  # no input: the default conversation is the context
        ]
        for given, expected in cases:
            params: dict[str, Any] = {"conversation": "none"}
            if given is not None:
                params["input"] = given
            s.send({"type": "response.create", "response": params})
            resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
            assert said(resp) == expected, given
        # nothing was answered: the default response answers the last user message
        s.send({"type": "response.create"})
        resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
        assert said(resp) == "You said: how are you" and resp["conversation_id"] is not None


async def test_an_out_of_band_reference_to_an_unknown_item_is_refused() -> None:
    """The stricter choice (the real wording is not established; docs/differences.md): a reference to no item
    of the conversation is refused before any response exists."""
    async with MemorySession(TEXT_ONLY) as s:
        bad = {"conversation": "none", "input": [{"type": "item_reference", "id": "item_nope"}]}
        s.send({"type": "response.create", "response": bad, "event_id": "e1"})
        error = (await s.next_event("error"))["error"]
        assert (error["code"], error["param"], error["event_id"]) == ("item_not_found", "response.input[0].id", "e1")
        assert not s.sent("response.created")


async def test_an_out_of_band_response_is_cancelled_by_its_id_only() -> None:
    """[SDK] `ResponseCancelEvent.response_id`: without one, the default conversation's response is cancelled;
    an out-of-band one is cancelled by naming it."""
    held = HeldDefault(hold_out_of_band=True)
    async with MemorySession(TEXT_ONLY, cast(Responder, held)) as s:
        await add_user(s, "hello")
        s.send({"type": "response.create", "response": {"conversation": "none"}})
        oob = (await s.next_event("response.created"))["response"]
        s.send({"type": "response.cancel"})  # no default response: nothing to cancel
        assert (await s.next_event("error"))["error"]["code"] == "response_cancel_not_active"
        s.send({"type": "response.create"})
        default = (await s.next_event("response.created"))["response"]
        s.send({"type": "response.cancel"})
        assert (await done_of(s, default["id"]))["status"] == "cancelled"
        assert oob["id"] in s.core.responses.out_of_band
        s.send({"type": "response.cancel", "response_id": oob["id"]})
        resp = await done_of(s, oob["id"])
        assert resp["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}


# ------------------------------------------------------------------------------------------ max_output_tokens
async def test_max_output_tokens_cuts_a_text_answer_where_its_tokens_end() -> None:
    """[SDK] `RealtimeResponseStatus`: `incomplete`, reason `max_output_tokens`. The estimate: four characters a
    token; "You " 1, "said: " 1.5, "hello " 1.5: a cap of 3 keeps "You said: "."""
    async with MemorySession(TEXT_ONLY) as s:
        s.send({"type": "conversation.item.create", "item": user_text("hello there")})
        s.send({"type": "response.create", "response": {"max_output_tokens": 3}})
        resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
        assert resp["status"] == "incomplete"
        assert resp["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
        assert said(resp) == "You said: " and resp["output"][0]["status"] == "incomplete"
        assert "".join(d["delta"] for d in s.sent("response.output_text.delta")) == "You said: "
        assert s.sent("response.output_text.done")[-1]["text"] == "You said: "
        assert 0 < resp["usage"]["output_tokens"] <= 3
        # the session's own cap (inf) for the next
        s.send({"type": "conversation.item.create", "item": user_text("again")})
        s.send({"type": "response.create"})
        resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
        assert resp["status"] == "completed" and said(resp) == "You said: again"


async def test_a_session_max_output_tokens_cuts_the_audio_and_the_transcript_together() -> None:
    """[SDK] `RealtimeResponseStatus`; `RealtimeSessionCreateRequest.max_output_tokens` (session-level). Audio is
    10 tokens a second: the echo's 1.26 s tone with its words costs about 18; a cap of 8 keeps the words whose
    text and audio fit, and the audio up to where the last kept word ends."""
    async with MemorySession({"max_output_tokens": 8}) as s:
        s.send({"type": "conversation.item.create", "item": user_text("hello there")})
        s.send({"type": "response.create"})
        created = (await s.next_event("response.created"))["response"]
        assert created["max_output_tokens"] == 8
        await s.next_event("response.content_part.added")
        played = await s.play_through("response.done")
        resp = await done_of(s, created["id"])
        assert resp["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
        transcript = said(resp)
        assert transcript and "You said: hello there".startswith(transcript) and transcript != "You said: hello there"
        assert s.sent("response.output_audio_transcript.done")[-1]["transcript"] == transcript
        usage = resp["usage"]
        assert 0 < usage["output_tokens"] <= 8 and usage["output_token_details"]["audio_tokens"] > 0
        audio = s.core.conversation.audio[resp["output"][0]["id"]]
        assert 0 < audio.ms < 1260 and played.size > 0


# ------------------------------------------------------------------------------------------ tool_choice
WEATHER_TURN = {
    "turns": [{"text": "Let me look.", "calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}],
}
CALL_ONLY = {"turns": [{"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}]}


async def test_tool_choice_none_answers_with_the_text_and_no_call() -> None:
    """[SDK] `RealtimeToolChoiceConfig` "none": the model calls no tool. A scripted turn that also speaks says
    its text; one that only calls says that it cannot use a tool."""
    for spec, expected in ((WEATHER_TURN, "Let me look."), (CALL_ONLY, NO_TOOLS_TEXT)):
        async with MemorySession({**TEXT_ONLY, "tools": [WEATHER_TOOL], "tool_choice": "none"}, scenario(spec)) as s:
            s.send({"type": "conversation.item.create", "item": user_text("weather?")})
            s.send({"type": "response.create"})
            resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
            assert [it["type"] for it in resp["output"]] == ["message"] and said(resp) == expected
            assert not s.sent("response.function_call_arguments.done")


async def test_tool_choice_required_makes_a_call_to_the_first_declared_function() -> None:
    """[SDK] `RealtimeToolChoiceConfig` "required": a tool call. A plan with none calls the first declared
    function (arguments `{}`; our choice, docs/differences.md), after what it says; the next response, without
    the per-response choice, calls nothing."""
    async with MemorySession({**TEXT_ONLY, "tools": [WEATHER_TOOL, LOOKUP_TOOL]}) as s:
        s.send({"type": "conversation.item.create", "item": user_text("hi")})
        s.send({"type": "response.create", "response": {"tool_choice": "required"}})
        resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
        assert [it["type"] for it in resp["output"]] == ["message", "function_call"]
        assert (resp["output"][1]["name"], resp["output"][1]["arguments"]) == ("get_weather", "{}")
        s.send({"type": "conversation.item.create", "item": user_text("again")})
        s.send({"type": "response.create"})
        resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
        assert [it["type"] for it in resp["output"]] == ["message"]


async def test_tool_choice_naming_a_function_calls_that_function() -> None:
    """[SDK] `ToolChoiceFunction`: the model calls that function (here instead of the scripted one)."""
    async with MemorySession({**TEXT_ONLY, "tools": [WEATHER_TOOL, LOOKUP_TOOL]}, scenario(WEATHER_TURN)) as s:
        s.send({"type": "conversation.item.create", "item": user_text("weather?")})
        choice = {"type": "function", "name": "lookup"}
        s.send({"type": "response.create", "response": {"tool_choice": choice}})
        resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
        calls = [it["name"] for it in resp["output"] if it["type"] == "function_call"]
        assert calls == ["lookup"]


async def test_a_tool_choice_naming_an_undeclared_function_is_refused() -> None:
    """[SDK] `ToolChoiceFunction` names a declared function; the code and param are our choice
    (docs/differences.md): `invalid_value`, `response.tool_choice` or `session.tool_choice`. The session is
    unchanged and no response starts."""
    async with MemorySession({**TEXT_ONLY, "tools": [WEATHER_TOOL]}) as s:
        choice = {"type": "function", "name": "book_flight"}
        s.send({"type": "response.create", "response": {"tool_choice": choice}, "event_id": "e1"})
        error = (await s.next_event("error"))["error"]
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "response.tool_choice", "e1")
        assert not s.sent("response.created")
        s.send({"type": "session.update", "session": {"type": "realtime", "tool_choice": choice}})
        error = (await s.next_event("error"))["error"]
        assert (error["code"], error["param"]) == ("invalid_value", "session.tool_choice")
        assert s.core.session["tool_choice"] == "auto" and not s.sent("session.updated")
        # a function the response's own tools declare is fine
        params = {"tools": [{**WEATHER_TOOL, "name": "book_flight"}], "tool_choice": choice}
        s.send({"type": "conversation.item.create", "item": user_text("fly")})
        s.send({"type": "response.create", "response": params})
        resp = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
        assert [it.get("name") for it in resp["output"] if it["type"] == "function_call"] == ["book_flight"]


class Told:
    """Keeps what each response was told (its instructions and tools), and says nothing but a word."""

    def __init__(self) -> None:
        self.seen: list[TurnContext] = []

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        self.seen.append(ctx)
        return ResponsePlan([Speech("ok", tone(440, 0.2, API_RATE))])


async def test_a_responses_own_instructions_tools_and_voice_are_for_that_response_only() -> None:
    """[SDK] `RealtimeResponseCreateParams.instructions`, `.tools`, `.tool_choice`, `.audio.output.voice`
    override the session's for the response; `RealtimeResponse.audio.output.voice` echoes the voice."""
    told = Told()
    async with MemorySession({**TEXT_ONLY, "tools": [WEATHER_TOOL], "instructions": "Be brief."}, told) as s:
        params = {"instructions": "Answer in French.", "tools": [LOOKUP_TOOL], "audio": {"output": {"voice": "marin"}}}
        s.send({"type": "conversation.item.create", "item": user_text("hi")})
        s.send({"type": "response.create", "response": params})
        created = (await s.next_event("response.created"))["response"]
        resp = await done_of(s, created["id"])
        assert created["audio"]["output"]["voice"] == resp["audio"]["output"]["voice"] == "marin"
        s.send({"type": "conversation.item.create", "item": user_text("again")})
        s.send({"type": "response.create"})
        plain = await done_of(s, (await s.next_event("response.created"))["response"]["id"])
        assert plain["audio"]["output"]["voice"] == "alloy"
        first, second = told.seen
        assert (first.instructions, first.function_tools) == ("Answer in French.", {"lookup"})
        assert (second.instructions, second.function_tools) == ("Be brief.", {"get_weather"})


async def test_out_of_band_audio_plays_on_the_same_output_after_what_is_queued() -> None:
    """[docs] realtime-conversations (the real service plays an out-of-band audio response). Ours: its audio
    joins the one output queue (after what was queued before it), `output_audio_buffer.started/stopped` name
    its response, and nothing of it is in the conversation (docs/differences.md)."""
    async with MemorySession() as s:
        s.send({"type": "response.create", "response": {"conversation": "none", "input": [user_text("hi")]}})
        created = (await s.next_event("response.created"))["response"]
        await s.next_event("response.content_part.added")
        await s.play_through("output_audio_buffer.stopped")
        started = await s.next_event("output_audio_buffer.started")
        stopped = await s.next_event("output_audio_buffer.stopped")
        assert started["response_id"] == stopped["response_id"] == created["id"]
        resp = s.sent("response.done")[0]["response"]
        assert said(resp) == "You said: hi" and resp["status"] == "completed"
        assert not s.sent("conversation.item.added") and not s.core.conversation.items
