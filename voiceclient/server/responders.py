"""What the embedded server answers: `EchoResponder` (default) and `ScenarioResponder` (a scripted file).

A responder turns the conversation so far into a `ResponsePlan`: spoken (or text) messages with their
transcripts and audio, and function calls. The server turns the plan into the protocol's event sequence.

Scenario files (JSON or TOML) script each user turn; see docs/serve.md, "Scenario files":

    after_turns = "echo"              # what to do once the turns run out: echo | silence | repeat
    [[turns]]
    text = "Let me look that up."     # spoken preamble (optional); {user_text}, {previous}, {earlier[0]}: the user's
                                      # words now, in their last turn, in their first (docs/serve.md, "Scenario files")
    delay_ms = 0                      # "thinking" time before the first output
      [[turns.calls]]
      name = "get_weather"
      arguments = { city = "Paris" }
      [turns.after_tools]             # the response to the client's response.create after the outputs
      text = "It is {output[forecast]} in {output[city]}."
      audio = "answer.wav"            # or tone = { frequency = 660, seconds = 1.0 }, or echo = true
      [turns.mcp]                     # a hosted MCP call (approval per the session's require_approval)
      server_label = "docs"
      name = "search"
      arguments = { q = "webrtc" }
      output = "3 results"            # or error = "..."
      after = { text = "The docs say: {output}" }
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from voiceclient.audio.format import API_RATE, tone
from voiceclient.audio.sources import load_audio
from voiceclient.protocol.errors import ProtocolError
from voiceclient.protocol.validation import read_object_file, validate
from voiceclient.server.faults import FaultSpec
from voiceclient.server.templates import (
    BY_TOOL,
    JSON,
    TEXT,
    TEXTS,
    Fields,
    Unfilled,
    check_places,
    fill,
    output_values,
    tool_report,
)

log = logging.getLogger(__name__)


@dataclass
class Speech:
    text: str
    pcm: np.ndarray | None = None  # 24 kHz mono int16; None: the server speaks `text` (TTS, else a tone)
    paced: bool = False  # send each transcript word when its audio plays (as a speaking agent does)


@dataclass
class FunctionCall:
    name: str
    arguments: str  # JSON text, sent as the model would
    origin: Any = None  # what the responder wants back with the output (the scenario turn)


@dataclass
class McpApprovalRequest:
    """Ask the client to approve a hosted MCP call; `call` runs once it is approved."""

    call: "McpCall"
    after: Any = None  # what to say once the call has run (the scenario's reply spec)


@dataclass
class McpCall:
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: str | None = None
    approval_request_id: str | None = None


@dataclass
class ResponsePlan:
    outputs: list[Speech | FunctionCall | McpApprovalRequest | McpCall] = field(default_factory=list)
    delay_ms: int = 0


@dataclass
class TurnContext:
    """What a responder may look at: the new user input or the function outputs it answers."""

    user_audio: np.ndarray | None = None  # 24 kHz mono of the last committed user turn
    user_text: str | None = None
    user_item_id: str | None = None
    transcript: str | None = None  # what the user said (typed text, or STT of the audio for listening responders)
    function_outputs: list[tuple[str, str]] = field(default_factory=list)  # (function name, output text)
    origin: Any = None  # FunctionCall.origin of the calls those outputs answer
    mcp_decisions: list[tuple[McpApprovalRequest, bool, str | None]] = field(default_factory=list)
    mcp_tools: dict[str, dict[str, Any]] = field(default_factory=dict)  # the session's MCP tools by server_label
    function_tools: set[str] = field(default_factory=set)  # the names of the session's function tools
    # The voice model has no tools of its own (GPT-Live): any function is the application's, declared or not.
    delegated_tools: bool = False
    turn_index: int = 0  # user turns answered before this one (in this session or one replayed into it)
    earlier: list[str] = field(default_factory=list)  # what the user said in each earlier turn, in order
    # What steers this response (the session's, or the response.create's own): the server holds any plan to
    # `tool_choice` (`steer`), so a responder need not look at it.
    tool_choice: str | dict[str, Any] = "auto"
    instructions: str = ""
    out_of_band: bool = False  # a `conversation: "none"` response: its context is its own input


TOOL_CHOICE_MODES = ("auto", "none", "required")


def check_tool_choice(choice: Any, tools: list[dict[str, Any]], param: str) -> None:
    """Refuse a `tool_choice` the real service would not take: not a mode nor a tool, or a function (an MCP
    server) that `tools` does not declare ([SDK] `RealtimeToolChoiceConfig`: `ToolChoiceOptions`,
    `ToolChoiceFunction`, `ToolChoiceMcp`). The code and param are ours (the real wording is not established)."""
    if choice is None or choice in TOOL_CHOICE_MODES:
        return
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        names = [t.get("name") for t in tools if t.get("type", "function") == "function"]
        if choice["name"] not in names:
            raise ProtocolError(
                f"Invalid value: tool_choice names function '{choice['name']}', which is not among the tools "
                f"({', '.join(repr(n) for n in names) or 'none declared'}).",
                "invalid_value",
                param,
            )
        return
    if isinstance(choice, dict) and choice.get("type") == "mcp" and isinstance(choice.get("server_label"), str):
        labels = [t.get("server_label") for t in tools if t.get("type") == "mcp"]
        if choice["server_label"] not in labels:
            raise ProtocolError(
                f"Invalid value: tool_choice names MCP server '{choice['server_label']}', which is not among the "
                "tools.",
                "invalid_value",
                param,
            )
        return
    raise ProtocolError(
        f"Invalid value: {json.dumps(choice)}. Supported values are: 'auto', 'none', 'required', "
        "{'type': 'function', 'name': ...} and {'type': 'mcp', 'server_label': ...}.",
        "invalid_value",
        param,
    )


NO_TOOLS_TEXT = "I can't use a tool for this answer."  # tool_choice "none" left a plan with nothing to say


def steer(plan: ResponsePlan, tool_choice: Any, tools: list[dict[str, Any]]) -> ResponsePlan:
    """The plan as `tool_choice` lets the model answer ([SDK] `RealtimeToolChoiceConfig`):
    - "none": no tool call, function or MCP; what the plan says stays, and a plan that only called tools says
      `NO_TOOLS_TEXT` instead;
    - "required": a plan without a call calls the first declared function (arguments `{}`), as a model made to
      call a tool it was given no reason for would; with no function declared it stays as it is;
    - `{"type": "function", "name": N}`: the calls are N's only (the plan's own, else N with `{}`); what it says
      stays, its MCP calls go;
    - "auto" and an MCP choice: the plan as it is."""
    calls = (FunctionCall, McpCall, McpApprovalRequest)
    outputs: list[Speech | FunctionCall | McpApprovalRequest | McpCall] = list(plan.outputs)
    if tool_choice == "none":
        kept: list[Speech | FunctionCall | McpApprovalRequest | McpCall] = [
            o for o in outputs if not isinstance(o, calls)
        ]
        if not kept and outputs:
            kept = [Speech(NO_TOOLS_TEXT, placeholder_audio(NO_TOOLS_TEXT))]
        return ResponsePlan(kept, plan.delay_ms)
    if tool_choice == "required":
        functions = [t["name"] for t in tools if t.get("type", "function") == "function" and t.get("name")]
        if not any(isinstance(o, calls) for o in outputs) and functions:
            outputs.append(FunctionCall(functions[0], "{}"))
        return ResponsePlan(outputs, plan.delay_ms)
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = tool_choice.get("name")
        kept = [o for o in outputs if not isinstance(o, calls) or (isinstance(o, FunctionCall) and o.name == name)]
        if not any(isinstance(o, FunctionCall) for o in kept):
            kept.append(FunctionCall(str(name), "{}"))
        return ResponsePlan(kept, plan.delay_ms)
    return plan


class Responder(Protocol):
    """What answers a turn: the conversation so far in, a `ResponsePlan` out (now, or awaited: `plan` may be a
    coroutine). What else a responder may do, it says by also being a `ListeningResponder` or an
    `McpToolsResponder`."""

    def plan(self, ctx: TurnContext) -> ResponsePlan | Awaitable[ResponsePlan]: ...


@runtime_checkable
class ListeningResponder(Protocol):
    """A responder that may want the transcript of each user turn (`TurnContext.transcript`): when `listens`, the
    server transcribes every committed turn with its offline speech-to-text (the offline agent)."""

    listens: bool


@runtime_checkable
class McpToolsResponder(Protocol):
    """A responder whose hosted MCP servers have tools: their names are listed in `mcp_list_tools` items (a
    responder without this lists none)."""

    def mcp_tool_names(self, server_label: str) -> list[str]: ...


def listens(responder: Responder | None) -> bool:
    """The responder wants the transcript of each user turn."""
    return isinstance(responder, ListeningResponder) and responder.listens


def mcp_tool_names(responder: Responder, server_label: str) -> list[str]:
    """The tools of the responder's MCP server `server_label` (none for a responder without MCP servers)."""
    return responder.mcp_tool_names(server_label) if isinstance(responder, McpToolsResponder) else []


