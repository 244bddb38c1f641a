"""`voiceclient talk` with a GPT-Live model, through real (virtual) PulseAudio devices: the spoken sentence reaches
`serve`'s Live session, the echo comes out of the speaker, typed messages are not sent, and the session is closed
with `session.close`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voiceclient import SessionConfig, tool
from voiceclient.audio.format import API_RATE
from voiceclient.server import RealtimeServer

from .conftest import FIXTURES, loud_spans, read_events
from .test_live_tools_serve import scenario
from .test_talk import converse

pytestmark = pytest.mark.timeout(90)


async def test_talk_to_a_live_model_hears_the_echo_and_closes_the_session(pulse, tmp_path: Path) -> None:
    session = SessionConfig(model="gpt-live-1")
    async with RealtimeServer(port=0) as server:
        heard, talk, events = await converse(
            pulse, tmp_path, server, [(0.5, FIXTURES / "speech" / "sentence_1.wav")], seconds=10.0,
            commands=[(0.2, "hello there")], session=session,
        )  # fmt: skip
    assert talk.call.family.name == "live"
    spans = loud_spans(heard, API_RATE)
    assert spans and spans[-1][1] - spans[0][0] > 2.5, spans  # the echo of the 3.5 s sentence, out of the speaker
    assert spans[0][0] > 3.5  # after the user's turn (0.5 s + 3.5 s of speech, less the recorder's head start)
    sent = [line["event"]["type"] for line in read_events(events) if line["dir"] == "client"]
    assert sent == ["session.close"]  # the typed message was not sent: GPT-Live takes no text
    screen = (tmp_path / "screen.txt").read_text()
    assert "takes no typed messages" in screen and "assistant: Echo of" in screen
    assert np.abs(heard).max() > 1000


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_talk_to_a_live_model_answers_its_delegated_tool(pulse, tmp_path: Path, transport: str) -> None:
    """The server's scenario plans `get_weather`; `talk`'s own tool answers it through Responses delegation, and
    the answer made of the output is said."""
    ran: list[str] = []

    @tool
    def get_weather(city: str) -> dict[str, str]:
        """Current weather for a city."""
        ran.append(city)
        return {"city": city, "forecast": "sunny"}

    session = SessionConfig(model="gpt-live-1")
    async with RealtimeServer(port=0, responder=scenario(tmp_path)) as server:
        heard, talk, events = await converse(
            pulse, tmp_path, server, [(0.5, FIXTURES / "speech" / "sentence_1.wav")], seconds=12.0,
            transport=transport, session=session, tools=[get_weather],  # type: ignore[arg-type]
        )  # fmt: skip
        outputs = [i for i in server.history[-1].conversation.items if i.get("type") == "function_call_output"]
    assert talk.call.family.name == "live" and ran == ["Paris"]
    assert [o["output"] for o in outputs] == ['{"city": "Paris", "forecast": "sunny"}']
    sent = [line["event"]["type"] for line in read_events(events) if line["dir"] == "client"]
    assert sent.count("response.item.create") == 1 and sent.count("response.create") == 1
    screen = (tmp_path / "screen.txt").read_text()
    assert "tool: get_weather" in screen and "It is sunny in Paris." in screen
    assert loud_spans(heard, API_RATE)  # the answers came out of the speaker
