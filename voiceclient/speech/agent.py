"""A local agent responder: it listens (speech-to-text), answers in a voice (text-to-speech) and calls tools when a
rule says so. Its transcript deltas go out as its audio plays, so a barge-in leaves exactly the words heard.

Default policy: a short spoken acknowledgement of what it heard. Rules (JSON or TOML) script a conversation:

    fallback = "You said: {transcript}."      # when no rule matches ({transcript} is what was heard)
    # In say, answer and fallback: {earlier[0]} is the user's first turn, {previous} their last one before this
    # (also after a reconnect or recycle: the conversation replayed into a new session counts).
    [[rules]]
    pattern = "weather .*in (?P<city>[A-Z][a-z]+)"   # a regex searched in the transcript, case-insensitive
    say = "Let me check."                     # optional, spoken before the call
    call = { name = "get_weather", arguments = { city = "{city}" } }   # arguments from the named groups
    # (a rule with a call applies only when the session declared that function, as the real model can call
    # nothing else; otherwise the next rule or the fallback answers)
    answer = "It is {output[forecast]} in {output[city]}."            # after the function output
    [[rules]]
    pattern = "thank|bye"
    say = "You are welcome. Goodbye!"

Each template's fields are checked when the rules load (server/templates.py): `fallback` has `{transcript}`,
`{earlier[N]}` and `{previous}`; a rule's `say` and call arguments also its pattern's named groups; its `answer`
also `{output[KEY]}` and `{outputs[TOOL][KEY]}`; `not_heard` and `idle` have `{earlier[N]}` and `{previous}`.
When the tool failed (`{"error": ...}`), or its output lacks a value the answer asks for, the agent says what the
tool returned instead: "get weather failed: no such city."
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from voiceclient.errors import ConfigError
from voiceclient.protocol.validation import read_object_file, validate
from voiceclient.server.faults import FaultSpec
from voiceclient.server.responders import (
    FunctionCall,
    Responder,
    ResponsePlan,
    ScenarioResponder,
    Speech,
    TurnContext,
    earlier_fields,
)
from voiceclient.server.templates import (
    BY_TOOL,
    JSON,
    TEXT,
    TEXTS,
    Fields,
    Unfilled,
    check_places,
    failure,
    fill,
    output_values,
    parse_output,
    tool_report,
)


class AgentCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class AgentRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str
    say: str | None = None
    call: AgentCall | None = None
    answer: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"a regular expression ({exc})") from None
        return v

    @model_validator(mode="after")
    def _answer_needs_a_call(self) -> "AgentRule":
        if self.answer is not None and self.call is None:
            raise PydanticCustomError("explained", "an answer is said after a call's output: this rule has no call")
        return self

    def say_fields(self) -> Fields:
        """The fields of its `say` and call arguments: what was heard, and its pattern's named groups."""
        return HEARD_FIELDS + Fields(dict.fromkeys(re.compile(self.pattern).groupindex, TEXT))

    def answer_fields(self) -> Fields:
        tools = (self.call.name,) if self.call is not None else ()
        return self.say_fields() + Fields({"output": JSON, "outputs": BY_TOOL}, tools)


HEARD_FIELDS = Fields({"transcript": TEXT, "earlier": TEXTS, "previous": TEXT})  # the fallback's
UNHEARD_FIELDS = Fields({"earlier": TEXTS, "previous": TEXT})  # not_heard's and idle's (nothing was heard)


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[AgentRule] = Field(default_factory=list)
    fallback: str = "You said: {transcript}."
    not_heard: str = "Sorry, I did not catch that."
    idle: str = "Are you still there?"
    faults: list[FaultSpec] = Field(default_factory=list)  # injected by the server (server/faults.py)

    @model_validator(mode="after")
    def _templates(self) -> "AgentSpec":
        check_places(self.templates())
        return self

    def templates(self) -> Iterator[tuple[str, str | None, Fields]]:
        """Each template with where it is and its fields."""
        yield "fallback", self.fallback, HEARD_FIELDS
        yield "not_heard", self.not_heard, UNHEARD_FIELDS
        yield "idle", self.idle, UNHEARD_FIELDS
        for i, rule in enumerate(self.rules):
            where = f"rules[{i}] (pattern {rule.pattern!r})"
            yield f"{where} say", rule.say, rule.say_fields()
            if rule.call is not None:
                for path, text in _strings(rule.call.arguments, "arguments"):
                    yield f"{where} call {path}", text, rule.say_fields()
            yield f"{where} answer", rule.answer, rule.answer_fields()


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """The strings in a JSON value, with where each is (arguments.city, arguments.stops[0])."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


@dataclass
class Asked:
    """What a rule's call carries to its answer: the rule, and the values of the turn that asked."""

    rule: AgentRule
    values: dict[str, Any]


