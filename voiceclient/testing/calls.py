"""A scripted call for tests: a WAV in, and everything a test asserts on out (what the assistant said, the event
log, the tool calls, the turn delays, the files). No pytest here; the plugin's `scripted_call` fixture wraps it.

    result = await run_scripted_call(server.base_url, "question.wav", directory=tmp_path)
    assert_heard(result, "sunny")
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from voiceclient.protocol.session import SessionConfig
    from voiceclient.tools import Tool


@dataclass
class ToolCall:
    """One function call the model made in the call, and the output the client sent for it."""

    name: str
    arguments: dict[str, Any]
    output: Any
    call_id: str


@dataclass
class ScriptedCallResult:
    """What a scripted call left: files on disk (kept for a failing test) and what is in them."""

    input_wav: Path
    output_wav: Path
    recording: Path
    events_jsonl: Path
    ended: str
    latencies: list[float]
    events: list[dict[str, Any]] = field(repr=False)
    _heard: str | None = field(default=None, repr=False)

    @property
    def server_events(self) -> list[dict[str, Any]]:
        """The server's events from the event log, in order."""
        return [line["event"] for line in self.events if line["dir"] == "server"]

    @property
    def event_types(self) -> list[str]:
        """The server's event types in order (what arrived over `oai-events`)."""
        return [e["type"] for e in self.server_events]

    @property
    def assistant_transcript(self) -> str:
        """What the server says the assistant said (its transcript events, every response in order)."""
        return " ".join(
            e["transcript"]
            for e in self.server_events
            if e["type"] == "response.output_audio_transcript.done" and e.get("transcript")
        )

    @property
    def user_transcript(self) -> str:
        """What the server heard the user say (input transcription), where the session asked for it."""
        return " ".join(
            e["transcript"]
            for e in self.server_events
            if e["type"] == "conversation.item.input_audio_transcription.completed"
        )

    @property
    def heard(self) -> str:
        """What the assistant's audio says, heard by offline speech-to-text from the WAV the client wrote: the
        test's own ears, independent of the server's transcript (needs the `agent` extra)."""
        if self._heard is None:
            from voiceclient.testing.speech import transcribe_wav

            self._heard = transcribe_wav(self.output_wav).strip()
        return self._heard

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Each function call the model made, with its arguments and the output the client sent."""
        outputs: dict[str, Any] = {}
        for line in self.events:
            event = line["event"]
            if line["dir"] == "client" and event["type"] == "conversation.item.create":
                item = event.get("item", {})
                if item.get("type") == "function_call_output":
                    outputs[item["call_id"]] = _json_or_text(item.get("output", ""))
        calls = []
        for event in self.server_events:
            item = event.get("item", {})
            if event["type"] == "response.output_item.done" and item.get("type") == "function_call":
                calls.append(
                    ToolCall(
                        item["name"],
                        _json_or_text(item.get("arguments", "")) or {},
                        outputs.get(item["call_id"]),
                        item["call_id"],
                    )
                )
        return calls

    @property
    def turns(self) -> str:
        """How the call went, turn by turn, from the server's events, for a failure message: "user 0.32-2.84 s,
        response completed; user 3.10-4.02 s, response cancelled (turn_detected)". A turn split in two, an answer
        cut short or a turn never detected shows here, where the heard words alone cannot say why."""
        story: list[str] = []
        start: float | None = None
        for event in self.server_events:
            kind = event["type"]
            if kind == "input_audio_buffer.speech_started":
                start = event.get("audio_start_ms", 0) / 1000
            elif kind == "input_audio_buffer.speech_stopped":
                end = event.get("audio_end_ms", 0) / 1000
                story.append(f"user {start if start is not None else 0:.2f}-{end:.2f} s")
                start = None
            elif kind == "input_audio_buffer.timeout_triggered":
                story.append("idle timeout")
            elif kind == "response.done":
                response = event.get("response", {})
                reason = (response.get("status_details") or {}).get("reason")
                said = f"response {response.get('status', '?')}" + (f" ({reason})" if reason else "")
                if story and story[-1].startswith("user") and "response" not in story[-1]:
                    story[-1] += ", " + said  # the answer to that turn
                else:
                    story.append(said)
        if start is not None:
            story.append(f"user {start:.2f} s-, never stopped")
        return "; ".join(story) or "no turn detected"

    def where(self) -> str:
        """The files, for a failure message."""
        return f"conversation {self.recording}, assistant audio {self.output_wav}, events {self.events_jsonl}"

    def report(self, path: str | Path | None = None) -> Path:
        """The call's timeline as one HTML page (`voiceclient report`), beside its files unless `path` says."""
        from voiceclient.report import write_report

        out = (
            Path(path)
            if path is not None
            else self.events_jsonl.with_name(self.events_jsonl.name.replace(".events.jsonl", "") + ".report.html")
        )
        write_report(self.events_jsonl, self.recording, out)
        return out


def _json_or_text(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "call"


async def run_scripted_call(
    base_url: str,
    wav: str | Path,
    *,
    directory: str | Path,
    name: str | None = None,
    session: SessionConfig | None = None,
    tools: list[Tool] | None = None,
    api_key: str = "sk-test",
    idle_seconds: float = 1.5,
    max_duration: float = 60.0,
    text: str | None = None,
    transport: Literal["webrtc", "websocket"] = "webrtc",
) -> ScriptedCallResult:
    """Call `base_url` (an embedded server, or any Realtime endpoint) over `transport`, send `wav` as the microphone
    (and `text` as a message, if given), wait until the conversation is idle for `idle_seconds`, hang up. Files go
    to `directory` under `name` (default: the WAV's stem): NAME.conversation.wav (stereo: user | assistant),
    NAME.assistant.wav, NAME.events.jsonl."""
    from voiceclient.audio.sources import WavSource
    from voiceclient.client.call import VoiceCall
    from voiceclient.client.options import Recording
    from voiceclient.client.settings import ClientSettings

    wav = Path(wav)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the call)
    stem = _file_name(name or wav.stem)
    output, recording, events = (
        folder / f"{stem}.assistant.wav",
        folder / f"{stem}.conversation.wav",
        folder / f"{stem}.events.jsonl",
    )
    settings = ClientSettings(base_url=base_url, api_key=api_key, connect_timeout=30, transport=transport)
    async with VoiceCall(
        settings, session, source=WavSource(wav), tools=tools, recording=Recording(output, recording, events)
    ) as call:
        if text is not None:
            call.send_text(text)
        ended = await call.run_until_idle(idle_seconds, max_duration)
        latencies = list(call.meter.latencies)
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    return ScriptedCallResult(wav, output, recording, events, ended, latencies, lines)
