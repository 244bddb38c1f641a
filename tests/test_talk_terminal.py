"""`voiceclient talk` in a real terminal (tmux, driven by send-keys and read by capture-pane), and the approvals it
asks of the person in the conversation."""

from __future__ import annotations

import asyncio
import os
import re
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
        # COLUMNS and LINES as the window's: rich takes them over the terminal's size, and the shell tmux runs the
        # command with can export others (80 and 24 were seen under pytest)
        exports = [f"-e{k}={v}" for k, v in {**env, "COLUMNS": "200", "LINES": "50"}.items()]
        self.run("new-session", "-d", "-x", "200", "-y", "50", *exports, " ".join(command))

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-J", "-S", "-200")

    def scrollback(self) -> list[str]:
        """Every line the pane has held: the screen and all that scrolled off it."""
        return self.run("capture-pane", "-p", "-J", "-S", "-").splitlines()

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


def talk_command(base_url: str, *flags: str) -> list[str]:
    command = [sys.executable, "-m", "voiceclient", "talk", "--base-url", base_url, "--api-key", "sk-x", "--aec", "off"]
    return [*command, *flags]


def terminal_env(pulse: dict[str, str]) -> dict[str, str]:
    return {"XDG_RUNTIME_DIR": pulse["XDG_RUNTIME_DIR"], "PATH": os.environ["PATH"], "TERM": "xterm-256color"}


def panels(lines: list[str]) -> int:
    """How many times the top of talk's panel is on these lines (one: the panel on the screen)."""
    return sum(1 for line in lines if "voiceclient talk" in line and line.startswith("╭"))


needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (scripts/test installs it)")


@needs_tmux
async def test_typed_lines_leave_nothing_of_the_panel_in_the_scrollback(pulse) -> None:
    """The panel shows the line being typed (the terminal does not echo it under the panel), and each answer
    changes the panel's height while lines print above it: after five typed messages and their answers the
    scrollback holds the conversation and one panel, the live one."""
    tmux = Tmux("scrollback")
    async with RealtimeServer(port=0) as server:
        tmux.start(talk_command(server.base_url), terminal_env(pulse))
        try:
            await tmux.until("connected in", 30)
            for n, text in enumerate(["one two", "three four", "five six", "seven eight", "nine ten"]):
                while "\n".join(tmux.scrollback()).count("(response completed") < n:  # (the answer before)
                    await asyncio.sleep(0.1)
                tmux.keys(text, "Enter")
                await tmux.until(f"assistant: You said: {text}")
            lines = tmux.scrollback()
            assert panels(lines) == 1, "\n".join(lines)
            assert not [line for line in lines if line.startswith("│ listening")][1:], "\n".join(lines)
            tmux.keys("half a line")
            await tmux.until("> half a line")
            tmux.keys("C-u")  # erased: the line is the program's, not the terminal's
            tmux.keys("hello")
            await tmux.until("> hello ")
            tmux.keys("BSpace", "p", "Enter")
            await tmux.until("you (typed): hellp")
            lines = tmux.scrollback()
            tmux.keys("/q", "Enter")
            deadline = time.monotonic() + 15
            while server.calls and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            tmux.kill()
    assert "half a line" not in "\n".join(line for line in lines if "you (typed)" in line)
    assert panels(lines) == 1, "\n".join(lines)


@needs_tmux
async def test_what_is_written_to_stderr_prints_above_the_panel(pulse) -> None:
    """The sound server restarts under `talk`: the recovery's warning (a log record, written to the process's
    stderr) and whatever ALSA says print as lines above the panel, not over it."""
    from voiceclient.testing.devices import restart_sound_server

    tmux = Tmux("stderr")
    async with RealtimeServer(port=0) as server:
        tmux.start(talk_command(server.base_url), terminal_env(pulse))
        try:
            await tmux.until("connected in", 30)
            await tmux.until("│ listening")
            await asyncio.to_thread(restart_sound_server, pulse)
            await tmux.until("reopened in", 30)
            tmux.keys("after the restart", "Enter")
            await tmux.until("(response completed")
            lines = tmux.scrollback()
            tmux.keys("/q", "Enter")
            deadline = time.monotonic() + 15
            while server.calls and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            tmux.kill()
    [warning] = [line for line in lines if "WARNING voiceclient.audio.recovery: sound: the" in line]
    assert warning.startswith("[")  # a line of its own, stamped like the others
    assert panels(lines) == 1, "\n".join(lines)


