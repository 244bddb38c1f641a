"""The live transcript of a call on the terminal: user turns, assistant text as it streams, tools, errors."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO


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
        self._task: asyncio.Task[None] | None = None

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

    def attach(self, call: Any) -> None:
        self.t0 = call.t0
        self._task = asyncio.ensure_future(self._follow(call.events()))

    async def _follow(self, stream: Any) -> None:
        async for event in stream:
            self.on_event(event)

    def on_event(self, event: Any) -> None:
        kind = event.type
        if kind == "input_audio_buffer.speech_started":
            self.line("user: (speaking)")
        elif kind == "input_audio_buffer.committed":
            self.user_turns += 1
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.transcript.append(("user", event.transcript))
            self.line(f"user: {event.transcript}")
        elif kind == "response.created":
            self.responses += 1
        elif kind in ("response.output_audio_transcript.delta", "response.output_text.delta"):
            if not self.quiet and self.stream_deltas:
                if not self._streaming:
                    self.stream.write(f"{self._stamp()} assistant: ")
                    self._streaming = True
                self.stream.write(event.delta)
                self.stream.flush()
        elif kind in ("response.output_audio_transcript.done", "response.output_text.done"):
            text = getattr(event, "transcript", None) or getattr(event, "text", "")
            self.transcript.append(("assistant", text))
            if self._streaming and not self.quiet:
                self.stream.write("\n")
                self.stream.flush()
            elif not self.stream_deltas:
                self.line(f"assistant: {text}")
            self._streaming = False
        elif kind == "response.done" and event.response.status not in ("completed", None):
            reason = (event.response.status_details or {}).get("reason", "")
            self.line(f"assistant: (response {event.response.status}{': ' + reason if reason else ''})")
        elif kind == "error":
            self.line(f"server error: {event.error.message} ({event.error.code})")
        elif kind == "conversation.item.done" and event.item.type == "mcp_list_tools":
            names = [t.get("name") for t in (event.item.model_extra or {}).get("tools", [])]
            label = (event.item.model_extra or {}).get("server_label")
            self.line(f"mcp: {label} offers {', '.join(names) or 'no tools'}")
        elif kind == "conversation.item.done" and event.item.type == "mcp_approval_request":
            extra = event.item.model_extra or {}
            self.line(f"mcp: approval requested for {extra.get('server_label')}/{event.item.name}"
                      f"({event.item.arguments})")
        elif kind == "response.output_item.done" and event.item.type == "mcp_call":
            extra = event.item.model_extra or {}
            result = extra.get("output") if extra.get("error") is None else f"failed: {extra['error']}"
            self.line(f"mcp: {extra.get('server_label')}/{event.item.name}({event.item.arguments}) -> {result}")

    def tool_result(self, name: str, arguments: str, output: str, seconds: float) -> None:
        self.tools_called.append(name)
        self.line(f"tool: {name}({arguments}) -> {output} ({seconds * 1000:.0f} ms)")
