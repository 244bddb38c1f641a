"""`voiceclient talk`: a spoken conversation from a laptop, with barge-in and echo cancellation.

The microphone (device-paced) is the call's source and the speaker gets every received frame; both streams are
opened before the call and stay open until it ends. Barge-in: when the server detects the user's speech while
the assistant is audible, or on the local interrupt command, the speaker is flushed at once and audio still in
flight for the interrupted response is dropped until the server confirms (`output_audio_buffer.cleared` or a new
response). The terminal shows the conversation and takes commands (typed lines; a terminal reports no key
releases, so push-to-talk is a toggle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import TYPE_CHECKING, TextIO

from voiceclient.app import talk_commands as tc
from voiceclient.app.printer import TranscriptPrinter
from voiceclient.app.prompts import ConversationApprover
from voiceclient.app.talk_status import Health, explain
from voiceclient.app.terminal import EOF, LineEditor, StderrLines, TerminalInput
from voiceclient.audio.aec import EchoCanceller
from voiceclient.audio.defaults import DefaultWatch
from voiceclient.audio.mic import MicSource
from voiceclient.audio.recovery import StreamGuard
from voiceclient.audio.speaker import SpeakerSink
from voiceclient.client.call import VoiceCall
from voiceclient.client.options import Continuity, Recording
from voiceclient.client.settings import ClientSettings
from voiceclient.errors import DeviceError
from voiceclient.protocol import events as ev
from voiceclient.protocol.session import SessionConfig
from voiceclient.tasks import TaskOwner
from voiceclient.tools.approvals import Approver
from voiceclient.tools.registry import Tool

if TYPE_CHECKING:
    from agents.realtime import RealtimeAgent

    from voiceclient.agents.app import AgentSession
    from voiceclient.app.talk_view import TalkView

log = logging.getLogger(__name__)
HEADSET_WORDS = ("headset", "headphone", "earphone", "airpods", "buds", "hands-free", "handsfree")


def wants_aec(mode: str, output_name: str) -> tuple[bool, str | None]:
    """`--aec auto|on|off` -> (use it, a hint to print)."""
    if mode == "off":
        return False, None
    have = EchoCanceller.available()
    if mode == "on":
        if not have:
            from voiceclient.errors import ConfigError

            raise ConfigError("--aec on needs the aec extra: pip install 'voiceclient[aec]'")
        return True, None
    if any(w in output_name.lower() for w in HEADSET_WORDS):
        return False, None
    if not have:
        return False, "echo cancellation is off: pip install 'voiceclient[aec]' so laptop speakers are not heard"
    return True, None


class Talk:
    def __init__(
        self,
        settings: ClientSettings,
        session: SessionConfig,
        *,
        tools: list[Tool] | None = None,
        approver: Approver | None = None,
        input_device: str | None = None,
        output_device: str | None = None,
        aec: str = "auto",
        push_to_talk: bool = False,
        recording: Recording | None = None,
        continuity: Continuity | None = None,
        stream: TextIO | None = None,
        commands: asyncio.Queue[str] | None = None,
        ask_approvals: bool = False,
        follow_defaults: bool | None = None,
        agent: RealtimeAgent[object] | None = None,
    ) -> None:
        """`ask_approvals`: tools that need approval (and MCP approval requests) are asked of the person in the
        conversation, a prompt answered with y / n / a, instead of `approver`'s policy. `follow_defaults`: move the
        streams not pinned to a device to a new system default (None: on macOS and Windows, where the system does
        not; PulseAudio and PipeWire move them themselves). `agent`: an Agents SDK `RealtimeAgent` answers, through
        `voiceclient.agents.WebRTCModel` (the SDK runs its tools, handoffs and guardrails)."""
        if push_to_talk:  # the client says when a turn ends
            data = session.to_wire()
            data.setdefault("audio", {}).setdefault("input", {})["turn_detection"] = None
            session = SessionConfig.model_validate(data)
        self.settings, self.session = settings, session
        self.tools, self.approver = tools or [], approver
        self.printer = TranscriptPrinter(stream)
        self.prompts = ConversationApprover(self.printer.line) if ask_approvals else None
        if self.prompts is not None:
            self.approver = self.prompts
        self.push_to_talk = push_to_talk
        self.commands_here = tc.session_commands(push_to_talk)  # the commands that do something in this session
        self.talking = False
        self.speaker = SpeakerSink(output_device)
        use_aec, hint = wants_aec(aec, self.speaker.device.name)
        self.aec = EchoCanceller() if use_aec else None
        if hint:
            self.printer.line(hint)
        if self.aec is not None:
            self.speaker.reference = self.aec.reference
        self.mic = MicSource(input_device, process=self.aec.process if self.aec else None)
        self.mic.muted = push_to_talk
        self.guard = StreamGuard([self.mic, self.speaker], self._sound_status, self._streams_reopened)
        self.defaults = DefaultWatch(self._defaults_changed)
        self.follow_defaults = sys.platform in ("darwin", "win32") if follow_defaults is None else follow_defaults
        self.recording = recording or Recording()
        self.continuity = continuity or Continuity(reconnect=5)  # talk reconnects by default
        self.commands = commands
        self.call: VoiceCall | None = None
        self.agent = agent
        self.agent_session: AgentSession | None = None
        self.interrupts = 0
        self._quit = asyncio.Event()
        self._command_tasks: TaskOwner | None = None
        self.view: TalkView | None = None
        self.editor: LineEditor | None = None  # the line being typed, when the panel shows it
        if stream is None and sys.stdout.isatty():
            try:
                from voiceclient.app.talk_view import TalkView

                self.view = TalkView(self)
                self.printer.stream_deltas = False
            except ImportError:  # rich is in the device extra; plain lines without it
                self.view = None

    # ------------------------------------------------------------------------------------------ barge-in
    def _barge_in(self) -> None:
        self.speaker.flush()
        self.speaker.dropping = True
        self.interrupts += 1

    def _subscribe(self, call: VoiceCall) -> None:
        call.on(ev.ResponseDone, self._on_response_done)
        call.on(ev.SpeechStarted, self._on_speech_started)
        call.on(ev.OutputAudioBufferCleared, self._on_new_audio)
        call.on(ev.ResponseCreated, self._on_new_audio)
        if self.view is not None:
            self.view.subscribe(call)

    def _on_response_done(self, event: ev.ResponseDone) -> None:
        assert self.call is not None
        usage = event.response.usage
        if usage:
            lat = self.call.meter.latencies
            self.printer.line(
                f"(response {event.response.status}: {usage.get('total_tokens', 0)} tokens, "
                f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out"
                + (f"; last turn {lat[-1] * 1000:.0f} ms to first audio" if lat else "")
                + ")"
            )

    def _on_speech_started(self, event: ev.SpeechStarted) -> None:
        call = self.call
        assert call is not None
        if call.turns.audio_playing:
            td = (call.effective_session or {}).get("audio", {}).get("input", {}).get("turn_detection") or {}
            if td.get("interrupt_response", True):
                self._barge_in()

    def _on_new_audio(self, event: ev.OutputAudioBufferCleared | ev.ResponseCreated) -> None:
        self.speaker.dropping = False  # the server has confirmed: what comes now is new audio

    def interrupt(self) -> None:
        assert self.call is not None
        self._barge_in()
        if self.agent_session is not None and self._command_tasks is not None:  # through the SDK, which knows
            self._command_tasks.spawn(self.agent_session.interrupt(), "interrupt")  # the responses it asked for
        else:
            self.call.interrupt()

    # ------------------------------------------------------------------------------------------ commands
    def command(self, line: str) -> None:
        assert self.call is not None
        if self.prompts is not None and self.prompts.answer(line):  # y / n / a to the approval asked
            return
        typed = tc.parse(line, self.commands_here)
        if isinstance(typed, tc.Message):
            if self.agent_session is not None and self._command_tasks is not None:
                self._command_tasks.spawn(self.agent_session.send_message(typed.text), "message")
            elif self.call.family.name == "live":
                self.printer.line("(a GPT-Live session takes no typed messages: say it)")
                return
            else:
                self.call.send_text(typed.text)
            self.printer.line(f"you (typed): {typed.text}")
        elif isinstance(typed, tc.Unknown):
            self.printer.line(typed.why)
        elif typed is not None:
            self.run_command(typed)

    def run_command(self, run: tc.Run) -> None:
        command = run.command
        if command is tc.QUIT:
            self._quit.set()
        elif command is tc.INTERRUPT:
            self.interrupt()
            self.printer.line("(interrupted)")
        elif command is tc.MUTE:
            self.mic.muted = not self.mic.muted
            self.printer.line("(microphone muted)" if self.mic.muted else "(microphone on)")
        elif command is tc.TALK:
            self.toggle_talk()
        elif command is tc.DEVICES:
            if self._command_tasks is not None:  # (reopening a stream waits on PortAudio: not in this handler)
                self._command_tasks.spawn(self.devices(list(run.args)), "devices")
        elif command is tc.STATUS:
            self.printer.line(self.status())
        elif command is tc.HELP:
            self.printer.line(tc.help_line(self.commands_here))

    async def devices(self, args: list[str]) -> None:
        """`/d`: the devices, marked; `/d IN OUT` (numbers) chooses both, `/d in N` or `/d out N` one, live."""
        from voiceclient.audio.devices import find_device, format_devices, list_devices

        try:
            if not args:
                listing = format_devices(list_devices())
                self.printer.line(
                    f"{listing}\nin use: microphone {self.mic.device.index} "
                    f"({self.mic.device.name}), speaker {self.speaker.device.index} "
                    f"({self.speaker.device.name}). /d IN OUT chooses both, /d in N or /d out N one"
                )
                return
            if len(args) == 2 and args[0] in ("in", "out"):
                choices = [(self.mic if args[0] == "in" else self.speaker, args[1])]
            elif len(args) == 2:
                choices = [(self.mic, args[0]), (self.speaker, args[1])]
            else:
                self.printer.line("(/d, /d IN OUT, /d in N or /d out N)")
                return
            for stream, spec in choices:
                find_device(spec, "input" if stream is self.mic else "output")  # one that exists, or the list
                await self.guard.choose(stream, int(spec) if spec.isdigit() else spec)
                self.printer.line(f"({stream.what}: {stream.device.name} [{stream.device.index}])")
        except DeviceError as exc:
            self.printer.line(f"(device not changed: {exc})")

    def toggle_talk(self) -> None:
        assert self.call is not None
        live = self.call.family.name == "live"  # (GPT-Live takes its own turns: the microphone only opens and closes)
        if not self.talking:
            if self.call.turns.audio_playing or self.call.turns.active:
                self.interrupt()
            if not live:
                self.call.send(ev.InputAudioBufferClear())
            self.mic.muted = False
            self.talking = True
            self.printer.line("(talking: /t again to send)")
        else:
            self.mic.muted = True
            self.talking = False
            if not live:
                self.call.send(ev.InputAudioBufferCommit())
                self.call.send(ev.ResponseCreate())
            self.printer.line("(sent)")

    def status(self) -> str:
        """`/s`: every figure of the sound and the conversation, with what it means."""
        lat = self.call.meter.latencies if self.call else []
        mic, speaker = self.mic, self.speaker
        return explain(
            Health(
                mic_name=mic.device.name,
                mic_dbfs=mic.level_dbfs,
                mic_muted=mic.muted,
                mic_gaps=mic.gaps,
                mic_gap_seconds=mic.gap_seconds,
                mic_dropped=mic.dropped,
                speaker_name=speaker.device.name,
                speaker_buffered_ms=speaker.buffered_ms,
                speaker_gaps=speaker.gaps,
                speaker_trimmed_ms=speaker.trimmed_ms,
                echo_cancellation=self.aec is not None,
                recoveries=self.guard.recoveries,
                last_turn_ms=lat[-1] * 1000 if lat else None,
            )
        )

    # ------------------------------------------------------------------------------------------ run
    def _read_lines(self) -> None:
        """Whole lines from stdin, as the terminal (or a pipe) gives them; its end is /q."""
        loop = asyncio.get_running_loop()
        queue = self.commands
        assert queue is not None

        def read() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, "/q")

        threading.Thread(target=read, daemon=True, name="voiceclient-stdin").start()

    def _own_terminal(self, stack: ExitStack) -> None:
        """While the panel is up, nothing else writes to the terminal (see voiceclient.app.terminal): keys go into
        the line the panel shows (Enter sends it, Ctrl-D on an empty line is /q), stderr's lines above the panel."""
        loop = asyncio.get_running_loop()
        queue = self.commands
        editor = self.editor = LineEditor()
        assert queue is not None

        def keys(data: bytes) -> None:  # on the event loop
            for line in editor.feed(data):
                queue.put_nowait("/q" if line == EOF else line)
            if self.view is not None:
                self.view.refresh()

        stack.enter_context(StderrLines(lambda text: loop.call_soon_threadsafe(self.printer.line, text)))
        stack.enter_context(TerminalInput(sys.stdin.fileno(), lambda data: loop.call_soon_threadsafe(keys, data)))

    async def run(self, max_duration: float | None = None) -> None:
        keys_here = self.view is not None and TerminalInput.possible(sys.stdin)
        if self.commands is None:
            self.commands = asyncio.Queue()
            if not keys_here:
                self._read_lines()
        else:
            keys_here = False
        self.speaker.start()
        self.mic.start()
        try:
            if self.aec is not None:  # far end to near end: what the output and input streams hold
                self.aec.set_delay(self._echo_delay_ms())
            async with self._conversation() as call:
                self.printer.line(
                    f"connected in {call.connect_seconds:.2f} s; microphone {self.mic.device.name!r},"
                    f" speaker {self.speaker.device.name!r}, echo cancellation "
                    f"{'on' if self.aec else 'off'}"
                    + (f"; agent {self.agent.name!r} through the Agents SDK" if self.agent else "")
                )
                self.printer.line(tc.help_line(self.commands_here))
                tasks = self._command_tasks = TaskOwner("talk")
                tasks.spawn(self.guard.run(), "sound guard")
                if self.follow_defaults and (self.mic.spec is None or self.speaker.spec is None):
                    tasks.spawn(self.defaults.run(), "default devices")
                tasks.spawn(self._commands(), "commands")
                tasks.spawn(self._refresh(), "view refresh")
                if self.view is not None:
                    self.view.__enter__()
                terminal = ExitStack()
                deadline = None if max_duration is None else time.monotonic() + max_duration
                try:
                    if keys_here:
                        self._own_terminal(terminal)
                    while not self._quit.is_set():
                        if call.error is not None:
                            raise call.error
                        if deadline is not None and time.monotonic() >= deadline:
                            break
                        with contextlib.suppress(TimeoutError):  # (not wait_for: 3.11's can drop a cancel)
                            async with asyncio.timeout(0.2):
                                await self._quit.wait()
                finally:
                    try:
                        await tasks.close()
                    finally:
                        terminal.close()
                        if self.view is not None:
                            self.view.__exit__(None, None, None)
                self.printer.line(self.status())
        finally:
            self.mic.close()
            self.speaker.close()

    @asynccontextmanager
    async def _conversation(self) -> AsyncIterator[VoiceCall]:
        """The call: voiceclient's own, or the one under an Agents SDK runner (`agent`)."""
        if self.agent is None:
            call = VoiceCall(
                self.settings,
                self.session,
                source=self.mic,
                tools=self.tools,
                approver=self.approver,
                playback=self.speaker,
                recording=self.recording,
                continuity=self.continuity,
                on_tool_result=self._tool_result,
                on_status=self.printer.line,
            )
            self._attach(call)
            async with call:
                self.printer.attach(call)
                yield call
            return
        from voiceclient.agents.app import AgentSession
        from voiceclient.agents.model import WebRTCModel

        model = WebRTCModel(
            source=self.mic,
            playback=self.speaker,
            recording=self.recording,
            continuity=self.continuity,
            settings=self.settings,
            session=self.session,
            on_call=self._attach,
            on_status=self.printer.line,
        )
        self.printer.foreign_calls = False
        self.agent_session = AgentSession(self.agent, model, self.printer.line)
        async with self.agent_session.running() as call:
            self.printer.attach(call)
            yield call

    def _attach(self, call: VoiceCall) -> None:
        self.call = call
        self._subscribe(call)

    def _echo_delay_ms(self) -> int:
        return int((self.speaker.latency_s + self.mic.latency_s) * 1000)

    def _streams_reopened(self) -> None:
        if self.aec is not None:
            self.aec.restart(self._echo_delay_ms())

    async def _defaults_changed(self, kinds: list[str]) -> None:
        """The system's default input or output changed (a headset plugged in) and the system did not move the
        streams to it: move those the user did not pin."""
        unpinned = [k for k in kinds if (self.mic if k == "input" else self.speaker).spec is None]
        if not unpinned:
            return
        try:
            await self.guard.follow_defaults()
        except DeviceError as exc:
            self._sound_status(f"sound: the default device changed, and it could not be opened ({exc})")
            return
        moved = [
            f"microphone {self.mic.device.name!r}" if k == "input" else f"speaker {self.speaker.device.name!r}"
            for k in unpinned
        ]
        self._sound_status(f"sound: following the new default: {', '.join(moved)}")

    def _sound_status(self, text: str) -> None:
        """A line about the sound devices: on the screen, and in the event log beside the call's own."""
        self.printer.line(text)
        if self.call is not None:
            self.call.log_line("local", {"type": "talk.sound", "text": text})

    def _tool_result(self, name: str, arguments: str, output: str, seconds: float) -> None:
        if self.view is not None:
            self.view.tool_done(name)
        self.printer.tool_result(name, arguments, output, seconds)

    async def _refresh(self) -> None:
        while self.view is not None:
            self.view.refresh()
            await asyncio.sleep(0.1)

    async def _commands(self) -> None:
        assert self.commands is not None
        while True:
            self.command(await self.commands.get())
