"""A call's timeline, read from the files it leaves: the JSONL event log (both directions on the call's clock) and,
if there is one, the stereo recording (left sent, right received, on the same clock).

`Timeline.read(events, recording)` gives what the report draws: lanes of spans and marks (the user speaking,
responses, the assistant's audio playing, tool calls, errors, the connection, session updates), the transcripts
where they were said, each turn's latency (the end of the user's speech to the first answer audio, measured in the
recording when there is one), the loudness of both channels, and a summary.
"""

from __future__ import annotations

import json
import statistics
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voiceclient.errors import ConfigError

LOUD_DBFS = -45.0  # a 10 ms frame above this is sound (speech or an answer), below it silence
FLOOR_DBFS = -90
MAX_POINTS = 120_000  # loudness frames per channel at most (a 30-minute call: one per 15 ms)
# GPT-Live's session events the timeline shows (its transcripts are turns; the rest are marks on the session lane)
LIVE_SERVER = {
    "session.started",
    "session.closed",
    "session.usage.updated",
    "session.input_transcript.delta",
    "session.output_transcript.delta",
    "session.delegation.created",
    "session.input_audio.muted",
    "session.input_audio.unmuted",
    "session.instructions.appended",
    "session.thinking.appended",
    "session.commentary.appended",
}
LIVE_TURN_GAP = 1.5  # seconds without words that end a GPT-Live turn (as the client groups them)
LANES = ("user speaking", "responses", "assistant audio", "tools", "errors", "connection", "session")


@dataclass
class Span:
    lane: str
    start: float
    end: float | None  # None: still open when the log ends
    label: str
    events: list[int] = field(default_factory=list)  # indexes into `Timeline.events`
    kind: str = ""  # for colours: a response's status, "approval", "cleared", ...


@dataclass
class Mark:
    lane: str
    t: float
    label: str
    event: int
    kind: str = ""


@dataclass
class Said:
    who: str  # "user" or "assistant"
    t: float
    text: str
    event: int


@dataclass
class Turn:
    index: int
    speech_end: float  # the user's last sound (recording) or the VAD's stop (events)
    first_audio: float | None
    latency_ms: float | None
    measured: str  # "recording" or "events"
    user_text: str = ""
    answer_text: str = ""


@dataclass
class Timeline:
    """A call as the report draws it: its events, the spans (speaking, playing, responses, tools, connections) and
    marks on their lanes, what was said when, the user's turns with their latency, the duration, the summary facts
    and the loudness of each side (from the recording, when given).
    """

    events: list[dict[str, Any]]
    spans: list[Span]
    marks: list[Mark]
    said: list[Said]
    turns: list[Turn]
    duration: float
    summary: dict[str, Any]
    loudness: dict[str, Any] | None  # {"step": s, "user": bytes, "assistant": bytes} (dBFS + 128, one per step)

    @classmethod
    def read(cls, events_path: str | Path, recording: str | Path | None = None) -> Timeline:
        """The timeline of a call from its event log, and its stereo recording when given."""
        return Builder(read_log(events_path), read_recording(recording) if recording else None).build()

    def to_json(self) -> dict[str, Any]:
        """The timeline as the page's JSON: lanes, spans, marks, turns, loudness and the events themselves."""
        import base64

        # (the events as they are: asdict would deep-copy every one, half the time of a long call's report)
        data: dict[str, Any] = {"events": self.events, "duration": self.duration, "summary": self.summary}
        for name in ("spans", "marks", "said", "turns"):
            data[name] = [asdict(x) for x in getattr(self, name)]
        if self.loudness is not None:
            data["loudness"] = {
                "step": self.loudness["step"],
                **{k: base64.b64encode(self.loudness[k]).decode() for k in ("user", "assistant")},
            }
        else:
            data["loudness"] = None
        data["lanes"] = list(LANES)
        return data


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The event log's lines; a line cut short (a call killed mid-write) or not JSON is skipped, not fatal."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"event log not found: {p}")
    lines = []
    for text in p.read_text(encoding="utf-8", errors="replace").splitlines():
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict) and isinstance(line.get("event"), dict) and isinstance(line.get("t"), (int, float)):
            lines.append(line)
    if not lines:
        raise ConfigError(f"{p}: no events (expected the JSONL event log of a call: --events)")
    return lines


