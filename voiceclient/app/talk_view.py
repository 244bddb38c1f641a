"""The live terminal view of `talk`: the conversation scrolls above a status panel that redraws ten times a
second (who is speaking, the microphone level, the assistant's words as they stream, the last turn's latency,
token usage, the devices' health). Built on rich; without a terminal, `talk` prints plain lines instead.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from voiceclient.app.talk_commands import footer
from voiceclient.protocol import events as ev

if TYPE_CHECKING:
    from voiceclient.app.prompts import ConversationApprover
    from voiceclient.app.talk_commands import Command
    from voiceclient.app.terminal import LineEditor
    from voiceclient.audio.aec import EchoCanceller
    from voiceclient.audio.mic import MicSource
    from voiceclient.audio.recovery import StreamGuard
    from voiceclient.audio.speaker import SpeakerSink
    from voiceclient.client.call import VoiceCall

BAR = 30


class AgentFigures(Protocol):
    """What the panel shows of an Agents SDK session (`voiceclient.agents.app.AgentSession`)."""

    @property
    def current_agent(self) -> str: ...
    @property
    def handoffs(self) -> Sequence[tuple[str, str]]: ...
    @property
    def guardrails_tripped(self) -> Collection[str]: ...
    @property
    def tools_running(self) -> Collection[str]: ...


class TalkModel(Protocol):
    """What the panel reads of the session it draws (`voiceclient.app.talk.Talk`): the view knows this, not `Talk`."""

    @property
    def call(self) -> VoiceCall | None: ...
    @property
    def agent_session(self) -> AgentFigures | None: ...
    @property
    def mic(self) -> MicSource: ...
    @property
    def speaker(self) -> SpeakerSink: ...
    @property
    def guard(self) -> StreamGuard: ...
    @property
    def aec(self) -> EchoCanceller | None: ...
    @property
    def prompts(self) -> ConversationApprover | None: ...
    @property
    def editor(self) -> LineEditor | None: ...
    @property
    def push_to_talk(self) -> bool: ...
    @property
    def talking(self) -> bool: ...
    @property
    def commands_here(self) -> tuple[Command, ...]: ...


def level_bar(dbfs: float, width: int = BAR) -> Text:
    filled = 0 if dbfs == float("-inf") else int(max(0.0, min(1.0, (dbfs + 60) / 60)) * width)
    style = "green" if filled < width * 0.7 else "yellow" if filled < width * 0.9 else "red"
    return Text("█" * filled, style=style) + Text("·" * (width - filled), style="dim")


class TalkView:
    def __init__(self, talk: TalkModel, console: Console | None = None) -> None:
        """`console`: where the panel is drawn (rich's own, on stdout, unless given)."""
        self.talk = talk
        self.tokens = 0
        self.assistant_text = ""
        self.tools_running: dict[str, float] = {}
        # Drawn from the event loop alone (`refresh`, ten times a second), where every line above it is printed:
        # rich's own refresh thread could draw the panel between a line's cursor move and its text, and a panel
        # that had changed height was then drawn too low, its top left in the scrollback.
        self.live = Live(
            self.render(),
            console=console,
            auto_refresh=False,
            redirect_stdout=True,
            redirect_stderr=True,
            transient=True,
        )

    def __enter__(self) -> "TalkView":
        self.live.__enter__()
        self.live.update(self.render(), refresh=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def subscribe(self, call: VoiceCall) -> None:
        call.on(ev.ResponseCreated, self.on_response_created)
        call.on(ev.ResponseOutputAudioTranscriptDelta, self.on_delta)
        call.on(ev.ResponseOutputTextDelta, self.on_delta)
        call.on(ev.ResponseDone, self.on_response_done)
        call.on(ev.ResponseFunctionCallArgumentsDone, self.on_function_call)

    def on_response_created(self, event: ev.ResponseCreated) -> None:
        self.assistant_text = ""

    def on_delta(self, event: ev.ResponseOutputAudioTranscriptDelta | ev.ResponseOutputTextDelta) -> None:
        self.assistant_text += event.delta

    def on_response_done(self, event: ev.ResponseDone) -> None:
        if event.response.usage:
            self.tokens += int(event.response.usage.get("total_tokens") or 0)

    def on_function_call(self, event: ev.ResponseFunctionCallArgumentsDone) -> None:
        if self.talk.agent_session is None:  # (an agent's tools: the SDK says when they start and end)
            self.tools_running[event.name or "?"] = time.monotonic()

    def tool_done(self, name: str) -> None:
        self.tools_running.pop(name, None)

    def render(self) -> Panel:
        talk = self.talk
        call = talk.call
        if call is None:
            who = Text("connecting…", style="yellow")
        elif talk.mic.muted and not talk.push_to_talk:
            who = Text("microphone muted", style="red")
        elif call.turns.user_speaking:
            who = Text("you are speaking", style="bold green")
        elif call.turns.audio_playing:
            who = Text("assistant speaking", style="bold cyan")
        elif call.turns.active or self.tools_running or (talk.agent_session and talk.agent_session.tools_running):
            who = Text("assistant thinking", style="cyan")
        elif talk.push_to_talk:
            who = Text("talking: /t to send" if talk.talking else "push-to-talk: /t to speak", style="yellow")
        else:
            who = Text("listening", style="green")
        latency = call.meter.latencies[-1] * 1000 if call is not None and call.meter.latencies else None
        mic = Text("mic ") + level_bar(talk.mic.level_dbfs) + Text(f" {talk.mic.level_dbfs:6.1f} dBFS")
        facts = Text(
            f"last turn {f'{latency:.0f} ms' if latency is not None else '-'} | tokens {self.tokens} | "
            f"speaker {talk.speaker.buffered_ms:3.0f} ms, gaps {talk.speaker.gaps} | "
            f"mic gaps {talk.mic.gaps}, dropped {talk.mic.dropped} | echo cancellation {'on' if talk.aec else 'off'}"
            + (f" | sound recovered {talk.guard.recoveries}x" if talk.guard.recoveries else "")
            + " | /s explains",
            style="dim",
        )
        if talk.guard.recovering:
            who = Text("sound devices stopped: reopening…", style="bold red")
        lines = [who, mic, facts]
        prompt = talk.prompts.prompt if talk.prompts is not None else None
        if prompt is not None:
            lines.insert(0, Text(prompt, style="bold yellow"))
        agent = talk.agent_session
        if agent is not None:
            lines.append(
                Text(
                    f"agent {agent.current_agent}"
                    + (
                        f" | handoffs {' , '.join(f'{a} -> {b}' for a, b in agent.handoffs[-3:])}"
                        if agent.handoffs
                        else ""
                    )
                    + (f" | guardrails tripped {len(agent.guardrails_tripped)}" if agent.guardrails_tripped else "")
                    + (f" | tools {', '.join(sorted(agent.tools_running))}" if agent.tools_running else ""),
                    style="magenta",
                )
            )
        if self.tools_running:
            lines.append(
                Text(
                    "tools: " + ", ".join(f"{n} ({time.monotonic() - t:.1f} s)" for n, t in self.tools_running.items()),
                    style="magenta",
                )
            )
        if self.assistant_text and call is not None and (call.turns.audio_playing or call.turns.active):
            lines.append(Text("assistant: " + self.assistant_text[-200:], style="cyan"))
        if talk.editor is not None:  # the line being typed (the terminal does not echo it: voiceclient.app.terminal)
            lines.append(Text("> ", style="bold") + Text(talk.editor.text) + Text(" ", style="reverse"))
        lines.append(Text(f"type to send a message | {footer(talk.commands_here)}", style="dim"))
        return Panel(Group(*lines), title="voiceclient talk", border_style="blue")

    def refresh(self) -> None:
        """Draw the panel again (on the event loop's thread)."""
        self.live.update(self.render(), refresh=True)
