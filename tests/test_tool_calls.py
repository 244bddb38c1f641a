"""Tool turn-taking rules over real WebRTC against the embedded server (issue: tool-callback plugins)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from voiceclient import ClientSettings, SessionConfig, VoiceCall, WavSource, tool
from voiceclient.client.options import Recording
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder
from voiceclient.tools import ApprovalDecision, ApprovalRequest, ToolContext, policy

from .conftest import FIXTURES, assert_wire_valid

pytestmark = pytest.mark.timeout(60)


async def run_call(
    scenario: str,
    tmp_path: Path,
    tools: list,
    *,
    wav: str = "two_turns_24k.wav",
    session: dict | None = None,
    approver=None,
    max_duration: float = 30,
    idle: float = 1.0,
) -> tuple[list[dict], VoiceCall]:
    events = tmp_path / "events.jsonl"
    one_turn = {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}}
    # "Hello, can you hear me?" has a comma pause that the default 200 ms VAD silence splits into two turns.
    cfg = SessionConfig.model_validate(
        {"type": "realtime", **(one_turn if wav == "hello.wav" else {}), **(session or {})}
    )
    async with RealtimeServer(
        port=0, responder=ScenarioResponder.from_file(FIXTURES / "scenarios" / scenario)
    ) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="sk-test")
        async with VoiceCall(
            settings,
            cfg,
            source=WavSource(FIXTURES / wav),
            tools=tools,
            approver=approver,
            recording=Recording(events_jsonl=events),
        ) as call:
            await call.run_until_idle(idle, max_duration)
    return assert_wire_valid(events), call


@pytest.mark.parametrize(
    ("returns", "said"),
    [
        ("raises", "get weather failed: LookupError: no weather for Paris."),
        ({}, "get weather returned nothing."),
        ({"city": "Paris", "forecast": None}, "get weather returned city: Paris, forecast: nothing."),
        ({"city": "Paris", "forecast": "sunny"}, "It is sunny in Paris."),
    ],
)
async def test_an_after_tools_text_the_output_cannot_fill_says_what_the_tool_returned(
    tmp_path: Path, returns: object, said: str
) -> None:
    scenario = tmp_path / "weather.toml"
    scenario.write_text(
        '[[turns]]\n  [[turns.calls]]\n  name = "get_weather"\n  arguments = { city = "Paris" }\n'
        '  [turns.after_tools]\n  text = "It is {output[forecast]} in {output[city]}."\n'
    )

    @tool
    def get_weather(city: str) -> dict:
        """Weather for a city."""
        if returns == "raises":
            raise LookupError(f"no weather for {city}")
        return dict(returns)  # type: ignore[call-overload]

    log, call = await run_call(str(scenario), tmp_path, [get_weather], wav="hello.wav")
    assert transcripts(log) == [said] and call.tool_calls == 1


def client_events(log: list[dict], kind: str) -> list[dict]:
    return [e["event"] for e in log if e["dir"] == "client" and e["event"]["type"] == kind]


def transcripts(log: list[dict]) -> list[str]:
    return [e["event"]["transcript"] for e in log if e["event"]["type"] == "response.output_audio_transcript.done"]


async def test_a_response_already_active_is_waited_for_and_retried_once(tmp_path: Path) -> None:
    @tool
    async def slow_lookup(topic: str) -> dict:
        """Look a topic up (slowly)."""
        await asyncio.sleep(4.5)
        return {"answer": f"{topic} gathers candidates"}

    log, _ = await run_call("slow_tool.toml", tmp_path, [slow_lookup])
    errors = [e["event"]["error"] for e in log if e["event"]["type"] == "error"]
    assert [e["code"] for e in errors] == ["conversation_already_has_active_response"]
    creates = client_events(log, "response.create")
    assert len(creates) == 2 and errors[0]["event_id"] == creates[0]["event_id"]
    # The retry went out after the blocking response was done, and its answer is turn 1's.
    types = [(e["dir"], e["event"]["type"]) for e in log]
    retry_at = types.index(("client", "response.create"), types.index(("server", "error")))
    assert ("server", "response.done") in types[types.index(("server", "error")) : retry_at]
    assert transcripts(log)[-1] == "Lookup says ice gathers candidates."


async def test_cancel_on_interrupt_tools_are_cancelled_by_barge_in(tmp_path: Path) -> None:
    finished: list[str] = []

    @tool(cancel_on_interrupt=True)
    async def long_task() -> str:
        """Takes a long time."""
        try:
            await asyncio.sleep(20)
            return "done"
        finally:
            finished.append("unwound")

    log, _ = await run_call("interrupt.toml", tmp_path, [long_task])
    outputs = client_events(log, "conversation.item.create")
    assert len(outputs) == 1
    assert "cancelled: the user interrupted" in json.loads(outputs[0]["item"]["output"])["error"]
    assert finished == ["unwound"]
    assert client_events(log, "response.create") == []  # the user's new turn gets the next response
    assert transcripts(log)[-1] == "OK, something else then."


async def test_tools_still_running_when_the_call_ends_are_cancelled_cleanly(tmp_path: Path) -> None:
    state: list[str] = []

    @tool
    async def long_task() -> str:
        """Never finishes in time."""
        state.append("started")
        try:
            await asyncio.sleep(60)
        finally:
            state.append("cancelled")
        return "never"

    @tool
    def blocking_task() -> str:
        """A sync tool in its thread."""
        import time

        time.sleep(0.5)
        return "late"

    log, call = await run_call("interrupt.toml", tmp_path, [long_task, blocking_task], wav="hello.wav", max_duration=4)
    assert state == ["started", "cancelled"]
    assert client_events(log, "conversation.item.create") == []  # nothing sent after the call ended
    assert call.state.value == "closed"


@pytest.mark.parametrize("rule, expected", [("never", "did not approve"), ("always", "sent to ada@example.com")])
async def test_needs_approval_goes_through_the_approver(rule: str, expected: str, tmp_path: Path) -> None:
    ran: list[str] = []
    seen: list[ApprovalRequest] = []

    @tool(needs_approval=True)
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        ran.append(to)
        return f"sent to {to}"

    async def approver(request: ApprovalRequest) -> ApprovalDecision:
        seen.append(request)
        return await policy(rule)(request)  # type: ignore[return-value]

    log, _ = await run_call("approval.toml", tmp_path, [send_email], wav="hello.wav", approver=approver)
    assert [r.name for r in seen] == ["send_email"] and seen[0].kind == "function"
    assert json.loads(seen[0].arguments) == {"to": "ada@example.com", "body": "Hello"}
    output = client_events(log, "conversation.item.create")[0]["item"]["output"]
    assert expected in output
    assert ran == ([] if rule == "never" else ["ada@example.com"])
    assert len(client_events(log, "response.create")) == 1


MCP_SESSION = {
    "tools": [
        {
            "type": "mcp",
            "server_label": "docs",
            "server_url": "https://mcp.example/docs",
            "authorization": "secret-token-123",
            "headers": {"X-Api-Key": "header-secret-456"},
            "require_approval": "always",
        }
    ]
}


@pytest.mark.parametrize("approve", [True, False])
async def test_mcp_approval_request_then_mcp_call(approve: bool, tmp_path: Path) -> None:
    async def approver(request: ApprovalRequest) -> bool:
        assert request.kind == "mcp" and request.server_label == "docs" and request.name == "search"
        return approve

    log, _ = await run_call("mcp.toml", tmp_path, [], wav="hello.wav", session=MCP_SESSION, approver=approver, idle=1.5)
    server_types = [e["event"]["type"] for e in log if e["dir"] == "server"]
    assert {"mcp_list_tools.in_progress", "mcp_list_tools.completed"} <= set(server_types)
    response = client_events(log, "conversation.item.create")[0]["item"]
    assert response["type"] == "mcp_approval_response" and response["approve"] is approve
    if approve:
        assert ["response.mcp_call.in_progress", "response.mcp_call.completed"] == [
            t for t in server_types if t.startswith("response.mcp_call.")
        ]
        assert transcripts(log)[-1] == "The docs say: WebRTC needs ICE."
    else:
        assert not any(t.startswith("response.mcp_call.") for t in server_types)
        assert transcripts(log)[-1].startswith("I did not run search")
    text = (tmp_path / "events.jsonl").read_text()
    assert "secret-token-123" not in text and "header-secret-456" not in text


async def test_mcp_calls_without_approval_when_the_server_says_never(tmp_path: Path) -> None:
    session = {"tools": [{**MCP_SESSION["tools"][0], "require_approval": "never"}]}
    log, _ = await run_call("mcp.toml", tmp_path, [], wav="hello.wav", session=session, idle=1.5)
    assert client_events(log, "conversation.item.create") == []
    assert "response.mcp_call.completed" in [e["event"]["type"] for e in log]


async def test_tool_context_reaches_the_live_call(tmp_path: Path) -> None:
    seen: dict = {}

    @tool
    async def send_email(ctx: ToolContext, to: str, body: str) -> str:
        """Send an email, then tell the user by text."""
        seen.update(call_id=ctx.call_id, arguments=ctx.arguments, name=ctx.name)
        assert ctx.call is not None
        ctx.call.send_text("tool says hi")
        return "ok"

    log, _ = await run_call("approval.toml", tmp_path, [send_email], wav="hello.wav")
    assert seen["call_id"].startswith("call_") and json.loads(seen["arguments"])["to"] == "ada@example.com"
    texts = [
        e["item"]["content"][0]["text"]
        for e in client_events(log, "conversation.item.create")
        if e["item"]["type"] == "message"
    ]
    assert texts == ["tool says hi"]
