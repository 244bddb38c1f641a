"""`voiceclient talk` in a real terminal (tmux, driven by send-keys and read by capture-pane), and the approvals it
asks of the person in the conversation."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from voiceclient.app.prompts import ConversationApprover, prompt_text
from voiceclient.server import RealtimeServer
from voiceclient.server.responders import ScenarioResponder
from voiceclient.tools.approvals import ApprovalRequest, decide

from .conftest import FIXTURES

pytestmark = pytest.mark.timeout(60)
SEND_EMAIL = ApprovalRequest("function", "c1", "send_email", '{"to": "ada@example.com", "body": "Hello"}')


async def asked(prompts: ConversationApprover, n: int) -> None:
    while prompts.asked < n:
        await asyncio.sleep(0.01)


async def test_a_prompt_is_answered_by_the_next_y_n_or_a() -> None:
    lines: list[str] = []
    prompts = ConversationApprover(lines.append)
    first = asyncio.ensure_future(decide(prompts, SEND_EMAIL, timeout=5))
    await asyncio.wait_for(asked(prompts, 1), 2)
    assert prompts.prompt == 'allow send_email(to="ada@example.com", body="Hello")? y / n / a (always for this tool)'
    assert not prompts.answer("what is the weather?")  # a message, not an answer: it goes to the model
    assert prompts.answer("y")
    assert (await asyncio.wait_for(first, 1)).approve and prompts.prompt is None
    refused = asyncio.ensure_future(decide(prompts, SEND_EMAIL, timeout=5))
    await asyncio.wait_for(asked(prompts, 2), 2)
    assert prompts.answer("N") and not (await refused).approve
    always = asyncio.ensure_future(decide(prompts, SEND_EMAIL, timeout=5))
    await asyncio.wait_for(asked(prompts, 3), 2)
    assert prompts.answer("a") and (await always).approve
    assert (await decide(prompts, SEND_EMAIL, timeout=5)).approve  # not asked again
    assert prompts.asked == 3
    assert not prompts.answer("y")  # nothing waits: a plain message
    assert lines == [
        prompt_text(SEND_EMAIL),
        "(allowed send_email)",
        prompt_text(SEND_EMAIL),
        "(refused send_email)",
        prompt_text(SEND_EMAIL),
        "(allowed send_email for the rest of the call)",
    ]


async def test_no_answer_in_time_is_a_refusal_and_the_prompt_goes() -> None:
    lines: list[str] = []
    prompts = ConversationApprover(lines.append)
    decision = await decide(prompts, SEND_EMAIL, timeout=0.2)
    assert not decision.approve and decision.reason == "no answer from the user within 0.2 s"
    assert prompts.prompt is None and lines[-1] == "(no answer: send_email not allowed)"


class Tmux:
    """One tmux server of the test's own (its own socket), one window, a fixed size."""

    def __init__(self, name: str) -> None:
        self.socket = f"vc-{name}-{os.getpid()}"

    def run(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True, timeout=10
        ).stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        exports = [f"-e{k}={v}" for k, v in env.items()]
        self.run("new-session", "-d", "-x", "200", "-y", "50", *exports, " ".join(command))

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-J", "-S", "-200")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", *keys)

    async def until(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{screen}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (scripts/test installs it)")
async def test_talk_in_a_terminal_asks_before_a_tool_that_needs_approval(pulse, tmp_path: Path) -> None:
    """`/d` lists the devices; the model calls send_email (needs_approval): the prompt shows in talk's panel, `y`
    is typed, the tool runs and the answer says what it returned."""
    tools = tmp_path / "mail.py"
    tools.write_text(
        "from voiceclient import tool\n@tool(needs_approval=True)\n"
        "def send_email(to: str, body: str) -> str:\n    '''Send.'''\n    return f'sent to {to}'\n"
    )
    events = tmp_path / "events.jsonl"
    tmux = Tmux("approval")
    responder = ScenarioResponder.from_file(FIXTURES / "scenarios" / "approval.toml")
    async with RealtimeServer(port=0, responder=responder) as server:
        command = [
            sys.executable,
            "-m",
            "voiceclient",
            "talk",
            "--base-url",
            server.base_url,
            "--api-key",
            "sk-x",
            "--tools",
            str(tools),
            "--transport",
            "webrtc",
            "--aec",
            "off",
            "--events",
            str(events),
        ]
        env = {"XDG_RUNTIME_DIR": pulse["XDG_RUNTIME_DIR"], "PATH": os.environ["PATH"], "TERM": "xterm-256color"}
        tmux.start(command, env)
        try:
            await tmux.until("connected in", 30)
            tmux.keys("/d", "Enter")  # the devices, and the two in use
            devices = await tmux.until("in use: microphone")
            tmux.keys("please email ada", "Enter")
            screen = await tmux.until('allow send_email(to="ada@example.com", body="Hello")? y / n / a')
            tmux.keys("y", "Enter")
            screen = await tmux.until("Result: sent to ada@example.com")
            tmux.keys("/q", "Enter")
            deadline = time.monotonic() + 15
            while server.calls and time.monotonic() < deadline:  # talk hangs up as it quits
                await asyncio.sleep(0.1)
        finally:
            tmux.kill()
    assert "< default input, > default output" in devices and "(default), speaker " in devices
    assert "(allowed send_email)" in screen and "tool: send_email" in screen
    assert "sent to ada@example.com" in screen
    kinds = [line for line in events.read_text().splitlines() if '"function_call_output"' in line]
    assert kinds and "sent to ada@example.com" in kinds[0]