def placeholder_audio(text: str, frequency: float = 440.0) -> np.ndarray:
    """A tone as long as the text would take to say (60 ms a character, 0.5-5 s): audio with a transcript."""
    seconds = min(5.0, max(0.5, 0.06 * len(text)))
    return tone(frequency, seconds, API_RATE)


class EchoResponder:
    """Says the user's turn back. Text input and tool outputs are answered with a tone and a transcript."""

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        if ctx.function_outputs:
            text = tool_report(ctx.function_outputs)  # in words: "get weather returned city: Paris, ..."
            return ResponsePlan([Speech(text, placeholder_audio(text, 660.0))])
        if ctx.user_text is not None:
            text = f"You said: {ctx.user_text}"
            return ResponsePlan([Speech(text, placeholder_audio(text))])
        if ctx.user_audio is not None and ctx.user_audio.size:
            seconds = ctx.user_audio.size / API_RATE
            return ResponsePlan([Speech(f"Echo of {seconds:.1f} seconds of your audio.", ctx.user_audio.copy())])
        return ResponsePlan([Speech("I heard nothing.", placeholder_audio("I heard nothing."))])


# ----------------------------------------------------------------------------------------------- scenarios
class ToneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    frequency: float = Field(gt=0, lt=12000)
    seconds: float = Field(gt=0, le=60)
    level_dbfs: float = Field(default=-12.0, le=0)


class ReplySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    audio: str | None = None
    tone: ToneSpec | None = None
    echo: bool = False
    delay_ms: int = Field(default=0, ge=0, le=60_000)

    @model_validator(mode="after")
    def _one_audio(self) -> "ReplySpec":
        if sum([self.audio is not None, self.tone is not None, self.echo]) > 1:
            raise ValueError("at most one of audio, tone, echo")
        return self


class CallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class McpSpec(BaseModel):
    """A hosted MCP call the "model" makes; approval follows the session's `require_approval` for the server."""

    model_config = ConfigDict(extra="forbid")
    server_label: str
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    output: str | None = None
    error: str | None = None
    after: ReplySpec | None = None  # spoken after the call; {output} is the MCP output


class TurnSpec(ReplySpec):
    calls: list[CallSpec] = Field(default_factory=list)
    after_tools: ReplySpec | None = None
    mcp: McpSpec | None = None


# The fields of a scenario's templates, where each is used.
TURN_FIELDS = Fields({"user_text": TEXT, "earlier": TEXTS, "previous": TEXT})  # a turn's text
MCP_FIELDS = Fields({"output": TEXT})  # an MCP call's `after` (its output, or its error)


def after_tools_fields(turn: TurnSpec) -> Fields:
    """An `after_tools` text's fields: the first output, and each by the name of a tool this turn calls (any name
    when it calls none: the answer to outputs of calls made elsewhere)."""
    return Fields({"output": JSON, "outputs": BY_TOOL}, tuple(call.name for call in turn.calls))


class ScenarioSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    turns: list[TurnSpec] = Field(min_length=1)
    after_turns: Literal["echo", "silence", "repeat"] = "echo"
    faults: list[FaultSpec] = Field(default_factory=list)  # injected by the server (server/faults.py)

    @model_validator(mode="after")
    def _templates(self) -> "ScenarioSpec":
        check_places(self.templates())
        return self

    def templates(self) -> Iterator[tuple[str, str | None, Fields]]:
        """Each template with where it is and its fields."""
        for i, turn in enumerate(self.turns):
            yield f"turns[{i}].text", turn.text, TURN_FIELDS
            if turn.after_tools is not None:
                yield f"turns[{i}].after_tools.text", turn.after_tools.text, after_tools_fields(turn)
            if turn.mcp is not None and turn.mcp.after is not None:
                yield f"turns[{i}].mcp.after.text", turn.mcp.after.text, MCP_FIELDS


def earlier_fields(ctx: TurnContext) -> dict[str, Any]:
    """Template values for what the user said before: `{earlier[0]}` (their first turn), `{previous}` (the last),
    without the closing punctuation (they go inside the template's own sentence)."""
    earlier = [said.rstrip(".?!") for said in ctx.earlier]
    return {"earlier": earlier, "previous": earlier[-1] if earlier else ""}


