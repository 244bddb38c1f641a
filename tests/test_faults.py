"""Faults the embedded server injects, and the client surviving each of them, over real WebRTC on loopback."""

from __future__ import annotations

import time

import pytest

from voiceclient import ClientSettings, ConfigError, SessionNotConfirmedError, VoiceCall
from voiceclient.client.options import Continuity, Recording
from voiceclient.server import RealtimeServer
from voiceclient.server.faults import FaultPlan, FaultSpec, parse_fault

from .conftest import FIXTURES, assert_wire_valid, until_switched

pytestmark = pytest.mark.timeout(40)


@pytest.mark.parametrize(
    "transport, action, reason",
    [
        ("webrtc", "stop_media", "no audio from the server for 1 s"),
        ("webrtc", "close_channel", "closed"),
        ("webrtc", "drop_connection", "closed"),
        ("webrtc", "expire_session", "Your session hit the maximum duration"),
        # (over a WebSocket, `stop_media` mutes the answer's deltas while the events go on: a server that is there,
        # not a loss; a server gone silent altogether is tests/test_network.py's)
        ("websocket", "close_channel", "the WebSocket closed (code 1000)"),
        ("websocket", "drop_connection", "the WebSocket connection dropped (no close frame)"),
        ("websocket", "expire_session", "Your session hit the maximum duration"),
    ],
)
async def test_the_client_reconnects_after_each_fault_and_the_conversation_goes_on(
    transport, action, reason, tmp_path
) -> None:
    statuses: list[str] = []
    faults = FaultPlan([FaultSpec(action=action, call=1, after_turns=1)])
    async with RealtimeServer(port=0, faults=faults) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test", transport=transport)
        async with VoiceCall(
            settings,
            on_status=statuses.append,
            recording=Recording(events_jsonl=tmp_path / "events.jsonl"),
            continuity=Continuity(reconnect=2, media_timeout=1.0),
        ) as call:
            call.send_text("remember the number 42")
            await call.wait_for(lambda e: e.type == "response.done", 10)
            await until_switched(call)
            call.send_text("which number?")
            done = await call.wait_for(lambda e: e.type == "response.done", 10)
            assert done.response.status == "completed"
            now = server.history[-1].conversation.items
            assert [it["content"][0].get("text") for it in now if it.get("role") == "user"] == [
                "remember the number 42",
                "which number?",
            ]
        assert len(server.history) == 2
    assert statuses[0].startswith("connection lost: ") and reason in statuses[0], statuses
    assert statuses[-1] == "reconnected, conversation restored (2 items)"
    assert_wire_valid(tmp_path / "events.jsonl")


async def test_a_refused_create_call_is_retried_as_the_server_asks() -> None:
    faults = FaultPlan([FaultSpec(action="http_status", status=429, retry_after=0.2, times=2)])
    async with RealtimeServer(port=0, faults=faults) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        started = time.monotonic()
        async with VoiceCall(settings) as call:
            assert call.state.value == "connected"
        assert server.calls_created == 3 and time.monotonic() - started >= 0.4


async def test_delayed_events_arrive_late_and_in_order(tmp_path) -> None:
    faults = FaultPlan([FaultSpec(action="delay_events", at_seconds=0, delay_ms=400)])
    async with RealtimeServer(port=0, faults=faults) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(settings, recording=Recording(events_jsonl=tmp_path / "events.jsonl")) as call:
            assert call.connect_seconds is not None and call.connect_seconds >= 0.8  # created, then updated
            call.send_text("hello")
            done = await call.wait_for(lambda e: e.type == "response.done", 10)
            assert done.response.status == "completed"
    assert_wire_valid(tmp_path / "events.jsonl")


async def test_a_server_that_never_confirms_the_session_is_a_clear_failure(tmp_path) -> None:
    """Over real WebRTC: `session.updated` comes later than the client waits for it (exit 5 from the command line)."""
    faults = FaultPlan([FaultSpec(action="delay_events", at_seconds=0, delay_ms=1500)])
    async with RealtimeServer(port=0, faults=faults) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test", session_update_timeout=0.5)
        call = VoiceCall(settings, recording=Recording(events_jsonl=tmp_path / "events.jsonl"))
        with pytest.raises(SessionNotConfirmedError, match=r"did not confirm the session within 0.5 s") as err:
            async with call:
                pass
        assert err.value.exit_code == 5
        assert call.state.value == "closed"
    log = assert_wire_valid(tmp_path / "events.jsonl")
    assert [line["event"]["type"] for line in log][:2] == ["session.created", "session.update"]


def test_faults_from_the_command_line_and_scenario_files(tmp_path) -> None:
    fault = parse_fault("http_status:status=429:retry_after=1.5:times=2:call=1")
    assert (fault.status, fault.retry_after, fault.times, fault.call) == (429, 1.5, 2, 1)
    with pytest.raises(ConfigError, match="needs at_seconds or after_turns"):
        parse_fault("drop_connection")
    with pytest.raises(ConfigError, match=r"--fault\.action"):
        parse_fault("unplug_the_router:at_seconds=1")
    from voiceclient.server.responders import ScenarioResponder

    scenario = tmp_path / "faulty.toml"
    scenario.write_text(
        (FIXTURES / "scenarios" / "tools.toml").read_text()
        + '\n[[faults]]\naction = "drop_connection"\ncall = 1\nat_seconds = 3\n'
    )
    spec = ScenarioResponder.from_file(scenario).spec
    assert [(f.action, f.call, f.at_seconds) for f in spec.faults] == [("drop_connection", 1, 3.0)]