class AgentResponder:
    listens = True  # the server hands it the transcript of each user turn

    def __init__(self, spec: AgentSpec | None = None) -> None:
        self.spec = spec or AgentSpec()

    @classmethod
    def from_file(cls, path: str | Path) -> "AgentResponder":
        data = read_object_file(path, "agent rules")
        return cls(validate(AgentSpec, data, prefix=f"agent rules {Path(path).name}"))

    @staticmethod
    def say(text: str) -> Speech:
        return Speech(text, None, paced=True)

    def answer(self, ctx: TurnContext) -> str:
        """What is said after function outputs: the rule's answer, or, when a tool failed or the answer asks for
        a value its output lacks (or there is no answer), what the tools returned."""
        asked = ctx.origin if isinstance(ctx.origin, Asked) else None
        outputs = ctx.function_outputs
        if asked is None or asked.rule.answer is None or any(failure(parse_output(o)) for _, o in outputs):
            return tool_report(outputs)
        try:
            return fill(asked.rule.answer, {**asked.values, **output_values(outputs)})
        except Unfilled:
            return tool_report(outputs)

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        if ctx.function_outputs:
            return ResponsePlan([self.say(self.answer(ctx))])
        heard = (ctx.transcript or "").strip()
        if ctx.user_audio is not None and ctx.user_audio.size == 0 and ctx.user_text is None:
            return ResponsePlan([self.say(fill(self.spec.idle, earlier_fields(ctx)))])  # an idle timeout's turn
        if not heard:
            return ResponsePlan([self.say(fill(self.spec.not_heard, earlier_fields(ctx)))])
        for rule in self.spec.rules:
            if rule.call is not None and not ctx.delegated_tools and rule.call.name not in ctx.function_tools:
                continue  # the real model calls only the tools the session declared (GPT-Live: it delegates)
            match = re.search(rule.pattern, heard, re.IGNORECASE)
            if match is None:
                continue
            values = {"transcript": heard, **earlier_fields(ctx), **match.groupdict(default="")}
            plan = ResponsePlan()
            if rule.say:
                plan.outputs.append(self.say(fill(rule.say, values)))
            if rule.call is not None:
                arguments = json.dumps(_fill(rule.call.arguments, values))
                plan.outputs.append(FunctionCall(rule.call.name, arguments, origin=Asked(rule, values)))
            return plan
        return ResponsePlan(
            [self.say(fill(self.spec.fallback, {"transcript": heard.rstrip(".?!"), **earlier_fields(ctx)}))]
        )


def is_agent_file(path: str | Path) -> bool:
    """An agent rules file has `rules` (or only `fallback`); a scenario has `turns`."""
    try:
        data = read_object_file(path, "scenario")
    except ConfigError:
        return False
    return "turns" not in data and ("rules" in data or "fallback" in data)


def responder_for(scenario: str | Path | None = None, agent: bool = False) -> Responder | None:
    """The responder `voiceclient serve` and the pytest plugin give a server: agent rules or scripted turns from a
    file (told apart by their contents), the default agent, or None (the echo)."""
    if scenario is not None:
        return AgentResponder.from_file(scenario) if is_agent_file(scenario) else ScenarioResponder.from_file(scenario)
    return AgentResponder() if agent else None


def scenario_faults(responder: Responder | None) -> list[FaultSpec]:
    """The `[[faults]]` of a scenario or agent file (none for the echo)."""
    if isinstance(responder, (AgentResponder, ScenarioResponder)):
        return list(responder.spec.faults)
    return []