class ScenarioResponder:
    def __init__(self, spec: ScenarioSpec, base_dir: Path) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self._echo = EchoResponder()
        self._audio_cache: dict[str, np.ndarray] = {}
        self._last_turn: TurnSpec | None = None
        for turn in spec.turns:  # fail at load time, not in the middle of a call
            for reply in (turn, turn.after_tools):
                if reply is not None and reply.audio:
                    self._load(reply.audio)

    @classmethod
    def from_file(cls, path: str | Path) -> "ScenarioResponder":
        data = read_object_file(path, "scenario")
        return cls(validate(ScenarioSpec, data, prefix=f"scenario {Path(path).name}"), Path(path).parent)

    def _load(self, name: str) -> np.ndarray:
        if name not in self._audio_cache:
            path = Path(name) if Path(name).is_absolute() else self.base_dir / name
            self._audio_cache[name] = load_audio(path, API_RATE)
        return self._audio_cache[name]

    def _speech(self, reply: ReplySpec, ctx: TurnContext, values: dict[str, Any], instead: str = "") -> Speech | None:
        """`instead`: what is said when a tool's value in the text is not there (what the tools returned)."""
        try:
            text = fill(reply.text, values) if reply.text else ""
        except Unfilled:
            text = instead
        if reply.audio:
            pcm = self._load(reply.audio)
        elif reply.tone is not None:
            pcm = tone(reply.tone.frequency, reply.tone.seconds, API_RATE, reply.tone.level_dbfs)
        elif reply.echo and ctx.user_audio is not None:
            pcm = ctx.user_audio.copy()
        elif text:
            pcm = placeholder_audio(text)
        else:
            return None
        return Speech(text, pcm)

    def mcp_tool_names(self, server_label: str) -> list[str]:
        return sorted({t.mcp.name for t in self.spec.turns if t.mcp and t.mcp.server_label == server_label})

    def _after_mcp(self, ctx: TurnContext) -> ResponsePlan:
        plan = ResponsePlan()
        for request, approved, reason in ctx.mcp_decisions:
            call = request.call
            if approved:
                plan.outputs.append(call)
                if request.after is not None:
                    speech = self._speech(request.after, ctx, *_mcp_values(call))
                    if speech:
                        plan.outputs.append(speech)
            else:
                text = f"I did not run {call.name}" + (f": {reason}" if reason else ".")
                plan.outputs.append(Speech(text, placeholder_audio(text)))
        return plan

    def _mcp_outputs(self, spec: McpSpec, ctx: TurnContext) -> list[Any]:
        args = spec.arguments if isinstance(spec.arguments, str) else json.dumps(spec.arguments)
        call = McpCall(spec.server_label, spec.name, args, output=spec.output, error=spec.error)
        tool = ctx.mcp_tools.get(spec.server_label)
        if tool is None:
            text = f"There is no MCP server {spec.server_label!r} in this session."
            return [Speech(text, placeholder_audio(text))]
        rule = tool.get("require_approval", "always")
        if isinstance(rule, dict):
            never = (rule.get("never") or {}).get("tool_names") or []
            rule = "never" if spec.name in never else "always"
        if rule == "never":
            after = self._speech(spec.after, ctx, *_mcp_values(call)) if spec.after else None
            return [call] + ([after] if after else [])
        return [McpApprovalRequest(call, spec.after)]

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        if ctx.mcp_decisions:
            return self._after_mcp(ctx)
        if ctx.function_outputs:
            turn = ctx.origin if isinstance(ctx.origin, TurnSpec) else self._last_turn
            if turn is None or turn.after_tools is None:
                return self._echo.plan(ctx)
            outputs = ctx.function_outputs
            speech = self._speech(turn.after_tools, ctx, output_values(outputs), tool_report(outputs))
            return ResponsePlan([speech] if speech else [], turn.after_tools.delay_ms)
        if ctx.turn_index < len(self.spec.turns):
            turn = self.spec.turns[ctx.turn_index]
        elif self.spec.after_turns == "repeat":
            turn = self.spec.turns[-1]
        elif self.spec.after_turns == "silence":
            return ResponsePlan([])
        else:
            return self._echo.plan(ctx)
        self._last_turn = turn
        plan = ResponsePlan(delay_ms=turn.delay_ms)
        speech = self._speech(turn, ctx, {"user_text": ctx.user_text or "", **earlier_fields(ctx)})
        if speech is not None:
            plan.outputs.append(speech)
        for call in turn.calls:
            args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
            plan.outputs.append(FunctionCall(call.name, args, origin=turn))
        if turn.mcp is not None:
            plan.outputs.extend(self._mcp_outputs(turn.mcp, ctx))
        return plan


def _mcp_values(call: McpCall) -> tuple[dict[str, Any], str]:
    """An MCP call's `{output}` (its output, or its error), and what is said when it has neither."""
    return {"output": call.output or call.error or ""}, f"{call.name} returned nothing."
