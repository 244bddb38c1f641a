"""A suite of 16 scripted calls, written as a user of voiceclient writes one: the pytest plugin's fixtures
(`voice_server`, `scripted_call`) and `voiceclient.testing`'s assertions, nothing of this project's conftest.

Eight spoken requests to a small offline assistant (agent rules in fixtures/scenarios/assistant.toml, tools below),
asserted on the tools it called and on the words of its spoken answer; and the same eight recordings through the
echo server, asserted on what comes back: the same words as the recording itself holds. `pytest -n 2` shards them
(README: "A suite of scripted calls").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from voiceclient import tool
from voiceclient.testing import (
    assert_events_in_order,
    assert_heard,
    assert_heard_close_to,
    assert_tool_called,
    transcribe_wav,
    word_error_rate,
)

from .conftest import FIXTURES, NEEDS_AGENT

ROOT = FIXTURES.parent
SPEECH = FIXTURES / "speech"
RULES = FIXTURES / "scenarios" / "assistant.toml"
pytestmark = [pytest.mark.timeout(90), NEEDS_AGENT]
SESSION_500MS = {
    "type": "realtime",
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
}


@tool
def book_table(time: str) -> dict:
    """Book a table."""
    return {"time": time, "confirmed": True}


@tool
def next_train(city: str) -> dict:
    """The next train to a city."""
    return {"city": city, "departs": "eight fifteen"}


@tool
def switch_lights(room: str, on: bool) -> dict:
    """Switch the lights of a room."""
    return {"room": room, "on": on}


@tool
def add_reminder(task: str) -> dict:
    """Add a reminder."""
    return {"task": task}


@tool
def distance_to(place: str) -> dict:
    """Distance to a place."""
    return {"place": place, "km": 12}


@tool
def get_weather(city: str) -> dict:
    """Weather for a city."""
    return {"city": city, "forecast": "sunny"}


TOOLS = [book_table, next_train, switch_lights, add_reminder, distance_to, get_weather]
WAVS = [SPEECH / f"sentence_{i}.wav" for i in range(1, 8)] + [ROOT / "voiceclient" / "assets" / "demo_user.wav"]
# What the assistant must do for each recording: (tool and arguments or None, words of its spoken answer). The
# answer's words are heard by Whisper tiny.en, which writes "km" or "drain" now and then: the phrases avoid those.
# Whisper tiny.en also hears a recording differently when it starts a few samples later (and the receive path cuts
# or pads pauses by a few samples): sentence_2 is "book a table for two people at seven" at some offsets, "but could
# table 4 to people at 7" at others, and the answer's "booked" is now and then "book". So the time may come as a
# digit, and the answer's phrases leave out "booked".
# An argument's value, or a tuple of the values Whisper may hear for it.
EXPECTED: dict[str, tuple[tuple[str, dict[str, Any]] | None, list[str]]] = {
    "sentence_1": (None, ["every letter"]),
    "sentence_2": (("book_table", {"time": ("seven", "7")}), ["your table is"]),
    "sentence_3": (("next_train", {"city": "Boston"}), ["to boston leaves"]),
    "sentence_4": (("switch_lights", {"room": "kitchen", "on": False}), ["kitchen lights are off"]),
    "sentence_5": (None, ["you said", "green blue and orange"]),
    "sentence_6": (("add_reminder", {}), ["remind you"]),
    "sentence_7": (("distance_to", {"place": "airport"}), ["airport is 12"]),
    "demo_user": (("get_weather", {"city": "Paris"}), ["sunny in paris", "goodbye"]),
}

TEXTS = {f"sentence_{i}": line for i, line in enumerate((SPEECH / "sentences.txt").read_text().splitlines(), 1)}
TEXTS["demo_user"] = "What is the weather like in Paris today? Thank you. Goodbye."


@pytest.mark.xdist_group("assistant")
@pytest.mark.parametrize("wav", WAVS, ids=lambda p: p.stem)
async def test_the_assistant_answers_each_request(voice_server, scripted_call, wav: Path) -> None:
    from voiceclient import SessionConfig

    server = await voice_server(scenario=RULES)
    result = await scripted_call(server, wav, tools=TOOLS, session=SessionConfig.model_validate(SESSION_500MS))
    expected_call, phrases = EXPECTED[wav.stem]
    if expected_call is None:
        assert result.tool_calls == []
    else:
        name, arguments = expected_call
        exact = {k: v for k, v in arguments.items() if not isinstance(v, tuple)}
        assert_tool_called(result, name, **exact)
        call = next(c for c in result.tool_calls if c.name == name)
        for key, choices in arguments.items():
            if isinstance(choices, tuple):
                assert call.arguments.get(key) in choices, (key, call.arguments)
    assert_events_in_order(
        result,
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "response.created",
        "response.done",
    )
    assert_heard(result, *phrases)


@pytest.mark.parametrize("wav", WAVS, ids=lambda p: p.stem)
async def test_the_echo_brings_back_the_same_words(realtime_server, scripted_call, wav: Path) -> None:
    result = await scripted_call(realtime_server, wav)
    assert result.ended == "idle" and result.latencies
    # As faithful as the recording itself: Whisper tiny.en gets some words of these recordings wrong as they are,
    # so the echo may be that far from the text and one word in five further. An Opus-coded copy is heard less
    # surely than the recording, and differently a few samples later: sentence_2 comes back as "look at table 4 to
    # people at 7" at some offsets (4 words of 10), so 4 in 10 is always allowed. Garbled, cut or missing audio
    # gets most words wrong.
    as_recorded = word_error_rate(TEXTS[wav.stem], transcribe_wav(wav))
    assert_heard_close_to(result, TEXTS[wav.stem], max_wer=max(as_recorded + 0.2, 0.4))


@pytest.mark.xdist_group("assistant")
async def test_the_assistant_over_the_websocket_transport(voice_server, scripted_call) -> None:
    """The same spoken request through `scripted_call(..., transport="websocket")`: the appends are heard, the
    tool runs, the answer's words are in what the client played out."""
    from voiceclient import SessionConfig

    server = await voice_server(scenario=RULES)
    wav = ROOT / "voiceclient" / "assets" / "demo_user.wav"
    result = await scripted_call(
        server, wav, tools=TOOLS, session=SessionConfig.model_validate(SESSION_500MS), transport="websocket"
    )
    assert_tool_called(result, "get_weather", city="Paris")
    assert_heard(result, "sunny in paris", "goodbye")
    assert [line["event"]["type"] for line in result.events if line["dir"] == "local"][:1] == [
        "output_audio_buffer.started"
    ]
