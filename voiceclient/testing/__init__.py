"""Helpers for users' own voice tests. No pytest needed here; the pytest plugin (`voiceclient.testing.plugin`,
switched on by installing voiceclient; `-p no:voiceclient` switches it off) gives the fixtures:

    from voiceclient.testing import assert_heard, assert_tool_called

    async def test_weather(agent_server, scripted_call):
        result = await scripted_call(agent_server, "question.wav")
        assert_heard(result, "sunny")                  # heard in the assistant's audio by offline STT
        assert_tool_called(result, "get_weather", city="Paris")

`run_scripted_call` is the same call without pytest. Names are imported on first use, so the plugin costs a suite
that does not use it nothing; `transcribe_wav` and `heard` use the server's offline speech-to-text (the `agent`
extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voiceclient.lazy import lazy_names

if TYPE_CHECKING:
    from voiceclient.client.scripted import ScriptedTransport
    from voiceclient.testing.asserts import (
        assert_events_in_order,
        assert_heard,
        assert_heard_close_to,
        assert_tool_called,
        word_error_rate,
    )
    from voiceclient.testing.calls import ScriptedCallResult, ToolCall, run_scripted_call
    from voiceclient.testing.devices import virtual_audio_devices
    from voiceclient.testing.memory import MemoryEdge, MemorySession
    from voiceclient.testing.speech import speech_backends, transcribe, transcribe_wav

_WHERE = {
    "voiceclient.client.scripted": ["ScriptedTransport"],  # the in-memory transport, as httpx has MockTransport
    "voiceclient.testing.asserts": [
        "assert_events_in_order",
        "assert_heard",
        "assert_heard_close_to",
        "assert_tool_called",
        "word_error_rate",
    ],
    "voiceclient.testing.calls": ["ScriptedCallResult", "ToolCall", "run_scripted_call"],
    "voiceclient.testing.devices": ["virtual_audio_devices"],
    "voiceclient.testing.memory": ["MemoryEdge", "MemorySession"],  # the server's session core, without a socket
    "voiceclient.testing.speech": ["speech_backends", "transcribe", "transcribe_wav"],
}
__getattr__, __dir__ = lazy_names(__name__, _WHERE)

__all__ = [
    "MemoryEdge",
    "MemorySession",
    "ScriptedCallResult",
    "ScriptedTransport",
    "ToolCall",
    "assert_events_in_order",
    "assert_heard",
    "assert_heard_close_to",
    "assert_tool_called",
    "run_scripted_call",
    "speech_backends",
    "transcribe",
    "transcribe_wav",
    "virtual_audio_devices",
    "word_error_rate",
]