@needs_tmux
async def test_status_says_what_each_figure_means(pulse) -> None:
    """`/s` once the microphone delivers (a tone played into it shows on the panel's meter): every figure with
    its meaning, and the microphone's start (up to 2 s on a sound server, silence sent meanwhile) is no gap."""
    tmux = Tmux("status")
    async with RealtimeServer(port=0) as server:
        tmux.start(talk_command(server.base_url), terminal_env(pulse))
        player = None
        try:
            await tmux.until("connected in", 30)
            player = subprocess.Popen(["paplay", "--device=vmicsink", str(FIXTURES / "long_tone_48k.wav")], env=pulse)
            deadline = time.monotonic() + 20
            while not re.search(r"│ mic [█·]+ +-\d", tmux.screen()):  # a level: the microphone delivers
                assert time.monotonic() < deadline, tmux.screen()
                await asyncio.sleep(0.1)
            tmux.keys("/s", "Enter")
            await tmux.until("last spoken turn:")
            lines = tmux.scrollback()
            tmux.keys("/q", "Enter")
            deadline = time.monotonic() + 15
            while server.calls and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            if player is not None:
                player.kill()
                player.wait(10)
            tmux.kill()
    start = next(i for i, line in enumerate(lines) if line.endswith("] status:"))
    status = lines[start + 1 : start + 9]
    assert re.fullmatch(
        r"  microphone '.+': level -\d+ dBFS \(the last 20 ms; speech is about -40 to -10 dBFS\)", status[0]
    )
    assert (
        status[1] == "    gaps 0: times it went quiet for over 0.1 s after it had started (what you said then was lost)"
    )
    assert status[2].startswith("    dropped 0: 20 ms blocks of it thrown away because the call did not take them")
    assert re.fullmatch(
        r"  speaker '.+': \d+ ms waiting to be played \(about 40 keeps the sound smooth; at most 120\)", status[3]
    )
    assert status[4].startswith("    gaps ") and "(cuts you may have heard)" in status[4]
    assert status[5].startswith("    skipped ") and "a jump you may have heard" in status[5]
    assert status[6].startswith("  echo cancellation off; the sound devices ")
    assert status[7].startswith("  last spoken turn: ")


@needs_tmux
async def test_ctrl_c_gives_the_terminal_back_as_it_was(pulse, tmp_path: Path) -> None:
    """Ctrl-C while a line is half typed: talk hangs up, nothing of the panel stays on the screen, and the
    terminal echoes and reads lines again (the shell after talk says what `stty` sees)."""
    after = tmp_path / "after.sh"
    modes = "stty -a | tr ' ;' '\\n\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' '"  # "icanon echo", or "-icanon"
    after.write_text(f"echo EXIT=$1; {modes}; sleep 30\n")
    tmux = Tmux("ctrl-c")
    async with RealtimeServer(port=0) as server:
        talk = " ".join(talk_command(server.base_url))
        tmux.start(["bash", "-c", f"'{talk}; bash {after} $?'"], terminal_env(pulse))
        try:
            await tmux.until("connected in", 30)
            tmux.keys("half a line")
            await tmux.until("> half a line")
            tmux.keys("C-c")
            await tmux.until("icanon echo", 20)
            lines = tmux.scrollback()
        finally:
            tmux.kill()
    assert "EXIT=130" in lines and "voiceclient: interrupted; hung up, files written so far are complete" in lines
    assert panels(lines) == 0 and not [line for line in lines if line.startswith(("│", "╰"))], "\n".join(lines)


@needs_tmux
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
        command = talk_command(server.base_url, "--tools", str(tools), "--transport", "webrtc", "--events", str(events))
        tmux.start(command, terminal_env(pulse))
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
