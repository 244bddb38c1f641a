"""The live transcript of a call on the terminal: user turns, assistant text as it streams, tools, errors."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from voiceclient.client.call_events import DelegationRequested, TranscriptTurn
from voiceclient.protocol import events as ev
from voiceclient.protocol import live_events as live

if TYPE_CHECKING:
    from voiceclient.client.call import VoiceCall


class TranscriptPrinter:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self._stream = stream
        self.stream_deltas = True  # False: one line per finished utterance (a live view shows the deltas)
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.user_turns = 0
        self.responses = 0
        self.tools_called: list[str] = []
        self.transcript: list[tuple[str, str]] = []
        self._streaming = False
        self._own_tools: set[str] = set()
        self.foreign_calls = True  # say so when the model calls a tool this client did not declare (False: an
        # Agents SDK runner owns the tools, and says what it runs)

    @property
    def stream(self) -> TextIO:
        """The given stream, else whatever sys.stdout is now (a live view may have redirected it)."""
        return self._stream or sys.stdout

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.t0:6.2f}]"

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self._streaming:
            self.stream.write("\n")
            self._streaming = False
        self.stream.write(f"{self._stamp()} {text}\n")
        self.stream.flush()

    def attach(self, call: VoiceCall) -> None:
        """Follow `call` from now on: its clock, and the events the transcript shows."""
        self.t0 = call.t0
        self._own_tools = {t.name for t in call.tools}
        call.on(ev.ResponseFunctionCallArgumentsDone, self.on_function_call)
        call.on(ev.SpeechStarted, self.on_speech_started)
        call.on(ev.InputAudioBufferCommitted, self.on_committed)
        call.on(ev.InputTranscriptionCompleted, self.on_user_transcript)
        call.on(ev.ResponseCreated, self.on_response_created)
        call.on(ev.ResponseOutputAudioTranscriptDelta, self.on_delta)
        call.on(ev.ResponseOutputTextDelta, self.on_delta)
        call.on(ev.ResponseOutputAudioTranscriptDone, self.on_said)
        call.on(ev.ResponseOutputTextDone, self.on_said)
        call.on(ev.ResponseDone, self.on_response_done)
        call.on(ev.Error, self.on_error)
        call.on(ev.ConversationItemDone, self.on_item_done)
        call.on(ev.ResponseOutputItemDone, self.on_output_item_done)
        call.on(live.OutputTranscriptDelta, self.on_delta)  # GPT-Live: its deltas, grouped into turns by the call
        call.on(TranscriptTurn, self.on_turn)
        call.on(DelegationRequested, self.on_delegation)

    def on_delegation(self, event: DelegationRequested) -> None:
        """GPT-Live delegated a task to this client: the tool answering it prints its result; with none, say so."""
        if event.tool is None:
            self.line(f"delegation: {event.delegation_id}: no tool of this client answers it (--tools)")

    def on_speech_started(self, event: ev.SpeechStarted) -> None:
        self.line("user: (speaking)")

    def on_committed(self, event: ev.InputAudioBufferCommitted) -> None:
        self.user_turns += 1

    def on_user_transcript(self, event: ev.InputTranscriptionCompleted) -> None:
        self.transcript.append(("user", event.transcript))
        self.line(f"user: {event.transcript}")

    def on_response_created(self, event: ev.ResponseCreated) -> None:
        self.responses += 1

    def on_turn(self, event: TranscriptTurn) -> None:
        """A GPT-Live turn's words, once it is over: the user's as a line, the assistant's ends its streamed line."""
        if event.role == "user":
            self.user_turns += 1
            self.transcript.append(("user", event.text))
            self.line(f"user: {event.text}")
            return
        self.responses += 1
        self.transcript.append(("assistant", event.text))
        if self._streaming and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
        elif not self.stream_deltas:
            self.line(f"assistant: {event.text}")
        self._streaming = False

    def on_delta(
        self, event: ev.ResponseOutputAudioTranscriptDelta | ev.ResponseOutputTextDelta | live.OutputTranscriptDelta
    ) -> None:
        if not self.quiet and self.stream_deltas:
            if not self._streaming:
                self.stream.write(f"{self._stamp()} assistant: ")
                self._streaming = True
            self.stream.write(event.delta)
            self.stream.flush()

    def on_said(self, event: ev.ResponseOutputAudioTranscriptDone | ev.ResponseOutputTextDone) -> None:
        text = event.transcript if isinstance(event, ev.ResponseOutputAudioTranscriptDone) else event.text
        self.transcript.append(("assistant", text))
        if self._streaming and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
        elif not self.stream_deltas:
            self.line(f"assistant: {text}")
        self._streaming = False

    def on_response_done(self, event: ev.ResponseDone) -> None:
        if event.response.status not in ("completed", None):
            reason = (event.response.status_details or {}).get("reason", "")
            self.line(f"assistant: (response {event.response.status}{': ' + reason if reason else ''})")

    def on_error(self, event: ev.Error) -> None:
        self.line(f"server error: {event.error.message} ({event.error.code})")

    def on_item_done(self, event: ev.ConversationItemDone) -> None:
        item = event.item
        extra = item.model_extra or {}
        if item.type == "mcp_list_tools":
            names = [t.get("name") for t in extra.get("tools", [])]
            self.line(f"mcp: {extra.get('server_label')} offers {', '.join(names) or 'no tools'}")
        elif item.type == "mcp_approval_request":
            self.line(f"mcp: approval requested for {extra.get('server_label')}/{item.name}({item.arguments})")

    def on_output_item_done(self, event: ev.ResponseOutputItemDone) -> None:
        item = event.item
        if item.type == "mcp_call":
            extra = item.model_extra or {}
            result = extra.get("output") if extra.get("error") is None else f"failed: {extra['error']}"
            self.line(f"mcp: {extra.get('server_label')}/{item.name}({item.arguments}) -> {result}")

    def on_function_call(self, event: ev.ResponseFunctionCallArgumentsDone) -> None:
        if event.name not in self._own_tools and self.foreign_calls:
            self.line(
                f"tool: {event.name}({event.arguments}) is not a tool of this client; left to the one that "
                "declared it (a sideband backend)"
            )

    def tool_result(self, name: str, arguments: str, output: str, seconds: float) -> None:
        self.tools_called.append(name)
        self.line(f"tool: {name}({arguments}) -> {output} ({seconds * 1000:.0f} ms)")
