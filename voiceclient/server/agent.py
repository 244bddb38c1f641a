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
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    fill_template,
    output_fields,
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


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[AgentRule] = Field(default_factory=list)
    fallback: str = "You said: {transcript}."
    not_heard: str = "Sorry, I did not catch that."
    idle: str = "Are you still there?"
    faults: list[FaultSpec] = Field(default_factory=list)  # injected by the server (server/faults.py)


def _fill(value: Any, fields: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return fill_template(value, fields)
    if isinstance(value, dict):
        return {k: _fill(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, fields) for v in value]
    return value


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

    def plan(self, ctx: TurnContext) -> ResponsePlan:
        if ctx.function_outputs:
            rule = ctx.origin if isinstance(ctx.origin, AgentRule) else None
            fields = output_fields(ctx.function_outputs)
            text = (
                _fill(rule.answer, fields)
                if rule is not None and rule.answer
                else "Done: " + "; ".join(str(out) for _, out in ctx.function_outputs)
            )
            return ResponsePlan([self.say(text)])
        heard = (ctx.transcript or "").strip()
        if ctx.user_audio is not None and ctx.user_audio.size == 0 and ctx.user_text is None:
            return ResponsePlan([self.say(self.spec.idle)])  # an idle timeout's empty turn
        if not heard:
            return ResponsePlan([self.say(self.spec.not_heard)])
        for rule in self.spec.rules:
            if rule.call is not None and rule.call.name not in ctx.function_tools:
                continue  # the real model calls only the tools the session declared
            match = re.search(rule.pattern, heard, re.IGNORECASE)
            if match is None:
                continue
            fields = {
                "transcript": heard,
                **earlier_fields(ctx),
                **{k: v for k, v in match.groupdict().items() if v is not None},
            }
            plan = ResponsePlan()
            if rule.say:
                plan.outputs.append(self.say(_fill(rule.say, fields)))
            if rule.call is not None:
                plan.outputs.append(
                    FunctionCall(rule.call.name, json.dumps(_fill(rule.call.arguments, fields)), origin=rule)
                )
            return plan
        return ResponsePlan(
            [self.say(_fill(self.spec.fallback, {"transcript": heard.rstrip(".?!"), **earlier_fields(ctx)}))]
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
    spec = getattr(responder, "spec", None)
    return list(getattr(spec, "faults", None) or [])
