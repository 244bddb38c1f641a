"""The pytest plugin as a user meets it: switched on by installing voiceclient, free for a suite that does not use
it, and a failing voice test that says where its conversation is kept."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FIXTURES

pytestmark = pytest.mark.timeout(90)
HEAVY = {"numpy", "av", "aiortc", "httpx", "pydantic", "aiohttp", "onnxruntime", "faster_whisper"}


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, voiceclient.testing.plugin, voiceclient.testing; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HEAVY)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_plugin_is_registered_under_its_entry_point() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "voiceclient"]
    assert entry.value == "voiceclient.testing.plugin"


def test_a_failing_voice_test_says_where_its_conversation_is_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_users_suite=f"""
        import pytest
        from voiceclient.testing import assert_tool_called

        @pytest.mark.asyncio
        async def test_passes(realtime_server, scripted_call):
            result = await scripted_call(realtime_server, {str(FIXTURES / "tone_440_16k_stereo.wav")!r})
            assert result.ended == "idle" and result.event_types[:2] == ["session.created", "session.updated"]

        @pytest.mark.asyncio
        async def test_fails(realtime_server, scripted_call):
            result = await scripted_call(realtime_server, {str(FIXTURES / "tone_440_16k_stereo.wav")!r})
            assert_tool_called(result, "get_weather", city="Paris")
    """
    )
    # pytest-asyncio's default (strict) mode, as a user's suite has it unless it says otherwise
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore")
    run.assert_outcomes(passed=1, failed=1)
    text = run.stdout.str()
    assert "expected a call of get_weather(city='Paris'); the calls made: none" in text
    assert "voiceclient: the calls of this test, kept" in text
    events = Path(re.search(r"events (\S+\.events\.jsonl)", text).group(1))
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert {line["event"]["type"] for line in lines} >= {"session.created", "response.done"}
    assert events.with_name(events.name.replace(".events.jsonl", ".conversation.wav")).stat().st_size > 44
    page = Path(re.search(r"timeline (\S+\.report\.html)", text).group(1))
    assert page.parent == events.parent and "voiceclient call report" in page.read_text()
    assert page.parent.name == "test_fails0"  # the failing test's call; the passing one's made no page
    assert not list(page.parent.with_name("test_passes0").glob("*.report.html"))


def test_a_failed_hearing_tells_the_call_turn_by_turn(tmp_path: Path) -> None:
    """When the words heard are not the words expected, the message says how the server took the turns: a turn
    split in two by a pause, with its first answer cancelled, is the usual reason an echo comes back cut."""
    from voiceclient.testing import ScriptedCallResult, assert_heard

    def server(event: dict) -> dict:
        return {"dir": "server", "event": event}

    events = [
        server({"type": "input_audio_buffer.speech_started", "audio_start_ms": 320}),
        server({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 1400}),
        server({"type": "input_audio_buffer.speech_started", "audio_start_ms": 1900}),
        server(
            {
                "type": "response.done",
                "response": {"status": "cancelled", "status_details": {"reason": "turn_detected"}},
            }
        ),
        server({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 3020}),
        server({"type": "response.done", "response": {"status": "completed"}}),
    ]
    wav = tmp_path / "a.wav"
    result = ScriptedCallResult(wav, wav, wav, tmp_path / "a.events.jsonl", "idle", [], events)
    assert result.turns == (
        "user 0.32-1.40 s, response cancelled (turn_detected); user 1.90-3.02 s, response completed"
    )
    result._heard = "over the lazy dog"
    with pytest.raises(AssertionError, match=r"turns: user 0\.32-1\.40 s, response cancelled"):
        assert_heard(result, "the quick brown fox")