def read_recording(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(sent, received, rate) of a stereo recording (`--record`); a mono WAV is taken as the received side."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"recording not found: {p}")
    try:
        with wave.open(str(p)) as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ConfigError(f"{p}: not a WAV recording ({exc})") from None
    if width != 2:
        raise ConfigError(f"{p}: expected 16-bit samples, not {8 * width}-bit")
    pcm = np.frombuffer(frames[: len(frames) // (2 * channels) * 2 * channels], "<i2").reshape(-1, channels)
    if channels == 1:
        return np.zeros(pcm.shape[0], np.int16), pcm[:, 0], rate
    return pcm[:, 0], pcm[:, 1], rate


FRAME = 0.01  # seconds: the loudness frame turns are measured in; the page's frames are whole multiples of it


def energy(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Mean square of each 10 ms of `pcm` (full scale 1.0)."""
    n = max(1, int(rate * FRAME))
    frames = pcm[: pcm.size // n * n].reshape(-1, n).astype(np.float32) / 32768.0
    mean_square: np.ndarray = np.einsum("ij,ij->i", frames, frames) / n
    return mean_square


def decibels(mean_square: np.ndarray, frames: int = 1) -> np.ndarray:
    """dBFS of each `frames` 10 ms frames together, as ints from FLOOR_DBFS to 0."""
    if frames > 1:
        mean_square = mean_square[: mean_square.size // frames * frames].reshape(-1, frames).mean(axis=1)
    levels: np.ndarray = np.clip(np.round(10 * np.log10(mean_square + 1e-18)), FLOOR_DBFS, 0).astype(np.int16)
    return levels


class Builder:
    def __init__(self, lines: list[dict[str, Any]], recording: tuple[np.ndarray, np.ndarray, int] | None) -> None:
        self.lines = lines
        self.recording = recording
        self.spans: list[Span] = []
        self.marks: list[Mark] = []
        self.said: list[Said] = []
        self.open: dict[tuple[str, str], Span] = {}
        self.playout_start: dict[str, float] = {}  # response id -> when its audio started playing
        self.call_ids: list[str] = []
        self.errors = 0
        self.switches = 0
        self.tools: list[str] = []
        self.usage: dict[str, int] = {}
        self.live_t0: float | None = None  # a GPT-Live session: when it started (its transcripts' ms count from it)
        self.live_turn: tuple[str, Said, Span] | None = None  # the GPT-Live turn being said: (role, text, span)
        self.live_spans: list[Span] = []  # where GPT-Live's transcripts say each side spoke
        self._levels: tuple[np.ndarray, np.ndarray] | None = None  # 10 ms energies of (sent, received)
        self._db: tuple[np.ndarray, np.ndarray] | None = None  # and their dBFS

    # ------------------------------------------------------------------------------------------ spans
    def begin(self, lane: str, key: str, t: float, label: str, i: int, kind: str = "") -> Span:
        span = Span(lane, t, None, label, [i], kind)
        self.spans.append(span)
        self.open[(lane, key)] = span
        return span

    def end(self, lane: str, key: str, t: float, i: int, label: str | None = None, kind: str | None = None) -> None:
        span = self.open.pop((lane, key), None)
        if span is None:
            return
        span.end = t
        span.events.append(i)
        if label is not None:
            span.label = label
        if kind is not None:
            span.kind = kind

    def mark(self, lane: str, t: float, label: str, i: int, kind: str = "") -> None:
        self.marks.append(Mark(lane, t, label, i, kind))

    # ------------------------------------------------------------------------------------------ events
    def build(self) -> Timeline:
        for i, line in enumerate(self.lines):
            self.read(i, float(line["t"]), str(line.get("dir")), line["event"])
        duration = max(float(self.lines[-1]["t"]), self._recording_seconds())
        for said in self.said:
            said.text = said.text.rstrip()
        played = any(s.lane == "assistant audio" for s in self.spans)  # (a WebSocket call's own playout events)
        self.spans += [s for s in self.live_spans if s.lane == "user speaking" or not played]
        if self.live_t0 is not None and not any(s.lane == "user speaking" for s in self.spans):
            self.spans += self._speech_heard()  # GPT-Live sends no speech events: the user's sound is the turn
        turns = self.turns()
        latencies = [t.latency_ms for t in turns if t.latency_ms is not None]
        summary = {
            "call_ids": self.call_ids,
            "duration": round(duration, 2),
            "turns": len(turns),
            "responses": sum(1 for s in self.spans if s.lane == "responses"),
            "latency_median_ms": round(statistics.median(latencies)) if latencies else None,
            "latency_worst_ms": round(max(latencies)) if latencies else None,
            "latency_measured": turns[0].measured if turns else None,
            "tools": self.tools,
            "errors": self.errors,
            "switches": self.switches,
            "usage": self.usage,
            "events": len(self.lines),
        }
        return Timeline(self.lines, self.spans, self.marks, self.said, turns, duration, summary, self._loudness())

    def read(self, i: int, t: float, direction: str, e: dict[str, Any]) -> None:
        kind = str(e.get("type", ""))
        if direction == "server":
            self.server(i, t, kind, e)
        elif direction == "client":
            self.client(i, t, kind, e)
        else:
            self.local(i, t, kind, e)

    def server(self, i: int, t: float, kind: str, e: dict[str, Any]) -> None:
        if kind in LIVE_SERVER or kind == "response.event":
            self.live(i, t, kind, e)
        elif kind == "session.created":
            self.mark("connection", t, "session.created", i)
        elif kind == "session.updated":
            self.mark("session", t, "session.updated", i)
        elif kind == "input_audio_buffer.speech_started":
            self.begin("user speaking", "speech", t, "speaking", i)
        elif kind == "input_audio_buffer.speech_stopped":
            self.end("user speaking", "speech", t, i)
        elif kind == "input_audio_buffer.committed":
            self.mark("user speaking", t, "committed", i, "commit")
        elif kind == "response.created":
            rid = str((e.get("response") or {}).get("id", ""))
            self.begin("responses", rid, t, "in progress", i)
        elif kind == "response.done":
            response = e.get("response") or {}
            rid = str(response.get("id", ""))
            status = str(response.get("status", ""))
            usage = response.get("usage") or {}
            tokens = usage.get("total_tokens")
            for k in ("input_tokens", "output_tokens", "total_tokens"):
                if isinstance(usage.get(k), int):
                    self.usage[k] = self.usage.get(k, 0) + usage[k]
            label = status + (f" · {tokens} tokens" if tokens is not None else "")
            self.end("responses", rid, t, i, label, status)
        elif kind in ("output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared"):
            self.playout(i, t, kind, e)
        elif kind == "response.function_call_arguments.done":
            name = str(e.get("name", "?"))
            self.tools.append(name)
            self.begin("tools", str(e.get("call_id", "")), t, f"{name}({e.get('arguments', '')})", i)
        elif kind == "response.output_item.done" and (e.get("item") or {}).get("type") == "mcp_call":
            item = e["item"]
            self.tools.append(str(item.get("name", "?")))
            self.mark("tools", t, f"mcp {item.get('server_label')}/{item.get('name')}", i, "mcp")
        elif kind == "conversation.item.done" and (e.get("item") or {}).get("type") == "mcp_approval_request":
            item = e["item"]
            self.begin("tools", f"approval:{item.get('id')}", t, f"approval? {item.get('name')}", i, "approval")
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.said.append(Said("user", t, str(e.get("transcript", "")), i))
        elif kind in ("response.output_audio_transcript.done", "response.output_text.done"):
            text = str(e.get("transcript", e.get("text", "")))
            self.said.append(Said("assistant", self.playout_start.get(str(e.get("response_id")), t), text, i))
        elif kind == "conversation.item.truncated":
            self.mark("assistant audio", t, f"truncated at {e.get('audio_end_ms')} ms", i, "cut")
        elif kind == "error" or kind == "voiceclient.malformed":
            self.errors += 1
            err = e.get("error") or {}
            self.mark("errors", t, str(err.get("code") or err.get("message") or e.get("reason") or kind), i, "error")

    def live(self, i: int, t: float, kind: str, e: dict[str, Any]) -> None:
        """A GPT-Live session's events: its start and end, transcripts grouped into turns (their `start_ms` and
        `end_ms` on the session's clock make the user's speech and the model's audio), delegated tool calls."""
        session = e.get("session") or {}
        if kind == "session.started":
            self.live_t0 = t
            self.mark("connection", t, "session.started", i)
            if session.get("id") and session["id"] not in self.call_ids:
                self.call_ids.append(str(session["id"]))
        elif kind == "session.closed":
            self.mark("connection", t, f"session.closed: {e.get('reason', '')}", i)
            self.live_usage(e)
        elif kind == "session.usage.updated":
            self.live_usage(e)
        elif kind in ("session.input_transcript.delta", "session.output_transcript.delta"):
            self.live_said(i, t, "user" if kind.startswith("session.input") else "assistant", e)
        elif kind == "session.delegation.created":
            delegation = e.get("delegation") or {}
            self.mark("tools", t, f"delegated to {delegation.get('target', '?')}", i, "delegation")
        elif kind == "response.event":
            nested = e.get("event") or {}
            item = nested.get("item") or {}
            if nested.get("type") == "response.output_item.done" and item.get("type") == "function_call":
                name = str(item.get("name", "?"))
                self.tools.append(name)
                label = f"{name}({item.get('arguments', '')})"
                self.begin("tools", str(item.get("call_id", "")), t, label, i)
        elif kind in LIVE_SERVER:
            self.mark("session", t, kind.removeprefix("session."), i)

    def live_usage(self, e: dict[str, Any]) -> None:
        seconds = (e.get("usage") or {}).get("seconds")
        if isinstance(seconds, (int, float)):
            self.usage["seconds"] = round(seconds)

    def live_said(self, i: int, t: float, who: str, e: dict[str, Any]) -> None:
        """A transcript delta: the turn of `who` goes on, or a new one begins (the other side spoke, or 1.5 s
        passed without words); the turn's span lies where its words were said."""
        t0 = self.live_t0 if self.live_t0 is not None else 0.0
        start = t0 + float(e.get("start_ms", 0)) / 1000 if isinstance(e.get("start_ms"), (int, float)) else t
        end = t0 + float(e.get("end_ms", 0)) / 1000 if isinstance(e.get("end_ms"), (int, float)) else t
        lane = "user speaking" if who == "user" else "assistant audio"
        turn = self.live_turn
        if turn is None or turn[0] != who or start - float(turn[2].end or turn[2].start) > LIVE_TURN_GAP:
            said = Said(who, start, "", i)
            self.said.append(said)
            span = Span(lane, start, end, "speaking" if who == "user" else "playing", [i])
            self.live_spans.append(span)
            turn = self.live_turn = (who, said, span)
        said, span = turn[1], turn[2]
        said.text = (said.text + str(e.get("delta", ""))).lstrip()  # (words carry their spaces; the end is trimmed)
        span.end = max(float(span.end or start), end)
        span.events.append(i)

    def client(self, i: int, t: float, kind: str, e: dict[str, Any]) -> None:
        if kind == "response.item.create" and (e.get("item") or {}).get("type") == "function_call_output":
            item = e["item"]
            key = str(item.get("call_id", ""))
            output = str(item.get("output", ""))
            output = output if len(output) <= 80 else output[:79] + "…"
            span = self.open.get(("tools", key))
            if span is not None:
                self.end("tools", key, t, i, f"{span.label} -> {output} ({(t - span.start) * 1000:.0f} ms)")
        elif kind == "session.close":
            self.mark("connection", t, "session.close", i)
        elif kind == "session.update":
            self.mark("session", t, "session.update", i)
        elif kind == "conversation.item.create":
            item = e.get("item") or {}
            if item.get("type") == "function_call_output":
                span = self.open.get(("tools", str(item.get("call_id", ""))))
                if span is not None:
                    output = str(item.get("output", ""))
                    output = output if len(output) <= 80 else output[:79] + "…"
                    self.end(
                        "tools",
                        str(item.get("call_id", "")),
                        t,
                        i,
                        f"{span.label} -> {output} ({(t - span.start) * 1000:.0f} ms)",
                    )
            elif item.get("type") == "mcp_approval_response":
                approved = bool(item.get("approve"))
                self.end(
                    "tools",
                    f"approval:{item.get('approval_request_id')}",
                    t,
                    i,
                    "approved" if approved else "refused",
                    "approval",
                )
            elif item.get("type") == "message" and item.get("role") == "user":
                text = " ".join(str(c.get("text", "")) for c in item.get("content") or [] if c.get("text"))
                if text:
                    self.said.append(Said("user", t, text, i))
        elif kind in ("response.cancel", "output_audio_buffer.clear", "conversation.item.truncate"):
            self.mark("assistant audio" if kind != "response.cancel" else "responses", t, kind, i, "cut")

    def local(self, i: int, t: float, kind: str, e: dict[str, Any]) -> None:
        if kind in ("output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared"):
            self.playout(i, t, kind, e)  # a WebSocket call's own playout
        elif kind == "call.status":
            self.mark("connection", t, str(e.get("text", "")), i, "status")
        elif kind == "call.switched":
            self.switches += 1
            self.mark("connection", t, f"switched: {e.get('reason', '')}".strip(), i, "switch")
        elif kind == "conversation.history":
            if e.get("call_id") and e["call_id"] not in self.call_ids:
                self.call_ids.append(str(e["call_id"]))
        elif kind == "talk.sound":
            self.mark("connection", t, str(e.get("text", "")), i, "sound")

    def playout(self, i: int, t: float, kind: str, e: dict[str, Any]) -> None:
        rid = str(e.get("response_id", ""))
        if kind.endswith("started"):
            self.playout_start[rid] = t
            self.begin("assistant audio", rid, t, "playing", i)
        else:
            cleared = kind.endswith("cleared")
            self.end("assistant audio", rid, t, i, "cut off" if cleared else "played", "cleared" if cleared else "")

    # ------------------------------------------------------------------------------------------ turns
    def turns(self) -> list[Turn]:
        """A turn per stretch of user speech the server detected; its latency from the end of the user's speech to
        the first sound of the answer."""
        speech = sorted(
            (s for s in self.spans if s.lane == "user speaking" and s.end is not None), key=lambda s: s.start
        )
        starts = [float(s.start) for s in speech] + [float("inf")]
        playing = sorted(s.start for s in self.spans if s.lane == "assistant audio")
        out = []
        for n, s in enumerate(speech):
            stop = float(s.end or s.start)
            next_start = starts[n + 1]
            end, first, measured = self._from_recording(s.start, stop, next_start)
            if measured is None:
                end = stop
                first = next((p for p in playing if stop <= p < next_start), None)
                measured = "events"
            latency = (first - end) * 1000 if first is not None else None
            user = " ".join(x.text for x in self.said if x.who == "user" and stop <= x.t < next_start)
            answer = " ".join(x.text for x in self.said if x.who == "assistant" and stop <= x.t < next_start)
            out.append(
                Turn(
                    n + 1,
                    round(end, 3),
                    None if first is None else round(first, 3),
                    None if latency is None else round(latency, 1),
                    measured,
                    user,
                    answer,
                )
            )
        return out

    def _from_recording(self, start: float, stop: float, until: float) -> tuple[float, float | None, str | None]:
        if self.recording is None:
            return stop, None, None
        step = FRAME
        user, answer = self._decibels()
        lo, hi = int(max(0.0, start - 0.5) / step), int(stop / step) + 1
        loud = np.nonzero(user[lo:hi] > LOUD_DBFS)[0]
        if loud.size == 0:
            return stop, None, None
        end = (lo + int(loud[-1]) + 1) * step
        a, b = int(end / step), min(answer.size, int(min(until, end + 30.0) / step))
        heard = np.nonzero(answer[a:b] > LOUD_DBFS)[0]
        return end, (a + int(heard[0])) * step if heard.size else None, "recording"

    def _speech_heard(self) -> list[Span]:
        """The user's stretches of sound in the recording (pauses under `LIVE_TURN_GAP` inside one), as spans of
        the user speaking: where a GPT-Live session's input transcripts (offline speech-to-text) are missing."""
        if self.recording is None:
            return []
        loud = np.nonzero(self._decibels()[0] > LOUD_DBFS)[0]
        spans: list[Span] = []
        for frame in loud:
            t = float(frame) * FRAME
            if spans and t - float(spans[-1].end or 0.0) <= LIVE_TURN_GAP:
                spans[-1].end = t + FRAME
            else:
                spans.append(Span("user speaking", t, t + FRAME, "speaking (heard)", []))
        return [s for s in spans if float(s.end or s.start) - s.start >= 0.2]  # (a click is not a turn)

    # ------------------------------------------------------------------------------------------ loudness
    def _recording_seconds(self) -> float:
        if self.recording is None:
            return 0.0
        return float(self.recording[0].size / self.recording[2])

    def _decibels(self) -> tuple[np.ndarray, np.ndarray]:
        """dBFS of each 10 ms of (sent, received), computed once."""
        if self._db is None:
            self._db = decibels(self._energies()[0]), decibels(self._energies()[1])
        return self._db

    def _energies(self) -> tuple[np.ndarray, np.ndarray]:
        if self._levels is None:
            assert self.recording is not None
            sent, received, rate = self.recording
            self._levels = energy(sent, rate), energy(received, rate)
        return self._levels

    def _loudness(self) -> dict[str, Any] | None:
        if self.recording is None:
            return None
        sent, _, rate = self.recording
        frames = max(1, int(np.ceil(sent.size / rate / MAX_POINTS / FRAME)))
        user, answer = (decibels(e, frames) - FLOOR_DBFS for e in self._energies())
        return {
            "step": round(frames * FRAME, 3),
            "user": user.astype(np.uint8).tobytes(),
            "assistant": answer.astype(np.uint8).tobytes(),
        }
